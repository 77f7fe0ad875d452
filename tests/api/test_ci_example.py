"""The CI example in docs/ stays runnable: no GitHub runner here, so it is read: its `harness`
command line parses with the command's own parser, the SARIF it writes is the file it
uploads, and the console script it installs is the command."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import yaml

from harness_cli.main import main, parser
from tests.conftest import ROOT

WORKFLOW = ROOT / "docs" / "ci" / "harness-audit.yml"


def _steps() -> list[dict[str, Any]]:
    flow = yaml.safe_load(WORKFLOW.read_text())
    assert flow["permissions"]["security-events"] == "write"
    return list(flow["jobs"]["audit"]["steps"])


def _expressions_filled(text: str) -> str:
    return re.sub(r"\$\{\{[^}]*\}\}", "X", text)


def test_the_workflow_runs_the_command_as_its_parser_reads_it() -> None:
    steps = _steps()
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert "--no-deps" in install["run"]
    audit = next(s for s in steps if s.get("run", "").startswith("harness "))
    assert set(audit["env"]) == {"HARNESS_URL", "HARNESS_TOKEN"}
    argv = shlex.split(_expressions_filled(audit["run"]))[1:]
    args = parser().parse_args(argv)
    assert (args.command, args.playbook, args.upload, args.wait) == (
        "launch",
        "codebase-audit",
        ".",
        True,
    )
    upload = next(s for s in steps if "upload-sarif" in s.get("uses", ""))
    assert upload["with"]["sarif_file"] == args.sarif
    assert "hashFiles('harness.sarif')" in upload["if"]


def test_the_console_script_is_the_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["harness"] == "harness_cli.main:main"
    assert project["tool"]["setuptools"]["packages"] == ["harness_cli"]
    assert callable(main)

"""The `harness` command end to end: a real daphne serving the API, a real Celery worker, the
command run as CI runs it (a subprocess with HARNESS_URL and HARNESS_TOKEN): upload a folder,
wait with progress, exit like `launch_run`, write the SARIF."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness_cli.client import archive_of
from runs.actions.tokens import create_token
from runs.models import Run
from tests.browser.conftest import Daphne, free_port
from tests.conftest import ROOT

APP = ROOT / "samples" / "vulnerable_app"


@pytest.fixture
def server(transactional_db: Any) -> Iterator[Daphne]:
    daphne = Daphne(free_port())
    daphne.start()
    yield daphne
    daphne.stop()


def harness(server: Daphne, token: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update({"HARNESS_URL": server.url, "HARNESS_TOKEN": token, "PYTHONPATH": str(ROOT)})
    return subprocess.run(
        [sys.executable, "-m", "harness_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
def test_the_cli_audits_an_uploaded_folder_and_writes_its_sarif(
    server: Daphne, celery_worker: Any, make_user: Any, tmp_path: Path
) -> None:
    celery_worker(concurrency=2, pool="threads")
    _, token = create_token(make_user("operator", username="ci"), "CI", ["read", "launch"])
    repo = tmp_path / "repo"
    shutil.copytree(APP, repo)
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]\n")

    done = harness(
        server,
        token,
        *("launch", "--playbook", "codebase-audit", "--upload", str(repo), "--title", "PR 7"),
        *("--wait", "--poll", "0.5", "--timeout", "240", "--sarif", "out.sarif", "--json"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, (done.stdout, done.stderr, server.tail())
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    run = Run.objects.get(pk=summary["run_id"])
    assert summary["status"] == run.status == Run.Status.AWAITING_REVIEW
    assert run.launched_by is not None and run.launched_by.username == "ci"
    assert (run.target_kind, run.title) == ("archive", "PR 7")
    assert summary["agents"]["total"] > 0 and summary["findings"] > 0
    assert "agents" in done.stderr and f"Run #{run.pk} launched" in done.stderr  # progress
    sarif = json.loads((tmp_path / "out.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    # Code scanning places each result by its path from the repository's root: the upload's.
    for result in sarif["runs"][0]["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert (repo / location["uri"]).is_file(), location

    exported = harness(
        server, token, "export", str(run.pk), "--format", "md", "-o", "r.md", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "r.md").read_text().strip()


@pytest.mark.integration
def test_the_cli_exits_like_launch_run_refused_spent_held_or_denied(
    server: Daphne, celery_worker: Any, make_user: Any, tmp_path: Path
) -> None:
    celery_worker(concurrency=2, pool="threads")
    _, token = create_token(make_user("operator"), "CI", ["read", "launch"])
    refused = harness(
        server,
        token,
        *("launch", "--playbook", "ensemble", "--target", "samples/vulnerable_app/"),
        *("--set", "k=999", "--json"),
        cwd=tmp_path,
    )
    assert refused.returncode == 1
    assert "Launch refused (k): Voters (K) must be between 1 and 50." in refused.stderr
    assert json.loads(refused.stdout)["status"] == "refused"
    assert not Run.objects.exists()

    spent = harness(
        server,
        token,
        *("launch", "--playbook", "codebase-audit", "--target", "samples/vulnerable_app/"),
        *("--budget-usd", "0.000001", "--wait", "--poll", "0.5", "--timeout", "240"),
        cwd=tmp_path,
    )
    assert spent.returncode == 3, (spent.stdout, spent.stderr)
    assert "budget_exhausted" in spent.stderr

    held = harness(
        server,
        token,
        *("launch", "--playbook", "codebase-audit", "--target", "samples/vulnerable_app/"),
        *("--hold-agents", "--wait", "--poll", "0.3", "--timeout", "240", "--json"),
        cwd=tmp_path,
    )
    assert held.returncode == 5, (held.stdout, held.stderr)
    assert json.loads(held.stdout.strip().splitlines()[-1])["awaiting_approval"] > 0
    assert "await approval" in held.stderr and "/approvals/" in held.stderr

    _, viewer_token = create_token(make_user("viewer"), "read only", ["read"])
    denied = harness(
        server,
        viewer_token,
        *("launch", "--playbook", "codebase-audit", "--target", "samples/vulnerable_app/"),
        cwd=tmp_path,
    )
    assert denied.returncode == 1 and "lacks the launch scope" in denied.stderr


def test_a_folder_is_zipped_without_vcs_folders_or_links(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print(1)\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref\n")
    (tmp_path / "src" / "passwd").symlink_to("/etc/passwd")
    name, data = archive_of(tmp_path)
    assert name.endswith(".zip")
    path = tmp_path.parent / "check.zip"
    path.write_bytes(data)
    assert zipfile.ZipFile(path).namelist() == ["src/app.py"]

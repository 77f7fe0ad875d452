"""The blind measurement through the product path (``measure_analyzer.py --heldout``).

For each held-out app: ``manage.py launch_run --playbook codebase-audit --target APP --wait
--json`` then ``manage.py export_report RUN --format sarif``, both run in the code tree being
measured (``--tree``: this checkout, or another branch's worktree) against a data directory of
their own, exactly as a user runs them. The SARIF's security results are scored against the
app's labels (``samples/public_labels/<app>.labels.json``) and the hand judgements of the results
that hit no label (``<app>.judged.json``); bandit alone runs over the same tree for comparison.

A result hits a label when it is in the same file, at most three lines from the label's line (or
one of its ``also`` lines), and of the same weakness: the same class (``sec.sql`` -> ``sql``) or
one of the label's CWEs (named in the result's message, "(CWE-89)"). The CWE match lets a
renamed or new rule count without this script knowing its id.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bandit.core import config, manager

WINDOW = 3
CWE_RE = re.compile(r"CWE-(\d+)")
# Where third-party front-end code is kept; a finding there is noise whatever its rule says.
VENDORED_RE = re.compile(
    r"(^|/)(vendor|vendors|node_modules|bower_components|third_party|lib|libs|plugins)/"
    r"|\.min\.(js|css)$|(^|/)(jquery|bootstrap|popper|d3|moment|angular|react|vue)[\w.-]*\.js$",
    re.IGNORECASE,
)


SUMMED = (
    *("labels", "recalled", "claimed", "claimed_recalled", "bandit_recalled", "bandit_reported"),
    *(
        "security",
        "true",
        "false",
        "test_true",
        "test_false",
        "lines",
        "py_lines",
        "run_seconds",
        "command_seconds",
    ),
)

TEST_RE = re.compile(r"(^|/)(tests?|testing)/|(^|/)test_[^/]*\.py$|_tests?\.py$")


@dataclass(frozen=True)
class Found:
    path: str
    line: int
    rule: str
    cls: str
    cwes: frozenset[int] = frozenset()


@dataclass
class AppScore:
    """The figures of one app (or their sum over apps)."""

    labels: int = 0
    recalled: int = 0
    claimed: int = 0
    claimed_recalled: int = 0
    bandit_recalled: int = 0
    bandit_reported: int = 0
    security: int = 0
    true: int = 0
    false: int = 0
    test_true: int = 0  # of `true` and `false`: those in test code
    test_false: int = 0
    unjudged: list[Found] = field(default_factory=list)
    vendored: list[Found] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    py_lines: int = 0
    run_seconds: float = 0.0
    command_seconds: float = 0.0

    def add(self, other: AppScore) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unjudged += other.unjudged
        self.vendored += other.vendored


def label_cwes(label: dict[str, Any]) -> frozenset[int]:
    cwe = label.get("cwe")
    return frozenset(cwe if isinstance(cwe, list) else [cwe] if cwe else [])


def hits(found: Found, label: dict[str, Any]) -> bool:
    if found.path != label["path"]:
        return False
    if found.cls != label["class"] and not found.cwes & label_cwes(label):
        return False
    lines = [int(label["line"]), *(int(n) for n in label.get("also", []))]
    return any(abs(found.line - n) <= WINDOW for n in lines)


def sarif_findings(sarif: dict[str, Any], rule_class: Callable[[str], str]) -> list[Found]:
    """The security results of an exported report: a ``sec.``/``bandit.`` rule, or the
    security lens among the lenses that reported it."""
    out = []
    for run in sarif.get("runs", []):
        for r in run.get("results", []):
            rule = str(r.get("ruleId", ""))
            lenses = r.get("properties", {}).get("lenses", [])
            if not (rule.startswith(("sec.", "bandit.")) or "security" in lenses):
                continue
            loc = r["locations"][0]["physicalLocation"]
            line = int(loc.get("region", {}).get("startLine", 0))
            text = r.get("message", {}).get("text", "")
            cwes = frozenset(int(n) for n in CWE_RE.findall(text))
            path = unquote(loc["artifactLocation"]["uri"])
            out.append(Found(path, line, rule, rule_class(rule), cwes))
    return out


def bandit_findings(target: Path, rule_class: Callable[[str], str]) -> list[Found]:
    """bandit's own default run over every Python file of the tree, as ``bandit -r`` would."""
    files = sorted(str(p) for p in target.rglob("*.py") if p.is_file())
    mgr = manager.BanditManager(config.BanditConfig(), "file", quiet=True)
    mgr.discover_files(files)
    mgr.run_tests()
    out = []
    for i in mgr.get_issue_list():
        cwe = getattr(getattr(i, "cwe", None), "id", 0) or 0
        path = Path(i.fname).relative_to(target).as_posix()
        out.append(Found(path, i.lineno, i.test_id, rule_class(i.test_id), frozenset({cwe})))
    return out


def count_lines(target: Path) -> tuple[int, int]:
    """(lines of every text file, lines of Python) under the target."""
    total = py = 0
    for p in target.rglob("*"):
        if not p.is_file():
            continue
        try:
            n = p.read_text(encoding="utf-8").count("\n")
        except (UnicodeDecodeError, OSError):
            continue
        total += n
        py += n if p.suffix == ".py" else 0
    return total, py


def _manage(tree: Path, env: dict[str, str], *args: str, timeout: float) -> str:
    python = tree / ".venv" / "bin" / "python"
    proc = subprocess.run(  # noqa: S603 - the measured tree's own interpreter and manage.py
        [str(python), str(tree / "manage.py"), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def run_product(
    tree: Path, target: Path, data_dir: Path, redis_url: str
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """(SARIF, launch summary, command wall seconds) of one audit run through the product."""
    env = {
        **os.environ,
        "HARNESS_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "HARNESS_TARGET_ROOTS": str(target.parent),
    }
    env.pop("DATABASE_URL", None)  # SQLite in the data directory: nobody else's database
    started = time.monotonic()
    out = _manage(
        tree,
        env,
        *("launch_run", "--playbook", "codebase-audit", "--target", str(target)),
        *("--wait", "--json"),
        timeout=3600,
    )
    seconds = time.monotonic() - started
    summary = json.loads(out.strip().splitlines()[-1])
    if summary.get("status") != "awaiting_review":
        raise SystemExit(f"run on {target.name} ended {summary.get('status')}: {summary}")
    sarif = json.loads(
        _manage(
            tree, env, "export_report", str(summary["run_id"]), "--format", "sarif", timeout=600
        )
    )
    return sarif, summary, seconds


def claimed(tree: Path, rule_class: Callable[[str], str]) -> tuple[set[str], set[int]]:
    """The weakness classes and CWEs the measured tree's security rules claim (its security
    lens's rules and their ``RULE_CWE``), read by that tree's own interpreter; if that tree
    has moved the tables, every ``"sec.x"`` rule id and ``"sec.x": cwe`` pair in its analyzer."""
    code = (
        "import json; from agents.analysis.base import RULE_CWE, RULES_BY_LENS as L; "
        "print(json.dumps({r: RULE_CWE.get(r) for r in L['security']}))"
    )
    proc = subprocess.run(  # noqa: S603 - the measured tree's own interpreter, our code
        [str(tree / ".venv" / "bin" / "python"), "-c", code],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        rule_cwe: dict[str, int | None] = json.loads(proc.stdout)
        return {rule_class(r) for r in rule_cwe}, {int(c) for c in rule_cwe.values() if c}
    source = "\n".join(p.read_text() for p in (tree / "agents" / "analysis").rglob("*.py"))
    classes = {rule_class(r) for r in re.findall(r'"(sec\.\w+)"', source)}
    return classes, {int(c) for c in re.findall(r'"sec\.\w+":\s*(\d+)', source)}


def score_app(
    labels: list[dict[str, Any]],
    ours: list[Found],
    theirs: list[Found],
    judged: Iterable[dict[str, Any]],
    claimed_classes: set[str],
    claimed_cwes: set[int],
) -> AppScore:
    verdicts = {(j["path"], j["rule"], int(j["line"])): j for j in judged}
    s = AppScore(labels=len(labels))
    for label in labels:
        got = any(hits(f, label) for f in ours)
        within = label["class"] in claimed_classes or bool(label_cwes(label) & claimed_cwes)
        s.recalled += got
        s.claimed += within
        s.claimed_recalled += got and within
        s.bandit_recalled += any(hits(f, label) for f in theirs)
        if not got:
            s.missed.append(label)
    s.bandit_reported = len(theirs)
    for f in ours:
        judgement = verdicts.get((f.path, f.rule, f.line), {})
        # A judge marks vendored code the path patterns miss (a library under a plain name).
        if VENDORED_RE.search(f.path) or judgement.get("vendored"):
            s.vendored.append(f)
        s.security += 1
        if any(hits(f, label) for label in labels):
            s.true += 1
        elif judgement:
            s.true += bool(judgement["true"])
            s.false += not judgement["true"]
            in_tests = bool(TEST_RE.search(f.path))
            s.test_true += in_tests and bool(judgement["true"])
            s.test_false += in_tests and not judgement["true"]
        else:
            s.unjudged.append(f)
    return s


def pct(n: int, d: int) -> str:
    return f"{n}/{d} = {n / d:.0%}" if d else f"{n}/0"

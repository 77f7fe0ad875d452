"""Recall and precision of the offline security lens against bandit alone, on a labelled target.

    .venv/bin/python scripts/measure_analyzer.py [--target samples/vulnerable_app]

Ground truth is the target's EXPECTED.json (its security entries that are not suppressed).
"bandit alone" is bandit's own default run over the same files (every test, `# nosec` honoured),
as a user would run `bandit -r`. A reported issue is a true positive when it lands within two
lines of a labelled problem in the same file (bandit reports where a query is *built*, we report
where it is *executed*); each labelled problem is matched once. Vendored files are skipped for
both, as the heuristic provider skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bandit.core import config, manager

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.analysis import analyze_code, vendored_reason  # noqa: E402
from agents.analysis.bandit_lens import bandit_version  # noqa: E402

Hit = tuple[str, int]


def _score(found: list[Hit], truth: list[Hit]) -> tuple[int, int, int]:
    """(true positives, reported, labelled) with one-to-one matching within two lines."""
    left = list(truth)
    tp = 0
    for path, line in sorted(found):
        match = next((t for t in left if t[0] == path and abs(t[1] - line) <= 2), None)
        if match:
            left.remove(match)
            tp += 1
    return tp, len(found), len(truth)


def _bandit_alone(target: Path, files: list[str]) -> list[Hit]:
    mgr = manager.BanditManager(config.BanditConfig(), "file", quiet=True)
    mgr.discover_files([str(target / f) for f in files])
    mgr.run_tests()
    return [(Path(i.fname).relative_to(target).as_posix(), i.lineno) for i in mgr.get_issue_list()]


def _line(name: str, tp: int, reported: int, labelled: int) -> str:
    precision = tp / reported if reported else 1.0
    recall = tp / labelled if labelled else 1.0
    return (
        f"{name:<22} recall {tp}/{labelled} = {recall:.0%}   "
        f"precision {tp}/{reported} = {precision:.0%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", default="samples/vulnerable_app")
    target = (ROOT / parser.parse_args().target).resolve()
    expected = json.loads((target / "EXPECTED.json").read_text())
    truth_all = [
        (e["path"], e["line"])
        for e in expected
        if (e["rule"].startswith(("sec.", "bandit.")) and not e.get("suppressed"))
    ]
    files = sorted(
        p.relative_to(target).as_posix()
        for p in target.rglob("*")
        if p.is_file() and p.name != "EXPECTED.json"
    )
    files = [f for f in files if not vendored_reason(f)]
    ours = [
        (f, finding.line_start)
        for f in files
        for finding in analyze_code(f, (target / f).read_text(encoding="utf-8"), "security")
    ]
    python = [f for f in files if f.endswith(".py")]
    theirs = _bandit_alone(target, python)
    truth_py = [t for t in truth_all if t[0].endswith(".py")]
    ours_py = [h for h in ours if h[0].endswith(".py")]
    print(f"target {target.relative_to(ROOT)}; bandit {bandit_version()}; {len(files)} files")
    print(_line("analyzer, all files", *_score(ours, truth_all)))
    print(_line("bandit alone, all", *_score(theirs, truth_all)))
    print(_line("analyzer, .py only", *_score(ours_py, truth_py)))
    print(_line("bandit alone, .py only", *_score(theirs, truth_py)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Recall and precision of the offline security lens against bandit alone, on a labelled target.

    .venv/bin/python scripts/measure_analyzer.py [--target samples/vulnerable_app]
    .venv/bin/python scripts/measure_analyzer.py --target /tmp/dsvw --labels /tmp/dsvw.labels.json

Ground truth is the target's answer key, `<target>.expected.json` beside its folder (its
security entries that are not suppressed).
"bandit alone" is bandit's own default run over the same files (every test, `# nosec` honoured),
as a user would run `bandit -r`. A reported issue is a true positive when it lands within two
lines of a labelled problem in the same file (bandit reports where a query is *built*, we report
where it is *executed*); each labelled problem is matched once. Vendored files are skipped for
both, as the heuristic provider skips them.

With `--labels FILE` (for code outside this repository, whose flaws come from its own
documentation) the ground truth is that file instead: a JSON list of
`{"path": "app.py", "line": 30, "class": "sql"}` where `class` is a weakness class (`sql`, `xss`,
`ssrf`, ... see `rule_class`). Scoring is then class-aware: a finding hits a label when it is in
the same file, within three lines, and of the same class; recall counts labels hit, precision
counts findings that hit some label (two tools reporting one flaw are not a false positive).

With `--heldout ROOT --apps a,b` it measures blind, through the product path a user runs
(`launch_run --playbook codebase-audit`, then `export_report --format sarif`) in the code tree
`--tree` (default this checkout), each app `ROOT/<app>` scored against
`samples/public_labels/<app>.labels.json` and `<app>.judged.json` (see `measure_product.py`):

    .venv/bin/python scripts/measure_analyzer.py --heldout /tmp/heldout --apps djangoat,bytebazaar \
        [--tree /path/to/other/worktree] [--data-dir /tmp/h_mea_x] [--out figures.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bandit.core import config, manager

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure_product import (  # noqa: E402 - beside this script, on sys.path[0]
    AppScore,
    bandit_findings,
    claimed,
    count_lines,
    pct,
    run_product,
    sarif_findings,
    score_app,
)

from agents.analysis import analyze_code, vendored_reason  # noqa: E402
from agents.analysis.bandit_lens import bandit_version  # noqa: E402

LABELS = ROOT / "samples" / "public_labels"

Hit = tuple[str, int]
Labelled = tuple[str, int, str]

# Bandit test ids -> weakness class, for class-aware scoring against labels.
_BANDIT_CLASS = {
    **dict.fromkeys(("B608", "B610", "B611"), "sql"),
    **dict.fromkeys(("B601", "B602", "B604", "B605", "B606", "B609"), "shell"),
    **dict.fromkeys(("B102", "B307"), "eval"),
    **dict.fromkeys(("B301", "B302", "B506", "B614"), "deserialize"),
    **dict.fromkeys(("B303", "B324"), "weak_hash"),
    **dict.fromkeys((f"B3{n}" for n in range(13, 21)), "xxe"),
    **dict.fromkeys(("B308", "B701", "B703", "B704"), "xss"),
    **dict.fromkeys(("B501", "B502", "B503", "B504", "B323"), "tls"),
    "B311": "weak_random",
    "B310": "ssrf",
    "B201": "debug",
}


def rule_class(rule: str) -> str:
    """`sec.sql` -> `sql`, `bandit.B608` / `B608` -> `sql`; anything else keeps its id."""
    if rule.startswith("sec."):
        return rule[4:]
    test_id = rule.removeprefix("bandit.")
    return _BANDIT_CLASS.get(test_id, test_id)


def _score_classes(found: list[Labelled], truth: list[Labelled]) -> tuple[int, int, int, int]:
    """(labels hit, findings that hit a label, findings, labels): same file and class, three
    lines apart at most."""

    def hits(f: Labelled, t: Labelled) -> bool:
        return f[0] == t[0] and f[2] == t[2] and abs(f[1] - t[1]) <= 3

    recalled = sum(1 for t in truth if any(hits(f, t) for f in found))
    precise = sum(1 for f in found if any(hits(f, t) for t in truth))
    return recalled, precise, len(found), len(truth)


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


def _bandit_issues(target: Path, files: list[str]) -> list[Labelled]:
    mgr = manager.BanditManager(config.BanditConfig(), "file", quiet=True)
    mgr.discover_files([str(target / f) for f in files])
    mgr.run_tests()
    return [
        (Path(i.fname).relative_to(target).as_posix(), i.lineno, rule_class(i.test_id))
        for i in mgr.get_issue_list()
    ]


def _bandit_alone(target: Path, files: list[str]) -> list[Hit]:
    return [(path, line) for path, line, _ in _bandit_issues(target, files)]


def _line(name: str, tp: int, reported: int, labelled: int) -> str:
    precision = tp / reported if reported else 1.0
    recall = tp / labelled if labelled else 1.0
    return (
        f"{name:<22} recall {tp}/{labelled} = {recall:.0%}   "
        f"precision {tp}/{reported} = {precision:.0%}"
    )


def _files(target: Path) -> list[str]:
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    return [f for f in files if not vendored_reason(f)]


def answer_key(target: Path) -> Path:
    """``samples/x.expected.json`` for ``samples/x``: beside the folder, never inside it, so
    no agent auditing the target reads the answers."""
    return target.parent / f"{target.name}.expected.json"


def _shown(target: Path) -> str:
    return target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else str(target)


def _measure_labels(target: Path, labels_file: Path) -> int:
    truth = [(e["path"], int(e["line"]), e["class"]) for e in json.loads(labels_file.read_text())]
    python = [f for f in _files(target) if f.endswith(".py")]
    ours = [
        (f, finding.line_start, rule_class(finding.rule))
        for f in python
        for finding in analyze_code(f, (target / f).read_text(encoding="utf-8"), "security")
    ]
    theirs = _bandit_issues(target, python)
    print(f"target {_shown(target)}; labels {labels_file}; bandit {bandit_version()}")
    print(f"{len(python)} Python files, {len(truth)} labelled flaws (class-aware, within 3 lines)")
    for name, found in (("analyzer", ours), ("bandit alone", theirs)):
        recalled, precise, reported, labelled = _score_classes(found, truth)
        print(
            f"{name:<14} recall {recalled}/{labelled} = {recalled / max(labelled, 1):.0%}   "
            f"precision {precise}/{reported} = {precise / max(reported, 1):.0%}"
        )
    missed = [
        t
        for t in truth
        if not any(f[0] == t[0] and f[2] == t[2] and abs(f[1] - t[1]) <= 3 for f in ours)
    ]
    for path, line, cls in missed:
        print(f"  missed by the analyzer: {path}:{line} {cls}")
    wrong = [
        f
        for f in ours
        if not any(f[0] == t[0] and f[2] == t[2] and abs(f[1] - t[1]) <= 3 for t in truth)
    ]
    for path, line, cls in wrong:
        print(f"  unlabelled finding: {path}:{line} {cls}")
    return 0


def _row(name: str, s: AppScore) -> str:
    judged = s.true + s.false
    per10k = s.run_seconds / max(s.lines, 1) * 10_000
    return (
        f"{name:<11} recall {pct(s.recalled, s.labels):<12}"
        f" claimed {pct(s.claimed_recalled, s.claimed):<12}"
        f" bandit {pct(s.bandit_recalled, s.labels):<12} precision {pct(s.true, judged):<12}"
        f" (outside tests {pct(s.true - s.test_true, judged - s.test_true - s.test_false)})"
        f" unjudged {len(s.unjudged)}  vendored {len(s.vendored)}  {s.lines} lines"
        f" ({s.py_lines} py)  run {s.run_seconds:.1f} s ({s.command_seconds:.1f} s command)"
        f"  {per10k:.1f} s/10k lines"
    )


def _plain(o: object) -> object:
    return sorted(o) if isinstance(o, frozenset) else vars(o)


def _measure_heldout(args: argparse.Namespace) -> int:
    tree = args.tree.resolve()
    classes, cwes = claimed(tree, rule_class)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    data_root = (args.data_dir or Path(tempfile.gettempdir()) / f"h_mea_{stamp}").resolve()
    print(f"tree {tree}; data {data_root}; bandit {bandit_version()}")
    print(f"claimed classes: {', '.join(sorted(classes))}")
    total, figures = AppScore(), {}
    for app in args.apps.split(","):
        target = (args.heldout / app).resolve()
        labels = json.loads((args.labels_dir / f"{app}.labels.json").read_text())
        judged_file = args.labels_dir / f"{app}.judged.json"
        judged = json.loads(judged_file.read_text()) if judged_file.exists() else []
        data_dir = data_root / app
        if args.rescore:  # the report of an earlier measurement, judged since
            sarif = json.loads((data_dir / "report.sarif").read_text())
            summary = json.loads((data_dir / "summary.json").read_text())
        else:
            data_dir.mkdir(parents=True, exist_ok=False)  # a fresh database every time
            sarif, summary, seconds = run_product(tree, target, data_dir, args.redis_url)
            summary["command_seconds"] = seconds
            (data_dir / "report.sarif").write_text(json.dumps(sarif, indent=1))
            (data_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        ours = sarif_findings(sarif, rule_class)
        s = score_app(labels, ours, bandit_findings(target, rule_class), judged, classes, cwes)
        s.lines, s.py_lines = count_lines(target)
        s.run_seconds = float(summary["wall_seconds"])
        s.command_seconds = float(summary["command_seconds"])
        print(_row(app, s))
        for label in s.missed:
            print(f"    missed {label['path']}:{label['line']} {label['class']}")
        for f in s.unjudged:
            print(f"    unjudged {f.path}:{f.line} {f.rule} {sorted(f.cwes)}")
        for f in s.vendored:
            print(f"    vendored {f.path}:{f.line} {f.rule}")
        figures[app] = {**vars(s), "run_id": summary["run_id"], "status": summary["status"]}
        total.add(s)
    print(_row("total", total))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1, default=_plain))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", default="samples/vulnerable_app")
    parser.add_argument(
        "--labels", type=Path, help="JSON labels for a target without an answer key (see above)"
    )
    parser.add_argument("--heldout", type=Path, help="folder of held-out apps (see above)")
    parser.add_argument("--apps", default="djangoat,bytebazaar", help="comma-separated")
    parser.add_argument("--labels-dir", type=Path, default=LABELS)
    parser.add_argument("--tree", type=Path, default=ROOT, help="code tree whose manage.py runs")
    parser.add_argument("--data-dir", type=Path, help="HARNESS_DATA_DIR root, a fresh one")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the reports an earlier --heldout run left in --data-dir (after judging)",
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    if args.heldout:
        return _measure_heldout(args)
    # An absolute target (code fetched outside this repository) is taken as it is.
    target = (ROOT / args.target).resolve()
    if args.labels:
        return _measure_labels(target, args.labels.resolve())
    expected = json.loads(answer_key(target).read_text())
    truth_all = [
        (e["path"], e["line"])
        for e in expected
        if (e["rule"].startswith(("sec.", "bandit.")) and not e.get("suppressed"))
    ]
    files = _files(target)
    ours = [
        (f, finding.line_start)
        for f in files
        for finding in analyze_code(f, (target / f).read_text(encoding="utf-8"), "security")
    ]
    python = [f for f in files if f.endswith(".py")]
    theirs = _bandit_alone(target, python)
    truth_py = [t for t in truth_all if t[0].endswith(".py")]
    ours_py = [h for h in ours if h[0].endswith(".py")]
    print(f"target {_shown(target)}; bandit {bandit_version()}; {len(files)} files")
    print(_line("analyzer, all files", *_score(ours, truth_all)))
    print(_line("bandit alone, all", *_score(theirs, truth_all)))
    print(_line("analyzer, .py only", *_score(ours_py, truth_py)))
    print(_line("bandit alone, .py only", *_score(theirs, truth_py)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

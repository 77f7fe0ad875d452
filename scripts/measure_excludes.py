"""How many agents the excludes save: the plan of a target with the default excludes off, on,
and on with extra globs.

    .venv/bin/python scripts/measure_excludes.py --target DIR [--playbook P] [--exclude GLOB…]

Lists the target exactly as a launch freezes it (``freeze_directory`` without a store: nothing
is written) and plans it with the playbook's default options and no agent cap, so the counts are
the ones a launch would plan (``launch_run`` refuses a plan above ``max_agents``). Prints, for
each setting, the files kept, what was excluded by reason, and the agents planned.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.planning import plan  # noqa: E402
from agents.playbooks import PLAYBOOKS  # noqa: E402
from agents.snapshot import Excludes, freeze_directory  # noqa: E402


def measure(target: Path, playbook: str, exclude: Excludes) -> dict[str, object]:
    manifest = freeze_directory(target, [target.parent], None, exclude=exclude).to_dict()
    book = replace(PLAYBOOKS[playbook], max_agents=sys.maxsize)
    excluded = {
        reason: n for reason, n in manifest["skipped_counts"].items() if reason.startswith("excl")
    }
    return {
        "files": len(manifest["files"]),
        "excluded": excluded,
        "agents": len(plan(book, manifest)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, type=Path)
    parser.add_argument("--playbook", default="codebase-audit", choices=sorted(PLAYBOOKS))
    parser.add_argument("--exclude", nargs="+", default=[], metavar="GLOB")
    args = parser.parse_args()
    target = args.target.resolve()
    settings = {
        "default excludes off": Excludes(defaults=False),
        "default excludes on": Excludes(),
    }
    if args.exclude:
        settings[f"defaults + {' '.join(args.exclude)}"] = Excludes(args.exclude)
    results = {name: measure(target, args.playbook, ex) for name, ex in settings.items()}
    print(json.dumps({"target": target.name, "playbook": args.playbook, **results}, indent=1))


if __name__ == "__main__":
    main()

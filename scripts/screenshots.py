"""Save screenshots of the runs list, the launch form and a run page into docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

They come from the browser tests (daphne + a Celery worker + Redis + Chromium): the one that
launches a real run from the form, the 2,000-agent tree and an evaluation's scorecard with a
reviewer's calibration, so the README always shows what the product really renders.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/browser/test_live_dashboard.py::test_operator_launches_from_the_form_and_watches_it_live",
    "tests/browser/test_big_tree.py::test_a_group_opens_on_demand_and_closes",
    "tests/browser/test_scorecard_calibration.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    env = {**os.environ, "HARNESS_SCREENSHOTS_DIR": str(out)}
    result = subprocess.run(  # noqa: S603 - our own interpreter running our own test
        [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:warnings"],
        cwd=ROOT,
        env=env,
        check=False,
    )
    if result.returncode == 0:
        for name in sorted(out.glob("*.png")):
            print(name.relative_to(ROOT) if name.is_relative_to(ROOT) else name)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())

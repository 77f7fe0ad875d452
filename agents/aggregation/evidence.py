"""Evidence check: does a finding's cited location exist in the run's snapshot, and does it hold
the quoted evidence? Model output is untrusted, so a location is checked, never believed.

Statuses, best first (a cluster takes its best member's):

* ``verified`` — the file and lines exist and contain the quoted evidence;
* ``located`` — the file and lines exist, no evidence was quoted;
* ``unchecked`` — nothing to check (no path, or no snapshot to check against);
* ``evidence_not_found`` / ``no_such_line`` / ``no_such_file`` — fabricated or wrong.
"""

from __future__ import annotations

import re
from typing import Protocol

from agents.snapshot import SnapshotError

STATUS_ORDER = [
    "verified",
    "located",
    "unchecked",
    "evidence_not_found",
    "no_such_line",
    "no_such_file",
]
FABRICATED = frozenset({"evidence_not_found", "no_such_line", "no_such_file"})
# Models cite a line or two off; a quote is looked for this many lines around the range.
SLACK_LINES = 2
# Quotes are split where text was left out (a model's "..." or "…", the analyzers' masked
# secrets "ab****", line breaks) and fragments shorter than this are ignored.
_MIN_FRAGMENT = 4
_ELISION = re.compile(r"\.\.\.|…|\*{3,}|\n")


class TextSource(Protocol):
    def read_text(self, path: str) -> str: ...


def _squash(text: str) -> str:
    return " ".join(text.split()).lower()


def check_location(
    source: TextSource | None,
    path: str,
    line_start: int | None,
    line_end: int | None,
    evidence: str,
) -> str:
    if source is None or not path:
        return "unchecked"
    try:
        lines = source.read_text(path).splitlines()
    except (SnapshotError, UnicodeDecodeError):
        return "no_such_file"
    if line_start is not None:
        end = max(line_start, line_end or line_start)
        if line_start < 1 or end > len(lines):
            return "no_such_line"
        window = lines[max(0, line_start - 1 - SLACK_LINES) : end + SLACK_LINES]
    else:
        window = lines
    fragments = [
        _squash(f) for f in _ELISION.split(evidence or "") if len(f.strip()) >= _MIN_FRAGMENT
    ]
    if not fragments:
        return "located"
    haystack = _squash("\n".join(window))
    # Half the fragments is enough: a quote may end in a note of the quoter's own ("... (key
    # body not shown)"); an invented quote matches nothing.
    found = sum(f in haystack for f in fragments)
    return "verified" if found * 2 >= len(fragments) else "evidence_not_found"


def best_status(statuses: list[str]) -> str:
    return min(statuses, key=STATUS_ORDER.index) if statuses else "unchecked"

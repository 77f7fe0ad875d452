"""A reviewer's own scores of an evaluation's items (human calibration, issue 22).

Each scored cell is an ``evaluation.human_scored`` event: the log is the record (append-only, no
table of its own), and the latest event of a (reviewer, variant, item, dimension) is the score
the scorecard compares the judges with (``agents.evaluation.calibration``).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction

from agents.evaluation.calibration import NOTE_MAX_CHARS, ScoredCell
from agents.evaluation.rubric import SCALE
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_events
from runs.models import Run


def record_human_scores(run: Run, user: User, cells: Sequence[ScoredCell]) -> int:
    """Store ``cells`` (already checked against the scorecard by the form) as one transaction;
    returns how many. A score outside the scale is refused whole: nothing is stored."""
    low, high = SCALE
    if any(not low <= cell.score <= high for cell in cells):
        raise ValueError(f"Scores go from {low} to {high}.")
    by = str(user.get_username())
    with transaction.atomic():
        record_events(
            run,
            [
                (
                    EventType.EVALUATION_HUMAN_SCORED,
                    {
                        "item": cell.item,
                        "variant": cell.variant,
                        "dimension": cell.dimension,
                        "score": cell.score,
                        "note": cell.note[:NOTE_MAX_CHARS],
                        "by": by,
                    },
                    None,
                )
                for cell in cells
            ],
        )
    return len(cells)

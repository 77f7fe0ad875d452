"""The scorecard page's calibration section: the sample a reviewer scores by hand (each item's
prompt, response and reference read again from the run's snapshot: untrusted text, shown
escaped), the reviewer's own latest scores, and per dimension the judges' agreement with the
reviewers (``agents.evaluation.calibration``), also what the JSON export carries."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from agents.evaluation.calibration import (
    DISAGREE_BELOW,
    MIN_HUMAN_SCORES,
    NOTE_MAX_CHARS,
    HumanScore,
    calibrate,
    latest,
    sample_items,
)
from agents.evaluation.dataset import EvaluationInputError, item_at
from agents.evaluation.judge import JUDGE_STEP
from agents.snapshot import SnapshotError, open_snapshot
from runs.eventlog.event_types import EventType
from runs.models import Event, Run, Task


@dataclass
class SampleItem:
    variant: str
    id: str
    prompt: str = ""
    response: str = ""
    reference: str = ""
    readable: bool = False  # False when the snapshot no longer holds the dataset
    note: str = ""
    # (dimension, field name, the user's current score or None)
    cells: list[tuple[str, str, int | None]] = field(default_factory=list)
    note_field: str = ""


def score_field(variant: str, dimension: str, item: str) -> str:
    # The item id goes last: it is free text and may hold the separator itself.
    return f"score|{variant}|{dimension}|{item}"


def note_field(variant: str, item: str) -> str:
    return f"note|{variant}|{item}"


def human_scores(run: Run) -> list[HumanScore]:
    """Every hand score of the run, in the order they were given (the log's)."""
    rows = Event.objects.filter(run=run, type=EventType.EVALUATION_HUMAN_SCORED).order_by("seq")
    return [
        HumanScore(
            reviewer=str(p.get("by", "")),
            variant=str(p.get("variant", "")),
            item=str(p.get("item", "")),
            dimension=str(p.get("dimension", "")),
            score=int(p.get("score", 0)),
            note=str(p.get("note", "")),
        )
        for p in rows.values_list("payload", flat=True)
    ]


def card_with_calibration(card: dict[str, Any], run: Run) -> dict[str, Any]:
    """A copy of ``card`` whose every dimension row has a ``calibration`` key (the export's)."""
    result = calibrate(card, human_scores(run))
    card = copy.deepcopy(card)
    for row in card.get("dimensions", []):
        row["calibration"] = result[(str(row.get("variant") or ""), str(row["name"]))]
    return card


def _item_texts(
    run: Run, keys: list[tuple[str, str]], dimension: str
) -> dict[tuple[str, str], Any]:
    """The sampled items as the judges read them, from the run's snapshot; {} when it is gone.
    Where each item is comes from the scopes of one dimension's first judges (every item has
    one per variant), not from every judge of the run."""
    wanted = set(keys)
    where: dict[tuple[str, str], tuple[str, int]] = {}
    judges = Task.objects.filter(run=run, step=JUDGE_STEP, lens=dimension, scope__judge=0)
    for scope in judges.values_list("scope", flat=True):
        key = (str(scope.get("variant") or ""), str(scope.get("item")))
        if key in wanted and key not in where:
            where[key] = (str(scope.get("dataset")), int(scope.get("line") or 0))
    try:
        snapshot = open_snapshot(run.snapshot_ref)
    except (SnapshotError, OSError, ValueError):
        return {}
    texts: dict[str, str] = {}
    found = {}
    for key, (path, line) in where.items():
        try:
            if path not in texts:
                texts[path] = snapshot.read_text(path)
            found[key] = item_at(texts[path], line)
        except (SnapshotError, OSError, EvaluationInputError, KeyError):
            continue
    return found


def calibration_context(
    run: Run, card: dict[str, Any], user: Any, may_score: bool
) -> dict[str, Any]:
    scores = human_scores(run)
    names = list(dict.fromkeys(str(row["name"]) for row in card.get("dimensions", [])))
    keys = sample_items((str(i.get("variant") or ""), str(i["id"])) for i in card.get("items", []))
    texts = _item_texts(run, keys, names[0]) if names else {}
    mine = {
        (s.variant, s.item, s.dimension): s
        for s in latest(scores).values()
        if s.reviewer == user.get_username()
    }
    sample = []
    for variant, item_id in keys:
        entry = SampleItem(variant=variant, id=item_id, note_field=note_field(variant, item_id))
        item = texts.get((variant, item_id))
        if item is not None:
            entry.readable = True
            entry.prompt, entry.response = item.prompt, item.response
            entry.reference = item.reference or ""
        for name in names:
            own = mine.get((variant, item_id, name))
            entry.cells.append(
                (name, score_field(variant, name, item_id), own.score if own else None)
            )
            if own and own.note:
                entry.note = own.note
        sample.append(entry)
    result = calibrate(card, scores)
    rows = [
        {
            "name": row["name"],
            "variant": row.get("variant") or "",
            **result[(str(row.get("variant") or ""), str(row["name"]))],
        }
        for row in card.get("dimensions", [])
    ]
    low, high = card.get("scale", [1, 5])
    return {
        "calibration_sample": sample,
        "calibration_rows": rows,
        "calibration_scale": list(range(int(low), int(high) + 1)),
        "may_score": may_score,
        "disagree_below": DISAGREE_BELOW,
        "min_human_scores": MIN_HUMAN_SCORES,
        "note_max": NOTE_MAX_CHARS,
    }

"""The calibration form of the scorecard page, read against the scorecard itself: a score per
(item, dimension) on the rubric's scale, an optional note per item. Field names carry the cell
(``runs.pages.calibration.score_field``), so a form for any sample parses the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.evaluation.calibration import NOTE_MAX_CHARS, ScoredCell


def parse_scores(
    data: Mapping[str, Any], card: dict[str, Any]
) -> tuple[list[ScoredCell], list[str]]:
    """The cells ``data`` scores and, when any is wrong, the problems (then nothing may be
    stored). An empty score is a cell left unscored; a note goes with the item's scores."""
    low, high = (int(v) for v in card.get("scale", [1, 5]))
    items = {(str(i.get("variant") or ""), str(i["id"])) for i in card.get("items", [])}
    dimensions = {str(row["name"]) for row in card.get("dimensions", [])}
    problems: list[str] = []
    scored: list[tuple[str, str, str, int]] = []
    notes: dict[tuple[str, str], str] = {}
    for name in data:
        kind, _, rest = str(name).partition("|")
        if kind == "score":
            variant, _, rest = rest.partition("|")
            dimension, _, item = rest.partition("|")
            value = str(data.get(name) or "").strip()
            if (variant, item) not in items:
                problems.append(f"Unknown item {item[:80]!r}.")
            elif dimension not in dimensions:
                problems.append(f"Unknown dimension {dimension!r}.")
            elif value:
                if not value.isdigit() or not low <= int(value) <= high:
                    problems.append(
                        f"Item {item}, {dimension}: a score is a whole number from {low} to "
                        f"{high}, not {value[:20]!r}."
                    )
                else:
                    scored.append((variant, item, dimension, int(value)))
        elif kind == "note":
            variant, _, item = rest.partition("|")
            note = str(data.get(name) or "").strip()
            if (variant, item) not in items:
                problems.append(f"Unknown item {item[:80]!r}.")
            elif len(note) > NOTE_MAX_CHARS:
                problems.append(f"Item {item}: a note holds at most {NOTE_MAX_CHARS} characters.")
            elif note:
                notes[(variant, item)] = note
    with_scores = {(v, i) for v, i, _, _ in scored}
    problems.extend(
        f"Item {item}: a note needs a score on at least one dimension."
        for (variant, item) in notes
        if (variant, item) not in with_scores
    )
    if not scored and not problems:
        problems.append("Nothing to save: score at least one item on one dimension.")
    if problems:
        return [], list(dict.fromkeys(problems))
    cells = [
        ScoredCell(variant, item, dimension, score, notes.get((variant, item), ""))
        for variant, item, dimension, score in scored
    ]
    return cells, []

"""Events as people read them: each gets ``label``, its type in words (the run page's feed, its
live pushes and the events page all render ``runs/_event.html``)."""

from __future__ import annotations

from collections.abc import Iterable

from runs.eventlog.labels import event_label
from runs.models import Event


def labelled[E: Event](events: Iterable[E]) -> list[E]:
    rows = list(events)
    for event in rows:
        event.label = event_label(event.type)  # type: ignore[attr-defined]
        # "ev-task-failed", which harness.css colours ("|slugify" made it "ev-taskfailed").
        event.css_type = event.type.replace(".", "-").replace("_", "-")  # type: ignore[attr-defined]
    return rows

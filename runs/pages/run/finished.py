"""What a finished run's page derives from all of its tasks, kept per process.

The run page reads every task of its run and builds the tree, the timeline and the cost tables
from them: about 700 ms for 10,000 agents. A finished run's page is opened again and again (its
reviewers, the readers of its report) while its tasks no longer change, or change only with an
event of the run (a reviewer's re-run, an approval): so the result is kept for the last few
finished runs, keyed by the run's last seq, and any change (a new seq) computes it afresh. A
live run's page is computed every time (its figures move with the clock).

Process memory, not the cache framework: the value is a tree of thousands of model objects that
pickling would cost as much as building; and every process (web, consumer) keeps its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runs.models import Run, Task
from runs.pages.run.tree import AgentTree

# Finished runs kept at once (a 10,000-agent run's entry is a few tens of MB).
KEEP = 4


@dataclass(frozen=True)
class Derived:
    """The run's tasks (``dashboard.load_tasks``), their tree, and the panels' figures."""

    tasks: list[Task]
    tree: AgentTree
    figures: dict[str, Any]


_kept: OrderedDict[tuple[int, str, int], Derived] = OrderedDict()
_lock = threading.Lock()


def derived(run: Run, compute: Callable[[], Derived]) -> Derived:
    """``compute()``, or what it gave for this finished run at its current seq."""
    if run.is_active:
        return compute()
    # The uid too: a database reset under a live process reuses ids.
    key = (run.pk, run.uid.hex, run.last_seq)
    with _lock:
        kept = _kept.get(key)
        if kept is not None:
            _kept.move_to_end(key)
            return kept
    value = compute()
    with _lock:
        _kept[key] = value
        for old in [k for k in _kept if k[0] == run.pk and k != key]:
            del _kept[old]  # an earlier seq of the same run is never asked for again
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return value


def forget() -> None:
    """Drop everything kept (tests)."""
    with _lock:
        _kept.clear()

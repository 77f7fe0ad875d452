"""The messages that carry a run's event log to browsers: the channel layer's (from
``runs/eventlog/events.py`` to ``runs/consumers.py``) and the websocket's. Standard library only.
"""

from typing import Literal, TypedDict


# -- channel layer (runs/eventlog/events.py → runs/consumers.py) --------------------------
class RunEventsMessage(TypedDict):
    """Sent to group ``run-{run_id}`` once per committed transaction that wrote events for the
    run. RunConsumer reads only ``last_seq``; ``run_id`` and ``types`` (sorted, distinct) are
    not read by any consumer today."""

    type: Literal["run.events"]  # dispatched to RunConsumer.run_events
    run_id: int
    last_seq: int
    types: list[str]


class RunsChangedMessage(TypedDict):
    """Sent to group ``runs-list`` alongside every ``run.events``."""

    type: Literal["runs.changed"]  # dispatched to RunListConsumer.runs_changed
    run_id: int


# -- websocket (browser <-> runs/consumers.py) --------------------------------------------------
# Server → browser: raw HTML text only, no JSON and no wrapper. Each message is a concatenation of
# htmx out-of-band fragments (panels, tree rows, appends, the event feed, the #live-seq marker on
# the run page; rows and inserts on the runs list), each tagged with data-seq. Refusals are close
# codes, not messages: 4401 (not logged in) and 4403 (may not see the run); never retried.
# Browser → server: only the run page's hello below; the runs-list consumer receives nothing.
class RunHelloMessage(TypedDict):
    """Sent by harness.js on every (re)connect of the run page: its tree and feed are complete up
    to this seq (the ``#live-seq`` marker). The consumer ignores anything it cannot parse."""

    since: int

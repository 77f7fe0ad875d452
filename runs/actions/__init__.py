"""Every state change of the records, each one transaction that writes its events with it.

Where to look:

- ``launch``: validate and create a run (the only launch bounds), enqueue its planning.
- ``planning``: decompose the snapshot into the task DAG, create the tasks, start the run.
- ``dispatch``: keep agents flowing under the concurrency cap, stop and finish runs.
- ``outcomes``: an agent claimed, put aside to retry, succeeded (findings and spawns stored),
  failed, skipped for budget, cancelled.
- ``control``: an operator cancels a run or retries its failed agents.
- ``review``: a reviewer's decision at a gate, or at every waiting agent gate of a run at once.
- ``rerun``: dismiss a finding and re-run only the agents behind it (estimated, then confirmed).
- ``report``: aggregation into a versioned report, the reviewer's gate, the run's root span.
- ``enqueue``: the Celery work each change hands on, after commit.
- ``snapshots``: remove the snapshots no run references (``gc_snapshots``).

Views, consumers, the worker and the Celery tasks call these; none of them writes a status.
"""

from runs.actions.control import RetryRefused, cancel_run, retry_failed
from runs.actions.extend import request_extension
from runs.actions.launch import launch_run
from runs.actions.launch_options import LaunchError
from runs.actions.refusals import DecisionRefused
from runs.actions.review import decide_approval, review_finding

__all__ = [
    "DecisionRefused",
    "LaunchError",
    "RetryRefused",
    "cancel_run",
    "decide_approval",
    "launch_run",
    "request_extension",
    "retry_failed",
    "review_finding",
]

"""A run's root span: ids derived from its uid, emitted once, in whichever state ends the run."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from runs import tracing
from runs.actions.control import cancel_run
from runs.event_types import EventType
from runs.events import record_event
from runs.models import Run, Span
from tests.runs.factories import make_run

pytestmark = pytest.mark.django_db


def test_trace_ids_are_derived_from_the_run_uid() -> None:
    uid = uuid.uuid4()
    trace_id, span_id = tracing.trace_ids_for(uid)
    assert trace_id == uid.hex and len(span_id) == 16 and int(span_id, 16)
    assert tracing.trace_ids_for(uid) == (trace_id, span_id)
    assert tracing.trace_ids_for(uuid.uuid4())[1] != span_id


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (Run.Status.AWAITING_REVIEW, None),
        (Run.Status.FAILED, "run_failed"),
        (Run.Status.CANCELLED, "run_cancelled"),
        (Run.Status.BUDGET_EXHAUSTED, "budget_exhausted"),
    ],
)
def test_the_root_span_is_emitted_once_with_the_runs_end(status: str, error_type: str) -> None:
    run = make_run(status=status, status_reason="why it ended")
    tracing.end_run_trace(run.pk)
    tracing.end_run_trace(run.pk)  # a duplicate delivery, or a resumed run ending again
    trace_id, root_span_id = tracing.run_trace(run)
    (root,) = Span.objects.filter(run=run)
    assert (root.trace_id, root.span_id, root.parent_span_id) == (trace_id, root_span_id, "")
    assert root.name == "invoke_workflow codebase-audit"
    assert root.attributes["gen_ai.workflow.name"] == "codebase-audit"
    assert root.attributes["gen_ai.conversation.id"] == str(run.uid)
    assert root.attributes.get("error.type") == error_type
    assert root.status == ("ERROR" if error_type else "UNSET")
    assert root.start <= run.created_at


def test_cancelling_a_run_ends_its_trace(
    operator: Any, django_capture_on_commit_callbacks: Any
) -> None:
    run = make_run(status=Run.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_run(run, operator)
    root = Span.objects.get(run=run, span_id=tracing.run_trace(run)[1])
    assert root.attributes["error.type"] == "run_cancelled"
    assert root.attributes["harness.status"] == "cancelled"


def test_a_resumed_run_that_ends_again_records_its_new_end_under_the_root() -> None:
    run = make_run(status=Run.Status.FAILED, status_reason="no agent succeeded")
    tracing.end_run_trace(run.pk)
    record_event(run, EventType.RUN_RESUMED, {"by": "op", "retrying": 1})
    Run.objects.filter(pk=run.pk).update(status=Run.Status.AWAITING_REVIEW)
    tracing.end_run_trace(run.pk)
    tracing.end_run_trace(run.pk)  # once per resumption
    trace_id, root_span_id = tracing.run_trace(run)
    root, resume = Span.objects.filter(run=run).order_by("start")
    assert root.span_id == root_span_id and root.attributes["error.type"] == "run_failed"
    assert resume.name == "resume codebase-audit"
    assert (resume.trace_id, resume.parent_span_id) == (trace_id, root_span_id)
    assert resume.attributes["harness.status"] == "awaiting_review"
    assert "error.type" not in resume.attributes

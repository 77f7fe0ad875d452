"""A run's root span: ids derived from its uid, emitted once, in whichever state ends the run."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness_site.telemetry import setup_telemetry
from runs.actions import enqueue, trace_end
from runs.actions.control import cancel_run
from runs.actions.extend import request_extension
from runs.actions.outcomes import cancel_task
from runs.actions.refusals import DecisionRefused
from runs.actions.review import decide_approval
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Approval, Run, Span, Step, Task
from runs.observability import tracing
from tests.runs.factories import make_report, make_run, task_fields

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
    assert root.name == f"invoke_workflow codebase-audit #{run.pk}"
    assert root.attributes["gen_ai.workflow.name"] == "codebase-audit"
    assert root.attributes["gen_ai.conversation.id"] == str(run.uid)
    assert root.attributes.get("error.type") == error_type
    assert root.status == ("ERROR" if error_type else "UNSET")
    assert root.start <= run.created_at
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert "input.value" not in root.attributes  # content: only with capture on


def test_with_capture_the_root_carries_the_runs_input_and_output(settings: Any) -> None:
    settings.HARNESS_CAPTURE_CONTENT = True
    run = make_run(status=Run.Status.AWAITING_REVIEW, findings_count=3)
    report = make_report(run)
    report.source_text = "## Summary\nThree issues."
    report.save()
    tracing.end_run_trace(run.pk)
    (root,) = Span.objects.filter(run=run)
    given = json.loads(root.attributes["input.value"])
    assert given["playbook"] == "codebase-audit" and given["target"] == run.target_label
    outcome = json.loads(root.attributes["output.value"])
    assert outcome["status"] == "awaiting_review" and outcome["findings"] == 3
    assert outcome["report"] == "## Summary\nThree issues."
    assert root.attributes["input.mime_type"] == "application/json"


def test_every_span_names_its_openinference_kind() -> None:
    from harness_site.telemetry import get_tracer

    run = make_run(status=Run.Status.RUNNING)
    kinds = {
        "invoke_agent": "AGENT",
        "chat": "LLM",
        "execute_tool": "TOOL",
    }
    for operation in kinds:
        get_tracer().start_span(
            operation,
            context=tracing.run_context(run),
            attributes={**tracing.run_attributes(run), "gen_ai.operation.name": operation},
        ).end()
    with tracing.run_span(run, "dispatch"):
        pass
    stored = {s.name: s.attributes["openinference.span.kind"] for s in Span.objects.filter(run=run)}
    assert stored == {**kinds, "dispatch": "CHAIN"}


def test_a_cancelled_runs_trace_ends_after_its_last_running_agent_with_its_spend(
    operator: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(
        enqueue, "send", lambda name, object_id, countdown=None: sent.append((name, object_id))
    )
    run = make_run(status=Run.Status.RUNNING, provider="openai", model="m")
    calling = Task.objects.create(
        **task_fields(run, status=Task.Status.RUNNING, tokens_in=0, tokens_out=0, cost_usd=0)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_run(run, operator)
    assert sent == [(enqueue.END_RUN_TRACE, run.pk)]
    # The agent is still in its model call: no root yet, another look soon.
    assert trace_end.end_trace_when_settled(run.pk) == trace_end.CHECK_EVERY_S
    assert not Span.objects.filter(run=run).exists()
    Step.objects.create(  # its call, paid, then it stopped
        task=calling, index=0, kind="chat", name="chat m", tokens_in=900, tokens_out=100,
        cost_usd=Decimal("0.016"),
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        cancel_task(calling, "run cancelled")
    assert trace_end.end_trace_when_settled(run.pk) is None
    root = Span.objects.get(run=run, span_id=tracing.run_trace(run)[1])
    assert root.attributes["error.type"] == "run_cancelled"
    assert root.attributes["harness.status"] == "cancelled"
    run.refresh_from_db()
    assert root.attributes["gen_ai.usage.cost"] == float(run.cost_usd) == 0.016
    assert root.attributes["gen_ai.usage.input_tokens"] == run.tokens_in == 900
    stopped = Task.objects.get(pk=calling.pk).finished_at
    assert stopped is not None and root.end >= stopped  # the late call inside the trace


def test_a_cancelled_runs_trace_ends_anyway_when_an_agent_never_stops(
    operator: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enqueue, "send", lambda *args, **kwargs: None)
    run = make_run(status=Run.Status.RUNNING)
    Task.objects.create(**task_fields(run, status=Task.Status.RUNNING))
    with django_capture_on_commit_callbacks(execute=True):
        assert cancel_run(run, operator)
    Run.objects.filter(pk=run.pk).update(
        finished_at=timezone.now() - timedelta(seconds=trace_end.SETTLE_S + 1)
    )
    assert trace_end.end_trace_when_settled(run.pk) is None
    assert Span.objects.filter(run=run, span_id=tracing.run_trace(run)[1]).exists()


def test_a_resumed_run_goes_on_in_its_own_trace_linked_to_the_first() -> None:
    exporter = InMemorySpanExporter()
    setup_telemetry("test").add_span_processor(SimpleSpanProcessor(exporter))
    run = make_run(status=Run.Status.FAILED, status_reason="no agent succeeded")
    tracing.end_run_trace(run.pk)
    first_trace, first_root = tracing.run_trace(run)
    record_event(run, EventType.RUN_RESUMED, {"by": "op", "retrying": 1})
    tracing.begin_resume_trace(run)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.AWAITING_REVIEW)
    run.refresh_from_db()
    resumed_trace, resumed_root = tracing.run_trace(run)
    assert resumed_trace != first_trace
    with tracing.run_span(run, "dispatch"):  # the resumed run's work: in the new trace
        pass
    tracing.end_run_trace(run.pk)
    tracing.end_run_trace(run.pk)  # once per resumption
    root = Span.objects.get(span_id=first_root)
    assert root.attributes["error.type"] == "run_failed"  # the first end, unchanged
    resume = Span.objects.get(span_id=resumed_root)
    assert resume.name == f"resume codebase-audit #{run.pk}"
    assert (resume.trace_id, resume.parent_span_id) == (resumed_trace, "")
    # The retried-then-succeeded run's final state is a trace of its own, not red.
    assert resume.attributes["harness.status"] == "awaiting_review"
    assert "error.type" not in resume.attributes and resume.status == "UNSET"
    dispatch = Span.objects.get(run=run, name="dispatch")
    assert (dispatch.trace_id, dispatch.parent_span_id) == (resumed_trace, resumed_root)
    (exported,) = [s for s in exporter.get_finished_spans() if s.name.startswith("resume ")]
    (link,) = exported.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
        first_trace,
        first_root,
    )


def _awaiting_review(launcher: Any) -> tuple[Run, Approval]:
    run = make_run(launcher, status=Run.Status.AWAITING_REVIEW)
    make_report(run)
    tracing.end_run_trace(run.pk)  # the root ended when the run began awaiting review
    return run, Approval.objects.create(run=run, gate=Approval.Gate.REPORT, target_id=1)


@pytest.mark.parametrize(
    ("decision", "comment"),
    [
        ("approved", ""),
        ("rejected", "The SQL findings are not evidenced."),
        ("changes_requested", "Say which lines."),
    ],
)
def test_a_decision_at_the_report_gate_is_its_own_trace_linked_to_the_runs_root(
    decision: str,
    comment: str,
    operator: Any,
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    exporter = InMemorySpanExporter()
    setup_telemetry("test").add_span_processor(SimpleSpanProcessor(exporter))
    run, gate = _awaiting_review(operator)
    with django_capture_on_commit_callbacks(execute=True):
        decide_approval(gate, reviewer, decision, comment)
    trace_id, root_span_id = tracing.run_trace(run)
    (review,) = Span.objects.filter(run=run, name=f"review report #{run.pk}")
    # Its own short trace: the run's trace lasts as long as the run, not the review's wait.
    assert review.trace_id != trace_id and review.parent_span_id == ""
    (exported,) = [s for s in exporter.get_finished_spans() if s.name == f"review report #{run.pk}"]
    (link,) = exported.links
    assert f"{link.context.trace_id:032x}" == trace_id
    assert f"{link.context.span_id:016x}" == root_span_id
    assert review.attributes["harness.decision"] == decision
    assert review.attributes["harness.gate"] == "report"
    assert review.attributes["harness.approval_id"] == gate.pk
    assert review.attributes["user.id"] == str(reviewer.pk)
    assert review.attributes["gen_ai.conversation.id"] == str(run.uid)
    # Free text (it may quote the target) and the reviewer's name stay out by default.
    assert "harness.decision.comment" not in review.attributes
    assert "input.value" not in review.attributes and "output.value" not in review.attributes
    assert reviewer.get_username() not in str(review.attributes)
    assert review.start >= Span.objects.get(span_id=root_span_id).end


def test_the_comment_is_traced_only_with_content_capture_on(
    operator: Any, reviewer: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.HARNESS_CAPTURE_CONTENT = True
    run, gate = _awaiting_review(operator)
    with django_capture_on_commit_callbacks(execute=True):
        decide_approval(gate, reviewer, "rejected", "  Not evidenced.  ")
    review = Span.objects.get(run=run, name=f"review report #{run.pk}")
    assert review.attributes["harness.decision.comment"] == "Not evidenced."
    # What Phoenix's trace list shows beside the name: the gate, and what was decided.
    assert json.loads(review.attributes["input.value"]) == {
        "run": run.pk,
        "gate": "report",
        "target": gate.target_label,
    }
    assert json.loads(review.attributes["output.value"]) == {
        "decision": "rejected",
        "comment": "Not evidenced.",
    }


def test_a_decision_that_does_not_commit_leaves_no_span(
    operator: Any, reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    run, gate = _awaiting_review(operator)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            decide_approval(gate, reviewer, "approved")
            raise RuntimeError("rolled back after the decision")
        gate.refresh_from_db()
        assert gate.decision == "pending"
        decide_approval(gate, reviewer, "approved")
        with pytest.raises(DecisionRefused):  # already decided: refused, and not traced
            decide_approval(gate, reviewer, "approved")
    assert Span.objects.filter(run=run, name=f"review report #{run.pk}").count() == 1


def test_a_budget_extension_is_traced_and_the_resumed_run_ends_in_a_resume_span(
    operator: Any,
    reviewer: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    published: list[tuple[str, str]] = []

    def send(name: str, object_id: int, countdown: float | None = None) -> None:
        current = trace.get_current_span().get_span_context()
        published.append((name, f"{current.trace_id:032x}"))

    monkeypatch.setattr(enqueue, "send", send)
    run = make_run(
        operator, status=Run.Status.BUDGET_EXHAUSTED, budget_usd=Decimal("0.5"), status_reason="out"
    )
    tracing.end_run_trace(run.pk)
    trace_id, root_span_id = tracing.run_trace(run)
    with django_capture_on_commit_callbacks(execute=True):
        gate = request_extension(run, operator, "2")
        decide_approval(gate, reviewer, "approved")
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    review = Span.objects.get(run=run, name=f"review budget #{run.pk}")
    assert review.trace_id != trace_id and review.parent_span_id == ""
    assert review.attributes["harness.decision"] == "approved"
    assert review.attributes["user.id"] == str(reviewer.pk)
    # The resumed run's dispatch is published inside the run's new trace.
    assert run.trace_id != trace_id
    assert (enqueue.DISPATCH_RUN, run.trace_id) in published

    Run.objects.filter(pk=run.pk).update(status=Run.Status.AWAITING_REVIEW)
    tracing.end_run_trace(run.pk)  # its second end
    tracing.end_run_trace(run.pk)
    root = Span.objects.get(run=run, span_id=root_span_id)
    assert root.attributes["error.type"] == "budget_exhausted"  # the first end, unchanged
    (resume,) = Span.objects.filter(run=run, name=f"resume codebase-audit #{run.pk}")
    assert (resume.trace_id, resume.parent_span_id) == (run.trace_id, "")
    assert resume.attributes["harness.status"] == "awaiting_review"
    assert resume.attributes["harness.budget_usd"] == 2.0
    assert "error.type" not in resume.attributes
    assert resume.start <= review.end

"""A run's trace: one trace per run, from its launch to its last state.

The run's root span (``invoke_workflow``) cannot be one SDK span object: it starts in the web
process (or ``manage.py launch_run``) and ends in whichever process sees the run finish. So its
ids are fixed at launch, derived from the run's uid, and every later span (planning, dispatch,
agents, aggregation) is started as its child through ``run_context``; the root span itself is
emitted once, when the run reaches a state that needs nobody's work (awaiting review, failed,
cancelled, or budget exhausted with its report), with its start at the launch.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Min
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Status, StatusCode, set_span_in_context
from opentelemetry.trace import Span as OtelSpan

from agents import semconv
from agents.spans import OFFLINE_PROVIDER, PART_MAX_CHARS, usage_attributes
from harness_site.telemetry import emit_root_span, get_tracer, parent_context
from runs.eventlog.event_types import EventType
from runs.models import Approval, Run, Span

# The run's states whose root span reports an error, and the ``error.type`` it carries.
# Per thread: the runs with a ``run_span`` open, and those whose root waits for it to end.
_local = threading.local()

ERROR_STATES: dict[str, str] = {
    Run.Status.FAILED: "run_failed",
    Run.Status.CANCELLED: "run_cancelled",
    Run.Status.BUDGET_EXHAUSTED: "budget_exhausted",
}


def trace_ids_for(uid: uuid.UUID) -> tuple[str, str]:
    """(trace_id, root_span_id) of the run with this uid. Derived, not random, so a process
    holding only the uid (or a run created before the ids were stored) finds the same trace;
    a uuid4 carries 122 random bits, as W3C trace ids should."""
    span_id = hashlib.sha256(b"root-span:" + uid.bytes).hexdigest()[:16]
    return uid.hex, span_id if int(span_id, 16) else "1" * 16


def run_trace(run: Run) -> tuple[str, str]:
    """The run's stored trace ids (derived from its uid when none were stored)."""
    if run.trace_id and run.root_span_id:
        return run.trace_id, run.root_span_id
    return trace_ids_for(run.uid)


def run_context(run: Run) -> Context:
    """A context whose current span is the run's root span."""
    return parent_context(*run_trace(run))


def run_attributes(run: Run) -> dict[str, Any]:
    """Attributes every span of the run carries: its conversation (LLM-ops tools group a
    trace's spans by it) and the id the dashboard stores spans under."""
    return {semconv.CONVERSATION_ID: str(run.uid), semconv.RUN_ID: run.pk}


@contextmanager
def run_span(run: Run, name: str, **attributes: Any) -> Iterator[OtelSpan]:
    """A span of the run's own machinery (launch, snapshot, planning, dispatch, aggregation),
    a child of its root span whichever process runs it. A root whose run ended inside it is
    emitted when it ends (``end_run_trace_after_commit``)."""
    opened = _local.__dict__.setdefault("open_runs", [])
    opened.append(run.pk)
    try:
        with get_tracer().start_as_current_span(
            name,
            context=run_context(run),
            attributes={**run_attributes(run), **attributes},
        ) as span:
            yield span
    finally:
        opened.remove(run.pk)
        deferred = _local.__dict__.setdefault("deferred_roots", set())
        if run.pk in deferred and run.pk not in opened:
            deferred.discard(run.pk)
            end_run_trace(run.pk)


def end_run_trace_after_commit(run: Run) -> None:
    """Emit the run's root span once the current transaction commits (the caller has just won
    the transition that finished the run), or, when that commit happens inside a span of the
    run's machinery (the report stored inside ``aggregate``), once that span has ended: a root
    that ends before its child is drawn with the child sticking out of the trace."""
    run_id = run.pk

    def emit() -> None:
        if run_id in _local.__dict__.get("open_runs", []):
            _local.__dict__.setdefault("deferred_roots", set()).add(run_id)
        else:
            end_run_trace(run_id)

    transaction.on_commit(emit)


def end_run_trace(run_id: int) -> None:
    """Emit the run's root span, once. A run an operator resumed (retrying its failed agents,
    extending its budget, re-running dismissed findings) went on in a trace of its own
    (``begin_resume_trace``): its root is a ``resume`` span linked to the first trace's root,
    from the resumption to the run's new end, once per resumption."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    trace_id, root_span_id = run_trace(run)
    if Span.objects.filter(trace_id=trace_id, span_id=root_span_id).exists():
        return
    first = trace_ids_for(run.uid)
    links: list[Link] = []
    if (trace_id, root_span_id) != first:
        resumed = run.events.filter(type=EventType.RUN_RESUMED).order_by("-seq").first()
        name = f"resume {run.playbook} #{run.pk}"
        start = resumed.created_at if resumed else run.created_at
        links = [Link(trace.get_current_span(parent_context(*first)).get_span_context())]
    else:
        # The run's number in the name: a trace list shows names, and every run of a playbook
        # would otherwise read the same.
        name = root_span_name(run)
        # The launch span (stored as it ends, in the launching process) starts before the Run.
        earliest = Span.objects.filter(run=run).aggregate(first=Min("start"))["first"]
        start = min(filter(None, [run.created_at, earliest]))
    attributes: dict[str, Any] = {
        semconv.OPERATION: semconv.OP_WORKFLOW,
        semconv.WORKFLOW_NAME: run.playbook,
        semconv.PROVIDER: run.provider,
        **run_attributes(run),
        **usage_attributes(run.provider, run.tokens_in, run.tokens_out),
        semconv.COST_USD: float(run.cost_usd),
        semconv.RUN_STATUS: run.status,
    }
    if run.provider != OFFLINE_PROVIDER:  # the offline analyzer's price is nominal
        attributes[semconv.COST] = float(run.cost_usd)
    if run.budget_usd is not None:  # a resume after a budget extension shows the new limit
        attributes[semconv.BUDGET_USD] = float(run.budget_usd)
    if settings.HARNESS_CAPTURE_CONTENT:
        attributes.update(run_io(run))
    status = Status(StatusCode.UNSET)
    error = ERROR_STATES.get(str(run.status))
    if error:
        attributes[semconv.ERROR_TYPE] = error
        status = Status(StatusCode.ERROR, (run.status_reason or run.status)[:200])
    emit_root_span(
        name,
        trace_id,
        root_span_id,
        int(start.timestamp() * 1e9),
        time.time_ns(),
        attributes,
        status,
        links=links,
    )


def begin_resume_trace(run: Run) -> None:
    """A resumed run goes on in a short trace of its own, linked to its first trace's root (the
    caller has just resumed it, holding its lock): kept under the first root, the hours between
    the first end and the resumption would become the run's duration in every trace list, and a
    retried-then-succeeded run would still read as the red trace of its failure."""
    seed = uuid.uuid4()
    run.trace_id = seed.hex
    run.root_span_id = hashlib.sha256(b"resume-root:" + seed.bytes).hexdigest()[:16]
    Run.objects.filter(pk=run.pk).update(trace_id=run.trace_id, root_span_id=run.root_span_id)


def root_span_name(run: Run) -> str:
    return f"{semconv.OP_WORKFLOW} {run.playbook} #{run.pk}"


def run_io(run: Run) -> dict[str, Any]:
    """The run's input (target, playbook, options) and output (status, findings, the report's
    opening) as OpenInference's ``input.value``/``output.value``: what a trace list shows.
    Content: the options and the report may quote the target, so only with capture on."""
    report = run.reports.order_by("-version").only("source_text").first()
    summary = report.source_text[:PART_MAX_CHARS] if report else ""
    given = {
        "playbook": run.playbook,
        "target": run.target_label,
        "options": (run.config or {}).get("options", {}),
        "provider": run.provider,
        "model": run.model,
    }
    outcome = {
        "status": run.status,
        "reason": run.status_reason,
        "findings": run.findings_count,
        "agents": {"total": run.tasks_total, "failed": run.tasks_failed},
        "report": summary,
    }
    return {
        semconv.INPUT_VALUE: _cut_json(given),
        semconv.INPUT_MIME: semconv.JSON_MIME,
        semconv.OUTPUT_VALUE: _cut_json(outcome),
        semconv.OUTPUT_MIME: semconv.JSON_MIME,
    }


def _cut_json(value: dict[str, Any]) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 4 * PART_MAX_CHARS else text[: 4 * PART_MAX_CHARS] + "…"


def trace_decision(run: Run, approval: Approval, decision: str, user: User, comment: str) -> None:
    """A reviewer's decision at a gate (report, task, finding, budget), as a short trace of its
    own, a ``review`` span linked to the run's root: under the root, minutes of waiting for a
    reviewer would become the run's duration in every trace list. Emitted once the decision
    commits, so a decision that lost the race to another reviewer (rolled back) never appears.
    The reviewer by id; the comment, free text that may quote the target, only with content
    capture on."""
    start_ns = time.time_ns()
    attributes: dict[str, Any] = {
        **run_attributes(run),
        semconv.GATE: approval.gate,
        semconv.DECISION: decision,
        semconv.APPROVAL_ID: approval.pk,
    }
    if user is not None and user.pk is not None:
        attributes[semconv.USER_ID] = str(user.pk)
    if settings.HARNESS_CAPTURE_CONTENT:
        if comment:
            attributes[semconv.DECISION_COMMENT] = comment[:PART_MAX_CHARS]
        # What a trace list shows beside the name: the gate decided on, and the decision.
        given = {"run": run.pk, "gate": approval.gate, "target": approval.target_label}
        attributes[semconv.INPUT_VALUE] = _cut_json(given)
        attributes[semconv.INPUT_MIME] = semconv.JSON_MIME
        attributes[semconv.OUTPUT_VALUE] = _cut_json({"decision": decision, "comment": comment})
        attributes[semconv.OUTPUT_MIME] = semconv.JSON_MIME
    root = Link(trace.get_current_span(run_context(run)).get_span_context())

    def emit() -> None:
        span = get_tracer().start_span(
            # The run's number, as in its root's name: a trace list shows names only.
            f"review {approval.gate} #{run.pk}",
            context=Context(),  # a new trace
            links=[root],
            start_time=start_ns,
            attributes=attributes,
        )
        span.end()

    transaction.on_commit(emit)


def record_span(
    run: Run, name: str, start_ns: int, end_ns: int, parent: OtelSpan, **attributes: Any
) -> None:
    """A finished span under ``parent``, for work timed before the run existed (the snapshot is
    frozen before the Run row is written, and a span is stored only with its run's id)."""
    span = get_tracer().start_span(
        name,
        context=set_span_in_context(parent),
        start_time=start_ns,
        attributes={**run_attributes(run), **attributes},
    )
    span.end(end_time=end_ns)

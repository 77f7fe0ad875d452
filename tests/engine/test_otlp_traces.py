"""Traces as an LLM-ops tool receives them: a real OTLP/HTTP receiver, runs across a real Celery
worker process (succeeded, failed, cancelled), and a launch whose receiver is down."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness_site.telemetry import setup_telemetry, shutdown_telemetry
from runs.actions import launch_run
from runs.actions.control import cancel_run
from runs.actions.review import decide_approval
from runs.models import Approval, Run, Span, Task
from tests.conftest import ROOT, subprocess_env
from tests.engine.helpers import make_target, wait_for_run
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.otlp_receiver import BlackHole, OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
OPENAI_KEY = "sk-otlp-trace-KEY-0123456789abcdef"
AGENT_IDENTITY = ("gen_ai.agent.name", "gen_ai.agent.id", "gen_ai.conversation.id")


@pytest.fixture
def target(tmp_path: Path, settings: Any) -> Path:
    settings.HARNESS_TARGET_ROOTS = [tmp_path.resolve()]
    return make_target(tmp_path.resolve(), 2)


@pytest.fixture
def export_to(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Callable[[str], None]]:
    """Export this process's spans (and those of workers started afterwards) to ``endpoint``."""

    def start(endpoint: str) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
        settings.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint
        shutdown_telemetry()
        setup_telemetry("test")

    yield start
    shutdown_telemetry()  # the next test's provider is built from its own settings


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _poll(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def wait_for_exported(receiver: OtlpReceiver, runs: list[Run]) -> dict[str, list[ReceivedSpan]]:
    """Until every span each run stored has reached the receiver and nothing more arrives;
    then the spans received must be exactly the spans stored."""

    traces = {run.trace_id for run in runs}

    setup_telemetry().force_flush()

    def reached() -> bool:
        received = {s.span_id for s in receiver.received() if s.in_traces(traces)}
        stored = set(Span.objects.filter(run__in=runs).values_list("span_id", flat=True))
        return {run.root_span_id for run in runs} <= stored <= received

    # Longer than the pool's 60 s connection timeout: a span writer that waited that long for a
    # connection (a loaded machine, a pool closed under it) stores its batch at the next try.
    if not _poll(reached, 75):
        received = {s.span_id for s in receiver.received() if s.in_traces(traces)}
        missing = Span.objects.filter(run__in=runs).exclude(span_id__in=received)
        stored = set(Span.objects.filter(run__in=runs).values_list("span_id", flat=True))
        rootless = [
            (r.pk, r.status, "received" if r.root_span_id in received else "not received")
            for r in runs
            if r.root_span_id not in stored
        ]
        raise AssertionError(
            f"runs whose root span was never stored: {rootless}; spans stored but never "
            "received: "
            + repr([(m.name, m.attributes.get("service.component"), m.run_id) for m in missing])
        )
    time.sleep(1)  # anything late (and unwanted) arrives now
    # And the other way: every span of a run received was stored, whatever the run's end (an
    # agent cancelled or failed mid-call included). Celery's own spans, when on, are not a run's.
    received_spans = {
        s.span_id: s
        for s in receiver.received()
        if s.in_traces(traces) and "harness.run_id" in s.attributes
    }
    stored = set(Span.objects.filter(run__in=runs).values_list("span_id", flat=True))
    unstored = [
        (s.name, s.attributes.get("harness.task_id"), s.attributes.get("error.type"))
        for span_id, s in received_spans.items()
        if span_id not in stored
    ]
    assert unstored == [], "spans received but never stored"
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in receiver.received():
        by_trace[span.trace_id].append(span)
    return by_trace


def check_trace(run: Run, spans: list[ReceivedSpan]) -> dict[int, ReceivedSpan]:
    """One root, zero orphans, agents nested like their tasks; returns task id → agent span."""
    ids = {s.span_id for s in spans}
    assert len(ids) == len(spans), "a span was exported twice"
    roots = [s for s in spans if not s.parent_span_id]
    assert [r.span_id for r in roots] == [run.root_span_id]
    assert [s.name for s in spans if s.parent_span_id not in ids | {""}] == []  # orphans
    root = roots[0]
    # No span sticks out of its root (Phoenix draws one that does past the trace's end: the
    # root was once emitted from inside the still open "aggregate").
    assert [s.name for s in spans if s.end_ns > root.end_ns] == []
    assert root.name == f"invoke_workflow {run.playbook} #{run.pk}"
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == run.playbook
    assert root.attributes["gen_ai.conversation.id"] == str(run.uid)
    assert root.attributes["harness.status"] == run.status
    if run.status == Run.Status.AWAITING_REVIEW:  # elsewhere agents may still end after it
        assert root.attributes["gen_ai.usage.input_tokens"] == run.tokens_in
        assert root.attributes["gen_ai.usage.output_tokens"] == run.tokens_out
    assert "gen_ai.usage.cost" in root.attributes
    by_name = defaultdict(list)
    for span in spans:
        by_name[span.name.split(" ")[0]].append(span)
        assert span.attributes["gen_ai.conversation.id"] == str(run.uid)
        assert span.attributes["harness.run_id"] == run.pk
    launch = by_name["launch"][0]
    assert launch.parent_span_id == run.root_span_id
    assert by_name["snapshot"][0].parent_span_id == launch.span_id
    for name in ("plan", "dispatch"):
        assert by_name[name] and all(s.parent_span_id == run.root_span_id for s in by_name[name])

    tasks = {t.pk: t for t in Task.objects.filter(run=run)}
    agents = {s.attributes["harness.task_id"]: s for s in by_name["invoke_agent"]}
    assert len(agents) == len(by_name["invoke_agent"]), "an agent ran twice"
    assert set(agents) == {pk for pk, t in tasks.items() if t.started_at}
    for pk, span in agents.items():
        task = tasks[pk]
        parent = agents[task.parent_id].span_id if task.parent_id else run.root_span_id
        assert span.parent_span_id == parent
        assert span.name == f"invoke_agent {task.role}"
        assert span.attributes["gen_ai.agent.name"] == task.role
        assert span.attributes["gen_ai.agent.id"] == str(pk)
        assert span.attributes["gen_ai.provider.name"] == "openai"
        if task.status == Task.Status.SUCCEEDED:
            assert span.attributes["gen_ai.usage.input_tokens"] == task.tokens_in
            assert span.attributes["gen_ai.usage.output_tokens"] == task.tokens_out
            assert span.attributes["gen_ai.usage.cost"] == pytest.approx(
                float(task.cost_usd), abs=1e-5
            )
            assert not span.is_error
        else:
            assert span.is_error and span.attributes["error.type"]
    tokens: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for span in by_name["chat"] + by_name["execute_tool"]:
        agent = agents[span.attributes["harness.task_id"]]
        assert span.parent_span_id == agent.span_id
        for key in AGENT_IDENTITY:  # one identity on all of an agent's spans
            assert span.attributes[key] == agent.attributes[key]
        if span.name.startswith("chat"):
            assert span.attributes["gen_ai.request.model"] == run.model
            tokens[agent.attributes["harness.task_id"]][0] += span.attributes.get(
                "gen_ai.usage.input_tokens", 0
            )
            tokens[agent.attributes["harness.task_id"]][1] += span.attributes.get(
                "gen_ai.usage.output_tokens", 0
            )
        else:
            assert span.attributes["gen_ai.tool.type"] == "function"
            assert span.attributes["gen_ai.tool.name"]
            assert "gen_ai.request.model" not in span.attributes
            if span.is_error:
                assert span.attributes["error.type"] in ("tool_refused", "tool_error")
    for pk, (tin, tout) in tokens.items():
        if tasks[pk].status == Task.Status.SUCCEEDED:
            assert (tin, tout) == (tasks[pk].tokens_in, tasks[pk].tokens_out)
    if run.status == Run.Status.AWAITING_REVIEW:
        assert by_name["aggregate"][0].parent_span_id == run.root_span_id
        assert not root.is_error
    return agents


def test_each_run_is_one_whole_trace_at_an_otlp_receiver(
    celery_worker: Any,
    target: Path,
    export_to: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    make_user: Any,
) -> None:
    # Phoenix files traces under the project this resource attribute names.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=harness-test")
    with OtlpReceiver() as receiver, FakeOpenAIServer(api_key=OPENAI_KEY) as server:
        export_to(receiver.endpoint)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # type: ignore[attr-defined]
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        worker = celery_worker(concurrency=4, name="otlp")

        def launch() -> Run:
            return launch_run(
                user=None,
                playbook="codebase-audit",
                target_path=str(target),
                provider="openai",
                model="gpt-4o-mini",
                options={"chunk_files": 1},
                budget_usd="10",
            )

        server.spawns = 1  # one agent spawns a sub-agent: a run of depth 2
        succeeded = wait_for_run(launch().pk, timeout=240)
        assert succeeded.status == Run.Status.AWAITING_REVIEW, worker.tail()
        assert Task.objects.filter(run=succeeded, parent__isnull=False).count() == 1

        server.default = "invalid"  # every answer fails validation, repaired or not
        failed = wait_for_run(launch().pk, timeout=240)
        assert failed.status == Run.Status.FAILED, worker.tail()

        server.default, server.slow_seconds = "slow", 1.5
        cancelled = launch()
        wait_until(
            lambda: Task.objects.filter(run=cancelled, status=Task.Status.RUNNING).exists(),
            60,
            "no agent of the run to cancel ever started",
        )
        assert cancel_run(cancelled, make_user("operator"))
        wait_until(
            lambda: (
                not Task.objects.filter(run=cancelled)
                .exclude(status__in=Task.Status.terminal())
                .exists()
            ),
            60,
            "the cancelled run's agents never stopped",
        )
        runs = [Run.objects.get(pk=r.pk) for r in (succeeded, failed, cancelled)]
        reviewer = make_user("reviewer")  # the report's approval: a trace linked to the root
        decide_approval(Approval.objects.get(run=succeeded, gate="report"), reviewer, "approved")
        by_trace = wait_for_exported(receiver, runs)

    # One trace per run; a review is a short trace of its own, linked to its run's root.
    reviews = {t: spans for t, spans in by_trace.items() if t not in {r.trace_id for r in runs}}
    assert [s.name for spans in reviews.values() for s in spans] == [
        f"review report #{succeeded.pk}"
    ]
    for run in runs:
        agents = check_trace(run, by_trace[run.trace_id])
        linked = [s for spans in reviews.values() for s in spans if s.in_traces({run.trace_id})]
        stored = set(Span.objects.filter(run=run).values_list("span_id", flat=True))
        assert stored == {s.span_id for s in by_trace[run.trace_id] + linked}
        root = next(s for s in by_trace[run.trace_id] if s.span_id == run.root_span_id)
        if run is runs[0]:
            assert any(s.name.startswith("execute_tool") for s in by_trace[run.trace_id])
            # The span tree is the agent tree, its sub-agent included.
            by_span = {s.span_id: k for k, s in agents.items()}
            span_tree = {k: by_span.get(s.parent_span_id) for k, s in agents.items()}
            started = Task.objects.filter(run=run, started_at__isnull=False)
            task_tree = dict(started.values_list("pk", "parent_id"))
            assert span_tree == task_tree
            assert len([p for p in span_tree.values() if p is not None]) == 1
            (review,) = linked
            assert review.links == [(run.trace_id, run.root_span_id)]
            assert not review.parent_span_id
            assert review.attributes["harness.decision"] == "approved"
            assert review.attributes["user.id"] == str(reviewer.pk)
        else:
            assert root.is_error
            assert root.attributes["error.type"] == (
                "run_failed" if run.status == Run.Status.FAILED else "run_cancelled"
            )
            if run.status == Run.Status.FAILED:  # a cancel may land between two agents' calls
                assert any(a.is_error for a in agents.values())
    everything = [s for spans in by_trace.values() for s in spans]
    assert {s.resource["openinference.project.name"] for s in everything} == {"harness-test"}
    assert {s.resource["service.component"] for s in everything} == {"test", "worker"}
    assert not [s for s in everything if "gen_ai.input.messages" in s.attributes]
    assert not [s for s in everything if "gen_ai.output.messages" in s.attributes]
    # Every span names its OpenInference kind; no input/output content without capture.
    kinds = {"CHAIN", "AGENT", "LLM", "TOOL"}
    assert all(s.attributes["openinference.span.kind"] in kinds for s in everything)
    assert not [s for s in everything if "input.value" in s.attributes]
    for body in receiver.bodies:
        assert OPENAI_KEY.encode() not in body
        assert OPENAI_KEY[-12:].encode() not in body


def test_a_receiver_that_never_answers_delays_the_command_by_at_most_a_second(
    celery_worker: Any, target: Path
) -> None:
    celery_worker(concurrency=2, name="otlp-down", env={"OTEL_EXPORTER_OTLP_ENDPOINT": ""})
    with BlackHole() as hole:
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "launch_run",
                "--playbook",
                "codebase-audit",
                "--target",
                str(target),
                "--wait",
                "--json",
            ],
            cwd=ROOT,
            env=subprocess_env(
                HARNESS_TARGET_ROOTS=str(target.parent),
                OTEL_EXPORTER_OTLP_ENDPOINT=hole.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="100",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()  # the command's last word
        printed = time.time()
        assert line, proc.stderr.read()
        summary = json.loads(line)
        proc.wait(timeout=60)
        lingered = time.time() - printed
        stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    # The unbounded SDK would wait out the exporter's 10 s deadline (and up to 30 s more); the
    # rest of a command's exit (Django, Celery's client, the interpreter) takes about a second
    # on a busy machine, so the overall bound is loose and the export's own share is exact:
    # the warning is logged when the last flush gives up.
    assert lingered < 5, f"the command took {lingered:.2f}s to exit after its summary"
    warnings = [line for line in stderr.splitlines() if "could not be exported" in line]
    assert len(warnings) == 1, stderr
    assert f"of run {summary['run_id']} could not be exported" in warnings[0]
    logged = datetime.strptime(warnings[0][:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    assert logged - printed <= 1.0, f"export held the exit for {logged - printed:.2f}s"


def test_with_every_opt_in_content_is_valid_json_and_celery_spans_stay_in_the_run_trace(
    celery_worker: Any,
    target: Path,
    export_to: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    settings.HARNESS_OTEL_CELERY = True
    monkeypatch.setenv("HARNESS_OTEL_CELERY", "1")
    monkeypatch.setenv("HARNESS_CAPTURE_CONTENT", "1")
    try:
        with OtlpReceiver() as receiver, FakeOpenAIServer(api_key=OPENAI_KEY) as server:
            export_to(receiver.endpoint)  # instruments this (publishing) process too
            monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # type: ignore[attr-defined]
            monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
            worker = celery_worker(concurrency=4, name="otlp-opt-in", pool="threads")
            run = launch_run(
                user=None,
                playbook="codebase-audit",
                target_path=str(target),
                provider="openai",
                model="gpt-4o-mini",
                options={"chunk_files": 1},
                budget_usd="10",
            )
            run = wait_for_run(run.pk, timeout=240)
            assert run.status == Run.Status.AWAITING_REVIEW, worker.tail()
            by_trace = wait_for_exported(receiver, [run])
    finally:
        CeleryInstrumentor().uninstrument()

    spans = by_trace.pop(run.trace_id)
    message = "messaging.message.id"
    published = {s.attributes[message] for s in spans if s.name.startswith("apply_async/")}
    consumed = {s.attributes[message] for s in spans if s.name.startswith("run/")}
    assert published and consumed <= published
    # Celery's spans too: no unlinked trace. A delayed message an earlier test's worker left on
    # the shared test queue (published without instrumentation) starts its own, necessarily;
    # any span of this run's messages outside the run's trace fails here.
    for other in by_trace.values():
        for span in other:
            assert span.name.startswith("run/") and span.attributes[message] not in published
    ids = {s.span_id for s in spans}
    assert [s.span_id for s in spans if not s.parent_span_id] == [run.root_span_id]
    assert all(s.parent_span_id in ids for s in spans if s.parent_span_id)
    celery = [s for s in spans if "harness.run_id" not in s.attributes]
    ours = [s for s in spans if "harness.run_id" in s.attributes]
    assert {s.name.split("/")[0] for s in celery} >= {"apply_async", "run"}
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert chats
    for chat in chats:
        inputs = json.loads(chat.attributes["gen_ai.input.messages"])
        outputs = json.loads(chat.attributes["gen_ai.output.messages"])
        assert isinstance(outputs, list) and outputs[0]["role"] == "assistant"
        assert [m["role"] for m in inputs][:2] == ["system", "user"]
        for message in inputs + outputs:
            assert message["parts"] and all("type" in part for part in message["parts"])
    # What Phoenix and Langfuse list: every span's kind, the run's and agents' input/output.
    kinds = {s.name.split(" ")[0]: s.attributes.get("openinference.span.kind") for s in ours}
    assert kinds["invoke_workflow"] == "CHAIN" and kinds["invoke_agent"] == "AGENT"
    assert kinds["chat"] == "LLM" and kinds["execute_tool"] == "TOOL" and kinds["plan"] == "CHAIN"
    (root,) = [s for s in spans if not s.parent_span_id]
    assert json.loads(root.attributes["input.value"])["playbook"] == "codebase-audit"
    assert json.loads(root.attributes["output.value"])["status"] == "awaiting_review"
    agents = [s for s in ours if s.name.startswith("invoke_agent ")]
    assert any("files" in json.loads(a.attributes["input.value"])["scope"] for a in agents)
    for agent in agents:
        asked = json.loads(agent.attributes["input.value"])
        assert asked["step"] and "scope" in asked
        assert isinstance(json.loads(agent.attributes["output.value"]), list)
    for body in receiver.bodies:
        assert OPENAI_KEY.encode() not in body


def test_a_receiver_that_is_down_costs_one_warning_per_run_and_no_sdk_retry_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The SDK logs "Transient error … retrying in 1.00s" and "Failed to export …" under each
    # exporter's own logger, at every batch; the README promises one line per run instead.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from harness_site.otlp import BoundedExportProcessor, WarnOnceMetricExporter

    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    caplog.set_level(logging.DEBUG)
    spans = TracerProvider()
    spans.add_span_processor(
        BoundedExportProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=2.5),
            endpoint=endpoint,
            shutdown_s=1,
        )
    )
    for _batch in range(2):  # two batches of one run, each retried by the client
        for _ in range(3):
            spans.get_tracer("t").start_span("s", attributes={"harness.run_id": 7}).end()
        spans.force_flush(timeout_millis=15_000)
    spans.shutdown()
    reader = PeriodicExportingMetricReader(
        WarnOnceMetricExporter(
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", timeout=2.5), endpoint
        ),
        export_interval_millis=3_600_000,
    )
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    for _ in range(2):
        meters.get_meter("t").create_counter("c").add(1)
        meters.force_flush(timeout_millis=15_000)
    meters.shutdown(timeout_millis=1_000)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [line for line in lines if "Transient error" in line or "Failed to export" in line]
    (warning,) = [line for line in lines if "span(s)" in line]  # once for the run, not a batch
    assert warning == f"3 span(s) of run 7 could not be exported to {endpoint}"
    assert len([line for line in lines if line.startswith("Metrics could not be exported")]) == 1

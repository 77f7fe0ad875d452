"""State changes made by people (launch, cancel, retry, decide) and the report store.

Each is one transaction writing the change and its events; Celery work is enqueued only after
commit. Validation happens before anything is written: a refused launch leaves no rows.
"""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runs.events import record_event, record_events
from runs.models import Approval, Report, Run, Task
from runs.rendering import render_markdown

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from agents.aggregation import ReportDraft


class LaunchError(ValueError):
    """A launch was refused. ``field`` names the form field at fault (None: the whole form)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _bounded_int(value: Any, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise LaunchError(
            f"{field.replace('_', ' ').capitalize()} must be a whole number.", field
        ) from None
    if not low <= number <= high:
        raise LaunchError(
            f"{field.replace('_', ' ').capitalize()} must be between {low} and {high}.", field
        )
    return number


def launch_run(
    *,
    user: Any,
    playbook: str,
    target_path: str | None = None,
    archive: UploadedFile | None = None,
    provider: str | None = None,
    model: str | None = None,
    role_models: dict[str, str] | None = None,
    max_concurrency: int | None = None,
    budget_usd: Decimal | float | str | None = None,
    budget_tokens: int | None = None,
    max_depth: int | None = None,
    aggregation: list[str] | None = None,
    latency_ms: int = 0,
    options: dict[str, Any] | None = None,
    title: str = "",
) -> Run:
    """Validate, freeze the target into a snapshot, create the Run and enqueue its planning."""
    from agents.aggregation import AGGREGATION_STEPS
    from agents.playbooks import PLAYBOOKS
    from agents.providers import default_model, get_provider
    from agents.contract import ProviderError
    from agents.snapshot import SnapshotError, freeze_directory
    from agents.snapshot import freeze_archive
    from agents.snapshot import snapshot_store

    book = PLAYBOOKS.get(playbook)
    if book is None:
        raise LaunchError(f"Unknown playbook {playbook!r}.", "playbook")
    provider = provider or "heuristic"
    try:
        get_provider(provider)
    except (ProviderError, ValueError, KeyError) as exc:
        raise LaunchError(f"Unknown or unusable provider {provider!r}: {exc}", "provider") from None
    concurrency = _bounded_int(
        max_concurrency if max_concurrency is not None else book.max_concurrency,
        "max_concurrency",
        1,
        256,
    )
    depth = _bounded_int(max_depth if max_depth is not None else book.max_depth, "max_depth", 0, 10)
    latency = _bounded_int(latency_ms or 0, "latency_ms", 0, 600_000)
    # Every run has a ceiling: a blank budget means the playbook's default, never "no limit".
    budget = _budget(budget_usd if budget_usd not in (None, "") else book.budget_usd)
    tokens = None
    if budget_tokens not in (None, ""):
        tokens = _bounded_int(budget_tokens, "budget_tokens", 1, 10**12)
    chain = list(aggregation) if aggregation is not None else list(book.aggregation)
    unknown = [step for step in chain if step not in AGGREGATION_STEPS]
    if unknown:
        raise LaunchError(f"Unknown aggregation step(s): {', '.join(unknown)}.", "aggregation")
    if (target_path is None) == (archive is None):
        raise LaunchError(
            "Choose a target directory or upload an archive (one of the two).", "target"
        )

    store = snapshot_store()
    try:
        if archive is not None:
            if archive.size is not None and archive.size > settings.HARNESS_MAX_UPLOAD_BYTES:
                raise LaunchError(
                    f"The archive is larger than {settings.HARNESS_MAX_UPLOAD_BYTES:,} bytes.",
                    "archive",
                )
            manifest = freeze_archive(cast(BinaryIO, archive), archive.name or "upload", store)
            kind, label = "archive", Path(archive.name or "upload").name
        else:
            path = Path(str(target_path)).expanduser()
            manifest = freeze_directory(path, settings.HARNESS_TARGET_ROOTS, store)
            kind, label = "directory", str(path)
    except SnapshotError as exc:
        raise LaunchError(str(exc), "archive" if archive is not None else "target") from None

    resolved = book.with_overrides(
        provider=provider,
        model=model,
        role_models=role_models,
        options=options,
        aggregation=chain,
    )
    max_agents = min(book.max_agents, settings.HARNESS_MAX_AGENTS)
    if options and "max_agents" in options:
        max_agents = _bounded_int(
            options["max_agents"], "max_agents", 1, settings.HARNESS_MAX_AGENTS
        )
    config = resolved.to_config()
    config["max_agents"] = max_agents
    with transaction.atomic():
        run = Run.objects.create(
            title=title[:200],
            playbook=book.name,
            config=config,
            target_kind=kind,
            target_label=label[:500],
            snapshot_digest=manifest.digest,
            snapshot_info={
                "files": len(manifest.files),
                "bytes": manifest.total_bytes,
                "skipped": len(manifest.skipped),
                "source": manifest.source,
            },
            launched_by=user if getattr(user, "is_authenticated", False) else None,
            provider=provider,
            model=model or default_model(provider),
            max_concurrency=concurrency,
            budget_usd=budget,
            budget_tokens=tokens,
            max_depth=depth,
            max_agents=max_agents,
            max_children=book.max_children,
            latency_ms=latency,
            aggregation=chain,
            trace_id=secrets.token_hex(16),
            root_span_id=secrets.token_hex(8),
        )
        record_event(
            run,
            "run.created",
            {
                "playbook": book.name,
                "target": run.target_label,
                "provider": provider,
                "files": len(manifest.files),
                "skipped": len(manifest.skipped),
                "launched_by": getattr(user, "username", None),
            },
        )
        transaction.on_commit(lambda: _enqueue_plan(run.pk))
    return run


def _enqueue_plan(run_id: int) -> None:
    from agents.tasks import plan_run

    plan_run.delay(run_id)


def _budget(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise LaunchError("Budget must be an amount in USD, like 2.50.", "budget_usd") from None
    if not amount.is_finite() or amount <= 0 or amount > Decimal(100_000):
        raise LaunchError("Budget must be more than $0 and at most $100,000.", "budget_usd")
    return amount.quantize(Decimal("0.000001"))


def cancel_run(run: Run, user: Any) -> bool:
    """Stop queued agents from starting; running ones stop at their next step."""
    with transaction.atomic():
        if not run.transition(Run.Status.CANCELLED, f"cancelled by {user.get_username()}"):
            return False
        record_event(run, "run.cancelled", {"by": user.get_username()})
        waiting = list(
            Task.objects.filter(
                run=run,
                status__in=[
                    Task.Status.PENDING,
                    Task.Status.QUEUED,
                    Task.Status.AWAITING_APPROVAL,
                    Task.Status.RETRYING,
                ],
            )
        )
        moved = [
            t
            for t in waiting
            if t.move(
                Task.Status.CANCELLED,
                allowed_from=[
                    Task.Status.PENDING,
                    Task.Status.QUEUED,
                    Task.Status.AWAITING_APPROVAL,
                    Task.Status.RETRYING,
                ],
                error="run cancelled",
                finished_at=timezone.now(),
            )
        ]
        if moved:
            Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + len(moved))
            record_events(run, [("task.cancelled", {"reason": "run cancelled"}, t) for t in moved])
    return True


def retry_failed(run: Run, user: Any) -> int:
    """Put failed agents back in the queue (fresh attempts) and resume the run."""
    from agents.tasks import dispatch_run

    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        failed = list(Task.objects.filter(run=run, status=Task.Status.FAILED))
        if not failed:
            return 0
        if run.status != Run.Status.RUNNING and not run.transition(
            Run.Status.RUNNING, f"retry requested by {user.get_username()}"
        ):
            return 0
        moved = [
            t
            for t in failed
            if t.move(
                Task.Status.PENDING,
                allowed_from=[Task.Status.FAILED],
                attempts=0,
                error="",
                finished_at=None,
            )
        ]
        Run.objects.filter(pk=run.pk).update(tasks_failed=F("tasks_failed") - len(moved))
        record_events(
            run,
            [("run.resumed", {"by": user.get_username(), "retrying": len(moved)}, None)]
            + [("task.retry_requested", {}, t) for t in moved],
        )
        transaction.on_commit(lambda: dispatch_run.delay(run.pk))
    return len(moved)


def decide_approval(approval: Approval, user: Any, decision: str, comment: str = "") -> bool:
    """Record a reviewer's decision once; the run or task moves on accordingly."""
    if decision not in (Approval.Decision.APPROVED, Approval.Decision.REJECTED):
        raise ValueError("decision must be approved or rejected")
    with transaction.atomic():
        won = (
            Approval.objects.filter(pk=approval.pk, decision=Approval.Decision.PENDING).update(
                decision=decision,
                decided_by=user,
                comment=comment[:5000],
                decided_at=timezone.now(),
            )
            == 1
        )
        if not won:
            return False
        run = Run.objects.select_for_update().get(pk=approval.run_id)
        record_event(
            run,
            "approval.decided",
            {
                "gate": approval.gate,
                "decision": decision,
                "by": user.get_username(),
                "target": approval.target_label,
            },
        )
        if approval.gate == Approval.Gate.REPORT:
            status = Run.Status.APPROVED if decision == "approved" else Run.Status.REJECTED
            if run.transition(status, f"{decision} by {user.get_username()}"):
                record_event(run, f"run.{status}", {"by": user.get_username()})
        elif approval.gate == Approval.Gate.TASK:
            task = Task.objects.get(pk=approval.target_id, run=run)
            if decision == "approved":
                task.move(
                    Task.Status.PENDING,
                    allowed_from=[Task.Status.AWAITING_APPROVAL],
                    needs_approval=False,
                )
            else:
                if task.move(
                    Task.Status.SKIPPED,
                    allowed_from=[Task.Status.AWAITING_APPROVAL],
                    error="rejected at the approval gate",
                    finished_at=timezone.now(),
                ):
                    Run.objects.filter(pk=run.pk).update(tasks_skipped=F("tasks_skipped") + 1)
            from agents.tasks import dispatch_run

            transaction.on_commit(lambda: dispatch_run.delay(run.pk))
        elif approval.gate == Approval.Gate.FINDING:
            from runs.models import Finding

            Finding.objects.filter(pk=approval.target_id, run=run).update(
                review="accepted" if decision == "approved" else "dismissed"
            )
    return True


def store_report(run: Run, draft: ReportDraft) -> Report:
    """Save the run's report, request the reviewer's decision, and finish the run. A run that
    already finished keeps its report (duplicate deliveries); re-aggregation of a finished run
    (no report yet, or a new version on request) stores a new version."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        # Duplicate aggregate messages (at-least-once delivery, several dispatchers noticing the
        # end at once) must not make duplicate reports: only the first store wins.
        finishing = run.status == Run.Status.AGGREGATING or (
            run.status == Run.Status.BUDGET_EXHAUSTED and run.finished_at is None
        )
        if not finishing:
            latest = run.reports.order_by("-version").first()
            if latest is not None:
                return latest
        version = (
            run.reports.order_by("-version").values_list("version", flat=True).first() or 0
        ) + 1
        report = Report.objects.create(
            run=run,
            version=version,
            chain=draft.chain,
            clusters=[c.to_dict() for c in draft.clusters],
            stats=draft.stats,
            source_text=draft.markdown,
            html=render_markdown(draft.markdown),
            notes=draft.notes + draft.critique,
        )
        Approval.objects.filter(
            run=run, gate=Approval.Gate.REPORT, decision=Approval.Decision.PENDING
        ).delete()
        Approval.objects.create(
            run=run,
            gate=Approval.Gate.REPORT,
            target_id=report.pk,
            target_label=f"Report v{version}",
        )
        record_event(run, "report.created", {"version": version, **draft.stats})
        record_event(run, "approval.requested", {"gate": "report", "version": version})
        if run.status == Run.Status.AGGREGATING:
            run.transition(Run.Status.AWAITING_REVIEW)
            record_event(run, "run.awaiting_review", {})
        elif run.status == Run.Status.BUDGET_EXHAUSTED:
            Run.objects.filter(pk=run.pk).update(finished_at=timezone.now())
        transaction.on_commit(lambda: _emit_workflow_span(run.pk))
    return report


def _emit_workflow_span(run_id: int) -> None:
    """The run's root span (its agents' spans already point at its id)."""
    import time

    from agents import semconv
    from harness_site.telemetry import emit_root_span

    run = Run.objects.get(pk=run_id)
    if not run.trace_id or not run.root_span_id:
        return
    emit_root_span(
        f"invoke_workflow {run.playbook}",
        run.trace_id,
        run.root_span_id,
        int(run.created_at.timestamp() * 1e9),
        time.time_ns(),
        {
            semconv.OPERATION: semconv.OP_WORKFLOW,
            semconv.PROVIDER: run.provider,
            semconv.RUN_ID: run.pk,
            semconv.INPUT_TOKENS: run.tokens_in,
            semconv.OUTPUT_TOKENS: run.tokens_out,
            semconv.COST_USD: float(run.cost_usd),
            "harness.status": run.status,
        },
    )

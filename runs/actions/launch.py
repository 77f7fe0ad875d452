"""Launch: validate, freeze the target into a snapshot, create the Run, enqueue its planning.

Validation happens before anything is written: a refused launch leaves no rows, and no snapshot
either (the target is planned before its snapshot is committed to the store). The bounds
below are the only ones: the launch form and ``manage.py launch_run`` both end here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from agents import semconv
from agents.aggregation.stages import AGGREGATION_STEPS, unknown_steps
from agents.budget_scopes import DEFAULT_SPLIT
from agents.contract import ProviderError
from agents.planning import EVERY_DOCUMENT, PlanningError, TaskSpec, TextReader, plan
from agents.playbooks import PLAYBOOKS, Playbook
from agents.providers.catalog import default_model, get_provider
from agents.providers.registry import MissingApiKey
from agents.snapshot import (
    Excludes,
    SnapshotError,
    SnapshotManifest,
    freeze_archive,
    freeze_directory,
    snapshot_store,
    target_label,
)
from harness_site.telemetry import get_tracer, parent_context
from runs.actions import enqueue
from runs.actions.launch_options import (
    LaunchError,
    bounded_int,
    check_option_names,
    check_options,
    latency_sigma_option,
    launch_bounds,
    parse_budget_usd,
)
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Run
from runs.observability import tracing


def run_excludes(config: dict[str, Any]) -> Excludes:
    """What the snapshot of a run with this frozen config leaves out (the launch and its
    estimate freeze with it)."""
    options = config["options"]
    return Excludes(options.get("exclude", []), defaults=options.get("default_excludes", True))


def resolve_config(
    book: Playbook,
    *,
    provider: str,
    model: str | None = None,
    role_models: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    aggregation: list[str] | None = None,
    hold_agents: bool = False,
) -> dict[str, Any]:
    """The run's frozen playbook config: overrides applied, options checked, ``max_agents`` set
    (the playbook's, capped by HARNESS_MAX_AGENTS, unless the options say otherwise)."""
    check_option_names(book, options)
    options = check_options(options)
    max_agents = options.pop("max_agents", min(book.max_agents, settings.HARNESS_MAX_AGENTS))
    # Written out even when not given, so the frozen config says what the snapshot left out.
    options.setdefault("exclude", [])
    options.setdefault("default_excludes", True)
    options.setdefault("budget_split", DEFAULT_SPLIT)
    config = book.with_overrides(
        provider=provider,
        model=model,
        role_models=role_models,
        options=options,
        aggregation=aggregation,
        hold_agents=hold_agents,
    ).to_config()
    config["max_agents"] = max_agents
    return config


def plan_target(
    config: dict[str, Any], manifest: dict[str, Any], read_text: TextReader | None = None
) -> list[TaskSpec]:
    """The run's own plan, or the LaunchError refusing a target before anything starts."""
    document = config["options"].get("document")
    if document and document != EVERY_DOCUMENT and document not in manifest["files"]:
        raise LaunchError(
            f"The document {document!r} is not in the target: pick one of its documents, "
            f"or {EVERY_DOCUMENT} for every document.",
            "document",
        )
    try:
        return plan(Playbook.from_config(config), manifest, read_text)
    except PlanningError as exc:
        hint = f" (at most {settings.HARNESS_MAX_AGENTS}, HARNESS_MAX_AGENTS)"
        message = str(exc).replace("raise max agents", f"raise max agents{hint}")
        raise LaunchError(message, "target") from None


def check_provider(name: str) -> None:
    """Refuse a provider that is unknown or not configured here (its API key variable unset):
    every agent of the run would fail on it. Raises LaunchError on the ``provider`` field."""
    try:
        config = getattr(get_provider(name), "config", None)
        if config is not None:
            config.api_key()  # read again by each call; checked now so nothing starts in vain
    except MissingApiKey as exc:
        raise LaunchError(f"{exc}, then try again.", "provider") from None
    except (ProviderError, ValueError, KeyError) as exc:
        raise LaunchError(f"Unknown or unusable provider {name!r}: {exc}", "provider") from None


def launch_run(
    *,
    user: User | None,
    playbook: str,
    target_path: str | None = None,
    archive: UploadedFile[bytes] | None = None,
    provider: str | None = None,
    model: str | None = None,
    role_models: dict[str, str] | None = None,
    max_concurrency: int | None = None,
    budget_usd: Decimal | float | str | None = None,
    budget_tokens: int | str | None = None,
    max_depth: int | None = None,
    aggregation: list[str] | None = None,
    latency_ms: int = 0,
    options: dict[str, Any] | None = None,
    title: str = "",
    hold_agents: bool = False,
    latency_sigma: float = 0.0,
) -> Run:
    """Validate, freeze the target into a snapshot, create the Run and enqueue its planning."""
    book = PLAYBOOKS.get(playbook)
    if book is None:
        raise LaunchError(f"Unknown playbook {playbook!r}.", "playbook")
    provider = provider or "heuristic"
    check_provider(provider)
    concurrency = bounded_int(
        max_concurrency if max_concurrency is not None else book.max_concurrency,
        "max_concurrency",
        *launch_bounds()["max_concurrency"],
    )
    depth = bounded_int(
        max_depth if max_depth is not None else book.max_depth,
        "max_depth",
        *launch_bounds()["max_depth"],
    )
    latency = bounded_int(latency_ms or 0, "latency_ms", *launch_bounds()["latency_ms"])
    sigma = latency_sigma_option(latency_sigma)
    # Every run has a ceiling: a blank budget means the playbook's default, never "no limit".
    budget = parse_budget_usd(budget_usd if budget_usd not in (None, "") else book.budget_usd)
    tokens = None
    if budget_tokens not in (None, ""):
        tokens = bounded_int(budget_tokens, "budget_tokens", *launch_bounds()["budget_tokens"])
    chain = list(aggregation) if aggregation is not None else list(book.aggregation)
    unknown = [step for step in chain if step not in AGGREGATION_STEPS]
    if unknown:
        raise LaunchError(unknown_steps(unknown), "aggregation")
    if (target_path is None) == (archive is None):
        raise LaunchError(
            "Choose a target directory or upload an archive (one of the two).", "target"
        )

    config = resolve_config(
        book,
        provider=provider,
        model=model,
        role_models=role_models,
        options=options,
        aggregation=chain,
        hold_agents=hold_agents,
    )
    if sigma:
        # Read by the worker for each agent's simulated latency (agents.latency).
        config["options"]["latency_sigma"] = sigma
    # The run's trace starts here, before its row exists: its ids come from the uid it will get.
    uid = uuid.uuid4()
    trace_id, root_span_id = tracing.trace_ids_for(uid)
    with get_tracer().start_as_current_span(
        f"launch {book.name}",
        context=parent_context(trace_id, root_span_id),
        attributes={semconv.WORKFLOW_NAME: book.name, semconv.CONVERSATION_ID: str(uid)},
    ) as span:
        kind, label = _target(target_path, archive)
        snapshot_ns = [time.time_ns()]

        def check(manifest: SnapshotManifest) -> None:
            # Planned before the snapshot is committed: a target the run refuses stores nothing.
            snapshot_ns.append(time.time_ns())
            span.set_attributes(_target_attributes(label, target_path))
            plan_target(config, manifest.to_dict(), manifest.read_staged)

        try:
            manifest = _freeze(target_path, archive, run_excludes(config), check)
        except Exception as exc:  # a refused launch is one short trace that says why
            refused = isinstance(exc, LaunchError)
            span.set_attribute(
                semconv.ERROR_TYPE, "launch_refused" if refused else type(exc).__name__
            )
            raise
        run = _create_run(
            uid=uid,
            title=title,
            book=book,
            config=config,
            manifest=manifest,
            kind=kind,
            label=label,
            user=user,
            provider=provider,
            model=model,
            max_concurrency=concurrency,
            budget_usd=budget,
            budget_tokens=tokens,
            max_depth=depth,
            latency_ms=latency,
            aggregation=chain,
            trace_id=trace_id,
            root_span_id=root_span_id,
        )
        span.set_attributes(tracing.run_attributes(run))
        tracing.record_span(
            run,
            "snapshot",
            snapshot_ns[0],
            snapshot_ns[1],
            span,
            **{"harness.snapshot.files": len(manifest.files)},
        )
    return run


def _create_run(
    *,
    uid: uuid.UUID,
    title: str,
    book: Playbook,
    config: dict[str, Any],
    manifest: SnapshotManifest,
    kind: str,
    label: str,
    user: User | None,
    provider: str,
    model: str | None,
    **limits: Any,
) -> Run:
    """The Run row and its first event; its planning is sent when this commits."""
    with transaction.atomic():
        run = Run.objects.create(
            uid=uid,
            title=title[:200],
            playbook=book.name,
            config=config,
            target_kind=kind,
            target_label=label[:500],
            snapshot_digest=manifest.digest,
            snapshot_key=manifest.key,
            snapshot_info={
                "files": len(manifest.files),
                "bytes": manifest.total_bytes,
                "skipped": len(manifest.skipped),
                "source": manifest.source,
            },
            launched_by=user if getattr(user, "is_authenticated", False) else None,
            provider=provider,
            model=model or default_model(provider),
            max_agents=config["max_agents"],
            max_children=book.max_children,
            **limits,
        )
        record_event(
            run,
            EventType.RUN_CREATED,
            {
                "playbook": book.name,
                "target": run.target_label,
                "provider": provider,
                "files": len(manifest.files),
                "skipped": len(manifest.skipped),
                "launched_by": getattr(user, "username", None),
            },
        )
        enqueue.after_commit(enqueue.PLAN_RUN, run.pk)
    return run


def _target(target_path: str | None, archive: UploadedFile[bytes] | None) -> tuple[str, str]:
    """(target kind, label) of a launch's target."""
    if archive is not None:
        return "archive", Path(archive.name or "upload").name
    path = Path(str(target_path)).expanduser()
    return "directory", target_label(path, settings.HARNESS_TARGET_ROOTS)


def _freeze(
    target_path: str | None,
    archive: UploadedFile[bytes] | None,
    exclude: Excludes,
    before_commit: Callable[[SnapshotManifest], None],
) -> SnapshotManifest:
    """Freeze the target into the snapshot store; ``before_commit`` may still refuse it then,
    with nothing stored."""
    store = snapshot_store()
    try:
        if archive is not None:
            if archive.size is not None and archive.size > settings.HARNESS_MAX_UPLOAD_BYTES:
                raise LaunchError(
                    f"The archive is larger than {settings.HARNESS_MAX_UPLOAD_BYTES:,} bytes.",
                    "archive",
                )
            return freeze_archive(
                cast(BinaryIO, archive),
                archive.name or "upload",
                store,
                max_entries=settings.HARNESS_ARCHIVE_MAX_ENTRIES,
                max_uncompressed_bytes=settings.HARNESS_ARCHIVE_MAX_BYTES,
                exclude=exclude,
                before_commit=before_commit,
            )
        path = Path(str(target_path)).expanduser()
        return freeze_directory(
            path,
            settings.HARNESS_TARGET_ROOTS,
            store,
            exclude=exclude,
            before_commit=before_commit,
        )
    except SnapshotError as exc:
        raise LaunchError(str(exc), "archive" if archive is not None else "target") from None


def _target_attributes(label: str, target_path: str | None) -> dict[str, str]:
    """The launch span's names for the target: the label always; the server's absolute path
    only with content capture on, since a trace receiver is outside the server too."""
    attributes = {semconv.TARGET: label}
    if target_path is not None and settings.HARNESS_CAPTURE_CONTENT:
        attributes[semconv.TARGET_PATH] = str(Path(target_path).expanduser().resolve())
    return attributes

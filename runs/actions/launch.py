"""Launch: validate, freeze the target into a snapshot, create the Run, enqueue its planning.

Validation happens before anything is written: a refused launch leaves no rows, and no snapshot
either (the target is planned before its snapshot is committed to the store). The bounds
below are the only ones: the launch form and ``manage.py launch_run`` both end here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from agents import semconv
from agents.aggregation.similarity import EMBEDDER_OPTIONS
from agents.aggregation.stages import AGGREGATION_STEPS, TUNABLES, unknown_steps
from agents.budget_scopes import DEFAULT_SPLIT, split_problem
from agents.contract import ProviderError
from agents.latency import MAX_SIGMA
from agents.planning import EVERY_DOCUMENT, PlanningError, TaskSpec, TextReader, plan
from agents.playbooks import FORM_OPTIONS, PLAYBOOKS, Playbook
from agents.providers.catalog import default_model, get_provider
from agents.providers.registry import MissingApiKey
from agents.snapshot import (
    Excludes,
    SnapshotError,
    SnapshotManifest,
    exclude_patterns,
    freeze_archive,
    freeze_directory,
    snapshot_store,
    target_label,
)
from harness_site.telemetry import get_tracer, parent_context
from runs.actions import enqueue
from runs.eventlog.event_types import EventType
from runs.eventlog.events import record_event
from runs.models import Run
from runs.observability import tracing


def launch_bounds() -> dict[str, tuple[int, int]]:
    """(lowest, highest) accepted for each whole-number launch setting, read at each launch (a
    deployment's settings, or ``bench`` lifting them for its own process)."""
    return {
        "max_concurrency": (1, settings.HARNESS_MAX_CONCURRENCY),
        "max_depth": (0, 10),
        "latency_ms": (0, 600_000),
        "budget_tokens": (1, 10**12),
    }


BUDGET_USD_STEP = Decimal("0.000001")  # budgets are kept in micro-dollars
BUDGET_USD_MAX = Decimal(100_000)


# Playbook options a launch may set, (lowest, highest) for the whole numbers. An option applies
# to the playbooks that declare it in ``Playbook.options``; ``max_agents`` (a limit every
# playbook has) is bounded by settings.HARNESS_MAX_AGENTS, read at each launch.
def option_bounds() -> dict[str, tuple[int, int]]:
    return {
        "k": (1, settings.HARNESS_MAX_VOTERS),  # voters of an ensemble
        "chunk_files": (1, 100),  # files per chunk of a codebase audit
    }


# Options every playbook takes besides its own ``Playbook.options``: the launch applies them
# (the agent cap; the globs left out of the snapshot, and whether the default ones are).
LAUNCH_OPTIONS = ("max_agents", "exclude", "default_excludes", "budget_split")
# Names kept for features still to come (issue #19): refused, so that a script setting them
# learns now that they do nothing, rather than being silently ignored.
RESERVED_OPTIONS = {"adaptive": "adaptive runs"}
OPTION_LABELS = {
    "k": "Voters (K)",
    "chunk_files": "Files per chunk",
    "document": "Document",
    "max_agents": "Max agents",
    "exclude": "Exclude",
    "default_excludes": "Default excludes",
}
DOCUMENT_MAX_CHARS = 500


class LaunchError(ValueError):
    """A launch was refused. ``field`` names the form field at fault (None: the whole form)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _bounded_int(value: Any, field: str, low: int, high: int) -> int:
    label = OPTION_LABELS.get(field) or field.replace("_", " ").capitalize()
    # bool is an int to Python (True agents is a mistake, not 1); int(2.7) would truncate.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise LaunchError(f"{label} must be a whole number.", field)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise LaunchError(f"{label} must be a whole number.", field) from None
    if not low <= number <= high:
        raise LaunchError(f"{label} must be between {low} and {high}.", field)
    return number


def _latency_sigma(value: Any) -> float:
    try:
        sigma = float(value or 0)
    except (TypeError, ValueError):
        raise LaunchError("Latency sigma must be a number.", "latency_sigma") from None
    if not 0 <= sigma <= MAX_SIGMA:
        raise LaunchError(f"Latency sigma must be between 0 and {MAX_SIGMA:g}.", "latency_sigma")
    return sigma


def offered_options(book: Playbook) -> list[str]:
    """The options the launch form offers for ``book``, besides max agents (every playbook)."""
    return [n for n in FORM_OPTIONS if n in book.options]


def playbook_options(book: Playbook) -> list[str]:
    """Every option a launch may set for ``book``, sorted: the playbook's own (its
    ``Playbook.options``), the launch's (``LAUNCH_OPTIONS``) and what the aggregation chain
    reads (its ``TUNABLES`` and the embedder's options). Read from those declarations at each
    call, so a new one is accepted wherever it is declared."""
    return sorted({*book.options, *LAUNCH_OPTIONS, *TUNABLES, *EMBEDDER_OPTIONS})


def check_option_names(book: Playbook, options: dict[str, Any] | None) -> None:
    """Refuse, on the ``options`` field, a name nothing reads: an option set and silently
    ignored looks applied when it is not (a typo, another playbook's option, a reserved one)."""
    allowed = playbook_options(book)
    for name in options or {}:
        if name in RESERVED_OPTIONS:
            raise LaunchError(
                f"The option {name!r} is not available yet: it is reserved for "
                f"{RESERVED_OPTIONS[name]}, a later feature. Launch without it.",
                "options",
            )
        if name not in allowed:
            raise LaunchError(
                f"Unknown option {name!r} for {book.name}. Its options: {', '.join(allowed)}.",
                "options",
            )


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` with the bounded ones checked and made whole numbers; the first one out of
    bounds raises LaunchError on its own field. Names are ``check_option_names``'s business:
    the launch form checks one option at a time with this."""
    checked = dict(options or {})
    for name, (low, high) in option_bounds().items():
        if name in checked:
            checked[name] = _bounded_int(checked[name], name, low, high)
    if "max_agents" in checked:
        checked["max_agents"] = _bounded_int(
            checked["max_agents"], "max_agents", 1, settings.HARNESS_MAX_AGENTS
        )
    if "document" in checked:
        document = checked["document"]
        if not isinstance(document, str) or len(document) > DOCUMENT_MAX_CHARS:
            raise LaunchError("Document must be a path inside the target, or *.", "document")
        checked["document"] = document.strip()
    if "exclude" in checked:
        try:
            checked["exclude"] = exclude_patterns(checked["exclude"])
        except SnapshotError as exc:
            raise LaunchError(str(exc), "exclude") from None
    if not isinstance(checked.get("default_excludes", True), bool):
        raise LaunchError("Default excludes must be true or false.", "default_excludes")
    if problem := split_problem(checked.get("budget_split", DEFAULT_SPLIT)):
        raise LaunchError(problem, "budget_split")
    return checked


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
    concurrency = _bounded_int(
        max_concurrency if max_concurrency is not None else book.max_concurrency,
        "max_concurrency",
        *launch_bounds()["max_concurrency"],
    )
    depth = _bounded_int(
        max_depth if max_depth is not None else book.max_depth,
        "max_depth",
        *launch_bounds()["max_depth"],
    )
    latency = _bounded_int(latency_ms or 0, "latency_ms", *launch_bounds()["latency_ms"])
    sigma = _latency_sigma(latency_sigma)
    # Every run has a ceiling: a blank budget means the playbook's default, never "no limit".
    budget = _budget(budget_usd if budget_usd not in (None, "") else book.budget_usd)
    tokens = None
    if budget_tokens not in (None, ""):
        tokens = _bounded_int(budget_tokens, "budget_tokens", *launch_bounds()["budget_tokens"])
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


def _budget(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise LaunchError("Budget must be an amount in USD, like 2.50.", "budget_usd") from None
    if not amount.is_finite():
        raise LaunchError("Budget must be an amount in USD, like 2.50.", "budget_usd")
    # Rounded before the check: a budget that rounds to $0 is no budget.
    if amount <= BUDGET_USD_MAX:
        amount = amount.quantize(BUDGET_USD_STEP)
    if amount <= 0 or amount > BUDGET_USD_MAX:
        raise LaunchError(
            f"Budget must be at least ${BUDGET_USD_STEP} and at most ${BUDGET_USD_MAX:,}.",
            "budget_usd",
        )
    return amount

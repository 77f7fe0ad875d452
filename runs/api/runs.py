"""/api/v1/runs/: list, launch, detail, and an operator's controls (cancel, retry failed
agents, ask for a budget extension). Every write is the pages' own action."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Router, Status
from ninja.errors import ValidationError
from pydantic import ValidationError as PydanticError

from runs.access import get_run_for_user, require_perm
from runs.actions import cancel_run, launch_run, request_extension, retry_failed
from runs.api.auth import granted
from runs.api.pagination import DEFAULT_LIMIT, Page, keyset
from runs.api.problems import Problem
from runs.api.schemas import ApprovalOut, Done, ExtendIn, LaunchIn, RetryOut, RunDetail, RunOut
from runs.api.serialize import approval_out, run_detail, run_out
from runs.pages.runs_list import filtered_runs
from runs.targets import available_targets

router = Router(tags=["runs"])


class RunPage(Page):
    items: list[RunOut]


@router.get("/", response=RunPage, url_name="runs", summary="List runs (scope: read)")
def list_runs(
    request: HttpRequest,
    status: str = "",
    playbook: str = "",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """The runs you may see, newest first. ``status`` is a run status or ``active`` (still
    working); ``playbook`` a playbook name."""
    user = granted(request, "read")
    rows, _, _ = filtered_runs(user, {"status": status, "playbook": playbook})
    return keyset(rows, cursor, limit, descending=True, item=run_out)


LAUNCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LaunchIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["archive", "launch"],
                    "properties": {
                        "archive": {
                            "type": "string",
                            "format": "binary",
                            "description": "The target as a .zip or .tar.gz archive.",
                        },
                        "launch": {
                            "type": "string",
                            "description": "The JSON launch object, without `target`.",
                        },
                    },
                }
            },
        },
    }
}


@router.post(
    "/",
    response={201: RunDetail},
    openapi_extra=LAUNCH_BODY,
    url_name="launch",
    summary="Launch a run (scope: launch; role: operator)",
)
def launch(request: HttpRequest, response: HttpResponse) -> Status[Any]:
    """Launch a run with the launch form's fields: a JSON body naming a ``target`` under the
    allowed roots, or multipart with the target as an ``archive`` and the same fields as JSON
    in ``launch``. Refused (422, ``launch-refused``, its ``field``) with the form's message and
    nothing created."""
    user = granted(request, "launch")
    require_perm(user, "runs.launch_run")
    data, archive = _launch_input(request)
    run = launch_run(
        user=user,
        playbook=data.playbook,
        target_path=_target_path(data.target),
        archive=archive,
        provider=data.provider,
        model=data.model,
        role_models=data.role_models,
        max_concurrency=data.max_concurrency,
        budget_usd=data.budget_usd,
        budget_tokens=data.budget_tokens,
        max_depth=data.max_depth,
        aggregation=data.aggregation,
        latency_ms=data.latency_ms,
        options=data.options,
        title=data.title,
        hold_agents=data.hold_agents,
    )
    response["Location"] = reverse("api:run", args=[run.pk])
    return Status(201, run_detail(run))


def _launch_input(request: HttpRequest) -> tuple[LaunchIn, UploadedFile[bytes] | None]:
    """The launch object and the archive, from a JSON body or a multipart one."""
    kind = request.content_type or ""
    archive: UploadedFile[bytes] | None = None
    if kind == "multipart/form-data":
        archive = request.FILES.get("archive")
        text = request.POST.get("launch", "")
        where = "launch"
    elif kind == "application/json":
        text = request.body.decode("utf-8", "replace")
        where = "body"
    else:
        raise Problem(
            415,
            "Send the launch as application/json, or multipart/form-data with an archive.",
            code="unsupported-media-type",
        )
    try:
        return LaunchIn.model_validate_json(text or "{}"), archive
    except PydanticError as exc:
        raise ValidationError(
            [{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _target_path(target: str | None) -> str | None:
    """A label of the listed targets ('samples/vulnerable_app/') as its path; anything else as
    given (``launch_run`` confines it to the target roots, refusing with the form's words)."""
    if not target:
        return None
    wanted = target.rstrip("/")
    for path, label in available_targets():
        if label.rstrip("/") == wanted:
            return path
    return target


@router.get(
    "/{run_id}/", response=RunDetail, url_name="run", summary="A run in detail (scope: read)"
)
def detail(request: HttpRequest, run_id: int) -> dict[str, Any]:
    """Counters, cost, agents in flight and why fewer than the cap, the budget forecast, the
    latest report version, and the ``launch_run --json`` summary."""
    user = granted(request, "read")
    return run_detail(get_run_for_user(user, run_id))


@router.post(
    "/{run_id}/cancel/",
    response=Done,
    url_name="cancel",
    summary="Cancel a run (scope: launch; role: operator)",
)
def cancel(request: HttpRequest, run_id: int) -> dict[str, str]:
    user = granted(request, "launch")
    run = get_run_for_user(user, run_id)
    require_perm(user, "runs.cancel_run")
    if not cancel_run(run, user):
        raise Problem(
            409,
            f"Run #{run.pk} can no longer be cancelled ({run.status}).",
            code="cancel-refused",
            title="Cancel refused",
        )
    return {"detail": f"Run #{run.pk} is being cancelled."}


@router.post(
    "/{run_id}/retry/",
    response=RetryOut,
    url_name="retry",
    summary="Retry a run's failed agents (scope: launch; role: operator)",
)
def retry(request: HttpRequest, run_id: int) -> dict[str, Any]:
    user = granted(request, "launch")
    run = get_run_for_user(user, run_id)
    require_perm(user, "runs.cancel_run")
    count = retry_failed(run, user)
    if not count:
        raise Problem(
            409, "No failed agent could be retried.", code="retry-refused", title="Retry refused"
        )
    plural = "s" if count != 1 else ""
    return {"detail": f"Re-queued {count} failed agent{plural}.", "retried": count}


@router.post(
    "/{run_id}/extend/",
    response={201: ApprovalOut},
    url_name="extend",
    summary="Ask for a budget extension (scope: launch; role: operator)",
)
def extend(request: HttpRequest, run_id: int, body: ExtendIn) -> Status[Any]:
    """Open the budget gate of a run whose budget ran out; a reviewer decides it."""
    user = granted(request, "launch")
    run = get_run_for_user(user, run_id)
    require_perm(user, "runs.cancel_run")
    gate = request_extension(run, user, body.budget_usd[:40], body.comment)
    return Status(201, approval_out(gate))

"""Every endpoint of the API, over real HTTP, against every way in: anonymous, each role, each
scope, another user's token, a revoked and an expired token, the session (with and without
CSRF). The table below is checked against the live OpenAPI schema, so an endpoint added without
a line here fails the suite."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.actions.tokens import create_token, revoke_token
from runs.models import ApiToken, Approval, Run, Task
from runs.models.token import SCOPES
from tests.api.conftest import assert_problem
from tests.runs.factories import make_finding, make_report, make_run, make_task

# (method, path) -> (scope, permission a write needs beyond it, a valid body)
OPS: dict[tuple[str, str], tuple[str, str | None, dict[str, Any] | None]] = {
    ("get", "/api/v1/runs/"): ("read", None, None),
    ("post", "/api/v1/runs/"): (
        "launch",
        "runs.launch_run",
        {"playbook": "codebase-audit", "target": "samples/vulnerable_app/"},
    ),
    ("get", "/api/v1/runs/{run_id}/"): ("read", None, None),
    ("post", "/api/v1/runs/{run_id}/cancel/"): ("launch", "runs.cancel_run", None),
    ("post", "/api/v1/runs/{run_id}/retry/"): ("launch", "runs.cancel_run", None),
    ("post", "/api/v1/runs/{run_id}/extend/"): ("launch", "runs.cancel_run", {"budget_usd": "9"}),
    ("get", "/api/v1/runs/{run_id}/agents/"): ("read", None, None),
    ("get", "/api/v1/runs/{run_id}/agents/{agent_id}/"): ("read", None, None),
    ("get", "/api/v1/runs/{run_id}/events/"): ("read", None, None),
    ("get", "/api/v1/runs/{run_id}/findings/"): ("read", None, None),
    ("post", "/api/v1/runs/{run_id}/findings/{finding_id}/review/"): (
        "review",
        "runs.decide_approval",
        {"decision": "accepted"},
    ),
    ("get", "/api/v1/runs/{run_id}/reports/"): ("read", None, None),
    ("post", "/api/v1/runs/{run_id}/reports/"): ("launch", "runs.launch_run", {}),
    ("get", "/api/v1/runs/{run_id}/reports/{version}/"): ("read", None, None),
    ("get", "/api/v1/runs/{run_id}/reports/{version}/export/{fmt}"): ("read", None, None),
    ("get", "/api/v1/approvals/"): ("read", None, None),
    ("get", "/api/v1/approvals/{approval_id}/"): ("read", None, None),
    ("post", "/api/v1/approvals/{approval_id}/decide/"): (
        "review",
        "runs.decide_approval",
        {"decision": "approved"},
    ),
    ("get", "/api/v1/targets/"): ("read", None, None),
    ("get", "/api/v1/playbooks/"): ("read", None, None),
}
RUN_SCOPED = {op for op in OPS if "{run_id}" in op[1] or "{approval_id}" in op[1]}
# Which role holds each permission (runs.roles).
ROLE_WITH = {
    "runs.launch_run": "operator",
    "runs.cancel_run": "operator",
    "runs.decide_approval": "reviewer",
}


@pytest.fixture
def world(make_user: Any) -> dict[str, Any]:
    """A run launched by an operator, at review, with an agent, a finding, a report and its
    open gate; every id the paths need."""
    owner = make_user("operator", username="owner")
    run = make_run(owner, status=Run.Status.AWAITING_REVIEW)
    task = make_task(run)
    finding = make_finding(run, task)
    report = make_report(run)
    gate = Approval.objects.create(
        run=run, gate=Approval.Gate.REPORT, target_id=report.pk, target_label="report v1"
    )
    ids = {
        "run_id": run.pk,
        "agent_id": task.pk,
        "finding_id": finding.pk,
        "version": report.version,
        "fmt": "sarif",
        "approval_id": gate.pk,
    }
    return {"owner": owner, "run": run, "gate": gate, "ids": ids}


def _path(template: str, ids: dict[str, Any]) -> str:
    return template.format(**ids)


def _call(api: Any, op: tuple[str, str], ids: dict[str, Any], **kwargs: Any) -> Any:
    method, template = op
    body = OPS[op][2]
    if method == "post":
        kwargs.setdefault("json", body if body is not None else {})
    return api.call(method.upper(), _path(template, ids), **kwargs)


def _unchanged(world: dict[str, Any]) -> None:
    """Nothing a refused call could have changed did change."""
    world["run"].refresh_from_db()
    assert world["run"].status == Run.Status.AWAITING_REVIEW
    assert Run.objects.count() == 1
    world["gate"].refresh_from_db()
    assert world["gate"].decision == Approval.Decision.PENDING
    assert Task.objects.filter(status=Task.Status.SUCCEEDED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_table_covers_every_operation_of_the_schema(api: Any, make_user: Any, token_for):
    schema = api.get("/api/v1/openapi.json", token=token_for(make_user("viewer"), "read")).json()
    found = {(m, p) for p, item in schema["paths"].items() for m in item}
    assert found == set(OPS)
    assert schema["openapi"].startswith("3.")
    assert "BearerToken" in schema["components"]["securitySchemes"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("op", sorted(OPS))
def test_anonymous_is_refused_with_401(api: Any, world: dict[str, Any], op) -> None:
    body = assert_problem(_call(api, op, world["ids"]), 401, "unauthenticated")
    assert "Bearer" in body["detail"]
    _unchanged(world)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("op", sorted(OPS))
def test_revoked_and_expired_tokens_are_refused(api: Any, world: dict[str, Any], op) -> None:
    admin = world["owner"]
    admin.is_superuser = True
    admin.save()
    token, revoked = create_token(admin, "old", SCOPES)
    revoke_token(token)
    response = _call(api, op, world["ids"], token=revoked)
    assert "revoked" in assert_problem(response, 401, "invalid-token")["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    soon = timezone.now() + timedelta(minutes=1)
    token, expired = create_token(admin, "short", SCOPES, expires_at=soon)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _call(api, op, world["ids"], token=expired)
    assert "expired" in assert_problem(response, 401, "invalid-token")["detail"]
    _unchanged(world)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("op", sorted(OPS))
def test_a_token_without_the_scope_is_refused_even_for_a_superuser(
    api: Any, world: dict[str, Any], make_user: Any, token_for, op
) -> None:
    scope = OPS[op][0]
    admin = make_user(None, is_superuser=True)
    others = [s for s in SCOPES if s != scope]
    response = _call(api, op, world["ids"], token=token_for(admin, *others))
    body = assert_problem(response, 403, "missing-scope")
    assert body["scope"] == scope
    assert f"lacks the {scope} scope" in body["detail"]
    _unchanged(world)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("op", sorted(op for op in OPS if OPS[op][1]))
@pytest.mark.parametrize("role", ["viewer", "operator", "reviewer"])
def test_each_role_with_the_scope_gets_only_what_its_permissions_allow(
    api: Any, world: dict[str, Any], make_user: Any, token_for, op, role: str
) -> None:
    scope, perm, _ = OPS[op]
    assert perm is not None
    user = make_user(role)
    response = _call(api, op, world["ids"], token=token_for(user, scope))
    if ROLE_WITH[perm] == role:
        # Allowed: past the permission check (the action itself may still refuse: a report at
        # review cannot be cancelled, nothing failed to retry, ...).
        assert response.status_code not in (401, 403, 404), response.text
    else:
        body = assert_problem(response, 403, "missing-permission")
        assert body["roles"] == [ROLE_WITH[perm]]
        _unchanged(world)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("op", sorted(op for op in OPS if not OPS[op][1]))
@pytest.mark.parametrize("role", ["viewer", "operator", "reviewer"])
def test_every_role_reads_with_the_read_scope(
    api: Any, world: dict[str, Any], make_user: Any, token_for, op, role: str
) -> None:
    response = _call(api, op, world["ids"], token=token_for(make_user(role), "read"))
    assert response.status_code == 200, response.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("op", sorted(RUN_SCOPED))
def test_another_users_run_is_not_found_with_a_token_of_a_user_without_a_role(
    api: Any, world: dict[str, Any], make_user: Any, token_for, op
) -> None:
    """A user with no role sees only the runs they launched: someone else's run is 404 (never
    revealed as existing), whatever the token's scopes."""
    stranger = make_user(None)
    response = _call(api, op, world["ids"], token=token_for(stranger))
    assert_problem(response, 404, "not-found")
    _unchanged(world)


@pytest.mark.django_db(transaction=True)
def test_lists_show_a_user_without_a_role_only_their_own(
    api: Any, world: dict[str, Any], make_user: Any, token_for
) -> None:
    stranger = make_user(None)
    own = make_run(stranger)
    token = token_for(stranger, "read")
    assert [r["id"] for r in api.get("/api/v1/runs/", token=token).json()["items"]] == [own.pk]
    assert api.get("/api/v1/approvals/?decision=all", token=token).json()["items"] == []


@pytest.mark.django_db(transaction=True)
def test_a_token_acts_as_its_own_user_not_the_session_beside_it(
    api: Any, world: dict[str, Any], make_user: Any, token_for
) -> None:
    """A reviewer's browser session sending a viewer's token: the request is the viewer's."""
    reviewer = make_user("reviewer")
    viewer_token = token_for(make_user("viewer"))
    path = f"/api/v1/approvals/{world['gate'].pk}/decide/"
    response = api.post(path, token=viewer_token, session=reviewer, json={"decision": "approved"})
    assert_problem(response, 403, "missing-permission")
    _unchanged(world)


@pytest.mark.django_db(transaction=True)
def test_session_reads_and_writes_with_csrf_and_is_refused_without(
    api: Any, world: dict[str, Any], make_user: Any
) -> None:
    reviewer = make_user("reviewer")
    assert api.get("/api/v1/runs/", session=reviewer, csrf=False).status_code == 200
    path = f"/api/v1/approvals/{world['gate'].pk}/decide/"
    response = api.post(path, session=reviewer, csrf=False, json={"decision": "approved"})
    assert_problem(response, 403, "csrf-failed")
    _unchanged(world)
    response = api.post(path, session=reviewer, json={"decision": "approved"})
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "approved"


@pytest.mark.django_db(transaction=True)
def test_a_token_needs_no_csrf(api: Any, world: dict[str, Any], make_user: Any, token_for):
    token = token_for(make_user("reviewer"), "review")
    path = f"/api/v1/approvals/{world['gate'].pk}/decide/"
    response = api.post(path, token=token, json={"decision": "approved"})
    assert response.status_code == 200, response.text


@pytest.mark.django_db(transaction=True)
def test_garbage_and_unknown_tokens_are_401_and_not_the_session(
    api: Any, world: dict[str, Any], make_user: Any
) -> None:
    """A token that is there but wrong is refused outright, even beside a valid session."""
    viewer = make_user("viewer")
    for bad in ("hrn_" + "A" * 43, "not-a-token"):
        response = api.get("/api/v1/runs/", token=bad, session=viewer)
        assert_problem(response, 401, "invalid-token")

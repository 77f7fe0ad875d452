"""Each resource of the API over real HTTP: cursor pagination, the event log by seq, findings
and reports with their exports, the operator's and the reviewer's writes through the pages'
actions (and their refusals in the pages' words), the problem shape, the rate limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agents.playbooks import get_playbook
from runs.models import ApiToken, Approval, Finding, Run, Task
from tests.api.conftest import assert_problem
from tests.runs.factories import emit, make_finding, make_report, make_run, make_task, make_tree

pytestmark = pytest.mark.django_db(transaction=True)
CONFIG = get_playbook("codebase-audit").to_config()


def _walk(api: Any, path: str, token: str, limit: int) -> list[list[Any]]:
    """Every page of a list, following next_cursor."""
    pages, cursor = [], None
    while True:
        query = f"{'&' if '?' in path else '?'}limit={limit}" + (
            f"&cursor={cursor}" if cursor else ""
        )
        body = api.get(path + query, token=token).json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_runs_pages_follow_the_cursor_newest_first_and_filter(api, viewer, operator, token_for):
    runs = [make_run(operator) for _ in range(5)]
    Run.objects.filter(pk=runs[0].pk).update(
        status=Run.Status.APPROVED, finished_at=runs[0].created_at
    )
    token = token_for(viewer, "read")
    pages = _walk(api, "/api/v1/runs/", token, 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [r["id"] for page in pages for r in page]
    assert ids == sorted((r.pk for r in runs), reverse=True)
    # A run created between two pages does not shift the next page.
    first = api.get("/api/v1/runs/?limit=2", token=token).json()
    make_run(operator)
    second = api.get(f"/api/v1/runs/?limit=2&cursor={first['next_cursor']}", token=token).json()
    assert [r["id"] for r in second["items"]] == ids[2:4]
    approved = api.get("/api/v1/runs/?status=approved", token=token).json()["items"]
    assert [r["id"] for r in approved] == [runs[0].pk]
    active = api.get("/api/v1/runs/?status=active", token=token).json()["items"]
    assert runs[0].pk not in [r["id"] for r in active] and len(active) == 5


def test_bad_cursors_and_limits_are_400_problems(api, viewer, token_for) -> None:
    token = token_for(viewer, "read")
    for cursor in ("nonsense", "eyJrIjogLTF9", "e30"):
        assert_problem(api.get(f"/api/v1/runs/?cursor={cursor}", token=token), 400, "bad-cursor")
    for limit in (0, 201):
        assert_problem(api.get(f"/api/v1/runs/?limit={limit}", token=token), 400, "bad-limit")
    body = assert_problem(api.get("/api/v1/runs/?limit=many", token=token), 422, "invalid-request")
    assert body["errors"][0]["loc"] == ["query", "limit"]


def test_run_detail_has_counters_cost_in_flight_and_forecast(api, viewer, operator, token_for):
    run = make_run(operator, max_concurrency=4)
    make_tree(run, roots=2, children=2, grandchildren=1)  # 4 running, 6 succeeded
    Run.objects.filter(pk=run.pk).update(cost_usd=Decimal("0.0126"))
    body = api.get(f"/api/v1/runs/{run.pk}/", token=token_for(viewer, "read")).json()
    assert body["agents"] == {"total": 10, "succeeded": 6, "failed": 0, "skipped": 0}
    assert body["statuses"] == {"succeeded": 6, "running": 4}
    assert body["in_flight"]["running"] == 4 and body["in_flight"]["cap"] == 4
    assert body["cost_usd"] == pytest.approx(0.0126)
    assert body["forecast"]["remaining_agents"] == 4
    assert body["forecast"]["forecast_cost_usd"] > body["forecast"]["spent_usd"] > 0
    assert body["summary"]["run_id"] == run.pk and body["summary"]["agents"]["total"] == 10
    assert body["report_version"] is None and body["url"] == f"/runs/{run.pk}/"


def test_agents_come_a_tree_level_at_a_time(api, viewer, operator, token_for) -> None:
    run = make_run(operator)
    tasks = make_tree(run, roots=3, children=2, grandchildren=1)
    token = token_for(viewer, "read")
    base = f"/api/v1/runs/{run.pk}/agents/"
    roots = api.get(base + "?parent=root", token=token).json()["items"]
    assert [a["id"] for a in roots] == [t.pk for t in tasks[:3]]
    children = api.get(f"{base}?parent={roots[0]['id']}", token=token).json()["items"]
    assert {a["parent_id"] for a in children} == {roots[0]["id"]} and len(children) == 2
    running = api.get(base + "?status=running", token=token).json()["items"]
    assert len(running) == 6 and {a["status"] for a in running} == {"running"}
    pages = _walk(api, base, token, 4)
    assert [a["id"] for p in pages for a in p] == [t.pk for t in tasks]
    assert_problem(api.get(base + "?status=sleeping", token=token), 400, "bad-parameter")


def test_an_agent_in_detail_with_steps_tries_and_findings(api, viewer, operator, token_for):
    run = make_run(operator)
    task = make_task(run)
    task.steps.create(index=0, kind="chat", name="chat heuristic", tokens_in=10, tokens_out=2)
    emit(run, "task.started", task)
    emit(run, "task.succeeded", task)
    finding = make_finding(run, task)
    body = api.get(f"/api/v1/runs/{run.pk}/agents/{task.pk}/", token=token_for(viewer)).json()
    assert [s["name"] for s in body["steps"]] == ["chat heuristic"]
    assert body["steps"][0]["tokens"] == {"input": 10, "output": 2}
    assert [a["outcome"] for a in body["attempts_history"]] == ["succeeded"]
    assert [f["id"] for f in body["findings"]] == [finding.pk]
    other = make_task(make_run(operator))
    response = api.get(f"/api/v1/runs/{run.pk}/agents/{other.pk}/", token=token_for(viewer))
    assert_problem(response, 404, "not-found")


def test_events_follow_by_seq(api, viewer, operator, token_for) -> None:
    run = make_run(operator)
    for _ in range(5):
        emit(run, "run.planning", playbook="codebase-audit")
    token = token_for(viewer, "read")
    base = f"/api/v1/runs/{run.pk}/events/"
    first = api.get(base + "?limit=3", token=token).json()
    assert [e["seq"] for e in first["items"]] == [1, 2, 3] and first["last_seq"] == 3
    rest = api.get(f"{base}?cursor={first['next_cursor']}", token=token).json()
    assert [e["seq"] for e in rest["items"]] == [4, 5]
    assert rest["next_cursor"] is None and rest["last_seq"] == 5
    caught_up = api.get(f"{base}?after=5", token=token).json()
    assert caught_up["items"] == [] and caught_up["last_seq"] == 5
    emit(run, "run.planning", playbook="codebase-audit")
    later = api.get(f"{base}?after={caught_up['last_seq']}", token=token).json()
    assert [e["seq"] for e in later["items"]] == [6]


def test_findings_with_report_ranks_and_filters(api, viewer, operator, token_for) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    task = make_task(run)
    high = make_finding(run, task, severity="high")
    low = make_finding(run, task, severity="low")
    report = make_report(run)
    report.clusters = [{"kept": True, "rank": 1, "finding_ids": [low.pk]}]
    report.save()
    token = token_for(viewer, "read")
    base = f"/api/v1/runs/{run.pk}/findings/"
    items = api.get(base, token=token).json()["items"]
    assert [(f["id"], f["report_rank"]) for f in items] == [(high.pk, None), (low.pk, 1)]
    assert [f["id"] for f in api.get(base + "?severity=high", token=token).json()["items"]] == [
        high.pk
    ]
    assert_problem(api.get(base + "?severity=urgent", token=token), 400, "bad-parameter")


def test_reports_versions_detail_and_exports(api, viewer, operator, token_for) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW, config=CONFIG)
    task = make_task(run)
    make_finding(run, task, cwe=89)
    make_report(run)
    token = token_for(viewer, "read")
    versions = api.get(f"/api/v1/runs/{run.pk}/reports/", token=token).json()["items"]
    assert [v["version"] for v in versions] == [1]
    sarif_url = versions[0]["exports"]["sarif"]
    assert sarif_url == f"/api/v1/runs/{run.pk}/reports/1/export/sarif"
    detail = api.get(f"/api/v1/runs/{run.pk}/reports/1/", token=token).json()
    assert detail["document"]["schema"] == "agent-harness/report@1"
    assert "<h2>Summary</h2>" in detail["html"]
    sarif = api.get(sarif_url, token=token)
    assert sarif.status_code == 200, sarif.text
    assert sarif.json()["version"] == "2.1.0"
    assert 'filename="run-' in sarif.headers["content-disposition"]
    markdown = api.get(f"/api/v1/runs/{run.pk}/reports/1/export/markdown", token=token)
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/")
    response = api.get(f"/api/v1/runs/{run.pk}/reports/1/export/pdf", token=token)
    assert_problem(response, 404, "not-found")
    assert_problem(api.get(f"/api/v1/runs/{run.pk}/reports/7/", token=token), 404, "not-found")


def test_reaggregate_makes_a_new_version_and_checks_the_pages_bounds(api, operator, token_for):
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW, config=CONFIG)
    make_finding(run, make_task(run))
    make_report(run)
    token = token_for(operator, "launch")
    base = f"/api/v1/runs/{run.pk}/reports/"
    made = api.post(base, token=token, json={"chain": ["dedup"], "top_k": 5})
    assert made.status_code == 201, made.text
    assert made.json()["version"] == 2 and made.json()["chain"] == ["dedup"]
    response = api.post(base, token=token, json={"dedup_threshold": 5})
    body = assert_problem(response, 422, "invalid-request")
    assert body["detail"] == "dedup_threshold: Ensure this value is less than or equal to 1.0."
    running = make_run(operator)
    response = api.post(f"/api/v1/runs/{running.pk}/reports/", token=token, json={})
    detail = assert_problem(response, 409, "reaggregate-refused")["detail"]
    assert "has no finished report to redo" in detail


def test_decide_a_gate_with_the_four_eyes_rule(api, make_user, token_for, settings) -> None:
    settings.HARNESS_FOUR_EYES = True
    launcher = make_user("reviewer")
    launcher.groups.add(*make_user("operator").groups.all())
    run = make_run(launcher, status=Run.Status.AWAITING_REVIEW)
    report = make_report(run)
    gate = Approval.objects.create(run=run, gate="report", target_id=report.pk)
    path = f"/api/v1/approvals/{gate.pk}/decide/"
    inbox = api.get("/api/v1/approvals/", token=token_for(launcher, "read")).json()["items"]
    assert [a["id"] for a in inbox] == [gate.pk]
    response = api.post(path, token=token_for(launcher, "review"), json={"decision": "approved"})
    body = assert_problem(response, 409, "decision-refused")
    assert body["detail"] == (
        "Four-eyes rule: you launched this run, so another reviewer decides this gate."
    )
    other = make_user("reviewer", username="second-pair")
    token = token_for(other, "review")
    response = api.post(path, token=token, json={"decision": "rejected"})
    assert "needs a comment" in assert_problem(response, 409, "decision-refused")["detail"]
    done = api.post(path, token=token, json={"decision": "approved", "comment": "ok"})
    assert done.status_code == 200 and done.json()["decided_by"] == "second-pair"
    run.refresh_from_db()
    assert run.status == Run.Status.APPROVED
    again = api.post(path, token=token, json={"decision": "approved"})
    detail = assert_problem(again, 409, "decision-refused")["detail"]
    assert detail.startswith("Already decided: approved by second-pair")
    assert api.get("/api/v1/approvals/", token=token_for(other, "read")).json()["items"] == []


def test_review_a_finding(api, reviewer, operator, token_for) -> None:
    run = make_run(operator, status=Run.Status.AWAITING_REVIEW)
    finding = make_finding(run, make_task(run))
    path = f"/api/v1/runs/{run.pk}/findings/{finding.pk}/review/"
    token = token_for(reviewer, "review")
    response = api.post(path, token=token, json={"decision": "dismissed", "comment": "test code"})
    assert response.status_code == 200 and response.json()["review"] == "dismissed"
    finding.refresh_from_db()
    assert finding.review == Finding.Review.DISMISSED


def test_cancel_retry_and_extend(api, operator, token_for) -> None:
    token = token_for(operator, "launch")
    running = make_run(operator)
    make_task(running, status=Task.Status.QUEUED, finished_at=None)
    response = api.post(f"/api/v1/runs/{running.pk}/cancel/", token=token)
    assert response.status_code == 200, response.text
    running.refresh_from_db()
    assert running.status == Run.Status.CANCELLED
    again = api.post(f"/api/v1/runs/{running.pk}/cancel/", token=token)
    assert assert_problem(again, 409, "cancel-refused")["detail"] == (
        f"Run #{running.pk} can no longer be cancelled (cancelled)."
    )

    failed = make_run(operator, status=Run.Status.FAILED)
    make_task(failed, status=Task.Status.FAILED)
    Run.objects.filter(pk=failed.pk).update(tasks_failed=1, tasks_total=1)
    response = api.post(f"/api/v1/runs/{failed.pk}/retry/", token=token)
    assert response.status_code == 200 and response.json()["retried"] == 1, response.text
    response = api.post(f"/api/v1/runs/{failed.pk}/retry/", token=token)
    detail = assert_problem(response, 409, "retry-refused")["detail"]
    assert detail == "No failed agent could be retried."

    spent = make_run(operator, status=Run.Status.BUDGET_EXHAUSTED, budget_usd=Decimal(1))
    path = f"/api/v1/runs/{spent.pk}/extend/"
    response = api.post(path, token=token, json={"budget_usd": "3", "comment": "worth it"})
    assert response.status_code == 201, response.text
    assert response.json()["gate"] == "budget" and response.json()["decision"] == "pending"
    response = api.post(path, token=token, json={"budget_usd": "4"})
    detail = assert_problem(response, 409, "decision-refused")["detail"]
    assert detail == "An extension of this run is already waiting for a decision."


def test_the_rate_limit_is_per_token(api, viewer, token_for) -> None:
    slow = token_for(viewer, "read", rate_per_minute=3)
    other = token_for(viewer, "read", rate_per_minute=3)
    for used in range(1, 4):
        response = api.get("/api/v1/targets/", token=slow)
        assert response.status_code == 200
        # Where the token stands, on every answer: a script can slow down before a 429.
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-remaining"] == str(3 - used)
        assert 1 <= int(response.headers["ratelimit-reset"]) <= 60
    response = api.get("/api/v1/targets/", token=slow)
    body = assert_problem(response, 429, "rate-limited")
    assert body["limit"] == 3 and 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit-remaining"] == "0"
    # A problem answer carries them too, as does an answer of another kind (a 404 here).
    missing = api.get("/api/v1/runs/999999/", token=other)
    assert missing.status_code == 404 and missing.headers["ratelimit-remaining"] == "2"
    assert api.get("/api/v1/targets/", token=other).status_code == 200
    assert ApiToken.objects.get(prefix=slow[:10]).last_used_at is not None


def test_schema_and_docs(api, viewer, token_for) -> None:
    assert_problem(api.get("/api/v1/openapi.json"), 401, "unauthenticated")
    schema = api.get("/api/v1/openapi.json", token=token_for(viewer, "read"))
    assert schema.status_code == 200
    launch = schema.json()["paths"]["/api/v1/runs/"]["post"]
    assert set(launch["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    refused = launch["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/Problem"}
    assert "detail" in schema.json()["components"]["schemas"]["Problem"]["required"]
    docs = api.get("/api/v1/docs", follow_redirects=False)
    assert docs.status_code == 302 and "/accounts/login/" in docs.headers["location"]
    page = api.get("/api/v1/docs", session=viewer)
    assert page.status_code == 200
    assert "/static/ninja/swagger-ui-bundle.js" in page.text  # our own copy, no CDN

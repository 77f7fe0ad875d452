"""Refusals and missing pages come in the site's layout with a way back, a refusal is one log
line, not a traceback, and a retry that could only fail the same way is refused."""

from __future__ import annotations

import logging
import sys
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from harness_site.logfilters import QuietRefusals
from runs.models import Event, Run, Task
from tests.runs.factories import make_finding, make_run, make_task

pytestmark = pytest.mark.django_db


def test_a_403_has_the_navigation_and_says_what_is_missing(viewer_client: Client) -> None:
    response = viewer_client.get(reverse("runs:launch"))
    assert response.status_code == 403
    html = response.content.decode()
    assert 'class="topbar"' in html and 'class="mainnav"' in html
    assert "You need the launch run permission." in html
    assert f'href="{reverse("runs:list")}"' in html


def test_the_403_page_names_the_group_that_grants_the_missing_permission(
    viewer_client: Client, operator_client: Client, reviewer_client: Client
) -> None:
    html = viewer_client.get(reverse("runs:launch")).content.decode()
    assert "You need the launch run permission." in html
    assert "adding you to the operator group" in html
    assert "viewer, operator or reviewer" not in html  # a viewer already is a viewer

    run = make_run(status=Run.Status.AWAITING_REVIEW)
    response = operator_client.post(reverse("runs:decide", args=[run.pk]), {"decision": "approved"})
    assert response.status_code == 403
    assert "adding you to the reviewer group" in response.content.decode()

    # Dismiss & re-run needs both permissions: a reviewer lacks the operator's.
    task = make_task(run)
    finding = make_finding(run, task)
    response = reviewer_client.get(reverse("runs:rerun_finding", args=[run.pk, finding.pk]))
    assert response.status_code == 403
    html = response.content.decode()
    assert "You need the cancel run permission." in html
    assert "adding you to the operator group" in html


@pytest.mark.parametrize("path", ["/runs/999999/", "/runs/999999/findings/", "/runs/999999/tree/"])
def test_a_missing_run_gets_the_products_404_even_under_debug(
    viewer_client: Client, settings: Any, path: str
) -> None:
    settings.DEBUG = True
    response = viewer_client.get(path)
    assert response.status_code == 404
    html = response.content.decode()
    assert "Nothing here" in html and 'class="topbar"' in html
    assert "URLconf" not in html and "DEBUG = True" not in html  # not Django's debug page


def test_a_run_the_user_may_not_see_looks_like_a_missing_one_under_debug(
    make_user: Any, operator: User, settings: Any
) -> None:
    settings.DEBUG = True
    run = make_run(operator)
    outsider = Client()
    outsider.force_login(make_user(None))
    response = outsider.get(run.get_absolute_url())
    assert response.status_code == 404
    assert "Nothing here" in response.content.decode()


def test_a_404_is_in_the_layout_with_a_way_back(viewer_client: Client) -> None:
    response = viewer_client.get("/runs/999999/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Nothing here" in html and 'class="topbar"' in html


def test_the_run_page_says_without_javascript_that_it_is_a_snapshot(viewer_client: Client) -> None:
    run = make_run(status=Run.Status.RUNNING)
    html = viewer_client.get(run.get_absolute_url()).content.decode()
    noscript = html.split("<noscript>", 1)[1].split("</noscript>", 1)[0]
    assert "snapshot" in noscript and "Reload" in noscript


def _record(status: int) -> logging.LogRecord:
    try:
        raise PermissionError("nope")
    except PermissionError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Forbidden: /runs/new/", None, exc_info
    )
    record.status_code = status
    return record


def test_refusals_are_logged_without_their_traceback() -> None:
    forbidden, broken = _record(403), _record(500)
    quiet = QuietRefusals()
    assert quiet.filter(forbidden) and quiet.filter(broken)
    assert forbidden.exc_info is None
    assert broken.exc_info is not None  # a real error keeps its traceback


def test_the_console_log_uses_the_filter(settings: Any) -> None:
    assert "quiet_refusals" in settings.LOGGING["handlers"]["console"]["filters"]
    path = settings.LOGGING["filters"]["quiet_refusals"]["()"]
    assert path == f"{QuietRefusals.__module__}.{QuietRefusals.__name__}"


@pytest.mark.parametrize("key_set", [False, True])
def test_retry_is_refused_while_the_failures_cause_is_configuration(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch, key_set: bool
) -> None:
    run = make_run(status=Run.Status.FAILED, provider="openai")
    task = make_task(run, status=Task.Status.FAILED, provider="openai", error="needs an API key")
    Run.objects.filter(pk=run.pk).update(tasks_total=1, tasks_failed=1)
    if key_set:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-123")
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    events_before = Event.objects.filter(run=run).count()
    with mock.patch("runs.actions.enqueue.send"):
        response = operator_client.post(reverse("runs:retry", args=[run.pk]), follow=True)
    html = response.content.decode()
    task.refresh_from_db()
    if key_set:
        assert task.status == Task.Status.PENDING
        assert "Re-queued 1 failed agent." in html
    else:
        assert "Retry refused: provider &#x27;openai&#x27; needs an API key" in html
        assert "OPENAI_API_KEY" in html
        assert task.status == Task.Status.FAILED  # nothing changed
        assert Event.objects.filter(run=run).count() == events_before

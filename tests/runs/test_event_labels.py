"""Events read as words on the run page, its live pushes and the events page; the raw type
stays in the markup (title, data-type, the ev-* class) and every id is unchanged."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.eventlog.event_types import EventType
from runs.eventlog.labels import LABELS, event_label
from runs.models import Event
from runs.pages.run.live import render_events
from tests.runs.factories import emit, make_run, make_task


def test_every_type_has_words() -> None:
    assert set(LABELS) == set(EventType)
    assert all("." not in label and "_" not in label for label in LABELS.values())
    assert event_label("task.succeeded") == "Agent succeeded"
    assert event_label("widget.turned_on") == "Widget turned on"  # an older log's type


@pytest.mark.django_db
def test_the_feed_and_the_events_page_show_the_label_and_keep_the_type(
    operator_client: Client, operator: User
) -> None:
    run = make_run(operator)
    task = make_task(run)
    event = emit(run, "task.succeeded", task=task)
    shown = (
        '<span class="ev-type"\n    title="task.succeeded" data-type="task.succeeded">'
        "Agent succeeded</span>"
    )
    for url in (reverse("runs:detail", args=[run.pk]), reverse("runs:events", args=[run.pk])):
        html = operator_client.get(url).content.decode()
        assert shown in html, url
        assert f'<li id="event-{event.seq}" class="event ev-task-succeeded">' in html
        assert ">task.succeeded<" not in html
    # A live push renders the same row.
    pushed = render_events(list(Event.objects.filter(run=run)), event.seq, replace=False)
    assert shown in pushed and 'hx-swap-oob="afterbegin"' in pushed

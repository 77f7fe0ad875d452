"""The approvals inbox over the websocket: new gates appear, decided ones go, counts follow,
and a gate of a run the user may not see never reaches them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from runs.actions import decide_approval
from runs.models import Approval, Run
from tests.runs.factories import emit, make_report, make_run
from tests.runs.test_consumers import connected, receive_all

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
anyio = pytest.mark.anyio


async def receive_until(comm: WebsocketCommunicator, needle: str) -> str:
    """Messages until one holds ``needle`` and the socket then goes quiet (the broadcast comes
    after the commit, and on a loaded machine later than a short quiet window)."""
    out: list[str] = []
    while needle not in "".join(out):
        out.append(await comm.receive_from(timeout=30))
    return "".join(out + await receive_all(comm))


def _gate(run: Run) -> Approval:
    make_report(run)
    gate = Approval.objects.create(run=run, gate="report", target_id=1, target_label="report v1")
    emit(run, "approval.requested", gate="report")
    return gate


@anyio
async def test_gates_appear_and_go_live(reviewer: User, operator: User) -> None:
    run = await database_sync_to_async(make_run)(operator, status="awaiting_review")
    comm = await connected("/ws/approvals/?shown=", reviewer)
    assert "".join(await receive_all(comm)) == ""  # nothing changed since the render

    gate = await database_sync_to_async(_gate)(run)
    added = await receive_until(comm, 'id="inbox-list"')
    assert f'<li class="inbox-item panel" id="approval-{gate.pk}">' in added
    assert 'id="inbox-list" hx-swap-oob="beforeend"' in added
    assert "1 gate waiting" in added and 'id="approvals-count"' in added
    assert 'value="approved">Approve</button>' in added  # decidable in place

    def decide() -> None:
        decide_approval(Approval.objects.get(pk=gate.pk), reviewer, "approved")

    await database_sync_to_async(decide)()
    gone = await receive_until(comm, 'hx-swap-oob="delete"')
    assert f'<li id="approval-{gate.pk}" hx-swap-oob="delete"></li>' in gone
    assert "0 gates waiting" in gone and 'id="inbox-empty" hx-swap-oob="true" class' in gone
    # The decision joins the history below the list.
    assert '<section id="inbox-decided" class="panel inbox-decided" hx-swap-oob="true"' in gone
    assert f'<tr id="decided-{gate.pk}">' in gone and "Approved" in gone
    await comm.disconnect()


@anyio
async def test_gates_of_hidden_runs_never_reach_the_page(
    make_user: Callable[..., User], operator: User
) -> None:
    outsider = await database_sync_to_async(make_user)(None)
    comm = await connected("/ws/approvals/", outsider)
    run = await database_sync_to_async(make_run)(operator, status="awaiting_review")
    await database_sync_to_async(_gate)(run)
    assert "approval-" not in "".join(await receive_all(comm, quiet=1.5))
    await comm.disconnect()

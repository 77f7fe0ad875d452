"""Websocket consumers through the real ASGI app (auth middleware, origin check, routing) and the
real Redis channel layer: refusals, the snapshot first, seq order, batching, catch-up."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from harness_site.asgi import application
from runs.models import Run, Task
from tests.runs.factories import emit, make_run, make_task, make_tree

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]
anyio = pytest.mark.anyio

SEQ = re.compile(r'data-seq="(\d+)"')


def communicator(path: str, user: User | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_all(comm: WebsocketCommunicator, quiet: float = 0.8) -> list[str]:
    """Every message until the socket stays quiet for ``quiet`` seconds."""
    out: list[str] = []
    # receive_nothing, unlike a timed-out receive_from, leaves the application running.
    while not await comm.receive_nothing(timeout=quiet, interval=0.02):
        out.append(await comm.receive_from(timeout=5))
    return out


async def connected(path: str, user: User | None) -> WebsocketCommunicator:
    comm = await database_sync_to_async(communicator)(path, user)
    ok, code = await comm.connect(timeout=5)
    assert ok, code
    return comm


@pytest.fixture
def run_with_tree(operator: User) -> tuple[Run, list[Task]]:
    run = make_run(operator)
    tasks = make_tree(run, roots=2, children=2, grandchildren=1)
    emit(run, "task.started", tasks[-1])
    run.refresh_from_db()
    return run, tasks


@anyio
async def test_anonymous_is_refused(run_with_tree: tuple[Run, list[Task]]) -> None:
    run, _ = run_with_tree
    comm = communicator(f"/ws/runs/{run.pk}/", None)
    ok, code = await comm.connect(timeout=5)
    assert not ok and code == 4401
    comm = communicator("/ws/runs/", None)
    ok, code = await comm.connect(timeout=5)
    assert not ok and code == 4401


@anyio
async def test_user_who_may_not_see_the_run_is_refused(
    make_user: Callable[..., User], run_with_tree: tuple[Run, list[Task]]
) -> None:
    run, _ = run_with_tree
    outsider = await database_sync_to_async(make_user)(None)
    comm = await database_sync_to_async(communicator)(f"/ws/runs/{run.pk}/", outsider)
    ok, code = await comm.connect(timeout=5)
    assert not ok and code == 4403


@anyio
async def test_snapshot_comes_first_with_the_current_seq(
    viewer: User, run_with_tree: tuple[Run, list[Task]]
) -> None:
    run, _ = run_with_tree
    comm = await connected(f"/ws/runs/{run.pk}/?since={run.last_seq}", viewer)
    first = await comm.receive_from(timeout=5)
    for fragment in ("run-header", "run-counters", "run-budget", "run-costs", "run-findings"):
        assert f'id="{fragment}"' in first
    assert set(SEQ.findall(first)) == {str(run.last_seq)}
    assert 'id="children-root"' not in first  # never the whole tree
    await comm.disconnect()


@anyio
async def test_updates_swap_changed_nodes_by_id_in_seq_order(
    viewer: User, run_with_tree: tuple[Run, list[Task]]
) -> None:
    run, tasks = run_with_tree
    comm = await connected(f"/ws/runs/{run.pk}/?since={run.last_seq}", viewer)
    await comm.receive_from(timeout=5)
    leaf = tasks[-1]

    def finish() -> None:
        Task.objects.filter(pk=leaf.pk).update(status=Task.Status.SUCCEEDED, tokens_in=999)
        emit(run, "task.succeeded", leaf)

    await database_sync_to_async(finish)()
    messages = await receive_all(comm)
    joined = "".join(messages)
    assert f'id="task-{leaf.pk}"' in joined and "Succeeded" in joined
    assert f'id="task-{leaf.parent_id}"' in joined  # the parent's subtree counts moved
    assert 'id="event-2"' in joined
    assert 'id="children-root"' not in joined
    by_id = {t.pk: t for t in tasks}
    assert leaf.parent_id is not None
    chain = {leaf.pk, leaf.parent_id, by_id[leaf.parent_id].parent_id}
    untouched = [t for t in tasks if t.pk not in chain]
    assert not any(f'id="task-{t.pk}"' in joined for t in untouched)
    seqs = [int(s) for m in messages for s in SEQ.findall(m)]
    assert seqs == sorted(seqs) and max(seqs) == 2
    await comm.disconnect()


@anyio
async def test_a_burst_of_events_is_batched(
    viewer: User, run_with_tree: tuple[Run, list[Task]]
) -> None:
    run, tasks = run_with_tree
    comm = await connected(f"/ws/runs/{run.pk}/?since={run.last_seq}", viewer)
    await comm.receive_from(timeout=5)

    def burst() -> None:
        for i in range(120):
            emit(run, "tool.called", tasks[i % len(tasks)], step=i)

    started = time.monotonic()
    await database_sync_to_async(burst)()
    elapsed = time.monotonic() - started
    messages = await receive_all(comm)
    # At most one push per 250 ms (plus the one in flight when the burst started).
    assert 1 <= len(messages) <= elapsed / 0.25 + 2
    final = await database_sync_to_async(lambda: Run.objects.get(pk=run.pk).last_seq)()
    assert f'data-seq="{final}"' in messages[-1]
    await comm.disconnect()


@anyio
async def test_reconnect_catches_up_on_everything_missed(
    viewer: User, run_with_tree: tuple[Run, list[Task]]
) -> None:
    run, tasks = run_with_tree
    page_seq = run.last_seq

    def missed() -> Task:
        new = make_task(run, parent=tasks[0], scope_label="app/late.py")
        emit(run, "task.created", new)
        Task.objects.filter(pk=tasks[1].pk).update(status=Task.Status.FAILED, error="boom")
        emit(run, "task.failed", tasks[1], error="boom")
        return new

    new = await database_sync_to_async(missed)()
    comm = await connected(f"/ws/runs/{run.pk}/?since={page_seq}", viewer)
    panels = await comm.receive_from(timeout=5)
    assert 'id="run-header"' in panels and 'data-seq="3"' in panels
    snapshot = "".join(await receive_all(comm))  # the catch-up, without a hello
    append = f'<ul data-append="kids-{tasks[0].pk}" data-seq="3">'
    assert f'{append}<li class="node" id="node-{new.pk}"' in snapshot
    assert f'id="task-{tasks[1].pk}"' in snapshot and "boom" in snapshot
    assert 'id="event-3"' in snapshot and 'id="event-2"' in snapshot
    await comm.disconnect()


@anyio
async def test_runs_list_updates_changed_rows(viewer: User, operator: User) -> None:
    run = await database_sync_to_async(make_run)(operator, title="listed")
    comm = await connected("/ws/runs/", viewer)

    def change() -> None:
        Run.objects.filter(pk=run.pk).update(tasks_done=3, tasks_total=5)
        emit(run, "task.succeeded")

    await database_sync_to_async(change)()
    joined = "".join(await receive_all(comm, quiet=1.5))
    assert f'<tr id="run-{run.pk}"' in joined and "3/5" in joined
    await comm.disconnect()


@anyio
async def test_runs_list_hides_runs_the_user_may_not_see(
    make_user: Callable[..., User], operator: User
) -> None:
    run = await database_sync_to_async(make_run)(operator)
    outsider = await database_sync_to_async(make_user)(None)
    comm = await connected("/ws/runs/", outsider)
    await database_sync_to_async(emit)(run, "task.succeeded")
    assert await receive_all(comm, quiet=1.5) == []
    await comm.disconnect()


def test_no_fragment_is_pushed_for_unchanged_panels(operator: User) -> None:
    from django.utils import timezone

    from runs.pages.run.live import LiveState, render_update

    run = make_run(operator, status=Run.Status.APPROVED, finished_at=timezone.now())
    make_tree(run)
    Task.objects.filter(run=run).update(status=Task.Status.SUCCEEDED, finished_at=timezone.now())
    state = LiveState(since=run.last_seq)
    first = render_update(run.pk, operator, state, snapshot=True)
    assert 'id="run-header"' in first
    assert render_update(run.pk, operator, state, snapshot=False) == ""


@anyio
async def test_hello_limits_the_catch_up_to_what_the_page_missed(
    viewer: User, run_with_tree: tuple[Run, list[Task]]
) -> None:
    run, tasks = run_with_tree

    def two_changes() -> int:
        emit(run, "tool.called", tasks[0])
        seen = Run.objects.get(pk=run.pk).last_seq
        Task.objects.filter(pk=tasks[2].pk).update(status=Task.Status.FAILED, error="late")
        emit(run, "task.failed", tasks[2], error="late")
        return seen

    seen = await database_sync_to_async(two_changes)()
    # The page was rendered at seq 1 but a push already brought it to ``seen``.
    comm = await connected(f"/ws/runs/{run.pk}/?since=1", viewer)
    await comm.receive_from(timeout=5)
    await comm.send_to(text_data=f'{{"since": {seen}}}')
    catch_up = "".join(await receive_all(comm))
    assert f'id="task-{tasks[2].pk}"' in catch_up and f'id="event-{seen + 1}"' in catch_up
    assert f'id="event-{seen}"' not in catch_up
    assert f'<span id="live-seq" data-seq="{seen + 1}"' in catch_up
    await comm.disconnect()


@anyio
async def test_runs_list_sends_the_page_rows_first_and_inserts_new_runs(
    viewer: User, operator: User
) -> None:
    old = await database_sync_to_async(make_run)(operator, title="already-listed")
    comm = await connected("/ws/runs/", viewer)
    first = await comm.receive_from(timeout=5)
    assert f'<tr id="run-{old.pk}"' in first and "runs-tbody" not in first  # swapped, not inserted
    new = await database_sync_to_async(make_run)(operator, title="brand-new")
    await database_sync_to_async(emit)(new, "run.planning", playbook=new.playbook)
    joined = "".join(await receive_all(comm, quiet=1.5))
    assert '<tbody id="runs-tbody" hx-swap-oob="afterbegin">' in joined and "brand-new" in joined
    await comm.disconnect()


@anyio
async def test_a_collapsed_groups_counters_follow_its_agents(viewer: User, operator: User) -> None:
    from runs.pages.run.tree import dom_id
    from tests.runs.factories import make_audit

    def big() -> tuple[Run, list[Task]]:
        run = make_run(operator)
        tasks = make_audit(run, [f"pkg{i}/mod" for i in range(40)], files=25)
        run.refresh_from_db()
        return run, tasks

    run, tasks = await database_sync_to_async(big)()
    comm = await connected(f"/ws/runs/{run.pk}/?since={run.last_seq}", viewer)
    await comm.receive_from(timeout=5)
    deep = tasks[1_733]

    def finish() -> None:
        Task.objects.filter(pk=deep.pk).update(
            status=Task.Status.SUCCEEDED, cost_usd=Decimal("0.25")
        )
        emit(run, "task.succeeded", deep)

    await database_sync_to_async(finish)()
    # Rendering a 2,000-agent tree's fragment can take over a second on a loaded machine.
    joined = "".join(await receive_all(comm, quiet=3))
    live = joined[joined.index('<div id="tree-live"') :]
    group = f'id="row-{dom_id("g:" + deep.group)}"'
    assert group in live and 'id="row-root"' in live
    row = live[live.index(group) :].split('<span class="node-row', 1)[0]
    assert "1 done" in row and "$0.2500" in row
    assert f'id="task-{deep.pk}"' in live
    await comm.disconnect()


@anyio
async def test_runs_list_never_swaps_a_row_the_page_does_not_show(
    viewer: User, operator: User
) -> None:
    # A row swap for a run the page does not show has no target: htmx logs
    # oobErrorNoTarget. The page says which rows it shows (?shown=); a run launched after the
    # page was rendered is inserted on the first page, and never swapped on an older page.
    shown = await database_sync_to_async(make_run)(operator, title="on-the-page")
    later = await database_sync_to_async(make_run)(operator, title="launched-after-render")
    first_page = await connected(f"/ws/runs/?shown={shown.pk}", viewer)
    older_page = await connected(f"/ws/runs/?page=2&shown={shown.pk}", viewer)
    for run in (shown, later):
        await database_sync_to_async(emit)(run, "task.succeeded")
    on_first = "".join(await receive_all(first_page, quiet=1.5))
    on_older = "".join(await receive_all(older_page, quiet=1.5))
    assert f'<tr id="run-{shown.pk}"' in on_first
    # Inserted before it is swapped: the row has a target by then.
    inserted = on_first.index('<tbody id="runs-tbody" hx-swap-oob="afterbegin">')
    assert "launched-after-render" in on_first[inserted:]
    assert f'<tr id="run-{shown.pk}"' in on_older and f'id="run-{later.pk}"' not in on_older
    await first_page.disconnect()
    await older_page.disconnect()

"""Websocket consumers. Every connection is checked against the same access rules as the views.

Flow of one run page: ``connect`` checks the user, joins the run's group and sends the current
state first (every panel, plus the rows and events that changed since the seq the page was
rendered at, given as ``?since=``). Group messages (``run.events``) only mark the connection
dirty; one flusher per connection renders at most every ``MIN_INTERVAL`` seconds, or every
``RENDER_SHARE``-th of its time when renders are slow (a big run), so a burst of hundreds of
events becomes one small message and a busy page cannot eat the server. A slow poll repairs
messages the pub/sub layer lost (channels-redis delivers at most once), so the page always
converges on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import Http404
from django.template.loader import render_to_string

from runs.access import get_run_for_user
from runs.eventlog.broadcast import RUNS_LIST_GROUP
from runs.eventlog.messages import RunEventsMessage, RunsChangedMessage
from runs.models import Run
from runs.pages.approvals import inbox_update
from runs.pages.run.live import HEAVY_INTERVAL, LiveState, render_update
from runs.pages.runs_list import RUNS_PER_PAGE, filtered_runs

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are ours): the client must not retry these.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403

# Seconds between two pushes to one connection: short enough that an event shows within about
# a tenth of a second, and stretched so that rendering takes at most 1/RENDER_SHARE of the time.
MIN_INTERVAL = 0.1
RENDER_SHARE = 5
HELLO_WAIT = 0.5  # how long the tree/feed catch-up waits for the page to say what it has
RESYNC_EVERY = 5.0  # seconds between checks for updates the channel layer may have lost


def _query(scope: dict[str, Any]) -> dict[str, str]:
    raw = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
    return {k: v[-1] for k, v in raw.items()}


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


class _Batched(AsyncWebsocketConsumer):
    """Coalesces group messages: ``mark_dirty`` schedules at most one ``flush`` per interval."""

    _flusher: asyncio.Task[None] | None = None
    _poller: asyncio.Task[None] | None = None
    _last_push = 0.0
    _dirty = False
    interval = MIN_INTERVAL

    def mark_dirty(self) -> None:
        self._dirty = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def signed_in_user(self) -> Any:
        """The connection's user, or None once the connection is closed: every consumer refuses
        an anonymous user before anything else."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return None
        return user

    async def _flush_later(self) -> None:
        while self._dirty:
            wait = self._last_push + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty = False
            started = time.monotonic()
            try:
                await self.flush()
            except Exception:  # a render error must not kill the connection's updates
                logger.exception("live update failed")
            self._last_push = time.monotonic()
            took = self._last_push - started
            self.interval = max(type(self).interval, took * RENDER_SHARE)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY)
            if await self.needs_resync():
                self.mark_dirty()

    def start_polling(self) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def disconnect(self, code: int) -> None:
        for task in (self._flusher, self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def flush(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def needs_resync(self) -> bool:  # pragma: no cover - overridden
        return False


class RunConsumer(_Batched):
    """Live updates of one run page. Refuses anonymous users and users who may not see the run."""

    run: Run
    state: LiveState

    async def connect(self) -> None:
        user = await self.signed_in_user()
        if user is None:
            return
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        try:
            self.run = await database_sync_to_async(get_run_for_user)(user, run_id)
        except Http404:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.state = LiveState(
            since=_int(_query(self.scope).get("since")),
            # The browser already holds this secret in its cookie; Django accepts the unmasked
            # secret as a form token, so the cancel/retry/decide forms keep working after a swap.
            csrf_token=self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, ""),
        )
        self.caught_up = False
        self._hello = asyncio.Event()
        await self.channel_layer.group_add(self.run.channel_group, self.channel_name)
        await self.accept()
        # Current state first: every panel, before any update.
        await self.push(snapshot=True, deltas=False)
        self._last_push = time.monotonic()
        # Then the tree rows and events the page missed, once harness.js has said (hello) up to
        # which seq its tree and feed are complete; without a hello, since the page's render.
        self._catch_up_task = asyncio.create_task(self._catch_up())
        self.start_polling()

    async def _catch_up(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hello.wait(), HELLO_WAIT)
        self.caught_up = True
        self.mark_dirty()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """``{"since": N}``: the page's tree and feed are complete up to seq N (the ``#live-seq``
        marker of our last delta push). Honoured once, before the catch-up, and only upwards; a
        client claiming more than it has only starves its own page."""
        try:
            since = int(json.loads(text_data or "{}").get("since", 0))
        except (ValueError, TypeError, AttributeError):
            return
        if not self.caught_up:
            self.state.since = max(self.state.since, since)
        self._hello.set()

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        catch_up = getattr(self, "_catch_up_task", None)
        if catch_up is not None:
            catch_up.cancel()
        if hasattr(self, "run"):
            await self.channel_layer.group_discard(self.run.channel_group, self.channel_name)

    async def run_events(self, message: RunEventsMessage) -> None:
        # Before the catch-up, updates wait for it (it covers them): no push with a stale since.
        if self.caught_up and int(message.get("last_seq", 0)) > self.state.since:
            self.mark_dirty()

    async def flush(self) -> None:
        await self.push(snapshot=False)
        if self.state.heavy_pending:
            asyncio.get_running_loop().call_later(HEAVY_INTERVAL, self.mark_dirty)

    async def push(self, *, snapshot: bool, deltas: bool = True) -> None:
        html = await database_sync_to_async(render_update)(
            self.run.pk, self.scope["user"], self.state, snapshot=snapshot, deltas=deltas
        )
        if html:
            await self.send(text_data=html)

    async def needs_resync(self) -> bool:
        if not self.caught_up:
            return False
        seq = await database_sync_to_async(
            lambda: Run.objects.filter(pk=self.run.pk).values_list("last_seq", flat=True).first()
        )()
        return seq is not None and seq > self.state.since


class RunListConsumer(_Batched):
    """Live rows of the runs list: changed runs are re-rendered in place by id; on the first page
    a new run matching the page's filters is inserted at the top."""

    interval = 0.5

    async def connect(self) -> None:
        user = await self.signed_in_user()
        if user is None:
            return
        self.params = _query(self.scope)
        self.seen: dict[int, int] = {}
        self.changed: set[int] = set()
        self.on_page: set[int] = set()
        await self.channel_layer.group_add(RUNS_LIST_GROUP, self.channel_name)
        await self.accept()
        # Current state first: the rows of the page as they are now (after a reconnect the page
        # may be behind); they are on the page already, so they are swapped, never inserted.
        # The rows the page shows are the ones it lists in ?shown= (what it was rendered with);
        # recomputing them here would count a run launched since, and swap a row the page
        # lacks (htmx: oobErrorNoTarget). Without ?shown=, the page as it would render now.
        shown = self.params.get("shown")
        if shown is not None:
            self.on_page = {int(v) for v in shown.split(",") if v.isdigit()}
        else:
            self.on_page = set(await database_sync_to_async(self._page_ids)())
        self.changed |= self.on_page
        if self.changed:
            self.mark_dirty()

    def _page_ids(self) -> list[int]:
        runs, _, _ = filtered_runs(self.scope["user"], self.params)
        page = max(1, _int(self.params.get("page")))
        start = (page - 1) * RUNS_PER_PAGE
        return list(runs.values_list("pk", flat=True)[start : start + RUNS_PER_PAGE])

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        await self.channel_layer.group_discard(RUNS_LIST_GROUP, self.channel_name)

    async def runs_changed(self, message: RunsChangedMessage) -> None:
        self.changed.add(int(message["run_id"]))
        self.mark_dirty()

    async def flush(self) -> None:
        ids, self.changed = self.changed, set()
        for html in await database_sync_to_async(self._render)(ids):
            await self.send(text_data=html)

    def _render(self, ids: set[int]) -> list[str]:
        """The messages for these runs: one per new run (inserted at the top), then one with
        every changed row. Separate messages because an HTML parser given a ``<tr>`` after a
        ``</tbody>`` wraps it in a new, id-less ``<tbody>``, which htmx cannot place
        (oobErrorNoTarget #null)."""
        runs, _, _ = filtered_runs(self.scope["user"], self.params)
        first_page = _int(self.params.get("page")) <= 1
        messages, rows = [], []
        for run in runs.filter(pk__in=ids).order_by("id"):
            if self.seen.get(run.pk) == run.last_seq:
                continue
            self.seen[run.pk] = run.last_seq
            if run.pk not in self.on_page:
                if not first_page:
                    continue  # an older page shows a fixed set of rows: nothing to swap
                # A new run: inserted at the top (harness.js drops it if the row is there).
                messages.append(render_to_string("runs/list.html#run-insert", {"run": run}))
                self.on_page.add(run.pk)
            rows.append(render_to_string("runs/list.html#run-row", {"run": run, "oob": True}))
        return messages + (["".join(rows)] if rows else [])


class ApprovalsConsumer(_Batched):
    """Live approvals inbox: any run's events may open or close a gate; the page gets the gates
    that appeared and loses those decided, and the counts follow. ``?shown=`` lists the gates the
    page rendered, so nothing is missed between the render and the connection."""

    interval = 0.5

    async def connect(self) -> None:
        user = await self.signed_in_user()
        if user is None:
            return
        raw = _query(self.scope).get("shown", "")
        self.shown = {int(v) for v in raw.split(",") if v.isdigit()}
        self.csrf_token = self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, "")
        await self.channel_layer.group_add(RUNS_LIST_GROUP, self.channel_name)
        await self.accept()
        self.mark_dirty()  # anything that changed since the page was rendered
        self.start_polling()

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        await self.channel_layer.group_discard(RUNS_LIST_GROUP, self.channel_name)

    async def runs_changed(self, message: RunsChangedMessage) -> None:
        self.mark_dirty()

    async def needs_resync(self) -> bool:
        return True  # cheap (one query): repairs a lost pub/sub message within RESYNC_EVERY

    async def flush(self) -> None:
        html, self.shown = await database_sync_to_async(inbox_update)(
            self.scope["user"], self.shown, self.csrf_token
        )
        if html:
            await self.send(text_data=html)

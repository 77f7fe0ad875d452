"""Websocket consumers. Every connection is checked against the same access rules as the views."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404

from runs.access import get_run_for_user
from runs.models import Run


class RunConsumer(AsyncWebsocketConsumer):
    """Live updates of one run page. Refuses anonymous users and users who may not see the run."""

    run: Run

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        try:
            self.run = await database_sync_to_async(get_run_for_user)(user, run_id)
        except Http404:
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(self.run.channel_group, self.channel_name)
        await self.accept()
        await self.send_snapshot()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "run"):
            await self.channel_layer.group_discard(self.run.channel_group, self.channel_name)

    async def send_snapshot(self) -> None:
        html = await database_sync_to_async(self._render_status)()
        await self.send(text_data=html)

    def _render_status(self) -> str:
        from django.template.loader import render_to_string

        run = Run.objects.get(pk=self.run.pk)
        return render_to_string("runs/_status.html", {"run": run, "oob": True})

    async def run_events(self, message: dict[str, Any]) -> None:
        await self.send_snapshot()

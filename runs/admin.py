"""The admin shows the records; it never writes them. Every state change goes through
``runs.actions`` (one transaction, its events with it), so a status, a cost or a decision edited
here would be a history the event log does not tell; a row deleted here would be a hole in it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from agents.wording import count
from runs.actions.tokens import revoke_token
from runs.models import ApiToken, Approval, Event, Finding, Report, Run, Span, Step, Task


class RecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """View only: no add, no change (every field read-only), no delete."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(RecordAdmin):
    list_display = [
        "id",
        "playbook",
        "status",
        "target_label",
        "launched_by",
        "cost_usd",
        "tasks_total",
        "created_at",
    ]
    list_filter = ["status", "playbook"]
    search_fields = ["target_label", "title"]


@admin.register(Task)
class TaskAdmin(RecordAdmin):
    list_display = [
        "id",
        "run",
        "step",
        "lens",
        "scope_label",
        "status",
        "depth",
        "attempts",
        "cost_usd",
    ]
    list_filter = ["status", "step"]
    search_fields = ["key", "scope_label"]
    raw_id_fields = ["run", "parent", "depends_on"]


@admin.register(Step)
class StepAdmin(RecordAdmin):
    list_display = ["id", "task", "index", "kind", "name", "tokens_in", "tokens_out", "cost_usd"]
    raw_id_fields = ["task"]


@admin.register(Event)
class EventAdmin(RecordAdmin):
    list_display = ["run", "seq", "type", "task", "created_at"]
    list_filter = ["type"]
    raw_id_fields = ["run", "task"]


@admin.register(Span)
class SpanAdmin(RecordAdmin):
    list_display = ["name", "trace_id", "span_id", "run", "start", "end", "status"]
    raw_id_fields = ["run", "task"]


@admin.register(Finding)
class FindingAdmin(RecordAdmin):
    list_display = ["title", "severity", "confidence", "path", "line_start", "run", "review"]
    list_filter = ["severity", "lens", "review"]
    search_fields = ["title", "path"]
    raw_id_fields = ["run", "task"]


@admin.register(Report)
class ReportAdmin(RecordAdmin):
    list_display = ["run", "version", "created_at"]
    raw_id_fields = ["run"]


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    list_display = ["run", "gate", "target_label", "decision", "decided_by", "decided_at"]
    list_filter = ["gate", "decision"]
    raw_id_fields = ["run"]


@admin.register(ApiToken)
class ApiTokenAdmin(RecordAdmin):
    """Who holds which tokens; the digest stays out of sight. Tokens are made and revoked on the
    user's tokens page or with ``manage.py create_api_token``."""

    list_display = ["name", "user", "prefix", "scopes", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    exclude = ["digest"]
    raw_id_fields = ["user", "created_by"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(revoke_token(token) for token in queryset)
        self.message_user(request, f"{count(revoked, 'token')} revoked.")

from django.contrib import admin

from runs.models import Approval, Event, Finding, Report, Run, Span, Step, Task


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
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
    readonly_fields = ["last_seq", "trace_id", "snapshot_digest"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
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
class StepAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "index", "kind", "name", "tokens_in", "tokens_out", "cost_usd"]
    raw_id_fields = ["task"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["run", "seq", "type", "task", "created_at"]
    list_filter = ["type"]
    raw_id_fields = ["run", "task"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # the log is append-only


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    list_display = ["name", "trace_id", "span_id", "run", "start", "end", "status"]
    raw_id_fields = ["run", "task"]


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ["title", "severity", "confidence", "path", "line_start", "run", "review"]
    list_filter = ["severity", "lens", "review"]
    search_fields = ["title", "path"]
    raw_id_fields = ["run", "task"]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["run", "version", "created_at"]
    raw_id_fields = ["run"]


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["run", "gate", "target_label", "decision", "decided_by", "decided_at"]
    list_filter = ["gate", "decision"]
    raw_id_fields = ["run"]

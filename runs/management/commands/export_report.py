"""``manage.py export_report RUN [--version V] --format md|markdown|json|sarif``: one stored report
version on stdout (JSON with provenance, SARIF 2.1.0 for code findings). Agent links are
relative to the dashboard's root, since no request says where it is served."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.aggregation.exports import ALIASES, FORMATS, export
from runs.models import Run
from runs.pages.report import report_document


class Command(BaseCommand):
    help = "Print a run's report (latest version unless --version) as Markdown, JSON or SARIF."

    def add_base_argument(self, parser: CommandParser, *args: Any, **kwargs: Any) -> None:
        # ``--version`` names the report version here (the documented interface), not Django's.
        if "--version" not in args:
            super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", type=int, help="Run id")
        parser.add_argument("--version", dest="report_version", type=int, default=None)
        parser.add_argument("--format", dest="fmt", required=True, choices=[*FORMATS, *ALIASES])

    def handle(self, *args: Any, **options: Any) -> None:
        run = Run.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"No run #{options['run']}.")
        reports = run.reports.order_by("-version")
        if options["report_version"] is not None:
            reports = reports.filter(version=options["report_version"])
        report = reports.first()
        if report is None:
            which = (
                f"version {options['report_version']}" if options["report_version"] else "report"
            )
            raise CommandError(f"Run #{run.pk} has no {which}.")
        self.stdout.write(export(report_document(run, report), options["fmt"]))

"""``manage.py gc_snapshots [--dry-run] [--grace-seconds S]``: remove the snapshots (manifests and
blobs) that no run references, and staging folders a crashed freeze left, sparing anything used
within the grace; ``--dry-run`` lists what would go and removes nothing. The last line sums it up
(counts and bytes)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.actions.snapshots import gc_snapshots


class Command(BaseCommand):
    help = "Remove snapshots (manifests and blobs) that no run references."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be removed; remove nothing"
        )
        parser.add_argument(
            "--grace-seconds",
            type=float,
            default=None,
            help="spare whatever a freeze used within this many seconds (default "
            f"HARNESS_SNAPSHOT_GRACE_S, {settings.HARNESS_SNAPSHOT_GRACE_S:g}): a launch in "
            "progress has stored its snapshot but not yet created its run",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        grace = options["grace_seconds"]
        if grace is not None and not grace >= 0:
            raise CommandError("--grace-seconds must be 0 or more.")
        garbage = gc_snapshots(dry_run=options["dry_run"], grace_s=grace)
        if options["dry_run"] or options["verbosity"] > 1:
            for line in garbage.lines():
                self.stdout.write(line)
        self.stdout.write(f"gc_snapshots: {garbage.summary()}")

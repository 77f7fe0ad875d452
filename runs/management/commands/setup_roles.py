from django.core.management.base import BaseCommand

from runs.roles import ROLE_PERMISSIONS, ensure_roles


class Command(BaseCommand):
    help = "Create or update the viewer, operator and reviewer groups and their permissions."

    def handle(self, *args: object, **options: object) -> None:
        ensure_roles()
        self.stdout.write(f"Roles ready: {', '.join(ROLE_PERMISSIONS)}")

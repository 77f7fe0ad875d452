"""Create the first superuser once, so a fresh `make run` can be signed into.

The password comes from HARNESS_ADMIN_PASSWORD, or is generated and written to
<data dir>/admin-password.txt (mode 0600). The password itself is never printed: terminal
scrollback and CI logs outlive the session, a 0600 file in the data dir does not travel.
Running it again changes nothing, even if the password variable changed since: rotating a
password is a deliberate act (`manage.py changepassword`), not a side effect of a restart.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

PASSWORD_FILENAME = "admin-password.txt"  # noqa: S105 - a file name, not a password


def password_file() -> Path:
    return Path(settings.DATA_DIR) / PASSWORD_FILENAME


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # O_EXCL plus an explicit mode: the umask cannot widen it and a planted file is refused.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


class Command(BaseCommand):
    help = (
        "Create the admin superuser if no user by that name exists (HARNESS_ADMIN_USERNAME, "
        "default 'admin'). Password from HARNESS_ADMIN_PASSWORD, else generated into "
        f"<data dir>/{PASSWORD_FILENAME}."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("HARNESS_ADMIN_USERNAME", "").strip() or "admin"
        given = os.environ.get("HARNESS_ADMIN_PASSWORD", "")
        path = password_file()
        user_model = get_user_model()

        with transaction.atomic():
            if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).exists():
                where = f"password in {path}" if path.exists() else "password unchanged"
                self.stdout.write(f"Admin user {username!r} already exists ({where}).")
                return
            password = given or secrets.token_urlsafe(18)
            if given:
                # A stale generated file would now lie about the password.
                path.unlink(missing_ok=True)
            else:
                # Written before the user exists: if writing fails the transaction rolls back,
                # so there is never an admin whose password nobody can find.
                _write_private(path, password + "\n")
            user_model._default_manager.create_superuser(
                **{user_model.USERNAME_FIELD: username}, email="", password=password
            )

        if given:
            self.stdout.write(
                f"Created admin user {username!r} with the password from HARNESS_ADMIN_PASSWORD."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Created admin user {username!r}; its password is in {path}")
            )

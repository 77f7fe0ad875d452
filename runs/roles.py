"""Roles are Django groups holding model permissions; views and consumers check permissions."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

VIEWER = "viewer"
OPERATOR = "operator"
REVIEWER = "reviewer"

_VIEW = [
    "runs.view_run",
    "runs.view_task",
    "runs.view_event",
    "runs.view_finding",
    "runs.view_report",
    "runs.view_approval",
    "runs.view_span",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    VIEWER: _VIEW,
    OPERATOR: [*_VIEW, "runs.launch_run", "runs.cancel_run"],
    REVIEWER: [*_VIEW, "runs.decide_approval"],
}


def roles_granting(perm: str) -> list[str]:
    """The role groups whose members hold ``perm`` ("runs.launch_run"), in the roles' order:
    what a refusal tells the user to ask for."""
    return [role for role, perms in ROLE_PERMISSIONS.items() if perm in perms]


def ensure_roles() -> dict[str, Group]:
    """Create (or bring up to date) the three role groups. Idempotent."""
    groups = {}
    for role, perm_names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for dotted in perm_names:
            app_label, codename = dotted.split(".")
            perms.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(perms)
        groups[role] = group
    return groups

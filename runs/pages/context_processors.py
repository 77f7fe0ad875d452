"""Template context on every page: how many gates wait for the signed-in reviewer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from runs.models import Approval, Run


def approvals(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("runs.decide_approval"):
        return {"four_eyes": settings.HARNESS_FOUR_EYES}
    waiting = Approval.objects.filter(
        decision=Approval.Decision.PENDING, run__in=Run.objects.visible_to(user)
    ).count()
    return {"approvals_waiting": waiting, "four_eyes": settings.HARNESS_FOUR_EYES}

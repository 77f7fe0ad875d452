"""Cursor pagination: a page of rows after a key, and an opaque cursor for the next page.

A cursor names the last row a page gave (its key), so rows added meanwhile never shift a page
nor repeat one, as an offset would. Keys are ids (runs newest first, agents, findings,
approvals oldest first) or an event's ``seq`` (the event log, for followers).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from ninja import Schema

from runs.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

M = TypeVar("M", bound=Model)


class Page(Schema):
    """``items`` of one page; ``next_cursor`` gives the next (null: this was the last)."""

    items: list[Any]
    next_cursor: str | None


def encode(key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))["k"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        key = None
    if not isinstance(key, int) or isinstance(key, bool) or key < 0:
        raise Problem(
            400, "Invalid cursor: pass back a next_cursor as it was given.", code="bad-cursor"
        )
    return key


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, f"limit must be between 1 and {MAX_LIMIT}.", code="bad-limit")
    return limit


def keyset[M: Model](
    rows: QuerySet[M],
    cursor: str | None,
    limit: int,
    *,
    key: str = "id",
    descending: bool = False,
    item: Callable[[M], Any],
) -> dict[str, Any]:
    """One page of ``rows`` ordered by ``key`` after the cursor's key: a ``Page``'s data."""
    after = decode(cursor)
    limit = check_limit(limit)
    if after is not None:
        rows = rows.filter(**{f"{key}__{'lt' if descending else 'gt'}": after})
    found = list(rows.order_by(f"-{key}" if descending else key)[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    next_cursor = encode(getattr(found[-1], key)) if more and found else None
    return {"items": [item(row) for row in found], "next_cursor": next_cursor}

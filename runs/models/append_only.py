"""Records that are written once: the event log, stored calls, spans and gate decisions.

The audit trail is only worth something if nothing can rewrite it, so the model layer refuses
it, not only the admin: saving an existing row or deleting one raises ``RecordIsAppendOnly``,
and so do ``QuerySet.update()`` / ``.delete()``, except the one move each record documents
(a stored call's index moves out of a new try's way; a pending gate is decided once, or
withdrawn while still pending). Deleting a whole run (retention) still removes its records
through Django's cascade, which deletes in bulk without these methods.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


class RecordIsAppendOnly(Exception):
    """A write that would change or remove a record once it is written."""


class AppendOnlyQuerySet(models.QuerySet[M]):
    """``update`` may set only ``movable_fields``; ``delete`` is refused."""

    movable_fields: frozenset[str] = frozenset()

    def update(self, **kwargs: Any) -> int:
        fixed = sorted(set(kwargs) - self.movable_fields)
        if fixed:
            raise RecordIsAppendOnly(
                f"{self.model.__name__} rows are never changed once written ({', '.join(fixed)})."
            )
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        raise RecordIsAppendOnly(f"{self.model.__name__} rows are never deleted.")


class AppendOnly(models.Model):
    """Abstract base: a row is created once, never saved again nor deleted on its own."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise RecordIsAppendOnly(
                f"{type(self).__name__} #{self.pk} is part of the audit trail and cannot change."
            )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise RecordIsAppendOnly(f"{type(self).__name__} #{self.pk} cannot be deleted.")

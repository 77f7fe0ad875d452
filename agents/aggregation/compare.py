"""Two report versions of one run side by side: which items were added, dropped, merged or
re-ranked. Items are matched by the findings behind them (clusters keep their finding ids), not
by key or title, so a re-aggregation with another threshold still lines up with the old one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Change:
    kind: str  # "added" | "dropped" | "reranked" | "merged"
    title: str
    severity: str
    path: str
    line: int | None
    rank: int | None = None  # in the newer version
    was_rank: int | None = None  # in the older one
    merged: list[str] = field(default_factory=list)  # older items now one (for "merged")
    key: str = ""  # the item's cluster key (in the newer version; the older one's if dropped)
    finding_ids: list[int] = field(default_factory=list)
    # Why a dropped item is gone: the newer version's reason when its findings are there below
    # the cut ("below quorum ..."); empty when they are not in it at all.
    why: str = ""


@dataclass
class Side:
    """One kept item of one version, in rank order, marked with what became of it (older
    side: same, reranked, merged, dropped) or where it came from (newer side: same, reranked,
    merged, added): the two versions side by side."""

    rank: int | None
    title: str
    severity: str
    key: str
    mark: str


@dataclass
class Comparison:
    older: int
    newer: int
    changes: list[Change]
    unchanged: int = 0
    older_items: list[Side] = field(default_factory=list)
    newer_items: list[Side] = field(default_factory=list)

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    # Named lists for templates (which cannot pass arguments).
    @property
    def added(self) -> list[Change]:
        return self.of("added")

    @property
    def dropped(self) -> list[Change]:
        return self.of("dropped")

    @property
    def reranked(self) -> list[Change]:
        return self.of("reranked")

    @property
    def merged(self) -> list[Change]:
        return self.of("merged")


def _kept(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((c for c in clusters if c.get("kept")), key=lambda c: c.get("rank") or 0)


def _side(c: dict[str, Any], mark: str) -> Side:
    return Side(c.get("rank"), c["title"], c["severity"], c.get("key", ""), mark)


def compare(
    older: list[dict[str, Any]], newer: list[dict[str, Any]], versions: tuple[int, int]
) -> Comparison:
    """Changes from ``older``'s kept items to ``newer``'s (stored cluster dicts)."""
    old, new = _kept(older), _kept(newer)
    owner: dict[int, dict[str, Any]] = {}
    for c in old:
        for fid in c.get("finding_ids", []):
            owner[fid] = c
    new_owner = {f for c in new for f in c.get("finding_ids", [])}
    below_cut = {
        fid: c.get("dropped_reason") or "below the cut"
        for c in newer
        if not c.get("kept")
        for fid in c.get("finding_ids", [])
    }
    survivors = [o for o in old if any(f in new_owner for f in o.get("finding_ids", []))]
    old_place = {id(o): i for i, o in enumerate(survivors)}
    carried = [c for c in new if any(f in owner for f in c.get("finding_ids", []))]
    new_place = {id(c): i for i, c in enumerate(carried)}
    changes: list[Change] = []
    fate: dict[int, str] = {}  # id(older item) -> its mark on the older side
    newer_items: list[Side] = []
    unchanged = 0
    for c in new:
        before = {id(owner[f]): owner[f] for f in c.get("finding_ids", []) if f in owner}
        base = Change(
            "added",
            c["title"],
            c["severity"],
            c["path"],
            c.get("line_start"),
            c.get("rank"),
            key=c.get("key", ""),
            finding_ids=list(c.get("finding_ids", [])),
        )
        if not before:
            changes.append(base)
        elif len(before) > 1:
            base.kind = "merged"
            base.merged = [f"#{o.get('rank')} {o['title']}" for o in before.values()]
            changes.append(base)
        else:
            (was,) = before.values()
            # Re-ranked: its place among the items both versions have changed. An item that
            # only moved up because one above it was dropped (or down, for one added) is not.
            if old_place.get(id(was)) != new_place.get(id(c)):
                base.kind, base.was_rank = "reranked", was.get("rank")
                changes.append(base)
            else:
                base.kind = "same"
                unchanged += 1
        for key in before:
            fate[key] = base.kind
        newer_items.append(_side(c, base.kind))
    for o in old:
        if id(o) not in fate:
            fids = list(o.get("finding_ids", []))
            changes.append(
                Change(
                    "dropped",
                    o["title"],
                    o["severity"],
                    o["path"],
                    o.get("line_start"),
                    was_rank=o.get("rank"),
                    key=o.get("key", ""),
                    finding_ids=fids,
                    why=next((below_cut[f] for f in fids if f in below_cut), ""),
                )
            )
    older_items = [_side(o, fate.get(id(o), "dropped")) for o in old]
    return Comparison(versions[0], versions[1], changes, unchanged, older_items, newer_items)

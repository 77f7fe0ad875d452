"""Plain data model of the inventory demo. This file is clean: nothing should be reported."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Item:
    """One stock-keeping unit."""

    name: str
    qty: int = 0
    tags: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        payload = json.dumps({"name": self.name, "qty": self.qty}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def evaluate(self, rules: dict[str, int]) -> bool:
        # The word eval in a comment, and "eval(x)" in a string, are not code execution.
        note = "never call eval(x) here"
        return bool(note) and all(self.qty >= minimum for minimum in rules.values())


def load_items(path: Path) -> list[Item]:
    with path.open(encoding="utf-8") as fh:
        raw = json.load(fh)
    return [Item(name=r["name"], qty=int(r.get("qty", 0))) for r in raw]


def save_items(path: Path, items: list[Item], password_field: str = "secret") -> None:
    try:
        path.write_text(json.dumps([i.__dict__ for i in items]), encoding="utf-8")
    except OSError as exc:
        raise RuntimeError(f"cannot save {path}: {exc}") from exc

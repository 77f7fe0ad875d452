"""What an offline report says about its own reach: the third-party files its agents skipped."""

from __future__ import annotations

from typing import Any

from agents.wording import count


def vendored_note(files: list[dict[str, Any]]) -> str | None:
    """One line naming the third-party files the agents skipped and why, or None."""
    seen: dict[str, str] = {}
    for item in files:
        if isinstance(item, dict) and item.get("path"):
            seen.setdefault(str(item["path"]), str(item.get("reason") or "third-party"))
    if not seen:
        return None
    shown = "; ".join(
        f"{path.rsplit('/', 1)[-1]}: {reason}" for path, reason in sorted(seen.items())[:10]
    )
    more = "; …" if len(seen) > 10 else ""
    return f"{count(len(seen), 'file')} skipped as third-party code ({shown}{more})"

"""Counts in words: "1 finding", "2 findings", never "finding(s)". Plain Python, so the
analyzers and the report stages (which run without Django's settings in scripts) use it too;
templates use Django's ``pluralize`` filter instead."""

from __future__ import annotations


def noun(n: int, singular: str, plural: str = "") -> str:
    """``singular`` for one, ``plural`` (default: ``singular`` + "s") for any other count."""
    return singular if n == 1 else (plural or f"{singular}s")


def count(n: int, singular: str, plural: str = "") -> str:
    """``n`` and its noun: ``count(1, "agent")`` is "1 agent", ``count(0, "lens", "lenses")``
    "0 lenses"."""
    return f"{n} {noun(n, singular, plural)}"


def were(n: int) -> str:
    return "was" if n == 1 else "were"


def have(n: int) -> str:
    return "has" if n == 1 else "have"

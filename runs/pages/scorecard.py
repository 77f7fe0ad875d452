"""The scorecard page of an evaluation run's report version: per-dimension means with their
intervals, score distributions and A/B deltas as server-side SVG (no JS, nothing from a CDN),
the worst items and every item's scores. Labels come from the dataset (untrusted): every
chart is built with ``format_html``."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from agents.wording import count
from runs.models import Report

WIDTH = 560
LABEL_W = 160
ROW_H = 24


def scorecard_of(report: Report) -> dict[str, Any] | None:
    card = (report.params or {}).get("scorecard")
    return card if isinstance(card, dict) else None


def _x(score: float, low: int, high: int) -> float:
    return LABEL_W + (score - low) / (high - low) * (WIDTH - LABEL_W - 40)


def interval_chart(card: dict[str, Any]) -> SafeString:
    """One bar per dimension (per variant) to its mean, a whisker over its 95% interval."""
    low, high = card.get("scale", [1, 5])
    rows = [r for r in card.get("dimensions", []) if r.get("mean") is not None]
    if not rows:
        return SafeString("")
    parts = []
    for i, row in enumerate(rows):
        y = i * ROW_H + 4
        label = f"{row['name']} ({row['variant'].upper()})" if row.get("variant") else row["name"]
        mean, lo, hi = row["mean"], row["ci_low"], row["ci_high"]
        parts.append(
            format_html(
                '<g class="dim-row"><title>{label}: mean {mean}, 95% interval {lo}-'
                '{hi}, n={n}</title><text x="0" y="{ty}" class="chart-label">{label}</text>'
                '<rect x="{x0}" y="{y}" width="{w}" height="14" class="bar bar-{variant}"/>'
                '<line x1="{lx}" x2="{hx}" y1="{cy}" y2="{cy}" class="whisker"/>'
                '<text x="{vx}" y="{ty}" class="chart-value">{mean}</text></g>',
                label=label,
                mean=f"{mean:.2f}",
                lo=f"{lo:.2f}",
                hi=f"{hi:.2f}",
                n=row["n"],
                ty=y + 12,
                x0=LABEL_W,
                y=y,
                w=f"{_x(mean, low, high) - LABEL_W:.1f}",
                variant=row.get("variant") or "x",
                lx=f"{_x(lo, low, high):.1f}",
                hx=f"{_x(hi, low, high):.1f}",
                cy=y + 7,
                vx=WIDTH - 36,
            )
        )
    height = len(rows) * ROW_H + 8
    return format_html(
        '<svg class="chart scorecard-means" role="img" viewBox="0 0 {w} {h}" width="{w}" '
        'height="{h}" aria-label="Mean score per dimension with 95% intervals">{body}</svg>',
        w=WIDTH,
        h=height,
        body=mark_safe("".join(parts)),  # noqa: S308 - each part built by format_html
    )


def distribution_chart(row: dict[str, Any]) -> SafeString:
    """Items per rounded score, 1 to 5, as small columns."""
    counts = row.get("distribution") or {}
    top = max(counts.values(), default=0) or 1
    bars = format_html_join(
        "",
        '<g><title>score {}: {}</title><rect x="{}" y="{}" width="22" '
        'height="{}" class="bar"/><text x="{}" y="58" class="chart-label">{}</text></g>',
        (
            (
                s,
                count(n, "item"),
                i * 28,
                f"{44 - 40 * n / top:.1f}",
                f"{40 * n / top:.1f}",
                i * 28 + 7,
                s,
            )
            for i, (s, n) in enumerate(sorted(counts.items()))
        ),
    )
    return format_html(
        '<svg class="chart distribution" role="img" viewBox="0 0 140 62" width="140" height="62"'
        ' aria-label="Score distribution of {}">{}</svg>',
        row["name"],
        bars,
    )


def delta_chart(card: dict[str, Any]) -> SafeString:
    """A/B: the mean difference (B - A) per dimension, left of zero when A is better."""
    rows = card.get("comparison") or []
    if not rows:
        return SafeString("")
    span = max((abs(r["mean_delta"] or 0) for r in rows), default=0) or 1
    mid = LABEL_W + (WIDTH - LABEL_W - 40) / 2
    scale = (WIDTH - LABEL_W - 40) / 2 / span
    parts = []
    for i, row in enumerate(rows):
        delta = row["mean_delta"] or 0.0
        y = i * ROW_H + 4
        parts.append(
            format_html(
                "<g><title>{name}: B - A = {d}, B wins {wb}, A wins {wa}, ties {t}, "
                'p = {p}</title><text x="0" y="{ty}" class="chart-label">{name}</text>'
                '<rect x="{x}" y="{y}" width="{w}" height="14" class="bar {cls}"/>'
                '<text x="{vx}" y="{ty}" class="chart-value">{d}</text></g>',
                name=row["name"],
                d=f"{delta:+.2f}",
                wb=row["wins_b"],
                wa=row["wins_a"],
                t=row["ties"],
                p=row["p_value"],
                ty=y + 12,
                x=f"{min(mid, mid + delta * scale):.1f}",
                y=y,
                w=f"{abs(delta * scale):.1f}",
                cls="bar-b" if delta >= 0 else "bar-a",
                vx=WIDTH - 36,
            )
        )
    height = len(rows) * ROW_H + 8
    return format_html(
        '<svg class="chart ab-deltas" role="img" viewBox="0 0 {w} {h}" width="{w}" '
        'height="{h}" aria-label="Mean difference B minus A per dimension">'
        '<line x1="{m}" x2="{m}" y1="0" y2="{h}" class="axis"/>{body}</svg>',
        w=WIDTH,
        h=height,
        m=mid,
        body=mark_safe("".join(parts)),  # noqa: S308 - each part built by format_html
    )


def scorecard_context(card: dict[str, Any]) -> dict[str, Any]:
    dimensions = [
        {**row, "distribution_svg": distribution_chart(row)} for row in card["dimensions"]
    ]
    names = list(dict.fromkeys(row["name"] for row in card["dimensions"]))
    items = [
        {
            **item,
            "cells": [
                (name, item["scores"].get(name), item["rationale"].get(name, "")) for name in names
            ],
        }
        for item in card["items"]
    ]
    return {
        "card": card,
        "dimensions": dimensions,
        "names": names,
        "items": items,
        "means_svg": interval_chart(card),
        "deltas_svg": delta_chart(card),
    }

"""Server-side SVG charts: no JavaScript library, nothing from a CDN, readable without JS.

Every function returns markup built with ``format_html``/``escape`` so labels that come from
the target (file names, model names) can never inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from runs.dashboard import BudgetForecast, CostRow
from runs.timeline import Waterfall

BAR_H = 18
GAP = 6
LABEL_W = 220
VALUE_W = 90


def _num(value: float) -> str:
    return f"{value:.2f}"


def _short(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(rows: Sequence[CostRow], *, metric: str = "cost", width: int = 560) -> SafeString:
    """Horizontal bars of cost (USD) or tokens per row, largest first."""
    if not rows:
        return SafeString("")
    values = [float(r.cost) if metric == "cost" else float(r.tokens) for r in rows]
    top = max(values) or 1.0
    plot_w = width - LABEL_W - VALUE_W
    height = len(rows) * (BAR_H + GAP) + GAP
    parts: list[str] = []
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        y = GAP + i * (BAR_H + GAP)
        w = max(1.0, plot_w * value / top) if value else 0.0
        shown = f"${value:.4f}" if metric == "cost" else f"{int(value):,}"
        parts.append(
            format_html(
                "<g><title>{}: {}</title>"
                '<text x="{}" y="{}" class="c-label" text-anchor="end">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" rx="3" class="c-bar c-bar-{}"/>'
                '<text x="{}" y="{}" class="c-value">{}</text></g>',
                row.label,
                shown,
                LABEL_W - 8,
                _num(y + BAR_H * 0.72),
                _short(row.label),
                LABEL_W,
                y,
                _num(w),
                BAR_H,
                metric,
                _num(LABEL_W + w + 6),
                _num(y + BAR_H * 0.72),
                shown,
            )
        )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}">{}</svg>',
        width,
        height,
        f"{metric} per row",
        mark_safe("".join(parts)),  # noqa: S308 - parts are format_html output
    )


def gauge(b: BudgetForecast, width: int = 320) -> SafeString:
    """A horizontal budget bar: spend so far, the forecast as a lighter extension and a marker."""
    h = 22
    spent_w = width * b.percent / 100
    parts = [
        format_html('<rect x="0" y="0" width="{}" height="{}" rx="6" class="g-track"/>', width, h)
    ]
    forecast = b.forecast_percent
    if forecast is not None and forecast > b.percent:
        parts.append(
            format_html(
                '<rect x="0" y="0" width="{}" height="{}" rx="6" class="g-forecast{}"/>',
                _num(width * forecast / 100),
                h,
                " g-over" if b.over_budget_forecast else "",
            )
        )
    level = "ok" if b.percent < 75 else ("warn" if b.percent < 95 else "bad")
    parts.append(
        format_html(
            '<rect x="0" y="0" width="{}" height="{}" rx="6" class="g-spent g-{}"/>',
            _num(spent_w),
            h,
            level,
        )
    )
    if forecast is not None:
        x = width * forecast / 100
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="-3" y2="{}" class="g-marker"/>',
                _num(x),
                _num(x),
                h + 3,
            )
        )
    return format_html(
        '<svg class="gauge" viewBox="0 -4 {} {}" width="100%" role="img" '
        'aria-label="Budget used: {} percent">{}</svg>',
        width,
        h + 8,
        round(b.percent),
        mark_safe("".join(parts)),  # noqa: S308 - format_html output
    )


def waterfall_svg(w: Waterfall, width: int = 900) -> SafeString:
    """One lane per agent: queue wait, model time, tool time and other running time."""
    if not w.lanes:
        return SafeString("")
    lane_h, gap, label_w = 12, 4, 230
    plot_w = width - label_w - 10
    scale = plot_w / w.span
    height = len(w.lanes) * (lane_h + gap) + 24
    parts: list[str] = []
    # Axis ticks at five even points.
    for i in range(6):
        sec = w.span * i / 5
        x = label_w + sec * scale
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="0" y2="{}" class="w-grid"/>'
                '<text x="{}" y="{}" class="w-tick" text-anchor="middle">{}s</text>',
                _num(x),
                _num(x),
                height - 18,
                _num(x),
                height - 4,
                f"{sec:.2f}" if w.span < 2 else f"{sec:.1f}" if w.span < 20 else f"{sec:.0f}",
            )
        )
    for i, lane in enumerate(w.lanes):
        y = i * (lane_h + gap) + 2
        x = label_w + lane.start * scale
        segs = []
        for kind, seconds in (
            ("queue", lane.queue),
            ("model", lane.model),
            ("tool", lane.tool),
            ("other", lane.other),
        ):
            if seconds <= 0:
                continue
            seg_w = max(1.0, seconds * scale)
            segs.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" class="w-{}"/>',
                    _num(x),
                    y,
                    _num(seg_w),
                    lane_h,
                    kind,
                )
            )
            x += seconds * scale
        parts.append(
            format_html(
                '<g class="w-lane{}"><title>{} — queue {}s, model {}s, tools {}s</title>'
                '<text x="{}" y="{}" class="w-label" text-anchor="end">{}</text>{}</g>',
                " w-running" if lane.running else "",
                lane.label,
                f"{lane.queue:.2f}",
                f"{lane.model:.2f}",
                f"{lane.tool:.2f}",
                label_w - 6,
                y + lane_h - 2,
                _short(lane.label, 36),
                mark_safe("".join(segs)),  # noqa: S308
            )
        )
    return format_html(
        '<svg class="waterfall" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="Timeline of agents">{}</svg>',
        width,
        height,
        mark_safe("".join(parts)),  # noqa: S308 - format_html output
    )


def money(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    return escape(f"${float(value):,.4f}")

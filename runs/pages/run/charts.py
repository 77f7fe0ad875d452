"""Server-side SVG charts: no JavaScript library, nothing from a CDN, readable without JS.

Every function returns markup built with ``format_html``/``escape`` so labels that come from
the target (file names, model names) can never inject markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from runs.pages.run.dashboard import BudgetForecast, CostRow
from runs.pages.run.timeline import ConcurrencySeries, Waterfall

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
    rows = sorted(rows, key=lambda r: float(r.cost) if metric == "cost" else r.tokens, reverse=True)
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
    # The figures written on the bar: before any spend the bar is an empty track, which reads
    # as "no data" rather than "nothing spent yet of this budget".
    label = gauge_label(b)
    parts.append(
        format_html(
            '<text x="{}" y="{}" class="g-label" text-anchor="middle">{}</text>',
            width / 2,
            _num(h * 0.7),
            label,
        )
    )
    return format_html(
        '<svg class="gauge" viewBox="0 -4 {} {}" width="100%" role="img" '
        'aria-label="Budget used: {} percent ({})">{}</svg>',
        width,
        h + 8,
        round(b.percent),
        label,
        mark_safe("".join(parts)),  # noqa: S308 - format_html output
    )


def gauge_label(b: BudgetForecast) -> str:
    """What the gauge measures, in words: the ceiling it fills towards and the spend so far."""
    if b.limit:
        spent, of = f"${b.spent:.4f}", f"${b.limit:.2f}"
    else:
        spent, of = f"{b.tokens:,}", f"{b.token_limit or 0:,} tokens"
    if not b.percent and not (b.spent if b.limit else b.tokens):
        return f"nothing spent yet of {of}"
    return f"{spent} of {of} ({b.percent:.0f}%)"


def _ticks(span: float, left: float, scale: float, top: float, bottom: float) -> list[str]:
    """Grid lines and second labels at six even points of a time axis."""
    parts: list[str] = []
    for i in range(6):
        sec = span * i / 5
        x = left + sec * scale
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="w-grid"/>'
                '<text x="{}" y="{}" class="w-tick" text-anchor="middle">{}s</text>',
                _num(x),
                _num(x),
                _num(top),
                _num(bottom),
                _num(x),
                _num(bottom + 14),
                f"{sec:.2f}" if span < 2 else f"{sec:.1f}" if span < 20 else f"{sec:.0f}",
            )
        )
    return parts


WATERFALL_LABEL_W = 230


def waterfall_svg(w: Waterfall, width: int = 900) -> SafeString:
    """One lane per agent (or per group of agents): wait, model, tool and other running time."""
    if not w.lanes:
        return SafeString("")
    lane_h, gap, label_w = 12, 4, WATERFALL_LABEL_W
    plot_w = width - label_w - 10
    scale = plot_w / w.span
    height = len(w.lanes) * (lane_h + gap) + 24
    parts = _ticks(w.span, label_w, scale, 0, height - 18)
    for i, lane in enumerate(w.lanes):
        y = i * (lane_h + gap) + 2
        x = label_w + lane.start * scale
        segs = []
        for kind, seconds in (
            ("queue", lane.wait),
            ("model", lane.model),
            ("tool", lane.tool),
            ("other", lane.other),
        ):
            if seconds <= 0:
                continue
            segs.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" class="w-{}"/>',
                    _num(x),
                    y,
                    _num(max(1.0, seconds * scale)),
                    lane_h,
                    kind,
                )
            )
            x += seconds * scale
        state = " w-running" if lane.running else " w-waiting" if lane.waiting else ""
        parts.append(
            format_html(
                '<g class="w-lane{}{}"><title>{}</title>'
                '<text x="{}" y="{}" class="w-label" text-anchor="end">{}</text>{}</g>',
                state,
                " w-group" if lane.agents > 1 else "",
                lane.title,
                label_w - 6,
                y + lane_h - 2,
                _short(lane.label, 36),
                mark_safe("".join(segs)),  # noqa: S308
            )
        )
    return format_html(
        '<svg class="waterfall" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="Timeline of {} agents">{}</svg>',
        width,
        height,
        w.agents,
        mark_safe("".join(parts)),  # noqa: S308 - format_html output
    )


def _step_path(
    times: list[float], values: list[int], x: Callable[[float], float], y: Callable[[float], float]
) -> str:
    """An SVG path of a step function: hold each value until the next sample."""
    out = [f"M{_num(x(times[0]))},{_num(y(values[0]))}"]
    for t, v in zip(times[1:], values[1:], strict=True):
        out.append(f"H{_num(x(t))}V{_num(y(v))}")
    return "".join(out)


def _band_axis(
    values: tuple[int, ...], y: Callable[[float], float], left: float, right: float
) -> list[str]:
    parts: list[str] = []
    for value in values:
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="w-grid"/>'
                '<text x="{}" y="{}" class="w-tick" text-anchor="end">{}</text>',
                left,
                right,
                _num(y(value)),
                _num(y(value)),
                left - 6,
                _num(y(value) + 3),
                value,
            )
        )
    return parts


def concurrency_svg(c: ConcurrencySeries, span: float, width: int = 900) -> SafeString:
    """Two bands on one time axis (``span``: the waterfall's, so the charts line up): agents
    running and waiting to retry against the cap, and below, on its own scale, agents waiting
    to start (hundreds can wait under a cap of ten; one scale would flatten the running line)."""
    if not c.times:
        return SafeString("")
    label_w, top, run_h, gap, wait_h = WATERFALL_LABEL_W, 8, 110, 22, 50
    right = width - 10
    span = max(span, c.span)
    scale = (right - label_w) / span
    run_top = max(c.cap, c.peak_running, c.peak_retrying, 1)
    wait_top = max(c.peak_waiting, 1)
    wait_y0 = top + run_h + gap

    def x(sec: float) -> float:
        return label_w + sec * scale

    def y_run(value: float) -> float:
        return top + run_h * (1 - value / (run_top * 1.1))

    def y_wait(value: float) -> float:
        return wait_y0 + wait_h * (1 - value / wait_top)

    bottom = wait_y0 + wait_h
    parts = _ticks(span, label_w, scale, top, bottom)
    parts += _band_axis(
        (0, c.cap) if c.cap == run_top else (0, c.cap, run_top), y_run, label_w, right
    )
    parts += _band_axis((0, wait_top), y_wait, label_w, right)
    parts.append(
        format_html(
            '<text x="{}" y="{}" class="w-tick cc-band" text-anchor="end">running</text>'
            '<text x="{}" y="{}" class="w-tick cc-band" text-anchor="end">waiting to start</text>',
            label_w - 34,
            _num(top + run_h / 2),
            label_w - 34,
            _num(wait_y0 + wait_h / 2 + 3),
        )
    )
    parts.append(
        format_html(
            '<path d="{}V{}H{}Z" class="cc-waiting"/>',
            _step_path(c.times, c.waiting, x, y_wait),
            _num(y_wait(0)),
            _num(x(c.times[0])),
        )
    )
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="cc-cap"/>'
            '<text x="{}" y="{}" class="w-tick cc-cap-label" text-anchor="end">cap {}</text>',
            label_w,
            right,
            _num(y_run(c.cap)),
            _num(y_run(c.cap)),
            right - 2,
            _num(y_run(c.cap) - 4),
            c.cap,
        )
    )
    if c.peak_retrying:
        parts.append(
            format_html(
                '<path d="{}" class="cc-retrying"/>', _step_path(c.times, c.retrying, x, y_run)
            )
        )
    parts.append(
        format_html('<path d="{}" class="cc-running"/>', _step_path(c.times, c.running, x, y_run))
    )
    return format_html(
        '<svg class="concurrency" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="Agents running (peak {}) against the cap of {}, waiting to start (peak {}) '
        'and waiting to retry (peak {}), over time">{}</svg>',
        width,
        _num(bottom + 20),
        c.peak_running,
        c.cap,
        c.peak_waiting,
        c.peak_retrying,
        mark_safe("".join(parts)),  # noqa: S308 - format_html output
    )


def money(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    return escape(f"${float(value):,.4f}")

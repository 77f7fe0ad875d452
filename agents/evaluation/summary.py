"""The scorecard as the report's Markdown section (the report text is rendered escaped and
sanitized like any other: item ids come from the dataset, untrusted)."""

from __future__ import annotations

from typing import Any

from agents.wording import count


def _esc(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scorecard_markdown(card: dict[str, Any], *, is_llm: bool) -> str:
    who = "language-model judges" if is_llm else "offline checks (heuristic, not an LLM)"
    lines = [
        "## Scorecard",
        "",
        f"Scores 1-5 from {who}, {count(card.get('judges_per_cell', 1), 'judge')} per item and "
        "dimension; 95% bootstrap intervals; agreement is Krippendorff's alpha between judges.",
        "",
        "| dimension | variant | mean | 95% interval | n | agreement | lowest items |",
        "| --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for row in card.get("dimensions", []):
        label = f"{row['name']}/{row['variant']}" if row.get("variant") else row["name"]
        worst = ", ".join(_esc(i) for i in card.get("worst", {}).get(label, [])[:5])
        lines.append(
            f"| {_esc(row['name'])} | {_esc(row.get('variant') or '-')} | {_num(row['mean'])} | "
            f"{_num(row['ci_low'])}-{_num(row['ci_high'])} | {row['n']} | "
            f"{_num(row['agreement'])} | {worst} |"
        )
    comparison = card.get("comparison") or []
    if comparison:
        lines += [
            "",
            "### A/B comparison (B against A, items paired by id)",
            "",
            "| dimension | n | B wins | A wins | ties | win rate of B | mean delta | p (sign) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in comparison:
            lines.append(
                f"| {_esc(row['name'])} | {row['n']} | {row['wins_b']} | {row['wins_a']} | "
                f"{row['ties']} | {_num(row['win_rate_b'], 3)} | {_num(row['mean_delta'])} | "
                f"{_num(row['p_value'], 4)} |"
            )
    return "\n".join(lines) + "\n"

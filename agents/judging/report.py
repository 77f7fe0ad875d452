"""The judged ensemble's section of the report, in Markdown: the candidates, every judge's
vote and reason, the agreement and the winner. Judges' reasons are model text (or quote the
target), so they are written inert (``agents.aggregation.text``)."""

from __future__ import annotations

from typing import Any

from agents.aggregation.text import md_escape
from agents.wording import count


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def judging_markdown(result: dict[str, Any], *, judged_by: str) -> str:
    winner = result.get("winner")
    how = (
        "pairwise, each pair in both orders"
        if result.get("judging") == "pairwise"
        else "on a rubric"
    )
    chosen = f"voter {winner + 1}" if winner is not None else "none (no judge answered)"
    lines = [
        "## Judged ensemble",
        "",
        f"{count(len(result.get('candidates', [])), 'candidate')} judged "
        f"{how} by {md_escape(judged_by)}; winner by {result.get('method')}: **{chosen}**, "
        "whose findings are this report's.",
        "",
    ]
    if result.get("judging") == "pairwise":
        lines.append(
            f"Agreement: both orders of a pair agreed in {_num(result.get('order_agreement'))} "
            f"of the pairs; Krippendorff's alpha (nominal, the two orders as raters) "
            f"{_num(result.get('alpha')) if result.get('alpha') is not None else 'undefined'}"
            f"{'' if result.get('alpha') is not None else ' (too few outcomes differ)'}."
        )
    else:
        lines.append("Agreement: one judge per candidate, so there is none to measure.")
    lines += [
        "",
        "| candidate | model | findings | summary | standing |",
        "| --- | --- | ---: | --- | --- |",
    ]
    standing = {r["candidate"]: r for r in result.get("ranking", [])}
    for cand in result.get("candidates", []):
        rank = standing.get(cand["candidate"])
        if rank is None:
            where = "not judged"
        elif "copeland" in rank:
            where = f"Copeland {rank['copeland']:g}, {count(rank['votes_won'], 'vote')} won"
        else:
            where = f"mean score {rank['mean']:g}"
        lines.append(
            f"| voter {cand['candidate'] + 1} | {md_escape(str(cand.get('model') or '—'))} | "
            f"{cand['findings']} | "
            f"{md_escape(str(cand.get('summary', ''))[:300])} | {where} |"
        )
    lines += [
        "",
        "### Judges' votes",
        "",
        "| judge | shown | vote | reason |",
        "| --- | --- | --- | --- |",
    ]
    for vote in result.get("votes", []):
        lines.append(
            f"| {md_escape(vote['judge'])} | {md_escape(vote['shown'])} | "
            f"{md_escape(vote['vote'])} | {md_escape(str(vote.get('reason', ''))[:600])} |"
        )
    missing = result.get("unanswered", 0)
    if missing:
        lines += [
            "",
            f"{count(missing, 'judge')} gave no answer (failed or skipped) and count in nothing.",
        ]
    return "\n".join(lines) + "\n"

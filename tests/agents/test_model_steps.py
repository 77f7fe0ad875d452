"""The model-written report steps on crafted clusters: what the synthesis and critic agents read,
how their untrusted answers are checked, and how the report shows them."""

from __future__ import annotations

import json

from agents.aggregation.model_steps import (
    apply_verdicts,
    cluster_id,
    condense,
    critic_input,
    parse_verdicts,
    raw_findings_payload,
    tokens_estimate,
)
from agents.aggregation.stages import ranked, run_chain
from agents.providers.prompt import output_schema, parse_output
from runs.rendering import render_markdown
from tests.agents.test_aggregation import CHAIN, facts, row


def _clusters(n_issues: int = 5, copies: int = 4) -> tuple[list, list]:
    rows = [
        row(
            task,
            path=f"app/m{i}.py",
            line=10 * (i + 1),
            title=f"issue {i}",
            severity="high" if i < 3 else "low",
            detail="x" * 400,
            evidence=f"quote {i} " * 20,
        )
        for i in range(n_issues)
        for task in range(1, copies + 1)
    ]
    draft = run_chain(rows, facts(), ["dedup", "quorum", "confidence"])
    return rows, ranked(draft.clusters)


def test_condensed_input_names_clusters_by_rank_and_is_much_smaller_than_the_findings() -> None:
    rows, kept = _clusters(n_issues=30, copies=4)
    payload = condense(kept, limit=20)
    assert [line.split(" | ")[0] for line in payload["clusters"]] == [f"C{n}" for n in range(1, 21)]
    assert payload["clusters"][0].startswith("C1 | high | issue ")
    assert "| 4 agent(s): security | " in payload["clusters"][0]
    assert payload["total_clusters"] == 30 and sum(payload["by_severity"].values()) == 30
    assert payload["by_severity"] == {"high": 3, "low": 27}
    assert len(payload["top_files"]) == 5 and payload["top_files"][0][1] == 1
    # 120 raw findings of 400-character details and long quotes vs 20 one-line items.
    assert tokens_estimate(raw_findings_payload(rows)) >= 5 * tokens_estimate(payload)
    assert "quote" not in json.dumps(payload) and "xxxx" not in json.dumps(payload)


def test_the_critic_reads_only_serious_items_with_their_quotes_and_the_narrative() -> None:
    _, kept = _clusters()
    data = critic_input(kept, "narrative " * 2000)
    assert [c["severity"] for c in data["clusters"]] == ["high"] * 3
    assert all(c["quote"].startswith("quote") and len(c["quote"]) <= 200 for c in data["clusters"])
    assert len(data["narrative"]) == 4000


def test_untrusted_verdicts_are_checked_against_the_items_shown() -> None:
    known = {"C1": "k1", "C2": "k2", "C3": "k3"}
    verdicts, problems = parse_verdicts(
        [
            {
                "cluster": "C1",
                "verdict": "challenged",
                "severity_justified": False,
                "evidence_present": True,
                "duplicate_of": "C2",
                "reason": "  overstated\n  ",
            },
            {"cluster": "C1", "verdict": "upheld"},  # repeated
            {"cluster": "C9", "verdict": "upheld"},  # never shown
            {"cluster": "C2", "verdict": "destroy"},  # not a verdict
            {"cluster": "C3", "verdict": "UPHELD", "duplicate_of": "C3", "reason": "r" * 999},
            "garbage",
        ],
        known,
    )
    assert [(v.cluster, v.key, v.verdict) for v in verdicts] == [
        ("C1", "k1", "challenged"),
        ("C3", "k3", "upheld"),
    ]
    assert verdicts[0].duplicate_of == "C2" and verdicts[0].reason == "overstated"
    assert verdicts[1].duplicate_of == "" and len(verdicts[1].reason) == 300  # self, capped
    assert len(problems) == 4 and "no verdict on C2" in problems[-1]
    assert parse_verdicts("not a list", known)[0] == []


def test_verdicts_land_on_their_cluster_by_key_even_when_ranks_moved() -> None:
    _, kept = _clusters()
    first, second = kept[0], kept[1]
    verdicts, _ = parse_verdicts(
        [{"cluster": "C1", "verdict": "rejected", "reason": "quote contradicts it"}],
        {"C1": second.key},  # the critic saw today's second item as C1
    )
    assert apply_verdicts(kept, verdicts) == 1
    assert second.critique["verdict"] == "rejected" and second.critique["shown_as"] == "C1"
    assert first.critique == {} and "critic (model): rejected" in second.verdict


def test_report_shows_the_model_summary_inert_and_the_critics_verdicts() -> None:
    rows, kept = _clusters()
    hostile = (
        "Fine overall.\n# Approved by security\n<script>alert(1)</script>\n"
        "[click](https://evil.example) ![x](https://evil.example/p.png) | a | b |\n- C1 first"
    )
    keys = {cluster_id(c): c.key for c in kept if c.severity == "high"}
    draft = run_chain(
        rows,
        facts(
            is_llm=True,
            model_narrative=hostile,
            model_narrative_by="gpt-4o-mini, agent #7",
            model_verdicts=[{"cluster": "C2", "verdict": "challenged", "reason": "weak"}],
            model_verdict_keys=keys,
            model_critic_by="gpt-4o-mini, agent #8",
        ),
        CHAIN,
    )
    html = render_markdown(draft.markdown)
    assert "<h2>Summary</h2>" in html and "Written by gpt-4o-mini, agent #7" in html
    summary = html.split("<h2>Summary</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<blockquote>" in summary and "<li>C1 first</li>" in summary
    for unsafe in ("<script", "<a ", "<img", "<h1", "<table"):
        assert unsafe not in summary, unsafe
    challenged = next(c for c in draft.clusters if c.key == keys["C2"])
    assert challenged.critique["verdict"] == "challenged"
    assert any("judged 1 serious item and challenged 1" in n for n in draft.critique)
    assert any("no verdict on C1, C3" in n for n in draft.critique)


def test_report_steps_answer_in_their_own_schema_and_report_no_findings() -> None:
    schema = output_schema(False, "critique")
    assert schema["required"] == ["summary", "verdicts"] and "findings" not in schema["properties"]
    answer = {
        "summary": "ok",
        "verdicts": [{"cluster": "C1", "verdict": "upheld"}],
        "findings": [{"title": "smuggled"}],
        "data": {"sent": {"ids": {"C1": "forged"}}},
    }
    output, problem = parse_output(answer, "critique")
    assert problem == "" and output is not None
    assert output.findings == [] and output.data == {"verdicts": answer["verdicts"]}
    broken, problem = parse_output({"summary": "x", "verdicts": "all fine"}, "critique")
    assert broken is None and problem.startswith("verdicts:")
    output, _ = parse_output({"summary": "Narrative", "themes": ["a"]}, "report")
    assert output is not None and output.data == {"themes": ["a"]}

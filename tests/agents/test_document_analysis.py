"""Tests of the offline heuristic document analyzer (``agents.docs_analysis``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.docs_analysis import (
    DOC_LENSES,
    DocumentSummary,
    RawFinding,
    analyze_document,
    summarize_document,
    synthesize,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "samples" / "corpus"
EXPECTED = json.loads((CORPUS.parent / "corpus.expected.json").read_text())


def rules(text: str, lens: str) -> dict[str, list[int]]:
    """Rule -> sorted start lines of its findings."""
    out: dict[str, list[int]] = {}
    for f in analyze_document("doc.md", text, lens):
        out.setdefault(f.rule, []).append(f.line_start)
    return out


def corpus_summaries() -> list[DocumentSummary]:
    return [summarize_document(p.name, p.read_text()) for p in sorted(CORPUS.glob("*.md"))]


# --- lenses: positive and negative cases -------------------------------------------------------


def test_lens_set() -> None:
    assert list(DOC_LENSES) == [
        "editor", "skeptic", "legal", "security", "accessibility", "clarity",
    ]  # fmt: skip


def test_editor_positive() -> None:
    long = "alpha beta gamma delta " * 10
    text = f"# T\n\nThe the cat sat.\n\n{long.strip()} end.\n\nThe key was rotated by ops.\n"
    found = rules(text, "editor")
    assert found["editor.repeated-word"] == [3]
    assert found["editor.long-sentence"] == [5]
    assert found["editor.passive-voice"] == [7]


def test_editor_negative_and_jargon() -> None:
    assert rules("# T\n\nThe team rotated the key. It took ten minutes.\n", "editor") == {}
    jargon = "We leverage a holistic and seamless ecosystem to streamline delivery.\n"
    assert rules(jargon, "editor")["editor.jargon"] == [1]


def test_editor_long_paragraph_spans_lines() -> None:
    para = "\n".join("Short line of words here." for _ in range(40))
    finding = next(
        f for f in analyze_document("d.md", "Intro.\n\n" + para, "editor")
        if f.rule == "editor.long-paragraph"
    )  # fmt: skip
    assert (finding.line_start, finding.line_end) == (3, 42)


def test_skeptic() -> None:
    text = "Our cache is 40% faster.\n\nIt is the best cache.\n\nNever share keys.\n"
    found = rules(text, "skeptic")
    assert found == {
        "skeptic.unsourced-number": [1],
        "skeptic.unsupported-superlative": [3],
    }
    cited = "Our cache is 40% faster ([benchmark](https://example.com/b)).\n"
    assert rules(cited, "skeptic") == {}


def test_legal() -> None:
    text = (
        "# Terms\n\nWe guarantee unlimited storage.\n\nWe store your email address.\n\n"
        "We are not liable for damages.\n\nOrders follow the Refund Schedule here.\n"
    )
    found = rules(text, "legal")
    assert found["legal.absolute-promise"] == [3]
    assert found["legal.personal-data"] == [5]
    assert found["legal.liability-language"] == [7]
    assert found["legal.undefined-term"] == [9]


def test_legal_negative() -> None:
    text = (
        "# Privacy\n\nWith your consent we store your email address for 30 days.\n\n"
        '"Refund Schedule" means the table below.\n\nOrders follow the Refund Schedule.\n'
    )
    assert rules(text, "legal") == {}


def test_security_positive_and_redacted() -> None:
    text = (
        "Connect to postgres://admin:S3cretPw@db.example.com/x now.\n"
        "The host is 10.1.2.3 and build01.corp runs CI.\n"
        "api_key = abcd1234efgh\n"
    )
    findings = analyze_document("d.md", text, "security")
    by_rule = {f.rule: f for f in findings}
    assert set(by_rule) == {
        "security.credential-url", "security.internal-address",
        "security.internal-host", "security.secret",
    }  # fmt: skip
    assert by_rule["security.credential-url"].severity == "critical"
    # The report must not re-leak the secret it found.
    assert all("S3cretPw" not in f.evidence and "abcd1234efgh" not in f.evidence for f in findings)


def test_security_negative() -> None:
    text = "The password is required. Use https://example.com and 8.8.8.8.\npassword: <your-pw>\n"
    assert rules(text, "security") == {}


def test_accessibility() -> None:
    text = "# A\n\n### C\n\n![](x.png)\n\n[click here](https://x)\n"
    assert rules(text, "accessibility") == {
        "accessibility.heading-skip": [3],
        "accessibility.image-alt": [5],
        "accessibility.link-text": [7],
    }
    good = "# A\n\n## B\n\n![A chart of latency](x.png)\n\n[the runbook](https://x)\n"
    assert rules(good, "accessibility") == {}


def test_clarity_acronyms() -> None:
    text = "The RTO is short.\n\nRecovery Time Objective (RTO) matters.\n\nThe RTO holds.\n"
    findings = analyze_document("d.md", text, "clarity")
    assert [(f.rule, f.line_start) for f in findings] == [("clarity.undefined-acronym", 1)]
    assert "line 3" in findings[0].detail
    defined = "Recovery Time Objective (RTO) matters.\n\nThe RTO is short.\n"
    assert rules(defined, "clarity") == {}


def test_clarity_readability() -> None:
    hard = (
        "Organizational prioritization of comprehensive infrastructural recoverability "
        "considerations necessitates institutionalization of systematic verification "
        "methodologies regarding administrative authentication credentials, cryptographic "
        "configuration documentation and infrastructural interdependency characterization.\n"
    )
    easy = "We fix bugs fast. We test each change. We ship on Monday and we rest on Friday. " * 3
    assert rules(hard, "clarity") == {"clarity.low-readability": [1]}
    assert rules(easy, "clarity") == {}


def test_code_blocks_are_not_prose() -> None:
    text = "Intro.\n\n```\nthe the value is 50% best\n```\n"
    assert rules(text, "editor") == {}
    assert rules(text, "skeptic") == {}


def test_unknown_lens() -> None:
    with pytest.raises(ValueError, match="unknown document lens 'poet'"):
        analyze_document("d.md", "text", "poet")


def test_finding_contract() -> None:
    text = (ROOT / "samples" / "policy.md").read_text()
    n_lines = text.count("\n") + 1
    for lens in DOC_LENSES:
        findings = analyze_document("policy.md", text, lens)
        assert findings, f"policy.md has planted issues for {lens}"
        for f in findings:
            assert isinstance(f, RawFinding)
            assert f.lens == lens and f.rule.startswith(lens + ".")
            assert 1 <= f.line_start <= f.line_end <= n_lines
            assert 0 < f.confidence <= 1 and len(f.evidence) <= 300 and f.detail
            assert json.loads(json.dumps(f.to_dict()))["rule"] == f.rule


# --- summaries ----------------------------------------------------------------------------------


def test_summary_keywords_and_key_sentences() -> None:
    text = (
        "# Backups\n\nBackups run nightly. The backup job copies snapshots.\n\n"
        "Lunch was nice today.\n\nA backup snapshot is checked after each backup run.\n\n"
        "Each snapshot backup is kept for a while.\n"
    )
    s = summarize_document("b.md", text)
    assert s.title == "Backups"
    assert s.keywords[0] == ("backup", 6)  # the heading counts too
    assert s.keywords[1:3] == [("snapshot", 3), ("run", 2)]
    # Equal counts break ties alphabetically.
    ones = [t for t, c in s.keywords if c == 1]
    assert ones == sorted(ones)
    lines = [k.line for k in s.key_sentences]
    assert lines == sorted(lines) and 5 not in lines and 7 in lines
    assert s.sentence_count == 5 and s.word_count > 10
    assert DocumentSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_summary_title_falls_back_to_first_line() -> None:
    assert summarize_document("x.txt", "\n\nPlain title line\nMore text.").title == (
        "Plain title line"
    )


# --- synthesis ----------------------------------------------------------------------------------


def test_synthesis_themes_across_corpus() -> None:
    synthesis = synthesize(corpus_summaries())
    themes = {t.term: t.documents for t in synthesis.themes}
    for term, docs in EXPECTED["themes"].items():
        assert themes[term] == docs
    assert synthesis.outliers == EXPECTED["outliers"]
    frequencies = [t.document_frequency for t in synthesis.themes]
    assert frequencies == sorted(frequencies, reverse=True)
    assert len(synthesis.digests) == 6
    md = synthesis.to_markdown()
    assert "offline heuristic analyzer" in md and "not by a language model" in md
    assert "**failover**" in md
    json.dumps(synthesis.to_dict())


def test_synthesis_empty_and_single() -> None:
    assert synthesize([]).to_markdown().startswith("# Corpus synthesis")
    single = synthesize([summarize_document("a.md", "# A\n\nBackups matter.")])
    assert single.themes == [] and single.outliers == []


# --- determinism and bad input ------------------------------------------------------------------


def test_deterministic_and_order_independent() -> None:
    text = (ROOT / "samples" / "policy.md").read_text()
    for lens in DOC_LENSES:
        assert analyze_document("p.md", text, lens) == analyze_document("p.md", text, lens)
    summaries = corpus_summaries()
    assert synthesize(summaries).to_dict() == synthesize(list(reversed(summaries))).to_dict()


@pytest.mark.parametrize(
    "text",
    ["", "   \n\n", "\x00\x01\x02binary\xff" * 100, "```\nunterminated fence", "!" * 10_000],
)
def test_bad_input_never_raises(text: str) -> None:
    for lens in DOC_LENSES:
        assert isinstance(analyze_document("x", text, lens), list)
    summary = summarize_document("x", text)
    assert summary.word_count >= 0


def test_binary_yields_nothing() -> None:
    blob = "\x00\x01\x02 the the password: hunter22 " * 50
    assert all(analyze_document("x.bin", blob, lens) == [] for lens in DOC_LENSES)
    assert summarize_document("x.bin", blob).word_count == 0


def test_huge_text_is_capped() -> None:
    huge = "The the cache is 40% faster. " * 200_000  # ~5.8 MB
    findings = analyze_document("big.md", huge, "editor")
    assert 0 < len(findings) <= 200  # capped per rule, not one per sentence
    assert summarize_document("big.md", huge).word_count < 500_000


# --- planted issues -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "planted", EXPECTED["planted"], ids=lambda p: f"{p['path']}:{p['line']}:{p['rule']}"
)
def test_expected_recall(planted: dict[str, object]) -> None:
    path = str(planted["path"])
    lens = str(planted["rule"]).split(".")[0]
    findings = analyze_document(path, (CORPUS / path).read_text(), lens)
    assert any(
        f.rule == planted["rule"] and f.line_start <= int(str(planted["line"])) <= f.line_end
        for f in findings
    ), f"missed planted {planted}"


def test_policy_has_every_rule_family() -> None:
    text = (ROOT / "samples" / "policy.md").read_text()
    found = {f.rule for lens in DOC_LENSES for f in analyze_document("policy.md", text, lens)}
    assert {
        "editor.long-sentence", "editor.repeated-word", "editor.jargon",
        "skeptic.unsourced-number", "skeptic.unsupported-superlative",
        "legal.absolute-promise", "legal.personal-data", "legal.liability-language",
        "legal.undefined-term", "security.secret", "security.credential-url",
        "security.internal-address", "accessibility.heading-skip", "accessibility.image-alt",
        "accessibility.link-text", "clarity.undefined-acronym", "clarity.low-readability",
    } <= found  # fmt: skip

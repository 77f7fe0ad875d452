"""Semantic dedup, support-based votes, quorum, top-K and the evidence check, on crafted findings
whose right answer is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import override_settings

from agents.aggregation.clustering import DedupSettings
from agents.aggregation.evidence import check_location
from agents.aggregation.similarity import (
    OpenAIEmbedder,
    TfidfEmbedder,
    embed_or_fallback,
    embedder_for,
)
from agents.aggregation.stages import dedup, quorum, run_chain
from agents.providers.catalog import get_provider
from agents.providers.registry import ProviderConfig
from agents.snapshot import SnapshotError
from tests.agents.test_aggregation import CHAIN, facts, row
from tests.fakes.openai_server import FakeOpenAIServer

VALIDATION = "missing input validation on user_id"
SANITIZATION = "no sanitization of the user_id field"


class FakeSnapshot:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise SnapshotError(f"No file {path!r} in the snapshot.")
        return self.files[path]


APP = FakeSnapshot(
    {
        "app/views.py": "\n".join(
            [
                "import db",
                "",
                "def profile(request):",
                "    user_id = request.GET['user_id']",
                "    SECRET_KEY = 'sk-live-1234567890'",
                "    return db.query(f'SELECT * FROM users WHERE id = {user_id}')",
            ]
        )
    }
)


def titles(clusters: list[Any]) -> list[list[str]]:
    return sorted(sorted(m["title"] for m in c.members) for c in clusters)


# --- dedup ------------------------------------------------------------------------------------


def test_differently_worded_findings_at_the_same_place_share_a_cluster() -> None:
    rows = [
        row(1, rule="", title=VALIDATION, line=4, lens="security", detail=""),
        row(2, rule="", title=SANITIZATION, line=5, lens="correctness", detail=""),
        row(3, rule="", title="Hard-coded secret key", line=5, detail=""),
    ]
    clusters = dedup(rows)
    assert titles(clusters) == [["Hard-coded secret key"], [VALIDATION, SANITIZATION]]
    merged = next(c for c in clusters if len(c.members) == 2)
    assert merged.lenses == ["correctness", "security"]
    assert merged.task_ids == [1, 2]


def test_the_same_wording_in_another_file_is_another_issue() -> None:
    rows = [row(1, rule="", title=VALIDATION), row(2, rule="", title=VALIDATION, path="b.py")]
    assert len(dedup(rows)) == 2


def test_threshold_is_tunable() -> None:
    rows = [
        row(1, rule="", title=VALIDATION, detail=""),
        row(2, rule="", title=SANITIZATION, detail=""),
    ]
    assert len(dedup(rows, settings=DedupSettings(threshold=0.15))) == 1
    assert len(dedup(rows, settings=DedupSettings(threshold=0.9))) == 2


def test_line_window_is_tunable() -> None:
    rows = [row(1, line=10), row(2, line=11)]
    assert len(dedup(rows)) == 1
    assert len(dedup(rows, settings=DedupSettings(line_window=0))) == 2


def test_one_agent_listing_two_places_keeps_two_clusters() -> None:
    assert len(dedup([row(1, line=10), row(1, line=11)])) == 2


def test_dedup_is_deterministic_whatever_the_order() -> None:
    rows = [
        row(t, rule="", title=title, line=line, detail="")
        for t, (title, line) in enumerate(
            [(VALIDATION, 4), (SANITIZATION, 5), ("SQL built from a string", 5), (VALIDATION, 40)],
            start=1,
        )
    ]
    forward = [c.to_dict() for c in dedup(rows)]
    backward = [c.to_dict() for c in dedup(list(reversed(rows)))]
    assert forward == backward


def test_tfidf_embedder_returns_unit_rows() -> None:
    vectors: Any = TfidfEmbedder().embed([VALIDATION, SANITIZATION, ""])
    vectors = vectors.toarray()
    assert vectors.shape[0] == 3
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0)


def _fake_config(server: FakeOpenAIServer) -> ProviderConfig:
    return ProviderConfig(
        name="fake",
        kind="openai",
        base_url=server.base_url,
        api_key_env="FAKE_EMBED_KEY",
        default_model="chat",
        embedding_model="fake-embed",
    )


def test_openai_embedder_uses_the_embeddings_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EMBED_KEY", "sk-test")
    with FakeOpenAIServer(api_key="sk-test") as server:
        embedder = OpenAIEmbedder(_fake_config(server), "fake-embed")  # type: ignore[arg-type]
        # The fake model knows "sanitization" means "validation": a semantic merge that
        # character n-grams alone would not make at this threshold.
        rows = [
            row(1, rule="", title="input validation missing", detail=""),
            row(2, rule="", title="input sanitization missing", detail=""),
        ]
        strict = DedupSettings(threshold=0.7)
        assert len(dedup(rows, embedder, strict)) == 1
        assert len(dedup(rows, TfidfEmbedder(), strict)) == 2
        paths = [r.path for r in server.requests]
        assert paths and set(paths) == {"/v1/embeddings"}
        assert server.requests[0].body["model"] == "fake-embed"


def test_failed_embeddings_fall_back_to_tfidf_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EMBED_KEY", "wrong")
    with FakeOpenAIServer(api_key="sk-test") as server:
        embedder = OpenAIEmbedder(_fake_config(server), "fake-embed")  # type: ignore[arg-type]
        vectors, name, note = embed_or_fallback(embedder, [VALIDATION, SANITIZATION])
    assert name == "tfidf-char"
    assert vectors.shape[0] == 2
    assert "fell back" in note or "TF-IDF" in note
    assert "wrong" not in note


def test_offline_runs_use_tfidf() -> None:
    assert isinstance(embedder_for("heuristic", {}), TfidfEmbedder)
    assert isinstance(embedder_for("openai", {"embedder": "tfidf"}), TfidfEmbedder)


# --- votes, quorum, top-K ---------------------------------------------------------------------


def test_support_counts_distinct_agents_and_lenses_not_findings() -> None:
    rows = [
        row(1, lens="security", conf=0.6),
        row(1, lens="security", conf=0.9),
        row(2, lens="security", conf=0.5),
        row(3, lens="reliability", conf=0.5),
    ]
    (only,) = dedup(rows)
    assert only.votes == 3
    assert only.lenses == ["reliability", "security"]
    votes = [m for m in only.members if m["vote"]]
    assert sorted((m["task_id"], m["confidence"]) for m in votes) == [(1, 0.9), (2, 0.5), (3, 0.5)]
    # Confidence-weighted votes (0.9 + 0.5 + 0.5) times the second lens's bonus.
    assert only.score == pytest.approx(1.9 * 1.25)


def test_lens_quorum_drops_what_one_lens_alone_saw() -> None:
    one_lens = dedup([row(1, path="a.py"), row(2, path="a.py")])
    two_lenses = dedup([row(3, path="b.py"), row(4, path="b.py", lens="correctness")])
    clusters = one_lens + two_lenses
    quorum(clusters, needed=2, lenses_needed=2)
    assert [c.path for c in clusters if c.kept] == ["b.py"]
    assert "lens quorum is 2" in clusters[0].dropped_reason


def test_top_k_keeps_the_best_supported_clusters_in_order() -> None:
    rows = [
        # a.py: three agents, two lenses; b.py: two agents; c.py and d.py: one agent each.
        row(1, path="a.py", conf=0.6),
        row(2, path="a.py", conf=0.6),
        row(3, path="a.py", conf=0.6, lens="correctness"),
        row(4, path="b.py", conf=0.9),
        row(5, path="b.py", conf=0.9),
        row(6, path="c.py", conf=0.95),
        row(7, path="d.py", conf=0.5),
    ]
    draft = run_chain(rows, facts(options={"top_k": 3}), CHAIN)
    kept = sorted((c for c in draft.clusters if c.kept), key=lambda c: c.rank)
    assert [(c.path, c.rank) for c in kept] == [("a.py", 1), ("b.py", 2), ("c.py", 3)]
    (dropped,) = [c for c in draft.clusters if not c.kept]
    assert dropped.path == "d.py"
    assert "beyond the top 3" in dropped.dropped_reason


# --- evidence check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "line", "evidence", "status"),
    [
        ("app/views.py", 4, "user_id = request.GET['user_id']", "verified"),
        ("app/views.py", 5, "SELECT   * FROM users ... WHERE id", "verified"),
        ("app/views.py", 4, "", "located"),
        ("app/views.py", 4, "os.system(cmd)", "evidence_not_found"),
        ("app/views.py", 5, "SECRET_KEY = 'sk****'", "verified"),  # a masked secret
        ("app/views.py", 5, "SECRET_KEY = 'pk****'", "evidence_not_found"),
        ("app/views.py", 5, "SECRET_KEY = ... (value not shown)", "verified"),
        ("app/views.py", 5, "PASSWORD = ... (value not shown)", "evidence_not_found"),
        ("app/views.py", 99, "", "no_such_line"),
        ("app/ghost.py", 1, "", "no_such_file"),
        ("", None, "", "unchecked"),
    ],
)
def test_evidence_check_knows_real_from_fabricated(
    path: str, line: int | None, evidence: str, status: str
) -> None:
    assert check_location(APP, path, line, line, evidence) == status


def test_a_fabricated_location_is_flagged_and_ranked_last() -> None:
    rows = [
        row(1, path="app/views.py", line=99, severity="critical", conf=0.9, title="Invented"),
        row(2, path="app/views.py", line=5, severity="medium", conf=0.6, title="SQL injection"),
    ]
    draft = run_chain(rows, facts(options={"min_confidence": 0.0}), CHAIN, source=APP)
    by_title = {c.title: c for c in draft.clusters}
    invented = by_title["Invented"]
    assert invented.evidence_status == "no_such_line"
    assert invented.fabricated
    assert invented.confidence < 0.9
    assert invented.verdict.startswith("verify: location or quote not found")
    assert by_title["SQL injection"].rank == 1 and invented.rank == 2
    assert "not found in the snapshot" in draft.markdown
    assert draft.stats["fabricated"] == 1


def test_a_verified_member_vouches_for_its_cluster() -> None:
    rows = [
        row(1, path="app/views.py", line=5, evidence="db.query("),
        row(2, path="app/views.py", line=5, evidence="eval(payload)"),
    ]
    (only,) = dedup(rows)
    assert only.evidence_status == "unchecked"  # no snapshot given to dedup alone
    draft = run_chain(rows, facts(), CHAIN, source=APP)
    (checked,) = draft.clusters
    assert checked.evidence_status == "verified"
    assert checked.evidence == "db.query("
    statuses = sorted(m["evidence_status"] for m in checked.members)
    assert statuses == ["evidence_not_found", "verified"]


def test_a_bad_option_falls_back_to_its_default_and_says_so() -> None:
    options = {"dedup_threshold": "high", "top_k": -1, "vote_quorum": True}
    draft = run_chain([row(1)], facts(options=options), CHAIN)
    assert draft.params["dedup_threshold"] == 0.15
    assert draft.params["top_k"] == 0
    assert draft.params["vote_quorum"] == 1
    assert sum("is not valid" in note for note in draft.notes) == 3


def test_a_provider_with_an_embedding_model_gets_remote_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    config = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "FAKE_EMBED_KEY",
        "default_model": "chat",
        "embedding_model": "fake-embed",
    }
    plain = {k: v for k, v in config.items() if k != "embedding_model"}
    path.write_text(json.dumps({"providers": {"local": config, "plain": plain}}))
    get_provider.cache_clear()
    try:
        with override_settings(HARNESS_PROVIDERS_FILE=str(path)):
            chosen = embedder_for("local", {})
            assert isinstance(chosen, OpenAIEmbedder) and chosen.model == "fake-embed"
            other = embedder_for("local", {"embedding_model": "big-embed"})
            assert isinstance(other, OpenAIEmbedder) and other.model == "big-embed"
            assert isinstance(embedder_for("plain", {}), TfidfEmbedder)
            assert isinstance(embedder_for("anthropic", {}), TfidfEmbedder)
    finally:
        get_provider.cache_clear()


def test_the_critic_challenges_serious_items_it_cannot_trust() -> None:
    rows = [
        # Two agents agree on a critical injection at line 10.
        row(1, line=10, severity="critical", conf=0.9, detail="injection (CWE-89)"),
        row(2, line=10, severity="critical", conf=0.9, detail="injection (CWE-89)"),
        # Another rule's wording of the same weakness five lines on: not merged by dedup.
        row(
            3,
            line=15,
            rule="bandit.B608",
            title="Hardcoded SQL",
            severity="high",
            conf=0.8,
            detail="string-built query (CWE-89)",
        ),
        # A critical claim by one agent through one lens, elsewhere.
        row(
            4,
            path="app/auth.py",
            line=3,
            rule="SEC9",
            title="Auth bypass",
            severity="critical",
            conf=0.85,
            detail="broken access (CWE-285)",
        ),
        # Low severity: never challenged.
        row(5, path="app/util.py", line=1, rule="MNT1", title="Long function", severity="low"),
    ]
    draft = run_chain(rows, facts(), CHAIN)
    by_title = {c.title: c for c in draft.clusters}
    assert by_title["SQL injection"].verdict == "confirmed by several agents"
    assert by_title["Hardcoded SQL"].verdict.startswith("possible duplicate of item 1")
    assert by_title["Auth bypass"].verdict == "verify the severity: critical on one agent's word"
    assert by_title["Long function"].verdict == "single report"
    assert any("2 serious findings challenged" in n for n in draft.critique)

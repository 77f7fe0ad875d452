"""Decomposition is deterministic, loses no file, and refuses impossible plans."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agents.planning import (
    FileInfo,
    PlanningError,
    TaskSpec,
    check_acyclic,
    chunk_files,
    plan,
    task_key,
)
from agents.playbooks import PLAYBOOKS, Playbook, get_playbook, worker_role
from agents.snapshot import freeze_directory

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
APP = SAMPLES / "vulnerable_app"


def _freeze(path: Path, root: Path, store: Path) -> dict[str, Any]:
    return freeze_directory(path, [root], store).to_dict()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _freeze(APP, SAMPLES, tmp_path_factory.mktemp("store"))


@pytest.fixture
def corpus_manifest(tmp_path: Path) -> dict[str, Any]:
    return _freeze(SAMPLES / "corpus", SAMPLES, tmp_path / "store")


# The playbooks that plan a codebase or documents (an evaluation needs a dataset: its own tests
# are in tests/evaluation).
ON_FILES = sorted(name for name, book in PLAYBOOKS.items() if book.target_kind != "dataset")


def _keys(specs: list[TaskSpec]) -> list[str]:
    return [s.key for s in specs]


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ON_FILES)
def test_same_snapshot_and_playbook_give_identical_task_keys(
    name: str, manifest: dict[str, Any], tmp_path: Path
) -> None:
    first = plan(PLAYBOOKS[name], manifest)
    # A second, independent freeze of the same content into another store plans identically.
    again = plan(PLAYBOOKS[name], _freeze(APP, SAMPLES, tmp_path / "other"))
    assert first
    assert _keys(first) == _keys(again)
    assert [(s.step, s.lens, s.scope) for s in first] == [(s.step, s.lens, s.scope) for s in again]
    assert len(set(_keys(first))) == len(first)
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in _keys(first))


@pytest.mark.parametrize("name", ON_FILES)
def test_one_byte_change_to_one_file_changes_the_keys(name: str, tmp_path: Path) -> None:
    root = tmp_path / "targets"
    original, edited = root / "a", root / "b"
    shutil.copytree(APP, original)
    shutil.copytree(APP, edited)
    path = edited / "app" / "views.py"
    data = bytearray(path.read_bytes())
    data[-2] = ord("#") if data[-2] != ord("#") else ord("%")
    path.write_bytes(bytes(data))
    store = tmp_path / "store"
    before = _keys(plan(PLAYBOOKS[name], _freeze(original, root, store)))
    after = _keys(plan(PLAYBOOKS[name], _freeze(edited, root, store)))
    assert set(before).isdisjoint(after)


def test_task_key_depends_on_every_part() -> None:
    base = task_key("audit", "security", {"files": ["a.py"]}, "d" * 64)
    assert base == task_key("audit", "security", {"files": ["a.py"]}, "d" * 64)
    assert base != task_key("read", "security", {"files": ["a.py"]}, "d" * 64)
    assert base != task_key("audit", "reliability", {"files": ["a.py"]}, "d" * 64)
    assert base != task_key("audit", "security", {"files": ["b.py"]}, "d" * 64)
    assert base != task_key("audit", "security", {"files": ["a.py"]}, "e" * 64)


def test_task_key_ignores_scope_dict_order() -> None:
    one = task_key("s", "l", {"files": ["a"], "voter": 1}, "d")
    two = task_key("s", "l", {"voter": 1, "files": ["a"]}, "d")
    assert one == two


# --- chunking ---------------------------------------------------------------------------------


def _infos(sizes: dict[str, int]) -> list[FileInfo]:
    return [FileInfo(path, size) for path, size in sizes.items()]


@pytest.mark.parametrize(("max_bytes", "max_files"), [(24_000, 6), (1000, 3), (100, 1), (5000, 2)])
def test_chunk_files_honours_limits_and_loses_no_file(max_bytes: int, max_files: int) -> None:
    sizes = {f"pkg{d}/mod{i}.py": 37 * (i + 1) * (d + 1) for d in range(4) for i in range(9)}
    sizes["big/huge.py"] = max_bytes * 3
    chunks = chunk_files(_infos(sizes), max_bytes, max_files)
    flat = [f.path for chunk in chunks for f in chunk]
    assert sorted(flat) == sorted(sizes)
    assert len(flat) == len(set(flat))
    for chunk in chunks:
        assert chunk
        assert len(chunk) <= max_files
        if len(chunk) > 1:
            assert sum(f.size for f in chunk) <= max_bytes
    # The oversized file sits alone.
    assert [f.path for f in next(c for c in chunks if "big/huge.py" in [f.path for f in c])] == [
        "big/huge.py"
    ]


def test_chunk_files_packs_small_files_together() -> None:
    chunks = chunk_files(_infos({f"a/{i}.py": 10 for i in range(10)}), 1000, 4)
    assert [len(c) for c in chunks] == [4, 4, 2]


def test_chunk_files_is_independent_of_input_order() -> None:
    infos = _infos({f"d{i % 3}/f{i}.py": 100 + i for i in range(20)})
    assert chunk_files(infos, 500, 4) == chunk_files(list(reversed(infos)), 500, 4)


def test_domain_plan_covers_every_manifest_file_once_per_lens(manifest: dict[str, Any]) -> None:
    book = PLAYBOOKS["codebase-audit"]
    specs = plan(book, manifest)
    for lens in book.lenses:
        scopes = [s.scope["files"] for s in specs if s.lens == lens]
        flat = [path for files in scopes for path in files]
        assert sorted(flat) == sorted(manifest["files"])
        assert len(flat) == len(set(flat))
    assert {s.lens for s in specs} == set(book.lenses)


def test_domain_plan_respects_small_chunk_options(manifest: dict[str, Any]) -> None:
    book = replace(
        PLAYBOOKS["codebase-audit"],
        lenses=("security",),
        options={"chunk_bytes": 2000, "chunk_files": 2},
    )
    specs = plan(book, manifest)
    sizes = {p: meta["size"] for p, meta in manifest["files"].items()}
    flat = [p for s in specs for p in s.scope["files"]]
    assert sorted(flat) == sorted(manifest["files"])
    for spec in specs:
        files = spec.scope["files"]
        assert len(files) <= 2
        if len(files) > 1:
            assert sum(sizes[p] for p in files) <= 2000


# --- the DAG ----------------------------------------------------------------------------------


def test_document_synthesis_synthesizer_depends_on_every_reader(
    corpus_manifest: dict[str, Any],
) -> None:
    specs = plan(PLAYBOOKS["document-synthesis"], corpus_manifest)
    readers = [s for s in specs if s.step == "read"]
    synth = [s for s in specs if s.step == "synthesize"]
    assert len(synth) == 1
    assert len(readers) >= 6
    assert set(synth[0].depends_on) == {r.key for r in readers}
    assert len(synth[0].depends_on) == len(readers)
    assert all(not r.depends_on for r in readers)
    assert synth[0].role == "synthesizer"
    # Every document in the corpus has exactly one reader.
    docs = sorted(p for p in corpus_manifest["files"] if p.endswith(".md"))
    assert sorted(r.scope["document"] for r in readers) == docs


def _spec(name: str, deps: tuple[str, ...] = ()) -> TaskSpec:
    return TaskSpec(
        step="s",
        role="r",
        lens=name,
        scope={"n": name},
        scope_label=name,
        why="",
        snapshot_digest="d",
        depends_on=deps,
    )


def test_check_acyclic_accepts_a_dag() -> None:
    a = _spec("a")
    b = _spec("b", (a.key,))
    c = _spec("c", (a.key, b.key))
    check_acyclic([c, b, a])


def test_check_acyclic_refuses_a_cycle() -> None:
    a, b, c = _spec("a"), _spec("b"), _spec("c")
    a.depends_on = (c.key,)
    b.depends_on = (a.key,)
    c.depends_on = (b.key,)
    with pytest.raises(PlanningError, match="cycle"):
        check_acyclic([a, b, c])


def test_check_acyclic_refuses_a_self_dependency() -> None:
    a = _spec("a")
    a.depends_on = (a.key,)
    with pytest.raises(PlanningError, match="cycle"):
        check_acyclic([a])


def test_check_acyclic_refuses_an_unknown_dependency() -> None:
    a = _spec("a", ("0" * 64,))
    with pytest.raises(PlanningError, match="not planned"):
        check_acyclic([a, _spec("b")])


def test_check_acyclic_refuses_duplicate_keys() -> None:
    with pytest.raises(PlanningError, match="same key"):
        check_acyclic([_spec("a"), _spec("a")])


# --- ensemble ---------------------------------------------------------------------------------


def test_ensemble_gives_k_voters_with_different_stable_samples(manifest: dict[str, Any]) -> None:
    book = PLAYBOOKS["ensemble"]
    k = int(book.options["k"])
    specs = plan(book, manifest)
    assert len(specs) == k * len(book.lenses)
    assert sorted(s.scope["voter"] for s in specs) == list(range(k))
    samples = [tuple(s.scope["files"]) for s in specs]
    assert len(set(samples)) > 1, "every voter got the same sample"
    expected = max(1, round(len(manifest["files"]) * float(book.options["sample_fraction"])))
    for files in samples:
        assert len(files) == expected
        assert set(files) <= set(manifest["files"])
        assert list(files) == sorted(files)
    assert [s.scope for s in plan(book, manifest)] == [s.scope for s in specs]


def test_ensemble_k_option_sets_number_of_voters(manifest: dict[str, Any]) -> None:
    book = PLAYBOOKS["ensemble"].with_overrides(options={"k": 3})
    assert len(plan(book, manifest)) == 3


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ON_FILES)
def test_plan_larger_than_max_agents_is_refused(name: str, manifest: dict[str, Any]) -> None:
    needed = len(plan(PLAYBOOKS[name], manifest))
    assert plan(replace(PLAYBOOKS[name], max_agents=needed), manifest)
    with pytest.raises(PlanningError, match=f"needs {needed} agents but the run allows"):
        plan(replace(PLAYBOOKS[name], max_agents=needed - 1), manifest)


def test_plan_of_an_empty_manifest_is_refused() -> None:
    with pytest.raises(PlanningError, match="no readable text files"):
        plan(PLAYBOOKS["codebase-audit"], {"digest": "d" * 64, "files": {}})


@pytest.mark.parametrize("name", ["codebase-audit", "ensemble"])
def test_a_code_playbook_refuses_a_target_without_code(name: str) -> None:
    files = {"README.md": {"size": 900}, "docs/guide.md": {"size": 4000}}
    with pytest.raises(PlanningError, match="reads source code and configuration"):
        plan(PLAYBOOKS[name], {"digest": "d" * 64, "files": files})
    # The same folder is what the document playbooks are for.
    assert plan(PLAYBOOKS["document-synthesis"], {"digest": "d" * 64, "files": files})


def test_perspective_review_refuses_a_document_not_in_the_target(
    manifest: dict[str, Any],
) -> None:
    book = PLAYBOOKS["multi-perspective-review"].with_overrides(options={"document": "nope.md"})
    with pytest.raises(PlanningError, match="not in the target"):
        plan(book, manifest)


def test_perspective_review_has_one_task_per_persona_on_one_document(
    manifest: dict[str, Any],
) -> None:
    book = PLAYBOOKS["multi-perspective-review"]
    specs = plan(book, manifest)
    assert [s.lens for s in specs] == list(book.lenses)
    assert len({s.scope["document"] for s in specs}) == 1


def test_perspective_review_says_which_of_several_documents_it_took() -> None:
    files = {
        "notes/short.md": {"size": 100},
        "notes/long.md": {"size": 9000},
        "notes/mid.txt": {"size": 500},
    }
    manifest = {"digest": "d" * 64, "files": files}
    specs = plan(PLAYBOOKS["multi-perspective-review"], manifest)
    assert {s.scope["document"] for s in specs} == {"notes/long.md"}
    assert all("the largest of 3 documents in the target" in s.why for s in specs)
    # Chosen on purpose: nothing to explain.
    book = PLAYBOOKS["multi-perspective-review"].with_overrides(
        options={"document": "notes/mid.txt"}
    )
    assert all("largest" not in s.why for s in plan(book, manifest))


# --- playbook config round trip and overrides ------------------------------------------------


@pytest.mark.parametrize("name", sorted(PLAYBOOKS))
def test_playbook_config_round_trips(name: str) -> None:
    book = PLAYBOOKS[name]
    assert Playbook.from_config(book.to_config()) == book


@pytest.mark.parametrize("name", sorted(PLAYBOOKS))
def test_playbook_config_round_trips_through_json(name: str) -> None:
    import json

    book = PLAYBOOKS[name].with_overrides(provider="openai", role_models={"synthesizer": "big"})
    assert Playbook.from_config(json.loads(json.dumps(book.to_config()))) == book


def test_with_overrides_routes_models_per_role() -> None:
    book = PLAYBOOKS["codebase-audit"]
    routed = book.with_overrides(
        provider="openai", model="small-model", role_models={"synthesizer": "big-model"}
    )
    assert routed.roles["auditor"].provider == "openai"
    assert routed.roles["auditor"].model == "small-model"
    assert routed.roles["synthesizer"].provider == "openai"
    assert routed.roles["synthesizer"].model == "big-model"
    # The shared definition is untouched.
    assert book.roles["auditor"].model is None
    assert PLAYBOOKS["codebase-audit"].roles["synthesizer"].provider is None


def test_with_overrides_merges_options_and_replaces_chain() -> None:
    book = PLAYBOOKS["ensemble"]
    changed = book.with_overrides(options={"k": 7}, aggregation=["dedup"])
    assert changed.options["k"] == 7
    assert changed.options["vote_quorum"] == book.options["vote_quorum"]
    assert changed.aggregation == ("dedup",)
    assert book.options["k"] == 5
    assert book.with_overrides().aggregation == book.aggregation


def test_get_playbook_unknown_lists_known_names() -> None:
    with pytest.raises(ValueError, match="codebase-audit"):
        get_playbook("nope")


def test_perspective_review_fans_out_over_every_document_with_the_star_option() -> None:
    files = {
        "notes/short.md": {"size": 100},
        "notes/long.md": {"size": 9000},
        "notes/mid.txt": {"size": 500},
        "code.py": {"size": 50},  # not a document: not reviewed
    }
    manifest = {"digest": "d" * 64, "files": files}
    book = PLAYBOOKS["multi-perspective-review"].with_overrides(options={"document": "*"})
    specs = plan(book, manifest)
    documents = ["notes/long.md", "notes/mid.txt", "notes/short.md"]
    assert len(specs) == len(documents) * len(book.lenses)
    assert {(s.scope["document"], s.lens) for s in specs} == {
        (doc, lens) for doc in documents for lens in book.lenses
    }
    assert all("every one of the 3 documents" in s.why for s in specs)
    # Deterministic, and capped by max agents like every plan.
    assert [s.key for s in plan(book, manifest)] == [s.key for s in specs]
    with pytest.raises(PlanningError, match="needs 18 agents but the run allows 10"):
        plan(replace(book, max_agents=10), manifest)


@pytest.mark.parametrize("name", ON_FILES)
def test_the_worker_role_survives_a_config_whose_role_order_is_lost(
    name: str, manifest: dict[str, Any], corpus_manifest: dict[str, Any]
) -> None:
    # PostgreSQL's jsonb keeps keys sorted by length then bytes, not as written: "critic" comes
    # first there. Planned agents must still get the playbook's worker role.
    config = get_playbook(name).to_config()
    config["roles"] = dict(sorted(config["roles"].items(), key=lambda kv: (len(kv[0]), kv[0])))
    book = Playbook.from_config(config)
    source = manifest if book.target_kind == "code" else corpus_manifest
    roles = {spec.role for spec in plan(book, source) if spec.step not in ("synthesize",)}
    assert roles == {worker_role(book)} and worker_role(book) not in ("critic", "synthesizer")


@pytest.mark.parametrize("target", ["vulnerable_app", "corpus", "heldout_security"])
def test_no_agent_reads_a_samples_answer_key(target: str, tmp_path: Path) -> None:
    # The answer key sits beside the target, never in it: an auditor that read it would
    # "find" every planted problem from the key instead of the code.
    assert (SAMPLES / f"{target}.expected.json").is_file()
    manifest = _freeze(SAMPLES / target, SAMPLES, tmp_path / "store")
    listed = [*manifest["files"], *(s["path"] for s in manifest.get("skipped", []))]
    assert listed and not [p for p in listed if "expected" in p.lower()]
    planned = 0
    for name in ON_FILES:
        try:
            specs = plan(PLAYBOOKS[name], manifest)
        except PlanningError:  # a playbook for another kind of target (code vs documents)
            continue
        planned += 1
        for spec in specs:
            assert "expected" not in json.dumps(spec.scope).lower(), (name, spec.scope)
    assert planned

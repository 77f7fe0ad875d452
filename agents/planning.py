"""Decomposition: snapshot + playbook → the run's task set (a DAG), deterministically.

The same snapshot and playbook always give the same TaskSpecs, in the same order, with the same
keys: key = SHA-256 of step, lens, canonical scope and snapshot digest. Strategies:

- domain: files grouped by directory, packed into size-balanced chunks, x lenses;
- perspective: one document x lenses (personas), or every document x lenses (document = "*");
- hierarchical: one reader per document, then a synthesis task depending on all of them;
- sampling: a seeded random subset of a large corpus (the seed comes from the snapshot digest);
- ensemble: K agents on seeded samples of the same target, same lens (for voting), and in
  judge mode the judges that depend on them (``agents.judging``);
- evaluation: one judge per dataset item x rubric dimension (x judges), read from the content.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agents.adaptive import is_adaptive, scout_keys
from agents.analysis.text_rules import language_for
from agents.evaluation.cells import plan_cells
from agents.evaluation.dataset import EvaluationInputError
from agents.judging.plan import JUDGE_GROUP, JudgingError, judge_tasks, judging_of
from agents.playbooks import MAX_DOCUMENTS, Playbook, worker_role

DOC_EXTENSIONS = (".md", ".markdown", ".txt", ".rst")
# Reads a file of the snapshot being planned (its path relative to the target) as text.
TextReader = Callable[[str], str]
# The ``document`` option value that fans a one-document review out over every document.
EVERY_DOCUMENT = "*"


class PlanningError(ValueError):
    """The playbook cannot be planned on this snapshot (a clear, user-facing message)."""


def task_key(step: str, lens: str, scope: dict[str, Any], snapshot_digest: str) -> str:
    canonical = json.dumps(scope, sort_keys=True, separators=(",", ":"))
    raw = "\x1f".join([step, lens, canonical, snapshot_digest])
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class TaskSpec:
    step: str
    role: str
    lens: str
    scope: dict[str, Any]
    scope_label: str
    why: str
    snapshot_digest: str
    depends_on: tuple[str, ...] = ()
    # Where the task sits in the run's structure, '/'-separated (a folder, a document, a voter):
    # the dashboard's tree groups agents by it. Not part of the key.
    group: str = ""
    # The model this agent asks, when its plan says (an ensemble's voter models); else the
    # role's or the run's. Not part of the key.
    model: str = ""
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = task_key(self.step, self.lens, self.scope, self.snapshot_digest)


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int


def scope_label(files: list[str]) -> str:
    if len(files) == 1:
        return files[0]
    common = posixpath.commonpath(files) if files else ""
    where = f"{common}/" if common else "(root)/"
    return f"{where} · {len(files)} files"


def folder_of(files: list[str]) -> str:
    """The folder holding every file of a chunk ("" at the target's root)."""
    folders = [posixpath.dirname(f) for f in files]
    return posixpath.commonpath(folders) if folders else ""


def chunk_files(files: Iterable[FileInfo], max_bytes: int, max_files: int) -> list[list[FileInfo]]:
    """Greedy size-balanced packing that keeps a directory's files together where it can.

    Files are visited in path order (so neighbours share a chunk); a chunk closes when the next
    file would push it past ``max_bytes`` or ``max_files``. A file bigger than ``max_bytes`` gets
    a chunk of its own (its agent may then ask to split it further).
    """
    chunks: list[list[FileInfo]] = []
    current: list[FileInfo] = []
    size = 0
    current_dir: str | None = None
    for info in sorted(files, key=lambda f: f.path):
        directory = posixpath.dirname(info.path)
        full = len(current) >= max_files or (current and size + info.size > max_bytes)
        # Start a new chunk at a directory boundary once the chunk is at least half full.
        boundary = current and directory != current_dir and size >= max_bytes // 2
        if current and (full or boundary):
            chunks.append(current)
            current, size = [], 0
        current.append(info)
        size += info.size
        current_dir = directory
    if current:
        chunks.append(current)
    return chunks


def _files(manifest: dict[str, Any]) -> list[FileInfo]:
    return [FileInfo(path, int(meta["size"])) for path, meta in sorted(manifest["files"].items())]


def _documents(manifest: dict[str, Any]) -> list[FileInfo]:
    files = _files(manifest)
    docs = [f for f in files if f.path.lower().endswith(DOC_EXTENSIONS)]
    return docs or files


def _rng(digest: str, salt: str) -> random.Random:
    # Seeded from the snapshot so a re-plan of the same snapshot samples the same files.
    return random.Random(int(hashlib.sha256(f"{digest}:{salt}".encode()).hexdigest()[:16], 16))


def plan(
    playbook: Playbook,
    manifest: dict[str, Any],
    read_text: TextReader | None = None,
) -> list[TaskSpec]:
    """All root tasks of a run. Raises PlanningError with a clear message. ``read_text`` reads
    the snapshot's content, for the decompositions that plan from it (evaluation); without it
    they plan from the manifest alone, approximately (an estimate)."""
    files = _files(manifest)
    if not files:
        raise PlanningError("The target has no readable text files to analyse.")
    if playbook.target_kind == "code" and not any(language_for(f.path) for f in files):
        example = files[0].path
        raise PlanningError(
            f"{playbook.title} reads source code and configuration, and this target has none "
            f"({len(files)} file{'s' if len(files) != 1 else ''} such as {example}). For "
            "documents, use Document synthesis or Multi-perspective review."
        )
    specs = full_plan(playbook, manifest, read_text)
    if is_adaptive(playbook.decomposition, playbook.options):
        # Only the scouts start; ``runs.actions.adaptive`` adds the rest of each group in waves
        # (bounded by max agents then), so only the scouts must fit now.
        scouts = scout_keys(specs, manifest["digest"])
        specs = [s for s in specs if s.key in scouts]
    if len(specs) > playbook.max_agents:
        raise PlanningError(
            f"This target needs {len(specs)} agents but the run allows {playbook.max_agents}: "
            "raise max agents or pick a smaller target."
        )
    check_acyclic(specs)
    return specs


def full_plan(
    playbook: Playbook, manifest: dict[str, Any], read_text: TextReader | None = None
) -> list[TaskSpec]:
    """Every task the decomposition makes, adaptive or not, before any limit is checked: an
    adaptive run's later waves are taken from it."""
    decompose = _DECOMPOSITIONS.get(playbook.decomposition)
    if decompose is None:  # pragma: no cover - playbooks are validated at definition
        raise PlanningError(f"Unknown decomposition {playbook.decomposition!r}")
    if playbook.decomposition == "evaluation":
        return _by_evaluation(playbook, manifest, read_text)
    return decompose(playbook, manifest, _files(manifest))


def _by_domain(
    playbook: Playbook, manifest: dict[str, Any], files: list[FileInfo]
) -> list[TaskSpec]:
    """Size-balanced chunks of files, each read through every lens."""
    opts, role = playbook.options, worker_role(playbook)
    chunks = chunk_files(
        files, int(opts.get("chunk_bytes", 24_000)), int(opts.get("chunk_files", 6))
    )
    return [
        TaskSpec(
            step="audit",
            role=role,
            lens=lens,
            scope={"files": paths},
            scope_label=scope_label(paths),
            snapshot_digest=manifest["digest"],
            why=f"{lens} review of {scope_label(paths)}",
            group=folder_of(paths),
        )
        for paths in ([f.path for f in chunk] for chunk in chunks)
        for lens in playbook.lenses
    ]


def _by_perspective(
    playbook: Playbook, manifest: dict[str, Any], files: list[FileInfo]
) -> list[TaskSpec]:
    """One document, read once per lens (persona); ``document = "*"`` (EVERY_DOCUMENT) reads
    every document of the target through every lens instead."""
    wanted = playbook.options.get("document")
    if wanted == EVERY_DOCUMENT:
        documents = document_paths(manifest)
        reason = f" (every one of the {len(documents)} documents: document = {EVERY_DOCUMENT})"
    else:
        documents = [pick_document(manifest, wanted)]
        # Never a silent choice: a target with several documents says which one was taken and
        # why.
        count = len(_documents(manifest))
        reason = (
            f" (the largest of {count} documents in the target; "
            "set the document option to review another)"
            if count > 1 and not wanted
            else ""
        )
    return [
        TaskSpec(
            step="review",
            role=worker_role(playbook),
            lens=lens,
            scope={"document": document},
            scope_label=document,
            snapshot_digest=manifest["digest"],
            why=f"{document} read as the {lens}{reason}",
            group=document,
        )
        for document in documents
        for lens in playbook.lenses
    ]


def _by_reader(
    playbook: Playbook, manifest: dict[str, Any], files: list[FileInfo]
) -> list[TaskSpec]:
    """One reader per document (a seeded sample past ``max_documents``), then one synthesis
    that depends on every reader."""
    digest, opts = manifest["digest"], playbook.options
    docs = _documents(manifest)
    limit = int(opts.get("max_documents", MAX_DOCUMENTS))
    if playbook.decomposition == "sampling" or len(docs) > limit:
        rng = _rng(digest, "sample")
        docs = sorted(rng.sample(docs, min(limit, len(docs))), key=lambda f: f.path)
    specs = [
        TaskSpec(
            step="read",
            role=worker_role(playbook),
            lens=playbook.lenses[0],
            scope={"document": doc.path},
            scope_label=doc.path,
            snapshot_digest=digest,
            why=f"extract the key points of {doc.path}",
            group=posixpath.dirname(doc.path),
        )
        for doc in docs
    ]
    if "synthesizer" in playbook.roles:
        specs.append(
            TaskSpec(
                step="synthesize",
                role="synthesizer",
                lens="synthesis",
                scope={"documents": [d.path for d in docs]},
                scope_label=f"{len(docs)} documents",
                snapshot_digest=digest,
                why="combine the readers' summaries into shared themes",
                depends_on=tuple(r.key for r in specs),
            )
        )
    return specs


MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")


def voter_models(options: dict[str, Any]) -> list[str]:
    """The ensemble's ``voter_models`` option: the models voter 1, 2, … take in turn, so K
    candidates differ by model and not only by their sample. Raises PlanningError on a name no
    provider could take."""
    raw = options.get("voter_models") or ""
    names = raw if isinstance(raw, list) else str(raw).split(",")
    models = [str(name).strip() for name in names if str(name).strip()]
    bad = [name for name in models if not MODEL_NAME.match(name)]
    if bad:
        raise PlanningError(
            f"voter_models: {bad[0][:60]!r} is not a model name (letters, digits and ._:/@+- "
            "up to 200 characters, names separated by commas)."
        )
    if len(models) > 50:
        raise PlanningError("voter_models: at most 50 models.")
    return models


def _by_ensemble(
    playbook: Playbook, manifest: dict[str, Any], files: list[FileInfo]
) -> list[TaskSpec]:
    """``k`` independent voters, each on its own seeded sample of the files, every lens; in
    judge mode, then the judges that read them."""
    digest, opts = manifest["digest"], playbook.options
    k = int(opts.get("k", 5))
    try:
        judging = judging_of(opts)
    except JudgingError as exc:
        raise PlanningError(str(exc)) from None
    fraction = float(opts.get("sample_fraction", 0.8))
    models = voter_models(opts)
    specs: list[TaskSpec] = []
    for i in range(k):
        rng = _rng(digest, f"ensemble-{i}")
        size = max(1, round(len(files) * fraction))
        sample = sorted(f.path for f in rng.sample(files, min(size, len(files))))
        specs.extend(
            TaskSpec(
                step=f"vote-{i}",
                role=worker_role(playbook),
                lens=lens,
                scope={"files": sample, "voter": i},
                scope_label=f"voter {i + 1}/{k} · {len(sample)} files",
                snapshot_digest=digest,
                why=f"independent {lens} vote #{i + 1} of {k}",
                group=f"voter {i + 1}",
                model=models[i % len(models)] if models else "",
            )
            for lens in playbook.lenses
        )
    if judging is None:
        return specs
    candidates: dict[int, tuple[str, ...]] = {}
    for spec in specs:
        voter = int(spec.scope["voter"])
        candidates[voter] = (*candidates.get(voter, ()), spec.key)
    try:
        judges = judge_tasks(judging, candidates, lambda i: f"voter {i + 1}")
    except JudgingError as exc:
        raise PlanningError(str(exc)) from None
    specs.extend(
        TaskSpec(
            step=step,
            role="referee" if "referee" in playbook.roles else worker_role(playbook),
            lens=judging,
            scope=scope,
            scope_label=label,
            snapshot_digest=digest,
            why=why,
            depends_on=depends_on,
            group=JUDGE_GROUP,
        )
        for step, scope, label, why, depends_on in judges
    )
    return specs


def _by_evaluation(
    playbook: Playbook, manifest: dict[str, Any], read_text: TextReader | None
) -> list[TaskSpec]:
    """One judge per dataset item x rubric dimension (x judges per cell, x A/B variant)."""
    try:
        cells = plan_cells(manifest, read_text, playbook.options)
    except EvaluationInputError as exc:
        raise PlanningError(str(exc)) from None
    return [
        TaskSpec(
            step=cell.step,
            role=worker_role(playbook),
            lens=cell.lens,
            scope=cell.scope,
            scope_label=cell.label,
            snapshot_digest=manifest["digest"],
            why=cell.why,
            group=cell.group,
        )
        for cell in cells
    ]


_DECOMPOSITIONS: dict[str, Callable[[Playbook, dict[str, Any], list[FileInfo]], list[TaskSpec]]] = {
    "domain": _by_domain,
    "perspective": _by_perspective,
    "hierarchical": _by_reader,
    "sampling": _by_reader,
    "ensemble": _by_ensemble,
    "evaluation": lambda playbook, manifest, files: _by_evaluation(playbook, manifest, None),
}


def document_paths(manifest: dict[str, Any]) -> list[str]:
    """The documents a document playbook reads (every file when none looks like a document)."""
    return [doc.path for doc in _documents(manifest)]


def pick_document(manifest: dict[str, Any], wanted: str | None) -> str:
    """The document a one-document review reads: ``wanted``, or else the largest."""
    docs = _documents(manifest)
    if wanted:
        if wanted not in manifest["files"]:
            raise PlanningError(f"The document {wanted!r} is not in the target.")
        return str(wanted)
    # The largest document is the one worth many perspectives.
    return max(docs, key=lambda f: (f.size, f.path)).path


def check_acyclic(specs: list[TaskSpec]) -> None:
    """Refuse unknown dependencies and cycles (Kahn's algorithm)."""
    keys = {s.key for s in specs}
    if len(keys) != len(specs):
        raise PlanningError("Two planned tasks have the same key (duplicate scope and lens).")
    incoming = {s.key: set(s.depends_on) for s in specs}
    for spec in specs:
        unknown = set(spec.depends_on) - keys
        if unknown:
            raise PlanningError(f"Task {spec.scope_label} depends on a task that is not planned.")
    ready = [k for k, deps in incoming.items() if not deps]
    seen = 0
    dependents: dict[str, list[str]] = {}
    for spec in specs:
        for dep in spec.depends_on:
            dependents.setdefault(dep, []).append(spec.key)
    while ready:
        key = ready.pop()
        seen += 1
        for child in dependents.get(key, []):
            incoming[child].discard(key)
            if not incoming[child]:
                ready.append(child)
    if seen != len(specs):
        raise PlanningError("The planned tasks have a dependency cycle.")

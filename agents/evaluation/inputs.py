"""Finding an evaluation's dataset(s) and rubric in a target, and validating them.

One dataset: a file named ``dataset.jsonl``. An A/B comparison: ``a.jsonl`` and ``b.jsonl``
(the same item ids in both: items are compared pairwise). The rubric: ``rubric.yaml``,
``rubric.yml`` or ``rubric.json`` if the target has one, else the built-in dimensions. Each
name may sit at the target's root or in a folder (an archive often wraps everything in one),
but only once.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agents.evaluation.dataset import DatasetItem, EvaluationInputError, parse_dataset
from agents.evaluation.rubric import (
    RUBRIC_FILES,
    Dimension,
    Rubric,
    builtin_rubric,
    parse_rubric,
    select,
)

DATASET_FILE = "dataset.jsonl"
AB_FILES = ("a.jsonl", "b.jsonl")
# The variant of a single dataset; "a" and "b" in an A/B comparison.
SINGLE = ""


@dataclass(frozen=True)
class Dataset:
    variant: str
    path: str
    items: list[tuple[int, DatasetItem]]


@dataclass(frozen=True)
class EvaluationInputs:
    datasets: list[Dataset]
    rubric: Rubric
    rubric_path: str  # "" for the built-in dimensions

    @property
    def is_ab(self) -> bool:
        return len(self.datasets) == 2


def _one(paths: Iterable[str], name: str) -> str | None:
    found = sorted(p for p in paths if posixpath.basename(p) == name)
    if len(found) > 1:
        raise EvaluationInputError(
            f"The target has {len(found)} files named {name} ({', '.join(found[:3])}): "
            "keep one, so it is clear which is evaluated."
        )
    return found[0] if found else None


def dataset_paths(paths: Iterable[str]) -> dict[str, str]:
    """variant → path of the dataset(s) in a target's file list."""
    paths = list(paths)
    single = _one(paths, DATASET_FILE)
    a, b = (_one(paths, name) for name in AB_FILES)
    if single and (a or b):
        raise EvaluationInputError(
            f"The target has both {DATASET_FILE} and an A/B pair: keep {DATASET_FILE} for one "
            "dataset, or a.jsonl and b.jsonl to compare two."
        )
    if single:
        return {SINGLE: single}
    if a and b:
        return {"a": a, "b": b}
    if a or b:
        raise EvaluationInputError(
            f"An A/B comparison needs both a.jsonl and b.jsonl; the target has only {a or b}."
        )
    raise EvaluationInputError(
        f"No {DATASET_FILE} in the target: an evaluation reads one JSONL file named "
        f"{DATASET_FILE} (id, prompt, response, optional reference), or a.jsonl and b.jsonl "
        "for an A/B comparison."
    )


def rubric_path(paths: Iterable[str]) -> str:
    found = [p for name in RUBRIC_FILES if (p := _one(paths, name))]
    if len(found) > 1:
        raise EvaluationInputError(
            f"The target has more than one rubric ({', '.join(found)}): keep one."
        )
    return found[0] if found else ""


def dimension_names(option: object) -> list[str]:
    """The ``dimensions`` option: names separated by commas (or a list)."""
    if isinstance(option, str):
        return [n.strip() for n in option.split(",") if n.strip()]
    if isinstance(option, list | tuple):
        return [str(n).strip() for n in option if str(n).strip()]
    return []


def load_rubric(read_text: Callable[[str], str], path: str, names: list[str]) -> Rubric:
    if not path:
        return builtin_rubric(names or None)
    return select(parse_rubric(read_text(path), path), names)


def load_inputs(
    paths: Iterable[str], read_text: Callable[[str], str], dimensions: object = ""
) -> EvaluationInputs:
    """Every input validated, or EvaluationInputError with a message fit for the user."""
    paths = list(paths)
    found = dataset_paths(paths)
    datasets = [Dataset(v, p, parse_dataset(read_text(p), p)) for v, p in found.items()]
    if len(datasets) == 2:
        ids = [{item.id for _, item in d.items} for d in datasets]
        if ids[0] != ids[1]:
            only_a, only_b = sorted(ids[0] - ids[1]), sorted(ids[1] - ids[0])
            raise EvaluationInputError(
                "a.jsonl and b.jsonl must hold the same item ids (items are compared in pairs): "
                f"only in a: {', '.join(only_a[:5]) or 'none'}; "
                f"only in b: {', '.join(only_b[:5]) or 'none'}."
            )
    where = rubric_path(paths)
    rubric = load_rubric(read_text, where, dimension_names(dimensions))
    return EvaluationInputs(datasets=datasets, rubric=rubric, rubric_path=where)


def find_dimension(read_text: Callable[[str], str], rubric_file: str, name: str) -> Dimension:
    """A judge's dimension, read again from the run's snapshot."""
    for dimension in load_rubric(read_text, rubric_file, [name]).dimensions:
        return dimension
    raise EvaluationInputError(f"no dimension {name!r}")  # pragma: no cover - select refuses

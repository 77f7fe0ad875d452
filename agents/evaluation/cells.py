"""The judge agents an evaluation needs: one per item x dimension (x judge, x variant).

Plain data, turned into planned tasks by ``agents.planning``. The scope names everything a judge
reads again from the run's snapshot (dataset path and line, rubric file, dimension), so a judge
needs no other input and its key is stable: the same snapshot and options give the same cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.evaluation.dataset import EvaluationInputError
from agents.evaluation.inputs import (
    SINGLE,
    EvaluationInputs,
    dataset_paths,
    dimension_names,
    load_inputs,
)
from agents.evaluation.judge import JUDGE_STEP
from agents.evaluation.rubric import DEFAULT_DIMENSIONS

MAX_JUDGES = 5


@dataclass(frozen=True)
class Cell:
    step: str
    lens: str
    scope: dict[str, Any]
    label: str
    why: str
    group: str


def judges_option(value: object) -> int:
    """The ``judges`` option (judge agents per item x dimension), checked."""
    try:
        judges = int(str(value if value not in (None, "") else 1))
    except ValueError:
        judges = 0
    if not 1 <= judges <= MAX_JUDGES:
        raise EvaluationInputError(f"judges must be a whole number from 1 to {MAX_JUDGES}.")
    return judges


def cells_for(inputs: EvaluationInputs, judges: int) -> list[Cell]:
    cells = []
    for dimension in inputs.rubric.dimensions:
        for dataset in inputs.datasets:
            variant = dataset.variant
            group = f"{dimension.name}/{variant.upper()}" if variant else dimension.name
            for line, item in dataset.items:
                for judge in range(judges):
                    who = f" · judge {judge + 1}/{judges}" if judges > 1 else ""
                    side = f" · {variant.upper()}" if variant else ""
                    cells.append(
                        Cell(
                            step=JUDGE_STEP,
                            lens=dimension.name,
                            scope={
                                "dataset": dataset.path,
                                "line": line,
                                "item": item.id,
                                "variant": variant,
                                "dimension": dimension.name,
                                "rubric": inputs.rubric_path,
                                "judge": judge,
                            },
                            label=f"item {item.id}{side} · {dimension.name}{who}",
                            why=f"score item {item.id}{side} on {dimension.name}",
                            group=group,
                        )
                    )
    return cells


def plan_cells(
    manifest: dict[str, Any],
    read_text: Callable[[str], str] | None,
    options: dict[str, Any],
) -> list[Cell]:
    """Every judge cell, validated against the inputs. Without ``read_text`` (a listing with
    no content, for an estimate) the cells are approximated from the files' line counts."""
    judges = judges_option(options.get("judges"))
    if read_text is not None:
        inputs = load_inputs(manifest["files"], read_text, options.get("dimensions"))
        return cells_for(inputs, judges)
    names = dimension_names(options.get("dimensions")) or list(DEFAULT_DIMENSIONS)
    cells = []
    for variant, path in dataset_paths(manifest["files"]).items():
        lines = int(manifest["files"][path].get("lines", 0))
        for name in names:
            for line in range(1, lines + 1):
                for judge in range(judges):
                    scope = {"dataset": path, "line": line, "dimension": name, "judge": judge}
                    scope["variant"] = variant if variant != SINGLE else ""
                    cells.append(
                        Cell(JUDGE_STEP, name, scope, f"line {line} · {name}", "estimate", name)
                    )
    return cells

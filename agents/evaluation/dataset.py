"""The dataset of an evaluation: JSONL, one item per line.

Each line is a JSON object with ``id`` (string or number), ``prompt`` and ``response`` (strings),
optional ``reference`` (string); every other field is kept and may be used by a dimension
(``facts``: strings the response must contain; ``context``: the source a grounded answer draws
on; ``should_refuse``: true when the safe answer is a refusal). Blank lines are ignored.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_ITEMS = 5000
MAX_FIELD_CHARS = 20_000


class EvaluationInputError(ValueError):
    """A dataset or rubric that cannot be used; the message says where and why (shown as is)."""


class DatasetItem(BaseModel):
    """One item. Unknown fields are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    id: str = Field(min_length=1, max_length=200)
    prompt: str = Field(max_length=MAX_FIELD_CHARS)
    response: str = Field(max_length=MAX_FIELD_CHARS)
    reference: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    facts: list[str] = Field(default_factory=list, max_length=50)
    context: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    should_refuse: bool = False

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        # Numbers are common ids; a bool is not (True would become "True").
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


def validated[M: BaseModel](model: type[M], raw: object, where: str, shape: str) -> M:
    """``raw`` (parsed JSON or YAML) as a ``model``; EvaluationInputError says "{where} must be
    {shape}." when it is not an object, "{where}: {field}: {problem}." when a field is wrong."""
    if not isinstance(raw, dict):
        raise EvaluationInputError(f"{where} must be {shape}.")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        problem = str(first["msg"]).removeprefix("Value error, ")
        raise EvaluationInputError(
            f"{where}: {field}: {problem}." if field else f"{where}: {problem}."
        ) from None


def parse_dataset(text: str, path: str) -> list[tuple[int, DatasetItem]]:
    """(line number, item) for every non-blank line; EvaluationInputError names the first bad
    line. Ids must be unique: scores are keyed by them."""
    items: list[tuple[int, DatasetItem]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationInputError(
                f"{path} line {number} is not valid JSON ({exc.msg} at column {exc.colno})."
            ) from None
        item = validated(DatasetItem, raw, f"{path} line {number}", "a JSON object")
        if item.id in seen:
            raise EvaluationInputError(
                f"{path} line {number}: id {item.id!r} is already used on line {seen[item.id]}."
            )
        seen[item.id] = number
        items.append((number, item))
        if len(items) > MAX_ITEMS:
            raise EvaluationInputError(f"{path} has more than {MAX_ITEMS} items.")
    if not items:
        raise EvaluationInputError(f"{path} has no items (one JSON object per line).")
    return items


def item_at(text: str, line: int) -> DatasetItem:
    """The item on ``line`` (1-based) of a dataset already validated at launch."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        raise EvaluationInputError(f"the dataset has no line {line}.")
    try:
        return DatasetItem.model_validate(json.loads(lines[line - 1]))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise EvaluationInputError(f"line {line} is not a valid item: {exc}") from None

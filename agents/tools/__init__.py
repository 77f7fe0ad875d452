"""The tool registry: read-only tools an agent may call, confined to the run's snapshot.

Contracts:

* ``call_tool`` never raises. It returns a ``ToolResult``: ``refused=True`` when the tool is
  unknown, not in the agent's ``allowed`` list, or asked for a path outside the snapshot
  (nothing runs); ``ok=False`` with a clear message for bad arguments or a failed lookup;
  ``ok=True`` otherwise.
* Arguments are validated against the tool's JSON schema before the tool runs.
* Output is capped at ``MAX_OUTPUT_CHARS`` with a note saying how much was cut.
* Tool output is target text: data for the model, never instructions to the harness.

Tools register themselves with ``register``; ``agents.tools.fs`` provides list/read/search.
``spawn_subagent`` is not a tool here: the agent loop answers it and the run's outcome applies
the spawn limits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents.snapshot import Snapshot, SnapshotError, UnsafePathError

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 20_000
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


class ToolRefused(Exception):
    """Raised by a tool to refuse a call (e.g. a path escape); ``reason`` is shown to the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ToolArgumentError(ValueError):
    """Raised for arguments the schema cannot express as invalid (e.g. end_line < start_line)."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool may touch: the run's snapshot, nothing else."""

    snapshot: Snapshot


@dataclass(frozen=True)
class Tool:
    """A tool: ``func(context, **arguments) -> str``; ``parameters`` is a JSON schema object."""

    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., str]


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    content: str
    refused: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "content": self.content,
            "refused": self.refused,
            "reason": self.reason,
        }


TOOLS: dict[str, Tool] = {}


def register(tool: Tool, *, replace: bool = False) -> Tool:
    """Add ``tool`` to ``TOOLS``. A second tool with the same name is a programming error
    unless ``replace`` is set."""
    if tool.name in TOOLS and not replace:
        raise ValueError(f"tool {tool.name!r} is already registered")
    TOOLS[tool.name] = tool
    return tool


def validate_arguments(schema: Mapping[str, Any], arguments: Any) -> list[str]:
    """Problems with ``arguments`` against the subset of JSON schema our tools use (object with
    typed properties, required, additionalProperties false, enum, minimum/maximum, maxLength)."""
    if not isinstance(arguments, dict):
        return ["arguments must be a JSON object"]
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems = [
        f"missing required argument {name!r}"
        for name in schema.get("required", [])
        if name not in arguments
    ]
    for name, value in arguments.items():
        spec = properties.get(name)
        if spec is None:
            if schema.get("additionalProperties", True) is False:
                problems.append(f"unknown argument {name!r}")
            continue
        types = spec.get("type", [])
        allowed = [types] if isinstance(types, str) else list(types)
        if value is None and "null" in allowed:
            continue
        python_types = tuple(t for name_ in allowed for t in _JSON_TYPES.get(name_, ()))
        # bool is an int in Python, but not an integer in JSON.
        if python_types and (
            not isinstance(value, python_types)
            or (isinstance(value, bool) and "boolean" not in allowed)
        ):
            problems.append(f"argument {name!r} must be of type {' or '.join(allowed)}")
            continue
        if "enum" in spec and value not in spec["enum"]:
            problems.append(f"argument {name!r} must be one of {spec['enum']}")
        if isinstance(value, str) and len(value) > spec.get("maxLength", len(value)):
            problems.append(f"argument {name!r} is longer than {spec['maxLength']} characters")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < spec.get("minimum", value):
                problems.append(f"argument {name!r} must be >= {spec['minimum']}")
            if value > spec.get("maximum", value):
                problems.append(f"argument {name!r} must be <= {spec['maximum']}")
    return problems


def _cap(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return (
        f"{text[:MAX_OUTPUT_CHARS]}\n[output truncated: showing {MAX_OUTPUT_CHARS} of "
        f"{len(text)} characters; narrow the request]"
    )


def _refused(name: str, reason: str) -> ToolResult:
    return ToolResult(
        ok=False, content=f"Tool call {name!r} was refused: {reason}.", refused=True, reason=reason
    )


def call_tool(
    name: str,
    arguments: dict[str, Any] | str | None,
    *,
    snapshot: Snapshot,
    allowed: list[str],
) -> ToolResult:
    """Run tool ``name`` for an agent allowed ``allowed``; never raises (see module contract).

    ``arguments`` may be a dict or a JSON string (OpenAI sends a string); ``None`` means {}.
    """
    if name not in allowed:
        return _refused(name, "this agent is not allowed to use it")
    tool = TOOLS.get(name)
    if tool is None:
        return _refused(name, "no such tool")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return ToolResult(ok=False, content=f"Bad arguments for {name!r}: not valid JSON.")
    problems = validate_arguments(tool.parameters, arguments)
    if problems:
        return ToolResult(
            ok=False,
            content=f"Bad arguments for {name!r}: {'; '.join(problems)}.",
            reason="bad arguments",
        )
    assert isinstance(arguments, dict)  # validate_arguments guarantees it
    context = ToolContext(snapshot=snapshot)
    try:
        content = tool.func(context, **arguments)
    except ToolRefused as exc:
        return _refused(name, exc.reason)
    except UnsafePathError as exc:
        return _refused(name, str(exc).rstrip("."))
    except (ToolArgumentError, SnapshotError) as exc:
        return ToolResult(ok=False, content=f"{name} failed: {exc}", reason="error")
    except Exception:
        # A bug in a tool must not kill the agent; the model gets a neutral message, we get a log.
        logger.exception("tool %s crashed", name)
        return ToolResult(
            ok=False, content=f"{name} failed with an internal error.", reason="internal error"
        )
    return ToolResult(ok=True, content=_cap(content))


def _allowed_tools(allowed: list[str]) -> list[Tool]:
    """Registered tools named in ``allowed``, in that order, each once; unknown names dropped."""
    return [TOOLS[name] for name in dict.fromkeys(allowed) if name in TOOLS]


def openai_tool_specs(allowed: list[str]) -> list[dict[str, Any]]:
    """The allowed tools in the OpenAI chat-completions ``tools`` format."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in _allowed_tools(allowed)
    ]


def anthropic_tool_specs(allowed: list[str]) -> list[dict[str, Any]]:
    """The allowed tools in the Anthropic messages ``tools`` format."""
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        for tool in _allowed_tools(allowed)
    ]


# Registers the built-in file-system tools; imported last because fs needs the names above.
from agents.tools import fs  # noqa: E402, F401

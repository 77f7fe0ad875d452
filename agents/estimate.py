"""What a planned run may cost before it starts: tokens from the files' sizes, then priced.

It is an estimate and says how it is made. Each agent reads its scope once: the bytes of its
files ÷ 4 tokens (an agent that depends on others reads their output instead, counted at their
role's max output tokens). It writes at most its role's max output tokens. A run that
escalates (tiered models) counts one depth agent per breadth agent, at the depth model's price.
The low end of the cost counts the reading alone, the high end adds every agent's full output.
Tool steps that
re-read context, sub-agents spawned later and the aggregation's model stages can cost more; the
run's budget is the ceiling that holds whatever happens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from agents.contract import Usage
from agents.planning import TaskSpec
from agents.playbooks import (
    CRITIQUE_STEP,
    DEPTH_ROLE,
    NON_WORKER_ROLES,
    REPORT_STEP,
    REPORT_STEP_ROLES,
    Playbook,
    report_step_spec,
)
from agents.pricing import price_call
from agents.providers.catalog import default_model, get_provider
from agents.tiers import MAX_ITEMS, escalates

BYTES_PER_TOKEN = 4
TIMES = "\u00d7"  # the multiplication sign, written so no linter mistakes it for an x
# How the agents of each decomposition are counted: "N agents (3 lenses x 2 chunks)".
SCOPE_NOUNS = {
    "domain": "chunk",
    "perspective": "document",
    "ensemble": "voter",
    "hierarchical": "document",
    "sampling": "document",
}


@dataclass(frozen=True)
class RoleCost:
    role: str
    provider: str
    model: str
    agents: int
    input_tokens: int
    output_tokens: int  # the most they may write
    low_usd: Decimal | None  # None: no price known for the model
    high_usd: Decimal | None


@dataclass(frozen=True)
class CostEstimate:
    roles: list[RoleCost]
    offline: bool  # every role runs on the offline analyzer: no real money is spent

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self.roles)

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.roles)

    @property
    def unpriced(self) -> list[str]:
        return sorted({r.model for r in self.roles if r.low_usd is None})

    @property
    def low_usd(self) -> Decimal:
        return sum((r.low_usd for r in self.roles if r.low_usd is not None), Decimal(0))

    @property
    def high_usd(self) -> Decimal:
        return sum((r.high_usd for r in self.roles if r.high_usd is not None), Decimal(0))


def _tokens(size: int) -> int:
    return math.ceil(size / BYTES_PER_TOKEN)


def estimate_cost(
    playbook: Playbook, specs: list[TaskSpec], files: dict[str, dict[str, object]], provider: str
) -> CostEstimate:
    """Price ``specs`` (a plan of ``playbook``, already resolved for the run) on ``files`` (the
    manifest's path → {"size"}); ``provider`` is the run's, for roles that name none."""
    max_out = {role: spec.max_tokens for role, spec in playbook.roles.items()}
    by_key = {spec.key: spec for spec in specs}
    totals: dict[str, list[int]] = {}  # role -> [agents, input tokens, output tokens]
    for spec in specs:
        scope = spec.scope
        paths = list(scope.get("files") or [])
        if scope.get("document"):
            paths.append(str(scope["document"]))
        size = sum(int(str(files[p]["size"])) for p in paths if p in files)
        reads = _tokens(size) + sum(max_out[by_key[key].role] for key in spec.depends_on)
        row = totals.setdefault(spec.role, [0, 0, 0])
        row[0] += 1
        row[1] += reads
        row[2] += max_out[spec.role]
    _add_report_agents(playbook, specs, provider, totals)
    _add_depth_agents(playbook, specs, files, totals)
    roles = []
    for role, (agents, input_tokens, output_tokens) in totals.items():
        agent = playbook.roles.get(role) or report_step_spec(playbook, REPORT_ROLE_STEPS[role])
        name = agent.provider or provider
        model = agent.model or default_model(name)
        kind = str(getattr(get_provider(name), "kind", name))
        low = price_call(kind, name, model, Usage(input_tokens, 0)).cost_usd
        high = price_call(kind, name, model, Usage(input_tokens, output_tokens)).cost_usd
        roles.append(RoleCost(role, name, model, agents, input_tokens, output_tokens, low, high))
    offline = all(getattr(get_provider(r.provider), "kind", "") == "heuristic" for r in roles)
    return CostEstimate(roles, offline)


# The report agents read condensed clusters, at most 60 items of about 90 tokens, plus the
# prompt (and the critic the narrative): a ceiling, whatever the number of findings.
REPORT_AGENT_INPUT_TOKENS = 60 * 90 + 2_000
REPORT_ROLE_STEPS = {role: step for step, role in REPORT_STEP_ROLES.items()}


def _add_report_agents(
    playbook: Playbook, specs: list[TaskSpec], provider: str, totals: dict[str, list[int]]
) -> None:
    """The synthesis and critic agents a run adds at its end when their role has a model."""
    wanted = {REPORT_STEP: "synthesis", CRITIQUE_STEP: "critic"}
    for step, chain_step in wanted.items():
        spec = report_step_spec(playbook, step)
        name = spec.provider or provider
        if chain_step not in playbook.aggregation or not getattr(get_provider(name), "is_llm", 0):
            continue
        if step == REPORT_STEP and any(s.step == "synthesize" for s in specs):
            continue  # the plan's own synthesis agent writes the narrative
        row = totals.setdefault(spec.role, [0, 0, 0])
        row[0] += 1
        row[1] += REPORT_AGENT_INPUT_TOKENS
        row[2] += spec.max_tokens


# What a depth agent reads besides its items' lines: the prompt, and each item as JSON.
DEPTH_PROMPT_TOKENS = 600
DEPTH_ITEM_TOKENS = 250


def _add_depth_agents(
    playbook: Playbook,
    specs: list[TaskSpec],
    files: dict[str, dict[str, object]],
    totals: dict[str, list[int]],
) -> None:
    """Tiered models: at most one depth agent per breadth agent, reading at most that agent's
    files (the lines around its items, or the whole file offline) and up to ``MAX_ITEMS``
    items. An upper bound: only agents with an item over a threshold escalate."""
    if not escalates(playbook.roles, playbook.options):
        return
    depth = playbook.roles[DEPTH_ROLE]
    row = totals.setdefault(DEPTH_ROLE, [0, 0, 0])
    for spec in specs:
        if spec.role in NON_WORKER_ROLES or spec.depends_on:
            continue
        size = sum(int(str(files[p]["size"])) for p in spec.scope.get("files") or [] if p in files)
        row[0] += 1
        row[1] += _tokens(size) + DEPTH_PROMPT_TOKENS + DEPTH_ITEM_TOKENS * MAX_ITEMS
        row[2] += depth.max_tokens


def describe_plan(playbook: Playbook, specs: list[TaskSpec]) -> str:
    """How the agents multiply, e.g. "3 lenses x 4 chunks" or "5 readers + 1 synthesis agent"
    (with a multiplication sign)."""
    noun = SCOPE_NOUNS.get(playbook.decomposition, "scope")
    lens_word = "persona" if playbook.decomposition == "perspective" else "lens"
    leaves = [s for s in specs if not s.depends_on]
    lenses = len({s.lens for s in leaves})
    scopes = len({repr(sorted(s.scope.items())) for s in leaves})
    parts = f"{_count(lenses, lens_word)} {TIMES} {_count(scopes, noun)}"
    if playbook.decomposition in ("hierarchical", "sampling"):
        parts = _count(scopes, "reader")
    joined = [s for s in specs if s.depends_on]
    if joined:
        parts += f" + {_count(len(joined), 'synthesis agent')}"
    return parts


def _count(n: int, word: str) -> str:
    plural = {"lens": "lenses", "synthesis agent": "synthesis agents"}.get(word, f"{word}s")
    return f"{n} {word if n == 1 else plural}"

"""Playbooks: declarative descriptions of a kind of run.

A playbook says how a snapshot is decomposed into agent tasks (strategy + lenses), which agent
spec each role uses (provider, model, tools, limits, critical or optional, approval), the default
limits, the failure policy and the aggregation chain. The launch form and ``launch_run`` may
override provider/model per role and the limits; the resolved playbook is frozen into
``Run.config`` so a run can always be explained and re-planned identically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

CODE_LENSES = ("security", "reliability", "maintainability")
DOC_PERSONAS = ("editor", "skeptic", "legal", "security", "accessibility", "clarity")
READ_TOOLS = ("list_dir", "read_file", "search")
# Defaults of options read outside this module, declared here so that ``Playbook.options`` is
# the whole list of what a playbook can be tuned by (``--set`` refuses anything else):
# how much one auditor takes before it splits its files between sub-agents (the offline
# analyzer), and how many documents a document synthesis reads before it samples.
AGENT_MAX_FILES = 6
AGENT_MAX_BYTES = 48_000
MAX_DOCUMENTS = 200


@dataclass(frozen=True)
class AgentSpec:
    role: str
    provider: str | None = None  # None = the run's provider
    model: str | None = None  # None = the provider's default model
    tools: tuple[str, ...] = READ_TOOLS
    max_tokens: int = 2048
    max_steps: int = 8
    critical: bool = False
    needs_approval: bool = False
    can_spawn: bool = True


@dataclass(frozen=True)
class FailurePolicy:
    """``all``: wait for every agent; ``quorum``: at least ``quorum`` of the optional agents must
    succeed; ``fail_fast``: the first failure fails the run. A failed critical agent always
    fails the run."""

    mode: Literal["all", "quorum", "fail_fast"] = "all"
    quorum: int = 1


@dataclass(frozen=True)
class Playbook:
    name: str
    title: str
    description: str
    target_kind: Literal["code", "documents", "document", "dataset"]
    decomposition: Literal[
        "domain", "perspective", "sampling", "hierarchical", "ensemble", "evaluation"
    ]
    lenses: tuple[str, ...]
    roles: dict[str, AgentSpec]
    aggregation: tuple[str, ...]
    failure: FailurePolicy = FailurePolicy()
    max_concurrency: int = 4
    budget_usd: float = 5.0
    max_depth: int = 3
    max_children: int = 8
    max_agents: int = 500
    options: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        data = asdict(self)
        data["roles"] = {name: asdict(spec) for name, spec in self.roles.items()}
        return data

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Playbook:
        data = dict(data)
        data["roles"] = {
            name: AgentSpec(**{**spec, "tools": tuple(spec["tools"])})
            for name, spec in data["roles"].items()
        }
        data["failure"] = FailurePolicy(**data["failure"])
        data["lenses"] = tuple(data["lenses"])
        data["aggregation"] = tuple(data["aggregation"])
        return cls(**data)

    def with_overrides(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        role_models: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        aggregation: list[str] | None = None,
        hold_agents: bool = False,
    ) -> Playbook:
        """``hold_agents``: every agent waits for a reviewer's approval before it starts."""
        roles = {}
        for name, spec in self.roles.items():
            if hold_agents:
                spec = replace(spec, needs_approval=True)
            if provider:
                spec = replace(spec, provider=provider)
            if model:
                spec = replace(spec, model=model)
            if role_models and role_models.get(name):
                spec = replace(spec, model=role_models[name])
            roles[name] = spec
        merged = {**self.options, **(options or {})}
        if merged.get("depth_model") and DEPTH_ROLE in roles:  # ``--set depth_model=...``
            roles[DEPTH_ROLE] = replace(roles[DEPTH_ROLE], model=str(merged["depth_model"]))
        chain = tuple(aggregation) if aggregation is not None else self.aggregation
        return replace(self, roles=roles, options=merged, aggregation=chain)


STANDARD_CHAIN = ("dedup", "quorum", "confidence", "synthesis", "critic")

# The report's own agents, created once every worker agent is done, when the role that writes
# the step has a language model: "report" writes the narrative from condensed clusters (the
# synthesizer role), "critique" challenges the serious clusters (the critic role). With the
# offline analyzer both steps stay deterministic inside aggregation.
REPORT_STEP = "report"
CRITIQUE_STEP = "critique"
REPORT_STEPS = (REPORT_STEP, CRITIQUE_STEP)
REPORT_STEP_ROLES = {REPORT_STEP: "synthesizer", CRITIQUE_STEP: "critic"}
# The model-written steps read their inputs and answer once: no tools, no sub-agents.
REPORT_AGENT = AgentSpec(role="synthesizer", tools=(), can_spawn=False, max_steps=1)
CRITIC = AgentSpec(role="critic", tools=(), can_spawn=False, max_steps=1)
# An evaluation's judge reads one item given in its prompt and answers once.
JUDGE = AgentSpec(role="judge", tools=(), can_spawn=False, max_steps=1, max_tokens=512)


# A judged ensemble's judges (``agents.judging``): they read the candidates given in their
# prompt and answer once. Its own role, so ``--role-model referee=...`` picks their model.
REFEREE = AgentSpec(role="referee", tools=(), can_spawn=False, max_steps=1, max_tokens=512)

# Tiered models (``agents.tiers``): the depth role re-examines what a breadth agent escalated.
# It reads the items and their lines given in its scope and answers once.
DEPTH_ROLE = "verifier"
VERIFY_STEP = "verify"
VERIFIER = AgentSpec(role=DEPTH_ROLE, tools=(), can_spawn=False, max_steps=1, max_tokens=1024)

# Roles that never do a playbook's own work: the synthesis step (planned or the report's), the
# report's critic, a judged ensemble's referees and the depth tier's verifiers.
NON_WORKER_ROLES = frozenset({"synthesizer", "critic", "referee", DEPTH_ROLE})


def worker_role(playbook: Playbook) -> str:
    """The role of the agents a plan creates. Never the first key of ``roles``: a run's frozen
    config round-trips through PostgreSQL's jsonb, which does not keep key order."""
    names = [name for name in playbook.roles if name not in NON_WORKER_ROLES]
    return sorted(names)[0] if names else sorted(playbook.roles)[0]


def report_step_spec(playbook: Playbook, step: str) -> AgentSpec:
    """The spec of a report step's role; runs frozen before the critic role existed get the
    default one."""
    role = REPORT_STEP_ROLES[step]
    return playbook.roles.get(role) or (CRITIC if role == "critic" else REPORT_AGENT)


def _roles(worker: AgentSpec, *, critical_synthesis: bool = False) -> dict[str, AgentSpec]:
    """Every playbook's roles: its workers', the planned synthesis step's (which reads what the
    workers found: no tools, no sub-agents) and the report's critic."""
    synthesizer = AgentSpec(
        role="synthesizer", tools=(), critical=critical_synthesis, can_spawn=False
    )
    return {worker.role: worker, "synthesizer": synthesizer, "critic": CRITIC}


PLAYBOOKS: dict[str, Playbook] = {
    p.name: p
    for p in [
        Playbook(
            name="codebase-audit",
            title="Codebase audit",
            description=(
                "Splits a codebase into size-balanced chunks of files and reviews each chunk "
                "through three lenses: security, reliability/error handling and "
                "maintainability. Agents may split chunks that are too big for one of them."
            ),
            target_kind="code",
            decomposition="domain",
            lenses=CODE_LENSES,
            roles={**_roles(AgentSpec(role="auditor")), DEPTH_ROLE: VERIFIER},
            aggregation=STANDARD_CHAIN,
            # ``escalate_severity`` / ``escalate_confidence``: the breadth agents' items at or
            # above that severity, or below that confidence, go to a depth agent (``verifier``
            # role, on ``depth_model``); blank / 0 = off (``agents.tiers``).
            options={
                "chunk_bytes": 24_000,
                "chunk_files": 6,
                "agent_max_files": AGENT_MAX_FILES,
                "agent_max_bytes": AGENT_MAX_BYTES,
                # Scouts first, more agents where they find more (``agents.adaptive``).
                "adaptive": False,
                "escalate_severity": "",
                "escalate_confidence": 0.0,
                "depth_model": "",
            },
        ),
        Playbook(
            name="document-synthesis",
            title="Document synthesis",
            description=(
                "One reader agent per document extracts its key points; a synthesis agent then "
                "combines them into one account of shared themes and outliers."
            ),
            target_kind="documents",
            decomposition="hierarchical",
            lenses=("summary",),
            # The synthesis is the point of this playbook: without it the run has failed.
            roles=_roles(AgentSpec(role="reader", can_spawn=False), critical_synthesis=True),
            aggregation=("dedup", "confidence", "synthesis", "critic"),
            failure=FailurePolicy(mode="quorum", quorum=1),
            options={"max_documents": MAX_DOCUMENTS},
        ),
        Playbook(
            name="multi-perspective-review",
            title="Multi-perspective review",
            description=(
                "One document reviewed by six expert personas (editor, skeptic, legal, "
                "security, accessibility, clarity); their findings are merged and ranked."
            ),
            target_kind="document",
            decomposition="perspective",
            lenses=DOC_PERSONAS,
            roles=_roles(AgentSpec(role="reviewer", can_spawn=False)),
            aggregation=STANDARD_CHAIN,
            # Blank: the largest document of the target; "*": every document x every persona.
            options={"document": ""},
        ),
        Playbook(
            name="ensemble",
            title="Ensemble",
            description=(
                "K independent agents do the same task on seeded samples of the target; "
                "findings are kept when a quorum of agents agree (voting), or, with mode = "
                "judge, judge agents pick the best candidate (pairwise in both orders, or "
                "rubric scores)."
            ),
            target_kind="code",
            decomposition="ensemble",
            lenses=("security",),
            roles={**_roles(AgentSpec(role="voter", can_spawn=False)), "referee": REFEREE},
            aggregation=("dedup", "quorum", "confidence", "synthesis", "critic"),
            failure=FailurePolicy(mode="quorum", quorum=2),
            # ``mode``: vote (quorum of the voters' findings) or judge (``agents.judging``);
            # ``judging``: pairwise or rubric, read in judge mode. ``voter_models``: models the
            # voters take in turn (comma-separated; empty = the voter role's model for all).
            options={
                "k": 5,
                "sample_fraction": 0.8,
                "vote_quorum": 2,
                "mode": "vote",
                "judging": "pairwise",
                "voter_models": "",
            },
        ),
        Playbook(
            name="evaluation",
            title="Evaluation",
            description=(
                "Scores a model's answers: one judge agent per item of dataset.jsonl and "
                "dimension of the rubric (built-in or the target's rubric.yaml), or of a.jsonl "
                "and b.jsonl to compare two; a scorecard with intervals, agreement and "
                "A/B win rates."
            ),
            target_kind="dataset",
            decomposition="evaluation",
            lenses=(),
            roles={
                "judge": JUDGE,
                "synthesizer": AgentSpec(role="synthesizer", tools=(), can_spawn=False),
                "critic": CRITIC,
            },
            # No dedup: every low score is its own item's, however alike the wording.
            aggregation=("confidence", "synthesis", "critic"),
            max_concurrency=8,
            budget_usd=10.0,
            max_agents=2000,
            # ``dimensions``: names separated by commas (blank: the rubric's, or the built-in
            # default); ``judges``: judge agents per item x dimension.
            options={"dimensions": "", "judges": 1},
        ),
    ]
}


def get_playbook(name: str) -> Playbook:
    try:
        return PLAYBOOKS[name]
    except KeyError:
        known = ", ".join(sorted(PLAYBOOKS))
        raise ValueError(f"Unknown playbook {name!r}. Known playbooks: {known}") from None


# The playbook options the launch form offers (each shown for the playbooks that have it), in
# the order the form shows them; the rest are ``launch_run --set`` only.
FORM_OPTIONS = (
    "k",
    "mode",
    "judging",
    "voter_models",
    "dimensions",
    "judges",
    "chunk_files",
    "adaptive",
    "escalate_severity",
    "escalate_confidence",
    "document",
)

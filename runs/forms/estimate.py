"""The launch form's estimate: how many agents a launch would plan, what it may cost, and the
refusals the launch would give, from the form's current values. Nothing is written.

The target is listed, not frozen: ``freeze_directory(..., store=None)`` reads every file with
the same checks and gives the same manifest and digest a launch would freeze, without copying a
byte into the snapshot store. Planning is deterministic, so the count is the one the run plans.
An uploaded archive is only read at launch: the estimate covers listed targets.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from agents.estimate import CostEstimate, describe_plan, estimate_cost
from agents.planning import EVERY_DOCUMENT, PlanningError, document_paths, pick_document, plan
from agents.playbooks import PLAYBOOKS, Playbook
from agents.snapshot import SnapshotError, freeze_directory
from runs.actions.launch import check_provider, plan_target, resolve_config, run_excludes
from runs.actions.launch_options import BUDGET_USD_MAX, LaunchError
from runs.forms.launch import LaunchForm

# Fields whose errors stop an estimate (the rest of the form does not change the plan).
ESTIMATE_FIELDS = (
    "playbook",
    "target",
    "provider",
    "model",
    "max_agents",
    "k",
    "chunk_files",
    "document",
    "exclude",
)


CENT = Decimal("0.01")


@dataclass
class Refusal:
    field: str
    message: str


@dataclass
class Estimate:
    """``problems``: the input cannot be estimated (field → message). Otherwise ``agents`` is
    the number of agents the plan needs (known even when launch would refuse it)."""

    playbook: Playbook | None = None
    problems: dict[str, str] = field(default_factory=dict)
    agents: int | None = None
    breakdown: str = ""
    max_agents: int | None = None
    cost: CostEstimate | None = None
    refusals: list[Refusal] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    document: str = ""  # the one a one-document review reads; "" when fanned out or unknown
    fan_out: bool = False
    limit: int = 0  # settings.HARNESS_MAX_AGENTS
    budget_usd: Decimal | None = None  # the form's USD ceiling; None when blank or invalid
    # What the snapshot leaves out on purpose: (why, how many files or folders), most first.
    excluded: list[tuple[str, int]] = field(default_factory=list)

    @property
    def excluded_total(self) -> int:
        return sum(n for _, n in self.excluded)

    @property
    def launchable(self) -> bool:
        return not self.problems and not self.refusals

    @property
    def over_budget_usd(self) -> Decimal | None:
        """How far the cost range's upper end is above the USD budget; None within it. Not a
        refusal (the launch accepts it: the budget is a ceiling), but the run may stop with it
        spent before every agent is done, so the page must say so rather than "nothing"."""
        if self.cost is None or self.budget_usd is None:
            return None
        over = self.cost.high_usd - self.budget_usd
        return over if over > 0 else None

    @property
    def over_budget_text(self) -> str:
        return _usd(self.over_budget_usd)

    @property
    def budget_text(self) -> str:
        return _usd(self.budget_usd)

    @property
    def covering_budget_usd(self) -> Decimal | None:
        """The budget that covers the upper end, to the cent above it; None when even the
        highest budget a launch takes does not."""
        if self.cost is None:
            return None
        cents = self.cost.high_usd.quantize(CENT, rounding=ROUND_CEILING)
        amount = max(CENT, cents)
        return amount if amount <= BUDGET_USD_MAX else None


def _usd(amount: Decimal | None) -> str:
    """An amount as the over-budget warning shows it (without the $): four decimals, six below
    $0.0001 so a micro-dollar budget does not read "$0.0000"; rounded half up, as the
    template's floatformat rounds."""
    if amount is None:
        return ""
    places = Decimal("0.000001") if amount < Decimal("0.0001") else Decimal("0.0001")
    return str(amount.quantize(places, rounding=ROUND_HALF_UP))


def estimate_launch(form: LaunchForm) -> Estimate:
    """Estimate the launch ``form`` describes; ``form`` is bound and validated here, and learns
    the target's documents (for its document select)."""
    form.is_valid()
    result = Estimate(limit=settings.HARNESS_MAX_AGENTS)
    data = form.cleaned_data
    result.budget_usd = data.get("budget_usd")
    for name in ESTIMATE_FIELDS:
        if name == "provider" and not form.data.get("provider"):
            continue  # blank: the offline analyzer, as at launch
        if form.errors.get(name):
            result.problems[name] = " ".join(str(e) for e in form.errors[name])
    book = PLAYBOOKS.get(data.get("playbook") or "")
    result.playbook = book
    if book is None or "playbook" in result.problems:
        result.problems.setdefault("playbook", "Choose a playbook.")
        return result
    if not form.data.get("target"):
        result.problems["target"] = (
            "Choose a listed target to see an estimate (an archive is read at launch)."
        )
    if result.problems:
        return result
    provider = data.get("provider") or "heuristic"
    try:
        check_provider(provider)
    except LaunchError as exc:
        result.refusals.append(Refusal("provider", str(exc)))
    try:
        config = resolve_config(
            book,
            provider=provider,
            model=data.get("model") or None,
            role_models=form.launch_kwargs()["role_models"],
            options=form.options,
        )
        manifest = freeze_directory(
            data["target"], settings.HARNESS_TARGET_ROOTS, None, exclude=run_excludes(config)
        ).to_dict()
    except (LaunchError, SnapshotError) as exc:
        result.problems[getattr(exc, "field", None) or "target"] = str(exc)
        return result
    result.max_agents = config["max_agents"]
    result.excluded = _excluded(manifest)
    _documents(result, book, config, manifest, form)
    try:
        specs = plan_target(config, manifest)
    except LaunchError as exc:
        result.refusals.append(Refusal(exc.field or "target", str(exc)))
        specs = _uncapped_plan(config, manifest)
    if specs:
        playbook = Playbook.from_config(config)
        result.agents = len(specs)
        result.breakdown = describe_plan(playbook, specs)
        result.cost = estimate_cost(playbook, specs, manifest["files"], provider)
    return result


def _excluded(manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """The manifest's excluded entries by reason, in words a form reader knows: the default's
    category ("translation catalogue") or the glob ("--exclude 'docs/'")."""
    counts = [
        (reason.removeprefix("excluded by default: ").removeprefix("excluded by "), n)
        for reason, n in manifest.get("skipped_counts", {}).items()
        if reason.startswith("excluded by ")
    ]
    return sorted(counts, key=lambda item: (-item[1], item[0]))


def _uncapped_plan(config: dict[str, Any], manifest: dict[str, Any]) -> list[Any]:
    """The plan without the max-agents cap, to say how many agents a refused target needs;
    empty when it cannot be planned at all (no code for an audit, a missing document)."""
    try:
        return plan(replace(Playbook.from_config(config), max_agents=sys.maxsize), manifest)
    except PlanningError:
        return []


def _documents(
    result: Estimate, book: Playbook, config: dict[str, Any], manifest: dict[str, Any], form: Any
) -> None:
    """For the one-document review: which document it reads, and the others to pick from."""
    if "document" not in book.options:
        return
    result.documents = document_paths(manifest)
    form.offer_documents(result.documents)
    wanted = config["options"].get("document") or None
    if wanted == EVERY_DOCUMENT:
        result.fan_out = True
        return
    try:
        result.document = pick_document(manifest, wanted)
    except PlanningError:
        result.document = ""  # plan_target names the missing document

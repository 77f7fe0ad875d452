"""The launch form. It checks shapes and choices; ``runs.actions.launch_run`` checks meaning
(target confinement, archive safety, limits) and its ``LaunchError.field`` lands on the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator

from agents.aggregation.stages import AGGREGATION_STEPS
from agents.budget_scopes import DEFAULT_SPLIT, SPLITS
from agents.judging.plan import choice_problem
from agents.planning import EVERY_DOCUMENT, PlanningError, voter_models
from agents.playbooks import PLAYBOOKS
from agents.providers.catalog import missing_key_variable, provider_choices
from agents.snapshot import DEFAULT_EXCLUDES
from agents.tiers import SEVERITIES
from runs.actions.launch_options import (
    BUDGET_USD_MAX,
    BUDGET_USD_STEP,
    OPTION_LABELS,
    LaunchError,
    check_options,
    launch_bounds,
    offered_options,
    option_bounds,
)
from runs.targets import available_targets


def _bounded(name: str, **kwargs: Any) -> forms.IntegerField:
    low, high = launch_bounds()[name]
    return forms.IntegerField(min_value=low, max_value=high, **kwargs)


def _option(name: str, help_text: str) -> forms.CharField:
    """A playbook option. Text, not a number field: options of a playbook other than the chosen
    one are ignored, even garbage, so ``clean`` checks only the chosen playbook's (with the bounds
    of ``runs.actions.launch``); min/max still reach the browser's number input."""
    low, high = option_bounds()[name]
    widget = forms.NumberInput(attrs={"min": low, "max": high, "step": 1})
    return forms.CharField(
        required=False, label=OPTION_LABELS[name], help_text=help_text, widget=widget
    )


def document_choices(documents: list[str], current: str = "") -> list[tuple[str, str]]:
    """The choices of the document option: automatic, every document, then the target's."""
    choices = [
        ("", "The largest document (automatic)"),
        (EVERY_DOCUMENT, "Every document, each read by every persona (fan out)"),
        *((path, path) for path in documents),
    ]
    if current and current not in dict(choices):
        choices.append((current, current))  # kept as typed; the estimate says if it is missing
    return choices


def all_roles() -> dict[str, list[str]]:
    """Role name → the playbooks that use it (role model fields are shared across playbooks)."""
    roles: dict[str, list[str]] = {}
    for name, playbook in PLAYBOOKS.items():
        for role in playbook.roles:
            roles.setdefault(role, []).append(name)
    return roles


class TargetField(forms.ChoiceField):
    """A listed target, chosen by its name under the allowed root (``samples/app/``): the page
    never shows where the server keeps it. The absolute path of a listed target is accepted as
    well (scripts written against earlier versions); anything unlisted is an invalid choice.
    Cleans to the absolute path the launch freezes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths: dict[str, str] = {}

    def offer(self, targets: list[tuple[str, str]]) -> None:
        self.paths = {label: path for path, label in targets}
        self.paths.update({path: path for path, _ in targets})
        self.choices = [("", "— choose a target —"), *((label, label) for _, label in targets)]

    def valid_value(self, value: Any) -> bool:
        return str(value) in self.paths

    def clean(self, value: Any) -> str:
        name = super().clean(value)
        return self.paths.get(name, "") if name else ""


class LaunchForm(forms.Form):
    title = forms.CharField(max_length=200, required=False, help_text="Optional; shown in lists.")
    playbook = forms.ChoiceField(widget=forms.RadioSelect)
    target = TargetField(
        required=False,
        help_text="A directory, or one document, under the allowed target roots.",
    )
    archive = forms.FileField(
        required=False, help_text="Or upload a .zip / .tar.gz archive instead of a listed target."
    )
    exclude = forms.CharField(
        required=False,
        max_length=5000,
        label="Exclude",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "tests/\n*.txt"}),
        help_text=(
            "Globs left out of the snapshot, one per line (.gitignore syntax: docs/, *.txt, "
            "!*.po keeps what a default leaves out). Left out by default: "
            + ", ".join(glob for glob, _ in DEFAULT_EXCLUDES)
            + "."
        ),
    )
    no_default_excludes = forms.BooleanField(
        required=False,
        label="Read everything",
        help_text="Turn the default excludes off.",
    )
    provider = forms.ChoiceField(help_text="Used by every role unless a role says otherwise.")
    model = forms.CharField(
        max_length=200,
        required=False,
        help_text="Default model for every role (blank: the provider's default).",
    )
    max_concurrency = _bounded("max_concurrency")
    budget_usd = forms.DecimalField(
        min_value=BUDGET_USD_STEP,
        max_value=BUDGET_USD_MAX,
        max_digits=12,
        decimal_places=6,
        required=False,
        label="Budget (USD)",
    )
    budget_tokens = _bounded("budget_tokens", required=False, label="Budget (tokens)")
    # Every playbook's: its planner groups (folders, documents, voters) and spawned agents.
    budget_split = forms.ChoiceField(
        required=False,
        label="Budget split",
        choices=[(s, s) for s in SPLITS],
        help_text=(
            "How the budget is sliced between groups and agents: none (one shared ceiling), "
            "equal (the same slice each) or size (in proportion to what they read)."
        ),
    )
    max_depth = _bounded("max_depth")
    max_agents = forms.IntegerField(
        min_value=1,
        required=False,
        label="Max agents",
        help_text="Agents this run may have in all; a target that needs more is refused.",
    )
    k = _option("k", "Independent voters; each reads its own seeded sample of the target.")
    # Text with a select widget, like every option: another playbook's value is ignored.
    mode = forms.CharField(
        required=False,
        label="Ensemble mode",
        help_text="vote: findings kept by a quorum of voters; judge: judge agents pick the best "
        "voter's answer.",
        widget=forms.Select(choices=[("vote", "vote"), ("judge", "judge")]),
    )
    judging = forms.CharField(
        required=False,
        label="Judging",
        help_text="In judge mode: pairwise (every pair in both orders, K at most 8) or rubric "
        "(one score per voter).",
        widget=forms.Select(choices=[("pairwise", "pairwise"), ("rubric", "rubric")]),
    )
    voter_models = forms.CharField(
        required=False,
        max_length=2000,
        label="Voter models",
        help_text="Models the voters take in turn, separated by commas (blank: the voter "
        "role's model for every voter).",
    )
    dimensions = forms.CharField(
        required=False,
        max_length=500,
        label="Dimensions",
        help_text="The rubric's dimensions to judge, separated by commas (blank: every one).",
    )
    judges = forms.CharField(
        required=False,
        label="Judges per cell",
        help_text="Independent judges of each item and dimension.",
        widget=forms.NumberInput(attrs={"min": 1, "max": 5, "step": 1}),
    )
    chunk_files = _option("chunk_files", "Files one auditor reads (chunks also stop at a size).")
    adaptive = forms.BooleanField(
        required=False,
        label="Adaptive fan-out",
        help_text="Scouts read a sample of each folder first; more agents go where they find "
        "more, none where they find nothing (those folders are sampled, not read in full).",
    )
    # Tiered models (agents.tiers): what a breadth agent hands to a depth agent (the verifier
    # role, whose model is the "verifier model" field below).
    escalate_severity = forms.CharField(
        required=False,
        label="Escalate severity",
        help_text="Items at or above this severity go to a depth agent on the verifier model, "
        "which confirms, corrects or rejects them.",
        widget=forms.Select(choices=[("", "off"), *((s, s) for s in SEVERITIES)]),
    )
    escalate_confidence = forms.CharField(
        required=False,
        label="Escalate confidence",
        help_text="Items below this confidence (0 to 1) go to a depth agent too; blank or 0: off.",
        widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": 0.05}),
    )
    document = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Select,
        help_text="The document the personas review, or every document.",
    )
    aggregation = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Aggregation chain",
        help_text="Applied in this order once every agent has finished.",
    )
    hold_agents = forms.BooleanField(
        required=False,
        label="Hold agents for approval",
        help_text=(
            "Every agent waits until a reviewer approves it (Approvals page): planned ones, "
            "sub-agents an approved agent spawns, retries and re-runs, and the report's "
            "agents. Approving one starts that one only."
        ),
    )
    latency_ms = _bounded(
        "latency_ms",
        required=False,
        initial=0,
        label="Simulated latency (ms)",
        help_text="Adds a delay per model call: useful to watch the offline analyzer at work.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        playbooks = PLAYBOOKS
        self.playbooks = playbooks
        self._choices("playbook", [(p.name, p.title) for p in playbooks.values()])
        target = self.fields["target"]
        assert isinstance(target, TargetField)
        target.offer(available_targets())
        self._choices("provider", self._provider_choices())
        steps = AGGREGATION_STEPS
        self.aggregation_help = steps
        self._choices("aggregation", [(name, name) for name in steps])
        self.role_fields: list[str] = []
        for role, used_by in all_roles().items():
            name = f"model_{role}"
            self.fields[name] = forms.CharField(
                max_length=200,
                required=False,
                label=f"{role} model",
                help_text=f"Used by {', '.join(used_by)}. Blank: the default model.",
            )
            self.role_fields.append(name)
        first = next(iter(playbooks.values()))
        self.initial.setdefault("playbook", first.name)
        self.initial.setdefault("provider", "heuristic")
        self.initial.setdefault("max_concurrency", first.max_concurrency)
        self.initial.setdefault("budget_usd", Decimal(str(settings.HARNESS_DEFAULT_BUDGET_USD)))
        self.initial.setdefault("max_depth", settings.HARNESS_DEFAULT_MAX_DEPTH)
        self.initial.setdefault("budget_split", DEFAULT_SPLIT)
        self.initial.setdefault("aggregation", list(first.aggregation))
        # Read per form, not at import, so the limit follows the settings in use.
        max_agents = self.fields["max_agents"]
        assert isinstance(max_agents, forms.IntegerField)
        max_agents.max_value = settings.HARNESS_MAX_AGENTS
        max_agents.validators.append(MaxValueValidator(settings.HARNESS_MAX_AGENTS))
        max_agents.widget.attrs.update({"min": 1, "max": settings.HARNESS_MAX_AGENTS})
        self.initial.setdefault("max_agents", min(first.max_agents, settings.HARNESS_MAX_AGENTS))
        # Option name -> the playbooks it applies to (shown without JS; JS hides the others).
        self.option_playbooks: dict[str, list[str]] = {}
        for book in playbooks.values():
            for name in offered_options(book):
                self.option_playbooks.setdefault(name, []).append(book.name)
        self.offer_documents([])

    def _provider_choices(self) -> list[tuple[str, str]]:
        """Providers, those missing their API key marked: launching on them is refused."""
        choices = []
        for name, label in provider_choices():
            variable = missing_key_variable(name)
            choices.append((name, f"{label} — needs {variable}" if variable else label))
        return choices

    def offer_documents(self, documents: list[str]) -> None:
        """Offer the target's documents in the document select (known once it is listed)."""
        current = str(self["document"].value() or "")
        widget = self.fields["document"].widget
        assert isinstance(widget, forms.Select)
        widget.choices = document_choices(documents, current)

    def _choices(self, name: str, choices: list[tuple[str, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("target") and not data.get("archive"):
            self.add_error("target", "Choose a target or upload an archive.")
        elif data.get("target") and data.get("archive"):
            self.add_error("archive", "Choose a listed target or upload an archive, not both.")
        # Only the chosen playbook's options count; the others' fields are ignored entirely.
        book = self.playbooks.get(data.get("playbook") or "")
        self.options: dict[str, Any] = {}
        for name in offered_options(book) if book else []:
            value = data.get(name)
            if value in (None, ""):
                continue
            try:
                self.options.update(check_options({name: value}))
            except LaunchError as exc:
                self.add_error(name, str(exc))
            if problem := choice_problem({name: value}):  # mode, judging
                self.add_error(name, problem[0])
            if name == "voter_models":  # on its own field, not the target's the plan would use
                try:
                    voter_models({name: value})
                except PlanningError as exc:
                    self.add_error(name, str(exc))
        if data.get("max_agents") is not None:
            self.options["max_agents"] = data["max_agents"]
        # Every playbook's: what the snapshot leaves out.
        if data.get("exclude"):
            try:
                self.options.update(check_options({"exclude": data["exclude"]}))
            except LaunchError as exc:
                self.add_error("exclude", str(exc))
        if data.get("no_default_excludes"):
            self.options["default_excludes"] = False
        if self.data.get("budget_split") not in (None, ""):
            # The raw value: a ChoiceField would answer a bad one with a generic message.
            try:
                self.options.update(check_options({"budget_split": self.data["budget_split"]}))
            except LaunchError as exc:
                self.errors.pop("budget_split", None)
                self.add_error("budget_split", str(exc))
        return data

    def launch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``runs.actions.launch_run`` (without ``user``)."""
        data = self.cleaned_data
        steps = list(self.aggregation_help)
        chain = sorted(data.get("aggregation") or [], key=steps.index)
        role_models = {
            name.removeprefix("model_"): data[name] for name in self.role_fields if data.get(name)
        }
        return {
            "playbook": data["playbook"],
            "target_path": data.get("target") or None,
            "archive": data.get("archive"),
            "provider": data.get("provider") or None,
            "model": data.get("model") or None,
            "role_models": role_models or None,
            "max_concurrency": data.get("max_concurrency"),
            "budget_usd": data.get("budget_usd"),
            "budget_tokens": data.get("budget_tokens"),
            "max_depth": data.get("max_depth"),
            "aggregation": chain,
            "latency_ms": data.get("latency_ms") or 0,
            "options": dict(self.options) or None,
            "title": data.get("title") or "",
            "hold_agents": bool(data.get("hold_agents")),
        }

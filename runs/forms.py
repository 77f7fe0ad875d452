"""The launch form. It checks shapes and choices; ``runs.actions.launch_run`` checks meaning
(target confinement, archive safety, limits) and its ``LaunchError.field`` lands on the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings

from agents.aggregation import AGGREGATION_STEPS
from agents.playbooks import PLAYBOOKS
from agents.providers.catalog import provider_choices
from runs.actions.launch import BUDGET_USD_MAX, BUDGET_USD_STEP, LAUNCH_BOUNDS
from runs.models import Run
from runs.targets import available_targets


def _bounded(name: str, **kwargs: Any) -> forms.IntegerField:
    low, high = LAUNCH_BOUNDS[name]
    return forms.IntegerField(min_value=low, max_value=high, **kwargs)


def all_roles() -> dict[str, list[str]]:
    """Role name → the playbooks that use it (role model fields are shared across playbooks)."""
    roles: dict[str, list[str]] = {}
    for name, playbook in PLAYBOOKS.items():
        for role in playbook.roles:
            roles.setdefault(role, []).append(name)
    return roles


class LaunchForm(forms.Form):
    title = forms.CharField(max_length=200, required=False, help_text="Optional; shown in lists.")
    playbook = forms.ChoiceField(widget=forms.RadioSelect)
    target = forms.ChoiceField(
        required=False,
        help_text="A directory, or one document, under the allowed target roots.",
    )
    archive = forms.FileField(
        required=False, help_text="Or upload a .zip / .tar.gz archive instead of a listed target."
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
    max_depth = _bounded("max_depth")
    aggregation = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Aggregation chain",
        help_text="Applied in this order once every agent has finished.",
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
        self._choices("target", [("", "— choose a target —"), *available_targets()])
        self._choices("provider", provider_choices())
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
        self.initial.setdefault("aggregation", list(first.aggregation))

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
            "title": data.get("title") or "",
        }


class RunFilterForm(forms.Form):
    """Filters of the runs list (GET); invalid values are ignored, never an error page."""

    status = forms.ChoiceField(required=False)
    playbook = forms.CharField(required=False, max_length=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        status = self.fields["status"]
        assert isinstance(status, forms.ChoiceField)
        status.choices = [
            ("", "Any status"),
            ("active", "Active"),
            *Run.Status.choices,
        ]


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approved", "Approve"), ("rejected", "Reject")])
    comment = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=4000
    )

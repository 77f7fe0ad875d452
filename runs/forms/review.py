"""A reviewer's forms: one gate's decision, many agents' gates at once, a new report version."""

from __future__ import annotations

from typing import Any

from django import forms

from agents.aggregation.stages import AGGREGATION_STEPS


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[
            ("approved", "Approve"),
            ("rejected", "Reject"),
            ("changes_requested", "Request changes"),
        ]
    )
    comment = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=4000
    )
    # The gate the reviewer saw: a decision on a gate since closed or replaced is refused.
    approval = forms.IntegerField(required=False, min_value=1)


class BulkDecisionForm(forms.Form):
    """Approve or reject the waiting agents of a run: ``scope`` is ``*`` (all of them) or
    ``g:<group>`` (those of one tree group, ``Task.group`` exactly; ``g:`` for no group)."""

    decision = forms.ChoiceField(choices=[("approved", "Approve"), ("rejected", "Reject")])
    comment = forms.CharField(required=False, max_length=4000)
    scope = forms.CharField(max_length=310)

    def clean_scope(self) -> str:
        scope = str(self.cleaned_data["scope"])
        if scope != "*" and not scope.startswith("g:"):
            raise forms.ValidationError("Choose every waiting agent or one group.")
        return scope

    @property
    def group(self) -> str | None:
        """The group the decision is for, ``None`` for the whole run."""
        scope = self.cleaned_data["scope"]
        return None if scope == "*" else scope.removeprefix("g:")


class ReaggregateForm(forms.Form):
    """Another chain and/or other tunables for a new report version; blank = the run's own."""

    chain = forms.MultipleChoiceField(
        required=False,
        choices=[(step, step) for step in AGGREGATION_STEPS],
        widget=forms.CheckboxSelectMultiple,
    )
    dedup_threshold = forms.FloatField(required=False, min_value=0.0, max_value=1.0)
    line_window = forms.IntegerField(required=False, min_value=0, max_value=1000)
    vote_quorum = forms.IntegerField(required=False, min_value=1, max_value=1000)
    lens_quorum = forms.IntegerField(required=False, min_value=1, max_value=100)
    min_confidence = forms.FloatField(required=False, min_value=0.0, max_value=1.0)
    top_k = forms.IntegerField(required=False, min_value=0, max_value=10000)
    embedder = forms.ChoiceField(
        required=False, choices=[("", "Run's default"), ("tfidf", "TF-IDF (offline)")]
    )

    def overrides(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name != "chain" and value not in (None, "")
        }

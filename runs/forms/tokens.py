"""The API tokens page's form: a name, the scopes, and an optional life in days."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone

from runs.models.token import SCOPES

SCOPE_HELP = {
    "read": "read runs, agents, events, findings, reports, approvals",
    "launch": "launch, cancel, retry, re-aggregate, ask for more budget (operators)",
    "review": "decide gates and findings (reviewers)",
    "metrics": "read /metrics",
}


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for: 'CI on repo X'.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, f"{s}: {SCOPE_HELP[s]}") for s in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=["read"],
    )
    expires_in_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="Expires in (days)",
        help_text="Blank: until you revoke it.",
    )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None

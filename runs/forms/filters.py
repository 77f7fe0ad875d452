"""The runs list's filters."""

from __future__ import annotations

from typing import Any

from django import forms

from runs.models import Run


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

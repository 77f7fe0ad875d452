"""An administrator's webhook subscription form (the URL's addresses are checked by the
action, ``runs/actions/webhooks.py``, whose refusal lands on the ``url`` field)."""

from __future__ import annotations

from django import forms

from runs.models import WebhookEvent

EVENT_CHOICES = [(kind.value, kind.label) for kind in WebhookEvent if kind != WebhookEvent.TEST]


class SubscriptionForm(forms.Form):
    url = forms.CharField(
        label="URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/harness"}),
    )
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
    description = forms.CharField(required=False, max_length=200)
    active = forms.BooleanField(required=False, initial=True)

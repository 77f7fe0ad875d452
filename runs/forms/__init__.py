"""The forms. They check shapes and choices; the actions (``runs.actions``) check meaning, and a
refusal's ``field`` lands on the form's field. The launch form's estimate (``estimate``) runs
the launch's checks without writing anything."""

from runs.forms.filters import RunFilterForm
from runs.forms.launch import LaunchForm, all_roles, document_choices
from runs.forms.review import BulkDecisionForm, DecisionForm, ReaggregateForm

__all__ = [
    "BulkDecisionForm",
    "DecisionForm",
    "LaunchForm",
    "ReaggregateForm",
    "RunFilterForm",
    "all_roles",
    "document_choices",
]

"""Refusals of a person's decision, shared by the gate actions."""


class DecisionRefused(Exception):
    """The decision cannot be taken; the message says why (shown to the person as is)."""

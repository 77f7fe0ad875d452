"""Inventory demo app (deliberately vulnerable sample target for the heuristic analyzer)."""

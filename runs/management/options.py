"""Command options more than one command takes, defined once so they read the same everywhere."""

from __future__ import annotations

from argparse import ArgumentParser


def add_latency_options(parser: ArgumentParser, *, default_ms: int, sigma_help: str) -> None:
    """``--latency-ms`` (each agent's simulated model latency) and ``--latency-sigma`` (a
    log-normal mix with that median; 0 = fixed)."""
    parser.add_argument("--latency-ms", type=int, default=default_ms)
    parser.add_argument("--latency-sigma", type=float, default=0.0, help=sigma_help)

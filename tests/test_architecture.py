"""The repository keeps its own house rules (scripts/check_architecture.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runs.eventlog.event_types import PAYLOAD_TYPES, EventType

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_follows_its_architecture_rules() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/check_architecture.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_event_type_declares_its_payload(event_type: EventType) -> None:
    assert event_type in PAYLOAD_TYPES

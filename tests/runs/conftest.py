from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # Channels runs on asyncio; the anyio plugin drives the async consumer tests.
    return "asyncio"

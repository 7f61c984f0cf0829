"""Suite-wide fixtures: leaked-task guard and service availability rules.

In CI (``CI=true``) a missing service (PostgreSQL, mosquitto) is a failure,
never a skip. On a laptop without them, the tests that need them skip with a
visible reason or fall back as documented next to the fixture.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, reason: str) -> None:
    """Fail in CI, skip elsewhere, when a service the test needs is missing."""
    message = f"{name} unavailable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    for _ in range(3):  # let cancellations that are already in flight finish
        await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if leftover:
        names = ", ".join(sorted(t.get_name() for t in leftover))
        for task in leftover:
            task.cancel()
        pytest.fail(f"test left {len(leftover)} task(s) running: {names}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("asyncio") is not None and isinstance(item, pytest.Function):
            item.fixturenames.insert(0, "_no_leaked_tasks")

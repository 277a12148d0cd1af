"""Pytest plugin: the `remote_fakes` fixture (one FakeServer per session, its Control reset for every test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.remote_fakes.server import FakeServer


@pytest.fixture(scope="session")
def _remote_fakes_server() -> Iterator[FakeServer]:
    from tests.remote_fakes.server import FakeServer

    with FakeServer() as server:
        yield server


@pytest.fixture
def remote_fakes(_remote_fakes_server: FakeServer) -> Iterator[FakeServer]:
    """The running fakes with every switch off and no calls recorded (use .base_url(backend), .control)."""
    _remote_fakes_server.control.reset()
    yield _remote_fakes_server
    _remote_fakes_server.control.reset()

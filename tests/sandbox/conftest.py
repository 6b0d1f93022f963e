"""The session sandbox (from tests/conftest.py), reset before each test that uses it."""

from __future__ import annotations

import pytest

from sandbox.server import SandboxServer
from tests.sandbox.helpers import SandboxClient


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxClient:
    client = SandboxClient(sandbox_server)
    client.reset()
    return client

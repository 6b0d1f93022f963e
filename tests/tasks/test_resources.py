"""A run opens its resources once: one engine on each database and one HTTP session, whatever its chunks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from sandbox.server import SandboxServer
from tasks.delivery.run import DeliveryRun
from tasks.resources import RunResources
from tasks.window import Window
from tests.runs import settings_for
from tests.shops import MORNING, SINCE, UNTIL, Shop

WINDOW = Window(SINCE, UNTIL, continues=False)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How many engines and HTTP sessions are made while the test runs."""
    made: Counter[str] = Counter()
    for kind, cls in (("engines", Engine), ("sessions", requests.Session)):
        original = cls.__init__

        def counted(
            self: Any, *args: Any, __original: Any = original, __kind: str = kind, **kwargs: Any
        ) -> None:
            made[__kind] += 1
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counted)
    yield made


def test_a_run_of_many_chunks_opens_one_engine_each_and_one_http_session(
    shop: Shop, tmp_path: Path, sandbox_server: SandboxServer, opened: Counter[str]
) -> None:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    orders = [shop.shipped_order(f"CHUNKED{number:02d}") for number in range(7)]
    chunks_of_two = {"SEQURA_API_URL": sandbox_server.url, "SHOP_CHUNK_SIZE": "2", "SEQURA_BATCH_SIZE": "1"}
    settings = settings_for(shop.engine, f"sqlite:///{tmp_path / 'state.sqlite'}", **chunks_of_two)
    opened.clear()
    with RunResources.open(settings) as resources:
        first = DeliveryRun(resources, WINDOW).run()
    assert (first.chunks, first.counts.sent, first.outcome.requests) == (4, 7, 7)
    assert opened == {"engines": 2, "sessions": 1}

    shop.writer.refund(orders[3], product_reference="TSHIRT-1", quantity=1, at=MORNING + timedelta(hours=2))
    opened.clear()
    with RunResources.open(settings) as resources:
        second = DeliveryRun(resources, WINDOW).run()
    assert (second.chunks, second.counts.updated) == (4, 1)
    assert opened == {"engines": 2, "sessions": 1}

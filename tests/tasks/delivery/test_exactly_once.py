"""Exactly once against a SeQura that fails like a network: every shipped order reported once, none held.

The sandbox injects a fault into 30% of requests, drawn evenly from 500s, 429s, connections dropped before
the request is processed, answers lost after it was processed (accept-then-drop) and answers slower than
the client's timeout after it was processed (accept-then-slow). Runs follow one another as a schedule
would; afterwards SeQura must hold every shipped order, each reported exactly once, and the state store
must hold none of them back.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.server import SandboxServer
from schemas.prestashop import shop_tables
from seeding.vocabulary import Line
from tasks.sequra_client import SequraUnavailableError
from tasks.state.in_flight import uncertain_deliveries
from tasks.state.quarantine import references_to_retry
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.clocks import MovedClock
from tests.runs import run_once, settings_for
from tests.shops import MERCHANT, SINCE, UNTIL, seeded_shop

pytestmark = pytest.mark.mysql

ORDERS = 40
FAULTS = {
    "error_share": 0.3,
    "error_kinds": ["fail", "rate_limit", "drop", "lose_answer", "slow_answer"],
    "retry_after": 0,
    "slow_answer_seconds": 0.5,
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_shipped_order_reaches_sequra_exactly_once_through_30_percent_faults(
    mysql_shop_engine_factory: Any, sandbox_server: SandboxServer, tmp_path: Path, seed: int
) -> None:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    references = [f"ONCE{seed}{n:04d}" for n in range(ORDERS)]
    for n, reference in enumerate(references):
        price = Decimal(1000 + 37 * n) / 100
        shop.shipped_order(reference, lines=[Line("Camiseta", f"TSHIRT-{n}", 1 + n % 3, price)])
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    settings = settings_for(
        shop.engine,
        state_url,
        SEQURA_API_URL=sandbox_server.url,
        SEQURA_BATCH_SIZE="4",
        SEQURA_TIMEOUT_SECONDS="0.25",
        SEQURA_MAX_ATTEMPTS="4",
        SEQURA_BACKOFF_SECONDS="0.001",
    )
    requests.post(sandbox_server.url + "_sandbox/faults", json={**FAULTS, "seed": seed}, timeout=5)
    runs = failed = 0
    for _ in range(6):
        runs += 1
        try:
            run_once(settings, Window(SINCE, UNTIL, continues=False))
        except SequraUnavailableError:
            failed += 1
    requests.post(sandbox_server.url + "_sandbox/faults", json={}, timeout=5).raise_for_status()
    later = MovedClock(ahead=timedelta(seconds=1))  # four timeouts on: an unanswered report is not coming
    run_once(settings, Window(SINCE, UNTIL, continues=False), clock=later)

    held = {ref: requests.get(f"{sandbox_server.url}_sandbox/orders/{ref}", timeout=5) for ref in references}
    lost = sorted(ref for ref, answer in held.items() if answer.status_code == 404)
    doubled = sorted(
        ref for ref, answer in held.items() if answer.ok and answer.json()["delivery_reports"] > 1
    )
    store = open_state_store(state_url)
    waiting = references_to_retry(store, MERCHANT), uncertain_deliveries(store, MERCHANT, references)
    store.dispose()
    assert (lost, doubled, waiting) == ([], [], ([], {})), f"{runs} runs, {failed} gave up"
    logged = requests.get(sandbox_server.url + "_sandbox/requests", timeout=5).json()
    settled = sum(1 for answer in held.values() if answer.ok and answer.json()["order_updates"])
    assert any(entry["status"] is None for entry in logged) and settled > 0  # the faults did bite
    shop.engine.dispose()


def test_with_the_order_update_channel_every_shipment_goes_as_an_update_and_none_in_a_report(
    mysql_shop_engine_factory: Any, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    references = [f"UPDCHAN{n:02d}" for n in range(12)]
    for reference in references:
        shop.shipped_order(reference)
    requests.post(
        sandbox_server.url + "_sandbox/checkouts",
        json={"merchant": MERCHANT, "order_refs": references[:-1]},  # the last one SeQura never saw
        timeout=5,
    ).raise_for_status()
    settings = settings_for(
        shop.engine,
        f"sqlite:///{tmp_path / 'state.sqlite'}",
        SEQURA_API_URL=sandbox_server.url,
        SEQURA_SHIPMENT_CHANNEL="order_update",
        SEQURA_TIMEOUT_SECONDS="0.25",
        SEQURA_BACKOFF_SECONDS="0.001",
    )
    requests.post(sandbox_server.url + "_sandbox/faults", json={**FAULTS, "seed": 4}, timeout=5)
    for _ in range(3):
        with contextlib.suppress(SequraUnavailableError):  # a run may give up; the next goes on
            run_once(settings, Window(SINCE, UNTIL, continues=False))
    requests.post(sandbox_server.url + "_sandbox/faults", json={}, timeout=5).raise_for_status()
    last = run_once(settings, Window(SINCE, UNTIL, continues=False))

    held = [
        requests.get(f"{sandbox_server.url}_sandbox/orders/{ref}", timeout=5).json()
        for ref in references[:-1]
    ]
    assert {(order["delivery_reports"], order["order_updates"] >= 1) for order in held} == {(0, True)}
    assert all(order["shipped_cart"]["order_total_with_tax"] == 1745 for order in held)
    [unknown] = last.quarantined_rows
    assert unknown.reference == references[-1]
    assert "SeQura has no order UPDCHAN11 (404 to its order update): with SEQURA_SHIPMENT_CHANNEL" in (
        unknown.reason
    )
    reports = requests.get(sandbox_server.url + "_sandbox/delivery_reports", timeout=5).json()
    assert reports == []  # a window of the past sends no statistics either
    shop.engine.dispose()

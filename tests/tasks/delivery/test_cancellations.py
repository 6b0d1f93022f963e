"""Cancelled before shipment: SeQura hears it once, as an update with both carts empty (MariaDB, real DDL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from sandbox.server import SandboxServer
from schemas.outcomes import DeliveryOutcome
from schemas.prestashop import shop_tables
from tasks.delivery import cancellations
from tasks.sequra_client import HttpSequraClient
from tasks.state.in_flight import in_flight_since
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.runs import dry_run, run_once, settings_for
from tests.shops import MERCHANT, MORNING, SHIPPED, SINCE, UNTIL, Shop, seeded_shop

pytestmark = pytest.mark.mysql

WINDOW = Window(SINCE, UNTIL, continues=False)
NEXT_DAY = Window(UNTIL, UNTIL + timedelta(days=1), continues=False)
EMPTY = {"currency": "EUR", "gift": False, "order_total_with_tax": 0, "items": []}


@dataclass
class Sequra:
    """A MariaDB shop, a state store and the sandbox as SeQura, with runs of the pipeline between them."""

    shop: Shop
    state_url: str
    sandbox: SandboxServer

    def run(self, window: Window = WINDOW, **overrides: str) -> DeliveryOutcome:
        """One real run over `window`."""
        settings = settings_for(
            self.shop.engine,
            self.state_url,
            SEQURA_API_URL=self.sandbox.url,
            SEQURA_BACKOFF_SECONDS="0.001",
            SEQURA_TIMEOUT_SECONDS="0.5",
            **overrides,
        )
        return run_once(settings, window)

    def approved(self, *order_refs: str) -> None:
        """SeQura approves these orders at checkout, before any report or update of them."""
        self._post("checkouts", {"merchant": MERCHANT, "order_refs": list(order_refs)})

    def faults(self, **plan: object) -> None:
        """Plan the sandbox's next faults."""
        self._post("faults", plan)

    def held(self, order_ref_1: str) -> dict[str, Any]:
        """What the sandbox, as SeQura, holds of the order."""
        return self._get(f"orders/{quote(order_ref_1, safe='')}")

    def requests_for(self, order_ref_1: str) -> list[dict[str, Any]]:
        """Every request the sandbox logged for the order's URL."""
        return [entry for entry in self._get("requests") if entry["path"].endswith(f"/orders/{order_ref_1}")]

    def reported(self) -> list[str]:
        """The order_ref_1 of every order a delivery report carried."""
        return [order["order_ref_1"] for order in self._get("orders")]

    def _get(self, path: str) -> Any:
        response = requests.get(f"{self.sandbox.url}_sandbox/{path}", timeout=5)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: object) -> None:
        requests.post(f"{self.sandbox.url}_sandbox/{path}", json=body, timeout=5).raise_for_status()


@pytest.fixture
def sequra(mysql_shop_engine_factory: Any, sandbox_server: SandboxServer, tmp_path: Path) -> Iterator[Sequra]:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    engine = mysql_shop_engine_factory("8.0", "ps_")
    yield Sequra(
        seeded_shop(engine, shop_tables("ps_")), f"sqlite:///{tmp_path / 'state.sqlite'}", sandbox_server
    )
    engine.dispose()


@pytest.mark.parametrize("version", ["1.7.8.1", "8.0", "9.1.0"])
def test_order_cancelled_before_shipment_is_sent_once_as_an_update_with_both_carts_empty(
    sequra: Sequra, mysql_shop_engine_factory: Any, version: str
) -> None:
    sequra.shop = seeded_shop(mysql_shop_engine_factory(version, "ps_"), shop_tables("ps_"))
    sequra.shop.shipped_order("SHIPPED01")
    id_order = sequra.shop.order("CANCEL001")
    sequra.approved("SHIPPED01", "CANCEL001")
    sequra.shop.writer.cancel_order(id_order, at=MORNING)

    first = sequra.run()
    again = sequra.run()

    held = sequra.held("CANCEL001")
    assert (held["state"], held["shipped_cart"], held["unshipped_cart"]) == ("cancelled", EMPTY, EMPTY)
    assert held["order_updates"] == 1 and "customer" not in held
    assert sequra.reported() == ["SHIPPED01"]
    assert (first.counts.new, first.counts.sent, first.counts.cancelled) == (1, 1, 1)
    assert [(row.order_ref_1, row.changes, row.result) for row in first.update_rows] == [
        ("CANCEL001", "cancelled before shipment", "accepted (200)")
    ]
    assert (again.counts.cancelled, again.counts.already_reported, again.requests) == (0, 2, 0)
    sequra.shop.engine.dispose()


def test_cancellation_sequra_answers_404_is_recorded_and_never_sent_again(sequra: Sequra) -> None:
    id_order = sequra.shop.order("NEVERAPPR")  # SeQura never approved it (or holds it on review)
    sequra.shop.writer.cancel_order(id_order, at=MORNING)

    first = sequra.run()
    sequra.run()
    sequra.run(NEXT_DAY)

    assert (first.counts.cancelled, first.counts.not_at_sequra, first.counts.update_failed) == (0, 1, 0)
    assert first.update_rows[0].result.startswith("SeQura has no approved order of this reference (404)")
    assert [entry["status"] for entry in sequra.requests_for("NEVERAPPR")] == [404]


def test_order_sequra_had_no_order_of_is_reported_as_new_when_it_ships_after_all(sequra: Sequra) -> None:
    id_order = sequra.shop.order("LATESHIP1")
    sequra.shop.writer.cancel_order(id_order, at=MORNING)
    assert sequra.run().counts.not_at_sequra == 1

    sequra.shop.writer.set_state(id_order, SHIPPED, at=MORNING + timedelta(hours=1))
    outcome = sequra.run()

    assert (outcome.counts.new, outcome.counts.sent) == (1, 1)
    assert sequra.reported() == ["LATESHIP1"]


def test_order_uncancelled_and_shipped_later_is_told_as_shipped(sequra: Sequra) -> None:
    id_order = sequra.shop.order("UNCANCEL1")
    sequra.approved("UNCANCEL1")
    sequra.shop.writer.cancel_order(id_order, at=MORNING)
    assert sequra.run().counts.cancelled == 1

    sequra.shop.writer.set_state(id_order, SHIPPED, at=MORNING + timedelta(hours=1))
    outcome = sequra.run()

    held = sequra.held("UNCANCEL1")
    assert outcome.counts.updated == 1
    assert held["state"] == "shipped" and held["shipped_cart"]["order_total_with_tax"] == 1745


def test_cancellation_left_without_an_answer_is_sent_again_by_the_next_run(sequra: Sequra) -> None:
    id_order = sequra.shop.order("LOSTANSWR")
    sequra.approved("LOSTANSWR")
    sequra.shop.writer.cancel_order(id_order, at=MORNING)
    sequra.faults(lose_answer_next=1)

    first = sequra.run(SEQURA_MAX_ATTEMPTS="1")
    second = sequra.run(NEXT_DAY)  # the window no longer finds it: the state store says it is in flight

    assert (first.counts.cancelled, first.counts.unanswered) == (0, 1)
    assert (second.counts.cancelled, second.counts.unanswered) == (1, 0)
    assert sequra.held("LOSTANSWR")["state"] == "cancelled"


def test_unshipped_order_in_the_payment_error_state_is_no_cancellation(sequra: Sequra) -> None:
    sequra.shop.writer.set_configuration("PS_OS_ERROR", "8")
    id_order = sequra.shop.order("PAYFAILED")
    sequra.shop.writer.set_state(id_order, 8, at=MORNING)

    outcome = sequra.run()

    assert (outcome.counts.found, outcome.counts.cancelled, outcome.requests) == (0, 0, 0)


def test_dry_run_shows_the_cancellation_it_would_send(sequra: Sequra, tmp_path: Path) -> None:
    sequra.shop.writer.cancel_order(sequra.shop.order("DRYCANCEL"), at=MORNING)
    settings = settings_for(sequra.shop.engine, sequra.state_url, SEQURA_API_URL=sequra.sandbox.url)

    summary = dry_run(settings, WINDOW, tmp_path / "dry.json")

    assert summary.counts.cancelled == 1
    assert [(row.order_ref_1, row.result) for row in summary.outcome.update_rows] == [
        ("DRYCANCEL", "dry run: not sent")
    ]
    assert sequra.requests_for("DRYCANCEL") == []


def test_cancellation_sequra_refuses_is_quarantined_with_its_words_and_stops_no_other(sequra: Sequra) -> None:
    sequra.shop.shipped_order("SHIPPED02")
    for reference in ("REFUSED01", "ACCEPTED1"):
        sequra.shop.writer.cancel_order(sequra.shop.order(reference), at=MORNING)
    sequra.approved("SHIPPED02", "REFUSED01", "ACCEPTED1")
    sequra.faults(reject_refs=["REFUSED01"])

    outcome = sequra.run()

    assert (outcome.counts.sent, outcome.counts.cancelled, outcome.counts.update_failed) == (1, 1, 1)
    [held] = outcome.quarantined_rows
    assert (held.order_ref_1, held.stage) == ("REFUSED01", "update")
    assert held.reason.startswith("SeQura refused its cancellation (409): ")
    assert sequra.held("REFUSED01")["state"] == "approved"
    assert sequra.held("ACCEPTED1")["state"] == "cancelled"


def test_cancellations_answered_are_kept_as_they_come_so_a_killed_run_sends_few_again(
    sequra: Sequra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cancellations, "RECORD_EVERY", 2)
    references = ["KEPTEARL1", "KEPTEARL2", "KEPTEARL3"]
    for reference in references:
        id_order = sequra.shop.order(reference)
        sequra.shop.writer.cancel_order(id_order, at=MORNING)
    sequra.approved(*references)
    in_flight_at_each_put: list[set[str]] = []
    update_order = HttpSequraClient.update_order

    def observed(client: HttpSequraClient, order_ref_1: str, body: bytes) -> int:
        store = open_state_store(sequra.state_url)
        in_flight_at_each_put.append(set(in_flight_since(store, MERCHANT, references)))
        store.dispose()
        return update_order(client, order_ref_1, body)

    monkeypatch.setattr(HttpSequraClient, "update_order", observed)

    outcome = sequra.run()

    assert outcome.counts.cancelled == 3
    # at the third PUT, the two answered before it are kept: a run killed then would send one again, not three
    assert [len(in_flight) for in_flight in in_flight_at_each_put] == [3, 3, 1]

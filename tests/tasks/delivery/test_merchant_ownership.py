"""Orders stay with their merchant: the one that reported an order sends its changes, wherever it goes now."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Table, event, insert, select
from sqlalchemy.engine import Engine

from sandbox.server import SandboxServer
from schemas import state
from schemas.outcomes import DeliveryOutcome
from schemas.prestashop import shop_tables
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from seeding.vocabulary import PORTUGAL, Line
from tasks.delivery.plan import plan_delivery
from tasks.resources import RunResources
from tasks.state.quarantine import references_to_retry
from tasks.state.runs import chunk_references
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.runs import run_once, settings_for
from tests.shops import MORNING, SINCE, UNTIL, Shop, seeded_shop

pytestmark = pytest.mark.mysql

WINDOW = Window(SINCE, UNTIL, continues=False)
LATER = MORNING + timedelta(hours=5)  # shop-local, still inside the window
SHIRT = Line("Camiseta", "TSHIRT-1", 3, Decimal("10.00"))
SPAIN, OTHER = "demo_merchant", "demo_merchant_pt"  # the merchants the sandbox takes
BY_COUNTRY = {SPAIN: {"countries": ["ES"]}, OTHER: {"countries": ["PT"]}}


@dataclass
class Merchants:
    """A MariaDB shop split between SeQura merchants, the sandbox as SeQura, and one state store."""

    shop: Shop
    state_url: str
    sandbox: SandboxServer

    def run(self, merchant: str, merchants: dict[str, Any]) -> DeliveryOutcome:
        """One real run of `merchant` over the window, with SEQURA_MERCHANTS set to `merchants`."""
        settings = settings_for(
            self.shop.engine,
            self.state_url,
            SEQURA_API_URL=self.sandbox.url,
            SEQURA_MERCHANTS=json.dumps(merchants),
            SEQURA_MERCHANT_ID=merchant,
        )
        return run_once(settings, WINDOW)

    def reported(self) -> list[tuple[str, str]]:
        """(merchant, order_ref_1) of every order SeQura took in a delivery report."""
        orders = requests.get(self.sandbox.url + "_sandbox/orders", timeout=5).json()
        return sorted((order["merchant"], order["order_ref_1"]) for order in orders)

    def updated(self) -> list[tuple[str, str]]:
        """(merchant, order_ref_1) of every order update SeQura took."""
        updates = requests.get(self.sandbox.url + "_sandbox/order_updates", timeout=5).json()
        return [(update["merchant"], update["order_ref_1"]) for update in updates]

    def retried(self, merchant: str) -> list[str]:
        """The references `merchant`'s next run reads again whatever its window."""
        store = open_state_store(self.state_url)
        try:
            return references_to_retry(store, merchant)
        finally:
            store.dispose()

    def in_portugal(self, reference: str) -> int:
        """An order delivered to Lisbon, shipped in the window; returns its id_order."""
        lisbon = self.shop.new_address(city="Lisboa", postcode="1100-148", id_country=PORTUGAL)
        return self.shop.shipped_order(reference, lines=[SHIRT], id_address_delivery=lisbon)


@pytest.fixture
def merchants(
    mysql_shop_engine_factory: Any, sandbox_server: SandboxServer, tmp_path: Path, request: Any
) -> Iterator[Merchants]:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    version = getattr(request, "param", "8.0")
    engine = mysql_shop_engine_factory(version, "ps_")
    yield Merchants(
        seeded_shop(engine, shop_tables("ps_")), f"sqlite:///{tmp_path / 'state.sqlite'}", sandbox_server
    )
    engine.dispose()


@pytest.mark.parametrize("merchants", PRESTASHOP_VERSIONS, indirect=True)
def test_an_order_sent_to_another_merchants_country_is_updated_under_the_merchant_that_reported_it(
    merchants: Merchants,
) -> None:
    writer = merchants.shop.writer
    id_order = merchants.shop.shipped_order("MOVEDAWAY", lines=[SHIRT])  # to Madrid
    first = [merchants.run(merchant, BY_COUNTRY).counts.sent for merchant in (SPAIN, OTHER)]
    assert first == [1, 0]
    writer.move_delivery_country(id_order, "PT", at=LATER)
    writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    merchants.in_portugal("NEWINPT")

    portugal = merchants.run(OTHER, BY_COUNTRY)
    spain = merchants.run(SPAIN, BY_COUNTRY)

    assert (portugal.counts.sent, portugal.counts.updated) == (1, 0)
    assert (spain.counts.sent, spain.counts.updated) == (0, 1)
    assert merchants.reported() == [(SPAIN, "MOVEDAWAY"), (OTHER, "NEWINPT")]
    assert merchants.updated() == [(SPAIN, "MOVEDAWAY")]
    held = requests.get(merchants.sandbox.url + "_sandbox/orders/MOVEDAWAY", timeout=5).json()
    assert (held["merchant"], held["delivery_address"]["country_code"]) == (SPAIN, "PT")


def test_an_order_stays_with_the_merchant_that_reported_it_when_the_merchants_are_split_again(
    merchants: Merchants,
) -> None:
    shop = merchants.shop
    before = {SPAIN: {"countries": ["ES"]}, OTHER: {}}  # the rest: every other country
    after = {SPAIN: {"countries": ["FR"]}, OTHER: {}}  # Spain now goes to the rest
    id_order = shop.shipped_order("RESPLIT1", lines=[SHIRT])
    broken = shop.shipped_order("BROKEN01", lines=[SHIRT])
    total = order_total(shop, broken)
    shop.set_order(broken, total_paid_tax_incl="99.000000")
    first = merchants.run(SPAIN, before).counts
    assert (first.sent, first.quarantined, merchants.run(OTHER, before).counts.sent) == (1, 1, 0)
    shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    shop.set_order(broken, total_paid_tax_incl=total)  # corrected, once Spain is the rest's
    shop.shipped_order("NEWREST1", lines=[SHIRT], at=LATER)

    spain = merchants.run(SPAIN, after)
    rest = merchants.run(OTHER, after)

    assert (rest.counts.sent, rest.counts.updated) == (2, 0)
    assert (spain.counts.sent, spain.counts.updated) == (0, 1)
    assert merchants.reported() == [(SPAIN, "RESPLIT1"), (OTHER, "BROKEN01"), (OTHER, "NEWREST1")]
    assert merchants.updated() == [(SPAIN, "RESPLIT1")]
    assert merchants.retried(SPAIN) == []  # its quarantine is closed: the order is the rest's now


def test_the_plan_reads_whose_orders_they_are_a_chunk_of_references_at_a_time(merchants: Merchants) -> None:
    shop = merchants.shop
    spanish = [f"ES{number:07d}" for number in range(90)]
    portuguese = [f"PT{number:07d}" for number in range(30)]
    for reference in spanish:
        shop.shipped_order(reference)
    for reference in portuguese:
        merchants.in_portugal(reference)
    owned_by(merchants.state_url, OTHER, state.order_snapshots, spanish[:10])  # reported under Portugal's
    owned_by(merchants.state_url, OTHER, state.in_flight, spanish[10:15])  # sent, not answered yet
    owned_by(merchants.state_url, SPAIN, state.order_snapshots, portuguese[:20])  # reported, then moved
    settings = settings_for(
        shop.engine,
        merchants.state_url,
        SEQURA_MERCHANTS=json.dumps(BY_COUNTRY),
        SEQURA_MERCHANT_ID=SPAIN,
        SHOP_CHUNK_SIZE="40",
    )
    with RunResources.open(settings) as resources:
        reads = owner_reads(resources.store.engine)
        plan = plan_delivery(resources, "plan-1", WINDOW, dry_run=True)
        planned = [
            ref for chunk in range(plan.chunks) for ref in chunk_references(resources.store, "plan-1", chunk)
        ]

    assert sorted(planned) == sorted(spanish[15:] + portuguese[:20])
    assert 1 <= len(reads) <= 3  # 120 candidates in batches of 40: one read a batch, not one an order


def order_total(shop: Shop, id_order: int) -> Decimal:
    """The order's total_paid_tax_incl as the shop holds it."""
    orders = shop.tables.orders
    with shop.engine.connect() as conn:
        return conn.scalar(select(orders.c.total_paid_tax_incl).where(orders.c.id_order == id_order))


def owned_by(state_url: str, merchant: str, table: Table, references: list[str]) -> None:
    """Give `merchant` a row of `table` (order_snapshots or in_flight) for each of `references`."""
    store = open_state_store(state_url)
    moment = store.now()
    when = (
        {"first_sent_at": moment, "last_sent_at": moment, "sent_by": "sequra-etl"}
        if table is state.order_snapshots
        else {"sending_at": moment}
    )
    rows = [
        {
            "merchant": merchant,
            "order_ref_1": reference,
            "reference": reference,
            "fingerprint": "0" * 64,
            "payload": "{}",
            "run_id": "earlier-run",
            **when,
        }
        for reference in references
    ]
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(table), rows)
    finally:
        store.dispose()


def owner_reads(engine: Engine) -> list[str]:
    """The statements, from now on, that read who owns orders (order_snapshots or in_flight by reference)."""
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "reference IN" in statement and ("order_snapshots" in statement or "in_flight" in statement):
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    return reads


def test_orders_of_a_merchant_gone_from_the_merchant_map_are_named_in_a_warning(
    merchants: Merchants, caplog: pytest.LogCaptureFixture
) -> None:
    id_order = merchants.shop.shipped_order("ORPHANED1", lines=[SHIRT])  # to Madrid
    assert merchants.run(SPAIN, BY_COUNTRY).counts.sent == 1
    merchants.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    without_spain = {OTHER: {"countries": ["PT"]}, "demo_merchant_fr": {"countries": ["ES", "FR"]}}

    with caplog.at_level("WARNING"):
        outcome = merchants.run("demo_merchant_fr", without_spain)

    assert (outcome.counts.found, outcome.counts.sent, outcome.counts.updated) == (0, 0, 0)
    assert (
        "1 orders changed whose merchant is no longer in SEQURA_MERCHANTS (demo_merchant), so no run sends "
        "their changes: ORPHANED1; add the merchant back to SEQURA_MERCHANTS to send them"
    ) in caplog.text

"""Privacy: buyer data leaves the state store after STATE_RETENTION_DAYS or on request, exactly-once stays.

Real runs (DeliveryRun, through tests.runs) of a SQLite shop against the sandbox, with the state store on
SQLite, PostgreSQL and MariaDB; the clock is moved, never waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests
from sqlalchemy import delete, inspect, select, text, update

from sandbox.server import SandboxServer
from schemas import state
from schemas.corrections import AppliedFix
from schemas.errors import SettingError
from schemas.outcomes import DeliveryOutcome
from schemas.reports import Change, ClassifiedReport, QuarantinedOrder, Stage
from schemas.settings import Settings
from schemas.state import RunStatus
from seeding.vocabulary import Line
from tasks.clock import Clock
from tasks.state.in_flight import StateLedger, record_sent
from tasks.state.order_changes import record_changes, record_updated
from tasks.state.privacy import (
    ERASED,
    HOLDERS,
    RUN_MESSAGES,
    erase_expired,
    forget_buyer,
    without_buyer,
)
from tasks.state.quarantine import record_quarantine
from tasks.state.releases import release_in_flight
from tasks.state.runs import finish_run, start_run
from tasks.state.shop_corrections import record_shop_corrections, settle_shop_corrections
from tasks.state.snapshots import last_answers
from tasks.state.store import StateStore, open_state_store, state_tables
from tasks.window import Window
from tests.cases import built_report, order_report
from tests.clocks import MovedClock
from tests.runs import run_once, settings_for
from tests.shops import MERCHANT, MORNING, PLACED, SINCE, UNTIL, Shop, sqlite_shop

WINDOW = Window(SINCE, UNTIL, continues=False)
LATER = MORNING + timedelta(hours=5)  # shop-local, still inside the window
SHIRT = Line("Camiseta", "TSHIRT-1", 3, Decimal("10.00"))
EMAIL = "perpetua.quixotela@example.org"
MISTYPED_EMAIL = "perpetua.quixotela(at)example.org"
BUYER = {  # what the shop holds of the buyer, each a string no other part of a report contains
    "given name": "Perpetua",
    "surname": "Quixotela",
    "email": EMAIL,
    "street": "Passeig Zzyzx 77",
    "phone": "611222333",
    "mobile phone": "699888777",
    "tracking": "TRKPQ5550001",
}
ORDERS = ("PRIVACY01", "PRIVACY02", "PRIVACY03")
AFTER_RETENTION = timedelta(days=401)  # STATE_RETENTION_DAYS is 400 by default


@dataclass
class Buyers:
    """A shop whose buyer ordered three times, the sandbox as SeQura, a state store, and runs between them."""

    shop: Shop
    sandbox: SandboxServer
    state_url: str

    def settings(self) -> Settings:
        """This shop, this state store, the sandbox."""
        return settings_for(self.shop.engine, self.state_url, SEQURA_API_URL=self.sandbox.url)

    def run(self, clock: Clock | None = None) -> DeliveryOutcome:
        """One real run over the window."""
        return run_once(self.settings(), WINDOW, clock=clock)

    def store(self, clock: Clock | None = None) -> StateStore:
        """The state store, opened (dispose of it)."""
        return open_state_store(self.state_url, clock)

    def held(self, order_ref_1: str) -> dict[str, Any]:
        """What the sandbox, as SeQura, holds for the order."""
        url = f"{self.sandbox.url}_sandbox/orders/{quote(order_ref_1, safe='')}"
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        return response.json()

    def sends(self) -> dict[str, tuple[int, int]]:
        """(delivery reports, order updates) SeQura received of each order."""
        return {ref: (self.held(ref)["delivery_reports"], self.held(ref)["order_updates"]) for ref in ORDERS}

    def dumped(self) -> str:
        """Every value of every table of the state store, as text, in lowercase."""
        store = self.store()
        try:
            with store.engine.connect() as conn:
                values = [
                    str(value)
                    for table in state_tables(store)
                    for row in conn.execute(text(f"SELECT * FROM {table}"))
                    for value in row
                ]
        finally:
            store.dispose()
        return "\n".join(values).lower()

    def buyer_data_kept(self) -> list[str]:
        """Which of the buyer's data the state store still holds, anywhere."""
        dumped = self.dumped()
        return [kind for kind, value in BUYER.items() if value.lower() in dumped]


@pytest.fixture
def buyers(sandbox_server: SandboxServer, state_url: str, tmp_path: Path) -> Iterator[Buyers]:
    """The buyer's three orders reported, one changed since, one quarantined first, and a shop correction.

    PRIVACY01 is reported; PRIVACY02 is reported and then refunded, which goes as an order update;
    PRIVACY03 was bought with a mistyped email, quarantined quoting it, and reported once it was fixed;
    a reconciliation corrected the buyer's phone. Each table holding buyer data holds some.
    """
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    shop = sqlite_shop(tmp_path / "shop.sqlite")
    writer = shop.writer
    customer = writer.add_customer(firstname="Perpetua", lastname="Quixotela", email=EMAIL, at=PLACED)
    mistyped = writer.add_customer(
        firstname="Perpetua", lastname="Quixotela", email=MISTYPED_EMAIL, is_guest=True, at=PLACED
    )
    address = writer.add_address(
        customer,
        firstname="Perpetua",
        lastname="Quixotela",
        address1=BUYER["street"],
        city="Barcelona",
        postcode="08017",
        id_country=6,
        phone=BUYER["phone"],
        phone_mobile=BUYER["mobile phone"],
        at=PLACED,
    )
    ids = {
        ref: shop.shipped_order(
            ref,
            lines=[SHIRT],
            id_customer=mistyped if ref == "PRIVACY03" else customer,
            id_address_delivery=address,
            tracking_number=BUYER["tracking"],
        )
        for ref in ORDERS
    }
    pipeline = Buyers(shop, sandbox_server, state_url)
    first = pipeline.run()
    assert (first.counts.sent, [row.reference for row in first.quarantined_rows]) == (2, ["PRIVACY03"])
    with shop.engine.begin() as conn:
        customers = shop.tables.customer
        conn.execute(
            update(customers).where(customers.c.id_customer == mistyped).values(email=EMAIL, date_upd=LATER)
        )
    writer.refund(ids["PRIVACY02"], product_reference="TSHIRT-1", quantity=1, at=LATER)
    second = pipeline.run()
    assert (second.counts.sent, second.counts.updated) == (1, 1)
    store = pipeline.store()
    phone = BUYER["phone"]
    fix = AppliedFix(
        "PRIVACY01",
        ids["PRIVACY01"],
        "delivery_address",
        "phone",
        "address",
        address,
        address + 1,
        phone,
        "+34" + phone,
    )
    record_shop_corrections(store, "reconciliation-1", MERCHANT, "batch-1", [fix])
    settle_shop_corrections(store, "batch-1", committed=True)
    store.dispose()
    assert pipeline.buyer_data_kept() == list(BUYER)
    yield pipeline
    shop.engine.dispose()


def test_after_the_retention_a_run_leaves_no_buyer_data_in_the_store_and_sends_nothing_again(
    buyers: Buyers, caplog: pytest.LogCaptureFixture
) -> None:
    sent = buyers.sends()
    caplog.set_level(logging.INFO, logger="sequra_etl")

    outcome = buyers.run(MovedClock(AFTER_RETENTION))

    assert buyers.buyer_data_kept() == []
    assert (outcome.counts.already_reported, outcome.counts.sent, outcome.counts.updated) == (3, 0, 0)
    assert buyers.sends() == sent
    assert (
        "buyer data older than 400 days (STATE_RETENTION_DAYS) erased from the state store: order snapshots "
        "3, reports in flight 0, order updates 1, quarantine reasons 1, shop corrections 1, run messages 0"
    ) in caplog.messages


def test_an_order_changed_after_the_retention_erased_its_buyer_still_gets_its_update(buyers: Buyers) -> None:
    later = MovedClock(AFTER_RETENTION)
    buyers.run(later)
    refund_one_more(buyers, "PRIVACY01")

    outcome = buyers.run(later)

    assert (outcome.counts.changed, outcome.counts.updated) == (1, 1)
    assert buyers.held("PRIVACY01")["shipped_cart"]["order_total_with_tax"] == 2495
    assert buyers.sends()["PRIVACY01"] == (1, 1)
    assert outcome.update_rows[0].changes == (
        "shipped 34.95 → 24.95 EUR, delivery address, invoice address, buyer, tracking not compared "
        "(erased from the state store)"
    )


def refund_one_more(buyers: Buyers, reference: str) -> None:
    """Refund one more shirt of the order, in the window."""
    with buyers.shop.engine.connect() as conn:
        orders = buyers.shop.tables.orders
        id_order = conn.execute(select(orders.c.id_order).where(orders.c.reference == reference)).scalar_one()
    buyers.shop.writer.refund(
        id_order, product_reference="TSHIRT-1", quantity=1, at=LATER + timedelta(hours=1)
    )


def erased_counts(**counts: int) -> dict[str, int]:
    """The counts of an erasure: those given, 0 for the others."""
    names = [holder.name for holder in HOLDERS] + [RUN_MESSAGES]
    return {name: counts.get(name.replace(" ", "_"), 0) for name in names}


def test_forgetting_a_buyer_by_email_leaves_no_buyer_data_and_the_next_run_sends_nothing_again(
    buyers: Buyers,
) -> None:
    sent = buyers.sends()
    store = buyers.store()
    try:
        erased = forget_buyer(store, [], ["Perpetua.Quixotela@Example.ORG"])
        again = forget_buyer(store, list(ORDERS), [])
    finally:
        store.dispose()

    assert erased.orders == {MERCHANT: ORDERS}
    assert erased.counts == erased_counts(
        order_snapshots=3, order_updates=1, quarantine_reasons=1, shop_corrections=1
    )
    assert (again.orders, again.counts) == ({MERCHANT: ORDERS}, erased_counts())  # nothing more to erase
    assert buyers.buyer_data_kept() == []
    outcome = buyers.run()
    assert (outcome.counts.already_reported, outcome.counts.sent, outcome.counts.updated) == (3, 0, 0)
    assert buyers.sends() == sent
    assert buyers.buyer_data_kept() == []


def test_an_order_changed_after_its_buyer_was_forgotten_still_gets_its_update(buyers: Buyers) -> None:
    store = buyers.store()
    try:
        forget_buyer(store, ["PRIVACY01"], [])
    finally:
        store.dispose()
    refund_one_more(buyers, "PRIVACY01")

    outcome = buyers.run()

    assert (outcome.counts.changed, outcome.counts.updated, outcome.counts.sent) == (1, 1, 0)
    assert buyers.held("PRIVACY01")["shipped_cart"]["order_total_with_tax"] == 2495
    assert buyers.sends()["PRIVACY01"] == (1, 1)
    assert outcome.update_rows[0].changes.endswith("not compared (erased from the state store)")


def test_a_stored_report_without_its_buyer_keeps_its_references_carts_carrier_and_dates() -> None:
    report = order_report("ERASEDBUY")
    report["trackings"] = [{"type": "postal", "reference": "1", "tracking_number": BUYER["tracking"]}]
    kept = orjson.loads(without_buyer(orjson.dumps(report).decode("utf-8")))
    assert {key: value for key, value in kept.items() if value != ERASED} == {
        key: report[key]  # type: ignore[literal-required]
        for key in ("state", "sent_at", "merchant_reference", "cart", "remaining_cart", "delivery_method")
    }
    assert sorted(key for key, value in kept.items() if value == ERASED) == [
        "customer",
        "delivery_address",
        "invoice_address",
        "trackings",
    ]


def test_buyer_data_younger_than_the_retention_is_kept(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, WINDOW, dry_run=False, flow_run_id=None)
    record_sent(store, "run-1", MERCHANT, [built_report("YOUNGORDR")])
    almost = open_state_store(state_url, MovedClock(timedelta(days=399)))
    expired = open_state_store(state_url, MovedClock(AFTER_RETENTION))

    assert erase_expired(almost, MERCHANT, 400).total == 0
    assert erase_expired(expired, MERCHANT, 400).counts == erased_counts(order_snapshots=1)
    for opened in (store, almost, expired):
        opened.dispose()


def test_forgetting_one_order_erases_its_buyer_data_and_not_that_of_the_buyers_other_orders(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, WINDOW, dry_run=False, flow_run_id=None)
    record_sent(store, "run-1", MERCHANT, [built_report("FORGOTTEN"), built_report("KEPTORDER")])

    assert forget_buyer(store, ["FORGOTTEN"], []).counts == erased_counts(order_snapshots=1)
    with store.engine.connect() as conn:
        snapshots = state.order_snapshots
        payloads = dict(conn.execute(select(snapshots.c.order_ref_1, snapshots.c.payload)).all())
    assert "ana@example.com" not in payloads["FORGOTTEN"] and "Calle Mayor" not in payloads["FORGOTTEN"]
    assert "ana@example.com" in payloads["KEPTORDER"]
    store.dispose()


def test_a_report_in_flight_whose_buyer_was_forgotten_is_still_recorded_as_delivered_by_its_fingerprint(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    held = built_report("HELDORDER")
    start_run(store, "run-1", MERCHANT, WINDOW, dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", MERCHANT).sending([held])

    assert forget_buyer(store, [], ["ana@example.com"]).counts == erased_counts(reports_in_flight=1)
    release_in_flight(store, MERCHANT, ["HELDORDER"], delivered=True)

    assert last_answers(store, MERCHANT, ["HELDORDER"])[0] == {"HELDORDER": held.fingerprint}
    with store.engine.connect() as conn:
        payload = conn.execute(select(state.order_snapshots.c.payload)).scalar_one()
    assert orjson.loads(payload)["customer"] == ERASED
    assert forget_buyer(store, ["HELDORDER"], []).total == 0  # the snapshot and owed update hold none
    store.dispose()


def test_a_snapshot_written_again_after_its_erasure_is_erased_again_once_it_expires(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, WINDOW, dry_run=False, flow_run_id=None)
    record_sent(store, "run-1", MERCHANT, [built_report("SENTTWICE")])
    forget_buyer(store, ["SENTTWICE"], [])
    a_day_on = open_state_store(state_url, MovedClock(timedelta(days=1)))
    record_sent(a_day_on, "run-1", MERCHANT, [built_report("SENTTWICE", total=1995)])  # changed, sent again

    assert forget_buyer(store, ["SENTTWICE"], []).counts["order snapshots"] == 1  # it holds data again
    record_sent(a_day_on, "run-1", MERCHANT, [built_report("SENTTWICE", total=2995)])
    expired = open_state_store(state_url, MovedClock(AFTER_RETENTION + timedelta(days=1)))
    assert erase_expired(expired, MERCHANT, 400).counts["order snapshots"] == 1
    assert erase_expired(expired, MERCHANT, 400).total == 0
    for opened in (store, a_day_on, expired):
        opened.dispose()


def test_every_write_of_buyer_data_after_an_erasure_is_erased_again(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, WINDOW, dry_run=False, flow_run_id=None)
    quoting = f"customer 7 of order 7 has the email {MISTYPED_EMAIL!r}, which is not an email address"
    owed = built_report("OWEDORDER", 1995)

    def write(total: int) -> None:
        """Write buyer data in each table a run writes it to: as sent, in flight, owed, quarantined."""
        record_sent(store, "run-1", MERCHANT, [built_report("SENTORDER", total)])
        StateLedger(store, "run-1", MERCHANT).sending([built_report("HELDORDER", total)])
        record_changes(store, "run-1", MERCHANT, [ClassifiedReport(owed, Change.CHANGED, "snapshot")])
        entry = QuarantinedOrder("MISTYPED", "MISTYPED", (7,), Stage.BUILD, quoting)
        record_quarantine(store, "run-1", MERCHANT, [entry])

    orders = ["SENTORDER", "HELDORDER", "OWEDORDER", "MISTYPED"]
    write(2495)
    everywhere = erased_counts(order_snapshots=1, reports_in_flight=1, order_updates=1, quarantine_reasons=1)
    assert forget_buyer(store, orders, []).counts == everywhere
    record_updated(store, "run-1", MERCHANT, [owed])  # SeQura took the update; then the order changed back
    write(2995)  # and again: the same change is owed once more
    assert forget_buyer(store, orders, []).counts == {**everywhere, "order snapshots": 2}
    assert forget_buyer(store, orders, []).counts == erased_counts()
    store.dispose()


def test_the_message_of_a_failed_run_that_quotes_a_buyer_is_erased_with_them_and_after_the_retention(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    quoting = 'IntegrityError: [parameters: (\'{"customer":{"email":"Ana@Example.com"}}\',)]'
    for run_id in ("run-1", "run-2"):
        start_run(store, run_id, MERCHANT, WINDOW, dry_run=False, flow_run_id=None)
        finish_run(
            store, run_id, RunStatus.FAILED, message=quoting if run_id == "run-1" else "SeQura is down"
        )

    assert forget_buyer(store, [], ["ana@example.com"]).counts == erased_counts(run_messages=1)
    expired = open_state_store(state_url, MovedClock(AFTER_RETENTION))
    assert erase_expired(expired, MERCHANT, 400).counts == erased_counts(run_messages=1)
    with store.engine.connect() as conn:
        assert conn.execute(select(state.runs.c.message)).scalars().all() == [None, None]
    store.dispose()
    expired.dispose()


def test_a_version_5_store_gets_the_erasure_columns_and_indexes(state_url: str) -> None:
    store = open_state_store(state_url)
    erasable = ("order_snapshots", "in_flight", "order_changes", "quarantine", "shop_corrections")
    with store.engine.begin() as conn:  # back to version 5, as stores written before version 6 are
        for table in erasable:
            for index in state.metadata.tables[table].indexes:
                if index.name == f"ix_{table}_erasure":
                    index.drop(conn)
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN erased_at"))
        conn.execute(delete(state.schema_version).where(state.schema_version.c.version >= 6))
    store.dispose()

    store = open_state_store(state_url)
    found = inspect(store.engine)
    assert [
        table for table in erasable if "erased_at" not in {c["name"] for c in found.get_columns(table)}
    ] == []
    assert {
        index["name"]
        for table in erasable
        for index in found.get_indexes(table)
        if "erasure" in index["name"]
    } == {"ix_order_snapshots_erasure", "ix_order_changes_erasure", "ix_shop_corrections_erasure"}
    store.dispose()


@pytest.mark.parametrize("days", ["0", "-1", "a year", "36501"])
def test_a_retention_of_no_days_or_more_than_a_century_is_refused_naming_the_setting(days: str) -> None:
    with pytest.raises(SettingError, match=r"^STATE_RETENTION_DAYS: "):
        Settings.from_env({"STATE_RETENTION_DAYS": days})


def test_the_retention_is_400_days_unless_set() -> None:
    assert Settings.from_env({}).retention_days == 400
    assert Settings.from_env({"STATE_RETENTION_DAYS": "730"}).retention_days == 730

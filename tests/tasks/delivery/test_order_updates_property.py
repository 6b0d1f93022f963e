"""The invariant, as a property: whatever the shop does after shipment, SeQura ends up holding what it shows.

Hypothesis generates sequences of shop events (ship a part, refund or return units, cancel, take a
cancellation back, correct an address, send the order to Portugal, add a tracking number, change the
shipping cost, deliver) interleaved with scheduled runs, some of them meeting SeQura failures (500s, 429s,
a run that gives up). Some orders SeQura approved at checkout, the others it never saw. The shop is split
between two merchants by delivery country, Spain (where the orders are placed) and Portugal: the runs are
the Spanish merchant's, and the Portuguese one runs last when an order moved.

After a last run, the state the sandbox holds for every shipped order must equal a model of the shop kept
here, independently of the pipeline: shipped and unshipped items with quantities and amounts, both
addresses (their country too) and the tracking numbers, under one merchant only; no order may have been
reported twice; an approved order cancelled before it shipped is held as cancelled, with both carts empty
and never in a delivery report; an order SeQura never saw and that never shipped is unknown.

On MariaDB with the real PrestaShop 8.0 DDL, calling the stage functions a flow run calls. `make test`
runs 200 sequences (derandomised, so CI is repeatable); `make reliability` runs
PROPERTY_SEQUENCES=2000 random ones.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sandbox.server import SandboxServer
from schemas.prestashop import shop_tables
from seeding.vocabulary import PAYMENT_ACCEPTED, Line
from tasks.sequra_client import SequraUnavailableError
from tasks.state.runs import last_successful_until
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.runs import run_once, settings_for
from tests.shops import DELIVERED, MERCHANT, SHIPPED, Shop, new_address, seeded_shop

pytestmark = pytest.mark.mysql

SEQUENCES = int(os.environ.get("PROPERTY_SEQUENCES", "200"))
PORTUGUESE = "demo_merchant_pt"
MERCHANTS = json.dumps({MERCHANT: {"countries": ["ES"]}, PORTUGUESE: {"countries": ["PT"]}})
SHOP_ZONE = ZoneInfo("Europe/Madrid")
OVERLAP = timedelta(minutes=5)
EXAMPLES = itertools.count()


@dataclass
class Part:
    """One sub-order as the model keeps it: its lines (reference -> [ordered, taken back, unit cents])."""

    id_order: int
    lines: dict[str, list[int]]
    shipping: int
    shipped: bool = False
    cancelled: bool = False
    tracking: str | None = None

    def kept(self) -> dict[str, list[int]]:
        """The lines with units the buyer kept."""
        return {ref: line for ref, line in self.lines.items() if line[0] - line[1] > 0}


@dataclass
class Order:
    """One order reference: its parts (split orders have two) and the first line of each address."""

    reference: str
    parts: list[Part]
    delivery: str = "Calle Mayor 1"
    invoice: str = "Calle Mayor 1"
    id_address: int = 0
    country: str = "ES"  # of the delivery address
    approved: bool = False  # SeQura knows it from checkout
    cancelled_unshipped: bool = False  # every part was cancelled, none shipped, at some moment

    def note_cancellation(self) -> None:
        """Remember whether every part is cancelled and none shipped: SeQura may have been told."""
        if all(part.cancelled and not part.shipped for part in self.parts):
            self.cancelled_unshipped = True


@dataclass
class Scenario:
    """One generated sequence: the shop, its model, the simulated clock and the runs made so far."""

    shop: Shop
    state_url: str
    sandbox: SandboxServer
    orders: list[Order]
    placed: datetime  # shop-local: when the orders were placed, the start of the sequence's first run
    clock: datetime
    id_customer: int
    runs: int = 0
    failed_runs: int = 0
    moved: bool = False  # an order was sent to Portugal
    trackings: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def tick(self) -> datetime:
        """Move the shop's clock on by an hour; the new shop-local time."""
        self.clock += timedelta(hours=1)
        return self.clock

    def run(self, fault: dict[str, int], merchant: str = MERCHANT) -> None:
        """A scheduled run of `merchant` now: from its last successful run (less the overlap) to now."""
        requests.post(self.sandbox.url + "_sandbox/faults", json=fault, timeout=5).raise_for_status()
        until = (self.clock + timedelta(minutes=1)).replace(tzinfo=SHOP_ZONE).astimezone(UTC)
        store = open_state_store(self.state_url)
        last = last_successful_until(store, merchant)
        store.dispose()
        window = (
            Window(last - OVERLAP, until, follows_last_run=True)
            if last is not None
            else Window(self.placed.replace(tzinfo=SHOP_ZONE).astimezone(UTC) - timedelta(hours=1), until)
        )
        settings = settings_for(
            self.shop.engine,
            self.state_url,
            SEQURA_API_URL=self.sandbox.url,
            SEQURA_MERCHANTS=MERCHANTS,
            SEQURA_MERCHANT_ID=merchant,
            SEQURA_MAX_ATTEMPTS="2",
            SEQURA_BACKOFF_SECONDS="0.001",
            SHOP_CHUNK_SIZE="2",
        )
        self.runs += 1
        try:
            run_once(settings, window)
        except SequraUnavailableError:
            self.failed_runs += 1
        requests.post(self.sandbox.url + "_sandbox/faults", json={}, timeout=5).raise_for_status()


def expected_cart(parts: list[Part], shipped: bool) -> list[tuple[str, str, int | None, int]]:
    """(type, reference, quantity, total) of each item of the cart SeQura should hold, sorted."""
    items: list[tuple[str, str, int | None, int]] = []
    for part in parts:
        if part.cancelled or part.shipped != shipped or not part.kept():
            continue
        for ref, (ordered, taken, unit) in part.kept().items():
            items.append(("product", ref, ordered - taken, (ordered - taken) * unit))
        if part.shipping:
            items.append(("handling", "shipping", None, part.shipping))
    return sorted(items, key=lambda item: (item[0], item[1], item[3]))


def held_cart(cart: dict[str, Any]) -> list[tuple[str, str, int | None, int]]:
    """The same tuples from a cart the sandbox holds, after checking that its total adds up."""
    items = [(i["type"], i["reference"], i.get("quantity"), i["total_with_tax"]) for i in cart["items"]]
    assert cart["order_total_with_tax"] == sum(item[3] for item in items)
    return sorted(items, key=lambda item: (item[0], item[1], item[3]))


def check_sequra_holds_what_the_shop_shows(scenario: Scenario) -> None:
    """Every order that ever shipped is held as the model says, reported once; the others as checked out."""
    for order in scenario.orders:
        response = requests.get(
            f"{scenario.sandbox.url}_sandbox/orders/{quote(order.reference, safe='')}", timeout=5
        )
        where = f"{order.reference} after {scenario.runs} runs ({scenario.failed_runs} failed)"
        if not any(part.shipped for part in order.parts):
            check_unshipped(order, response, where)
            continue
        assert response.status_code == 200, f"{where}: held by no merchant, or by both"
        held = response.json()
        told_cancelled = order.approved and order.cancelled_unshipped  # then shipped as an order update
        assert held["delivery_reports"] in ((0, 1) if told_cancelled else (1,)), where
        assert held_cart(held["shipped_cart"]) == expected_cart(order.parts, shipped=True), where
        assert held_cart(held["unshipped_cart"]) == expected_cart(order.parts, shipped=False), where
        assert held["delivery_address"]["address_line_1"] == order.delivery, where
        assert held["delivery_address"]["country_code"] == order.country, where
        assert held["invoice_address"]["address_line_1"] == order.invoice, where
        numbers = [part.tracking for part in order.parts if part.shipped and part.tracking]
        assert [t["tracking_number"] for t in held["trackings"]] == numbers, where


def check_unshipped(order: Order, response: requests.Response, where: str) -> None:
    """An order that never shipped: unknown if SeQura never saw it, else approved or (told) cancelled."""
    if not order.approved:
        assert response.status_code == 404, where
        return
    held = response.json()
    assert held["delivery_reports"] == 0, where
    if all(part.cancelled for part in order.parts):
        assert held["state"] == "cancelled", where
        assert held["shipped_cart"]["items"] == held["unshipped_cart"]["items"] == [], where
    else:  # a cancellation taken back is not told: SeQura keeps what it last heard
        assert held["state"] in (("approved", "cancelled") if order.cancelled_unshipped else ("approved",))


def place_orders(
    shop: Shop, draws: list[list[list[tuple[int, int]]]], example: int, at: datetime
) -> tuple[list[Order], int]:
    """Place a new buyer's generated orders (per order, per part, lines of (quantity, unit cents)) at `at`."""
    writer = shop.writer
    id_customer = writer.add_customer(firstname="Ana", lastname="García", email="ana@example.com", at=at)
    id_address = new_address(writer, id_customer, at=at)
    orders = []
    for number, part_lines in enumerate(draws):
        reference = f"P{example:05d}{number}"[-9:]
        parts = []
        for part_number, lines in enumerate(part_lines):
            shop_lines = [
                Line(f"Producto {n}", f"{reference}-{part_number}-{n}", quantity, Decimal(cents) / 100)
                for n, (quantity, cents) in enumerate(lines)
            ]
            shipping = 495 if part_number == 0 else 0
            id_order = shop.writer.add_order(
                reference=reference,
                id_customer=id_customer,
                id_address_delivery=id_address,
                id_carrier=shop.carrier,
                lines=shop_lines,
                shipping=Decimal(shipping) / 100,
                placed_at=at,
            )
            model_lines = {
                f"{reference}-{part_number}-{n}": [quantity, 0, cents]
                for n, (quantity, cents) in enumerate(lines)
            }
            parts.append(Part(id_order, model_lines, shipping))
        orders.append(Order(reference, parts, id_address=id_address))
    return orders, id_customer


def apply(scenario: Scenario, step: tuple[str, int, int, int, int]) -> None:
    """Apply one generated step to the shop and to the model; a step that does not apply is skipped."""
    kind, which, part_pick, line_pick, amount = step
    order = scenario.orders[which % len(scenario.orders)]
    part = order.parts[part_pick % len(order.parts)]
    writer = scenario.shop.writer
    if kind == "run":
        faults = [{}, {"fail_next": 1}, {"fail_next": 2}, {"rate_limit_next": 1, "retry_after": 0}]
        scenario.run(faults[amount % len(faults)])
        return
    at = scenario.tick()
    if kind == "ship" and not part.shipped and not part.cancelled:
        writer.set_state(part.id_order, SHIPPED, at=at)
        part.shipped = True
    elif kind in ("refund", "return") and part.shipped and not part.cancelled and part.kept():
        ref, line = sorted(part.kept().items())[line_pick % len(part.kept())]
        quantity = 1 + amount % (line[0] - line[1])
        if kind == "refund":
            writer.refund(part.id_order, product_reference=ref, quantity=quantity, at=at)
        else:
            writer.return_products(
                part.id_order, product_reference=ref, quantity=quantity, at=at, credit_slip=amount % 2 == 0
            )
        line[1] += quantity
    elif kind == "cancel" and not part.cancelled:
        writer.cancel_order(part.id_order, at=at)
        part.cancelled = True
        order.note_cancellation()
    elif kind == "uncancel" and part.cancelled and not part.shipped:
        writer.set_state(part.id_order, PAYMENT_ACCEPTED, at=at)
        part.cancelled = False
    elif kind == "deliver" and part.shipped and not part.cancelled:
        writer.set_state(part.id_order, DELIVERED, at=at)
    elif kind == "tracking" and part.shipped:
        part.tracking = f"PK{next(scenario.trackings):08d}ES"
        writer.set_tracking(part.id_order, part.tracking, at=at)
    elif kind == "shipping" and not part.cancelled:
        part.shipping = [0, 295, 495, 990][amount % 4]
        writer.change_shipping(part.id_order, Decimal(part.shipping) / 100, at=at)
    elif kind == "country" and order.country == "ES" and not order.approved and part.shipped:
        for part_of_order in order.parts:  # a delivery address corrected to Portugal, on every part
            order.id_address = writer.move_delivery_country(part_of_order.id_order, "PT", at=at)
        order.country = "PT"
        scenario.moved = True
    elif kind == "address":
        street = f"Calle Corregida {amount}"
        moved = writer.edit_address(order.id_address, at=at, address1=street)
        kinds = [("delivery",), ("invoice",), ("delivery", "invoice")][line_pick % 3]
        for part_of_order in order.parts:
            for address_kind in kinds:
                writer.repoint_order_address(part_of_order.id_order, address_kind, moved, at=at)
        order.id_address = moved
        for address_kind in kinds:
            setattr(order, address_kind, street)


LINES = st.lists(st.tuples(st.integers(1, 3), st.integers(100, 5000)), min_size=1, max_size=2)
ORDERS = st.lists(st.lists(LINES, min_size=1, max_size=2), min_size=1, max_size=3)
KINDS = [
    "ship",
    "ship",
    "run",
    "run",
    "refund",
    "return",
    "cancel",
    "cancel",
    "uncancel",
    "deliver",
    "tracking",
    "shipping",
    "address",
    "country",
]
STEPS = st.lists(
    st.tuples(st.sampled_from(KINDS), *(st.integers(0, 9) for _ in range(4))), min_size=2, max_size=12
)


@pytest.fixture(scope="module")
def property_shop(mysql_shop_engine_factory: Any) -> Iterator[Shop]:
    """One MariaDB shop on the real 8.0 DDL for every sequence; each sequence has its own days and orders."""
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    yield shop
    shop.engine.dispose()


@settings(
    max_examples=SEQUENCES,
    deadline=None,
    derandomize="PROPERTY_SEQUENCES" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(draws=ORDERS, shipped_first=st.integers(0, 3), approved=st.integers(0, 3), steps=STEPS)
def test_sequra_holds_what_the_shop_shows_after_any_events_runs_and_faults(
    property_shop: Shop,
    sandbox_server: SandboxServer,
    tmp_path_factory: pytest.TempPathFactory,
    draws: list[list[list[tuple[int, int]]]],
    shipped_first: int,
    approved: int,
    steps: list[tuple[str, int, int, int, int]],
) -> None:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    example = next(EXAMPLES)
    placed = datetime(2024, 1, 1, 9, 0) + timedelta(days=example)  # a sequence lasts hours, not days
    orders, id_customer = place_orders(property_shop, draws, example, placed)
    for order in orders[:approved]:
        order.approved = True
    checkouts = {"merchant": MERCHANT, "order_refs": [order.reference for order in orders if order.approved]}
    requests.post(sandbox_server.url + "_sandbox/checkouts", json=checkouts, timeout=5).raise_for_status()
    state_url = f"sqlite:///{Path(tmp_path_factory.mktemp('property')) / 'state.sqlite'}"
    scenario = Scenario(property_shop, state_url, sandbox_server, orders, placed, placed, id_customer)
    for which in range(len(orders)):  # most orders ship a first part and are reported first
        if which < shipped_first:
            apply(scenario, ("ship", which, 0, 0, 0))
    apply(scenario, ("run", 0, 0, 0, 0))
    for step in steps:
        apply(scenario, step)
    scenario.tick()
    scenario.run({})
    if scenario.moved:  # the other merchant must leave alone what the first reported
        scenario.run({}, PORTUGUESE)
    assert scenario.failed_runs < scenario.runs
    check_sequra_holds_what_the_shop_shows(scenario)
    updates = requests.get(sandbox_server.url + "_sandbox/order_updates", timeout=5).json()
    event(f"order updates accepted: {min(len(updates), 3)}{'+' if len(updates) >= 3 else ''}")
    event(f"runs that gave up: {min(scenario.failed_runs, 2)}")
    told = sum(order.approved and order.cancelled_unshipped for order in orders)
    event(f"approved orders cancelled before shipment: {min(told, 2)}{'+' if told >= 2 else ''}")
    event(f"orders sent to Portugal: {sum(order.country == 'PT' for order in orders)}")

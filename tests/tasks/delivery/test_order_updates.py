"""After shipment: every change the shop can make goes to SeQura as an order update (MariaDB, real DDL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import select

from flows.cli.main import main
from sandbox.server import SandboxServer
from schemas.outcomes import DeliveryOutcome
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from schemas.state import order_changes, quarantine
from seeding.vocabulary import Discount, Line
from tasks.delivery.order_updates import describe_change
from tasks.extract.scope import OrderFilter
from tasks.sequra_client import SequraNotSequraError, SequraUnavailableError
from tasks.state.quarantine import references_to_retry
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.cases import order_report
from tests.not_sequra import LOGIN_PAGE, Replay, Scripted
from tests.runs import dry_run, run_once, settings_for
from tests.shops import (
    CANCELED,
    DELIVERED,
    MERCHANT,
    MORNING,
    PREPARATION,
    SHIPPED,
    SINCE,
    UNTIL,
    Shop,
    candidates,
    seeded_shop,
)

pytestmark = pytest.mark.mysql

WINDOW = Window(SINCE, UNTIL, continues=False)
LATER = MORNING + timedelta(hours=5)  # shop-local, still inside the window
SHIRT = Line("Camiseta", "TSHIRT-1", 3, Decimal("10.00"))
SOCKS = Line("Calcetines", "SOCKS-1", 1, Decimal("2.00"))


@dataclass
class Changes:
    """A MariaDB shop on the real 8.0 DDL, the sandbox as SeQura, and runs of the pipeline between them."""

    shop: Shop
    state_url: str
    sandbox: SandboxServer

    def settings(self, **overrides: str) -> Settings:
        """The run's settings: this shop, this state store, the sandbox, and `overrides`."""
        return settings_for(
            self.shop.engine, self.state_url, **{"SEQURA_API_URL": self.sandbox.url, **overrides}
        )

    def run(self, window: Window = WINDOW, **overrides: str) -> DeliveryOutcome:
        """One real run over `window`, with settings `overrides` for this run only."""
        return run_once(self.settings(**overrides), window)

    def retried(self) -> list[str]:
        """The references the next run reads again whatever its window."""
        store = open_state_store(self.state_url)
        try:
            return references_to_retry(store, MERCHANT)
        finally:
            store.dispose()

    def held(self, order_ref_1: str) -> dict[str, Any]:
        """What the sandbox, as SeQura, holds for the order now."""
        url = f"{self.sandbox.url}_sandbox/orders/{quote(order_ref_1, safe='')}"
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        return response.json()

    def updates(self) -> list[dict[str, Any]]:
        """Every order update the sandbox accepted."""
        return requests.get(self.sandbox.url + "_sandbox/order_updates", timeout=5).json()

    def faults(self, **plan: object) -> None:
        """Plan the sandbox's next faults."""
        requests.post(self.sandbox.url + "_sandbox/faults", json=plan, timeout=5).raise_for_status()

    def reported(self, reference: str, lines: list[Line] | None = None, **fields: object) -> int:
        """An order shipped in the window and reported to SeQura by a first run; returns its id_order."""
        id_order = self.shop.shipped_order(reference, lines=lines or [SHIRT], **fields)
        assert self.run().counts.sent >= 1
        return id_order


def items(cart: dict[str, Any]) -> list[tuple[str, int | None, int]]:
    """(reference, quantity, total) of each item of a held cart."""
    return [(item["reference"], item.get("quantity"), item["total_with_tax"]) for item in cart["items"]]


@pytest.fixture
def changes(
    mysql_shop_engine_factory: Any, sandbox_server: SandboxServer, tmp_path: Path
) -> Iterator[Changes]:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    engine = mysql_shop_engine_factory("8.0", "ps_")
    shop = seeded_shop(engine, shop_tables("ps_"))
    yield Changes(shop, f"sqlite:///{tmp_path / 'state.sqlite'}", sandbox_server)
    engine.dispose()


def test_second_part_of_a_split_order_shipping_later_moves_it_to_the_shipped_cart(changes: Changes) -> None:
    shop = changes.shop
    shop.shipped_order("SPLITORDR", lines=[SHIRT])
    rest = shop.order("SPLITORDR", lines=[SOCKS])
    shop.writer.set_state(rest, PREPARATION, at=MORNING)
    changes.run()
    assert items(changes.held("SPLITORDR")["unshipped_cart"]) == [
        ("SOCKS-1", 1, 200),
        ("shipping", None, 495),
    ]

    shop.writer.set_state(rest, SHIPPED, at=LATER)
    outcome = changes.run()

    held = changes.held("SPLITORDR")
    assert outcome.counts.updated == 1
    assert [ref for ref, _, _ in items(held["shipped_cart"])].count("shipping") == 2
    assert ("SOCKS-1", 1, 200) in items(held["shipped_cart"])
    assert held["unshipped_cart"]["items"] == []
    assert outcome.update_rows[0].changes.startswith("second part shipped")


def test_partial_refund_takes_the_refunded_units_off_the_shipped_cart(changes: Changes) -> None:
    id_order = changes.reported("REFUNDED1")
    changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)

    outcome = changes.run()

    held = changes.held("REFUNDED1")
    assert outcome.counts.updated == 1
    assert items(held["shipped_cart"]) == [("TSHIRT-1", 2, 2000), ("shipping", None, 495)]
    assert held["shipped_cart"]["order_total_with_tax"] == 2495
    assert outcome.update_rows[0].changes == "shipped 34.95 → 24.95 EUR"


@pytest.mark.parametrize("version", ["1.7.8.1", "8.0", "9.1.0"])
def test_product_return_takes_the_returned_units_off_the_shipped_cart(
    changes: Changes, mysql_shop_engine_factory: Any, version: str
) -> None:
    changes.shop = seeded_shop(mysql_shop_engine_factory(version, "ps_"), shop_tables("ps_"))
    id_order = changes.reported("RETURNED1")
    changes.shop.writer.set_state(id_order, DELIVERED, at=MORNING + timedelta(hours=1))
    writer = changes.shop.writer
    writer.return_products(id_order, product_reference="TSHIRT-1", quantity=2, at=LATER, credit_slip=False)

    outcome = changes.run()

    assert outcome.counts.updated == 1
    assert items(changes.held("RETURNED1")["shipped_cart"]) == [
        ("TSHIRT-1", 1, 1000),
        ("shipping", None, 495),
    ]
    changes.shop.engine.dispose()


def test_merchandise_return_is_a_change_signal_of_its_own(changes: Changes) -> None:
    shop = changes.shop
    earlier = datetime(2026, 11, 10, 12, 0)
    id_order = shop.shipped_order(
        "RETURNED2", lines=[SHIRT], at=earlier, placed_at=earlier - timedelta(days=1)
    )
    assert candidates(shop.engine, shop.tables, OrderFilter(("sequrapayment",)), SINCE, UNTIL) == []

    shop.writer.return_products(
        id_order, product_reference="TSHIRT-1", quantity=1, at=LATER, credit_slip=False
    )

    assert candidates(shop.engine, shop.tables, OrderFilter(("sequrapayment",)), SINCE, UNTIL) == [
        "RETURNED2"
    ]


@pytest.mark.parametrize(
    "undo",
    [
        pytest.param(
            lambda shop, id_order: shop.writer.refund(
                id_order, product_reference="TSHIRT-1", quantity=3, at=LATER
            ),
            id="full refund",
        ),
        pytest.param(
            lambda shop, id_order: shop.writer.set_state(id_order, CANCELED, at=LATER), id="cancellation"
        ),
    ],
)
def test_full_refund_or_cancellation_after_shipment_empties_both_carts(changes: Changes, undo: Any) -> None:
    id_order = changes.reported("UNDONE001")
    undo(changes.shop, id_order)

    outcome = changes.run()

    held = changes.held("UNDONE001")
    assert outcome.counts.updated == 1
    assert (held["shipped_cart"]["items"], held["unshipped_cart"]["items"]) == ([], [])
    assert (held["shipped_cart"]["order_total_with_tax"], held["unshipped_cart"]["order_total_with_tax"]) == (
        0,
        0,
    )
    assert outcome.update_rows[0].changes.startswith("cancelled")


@pytest.mark.parametrize("kind", ["delivery", "invoice"])
def test_address_corrected_from_the_order_page_is_sent(changes: Changes, kind: str) -> None:
    id_order = changes.reported("MOVEDADDR")
    shop = changes.shop
    moved = shop.writer.edit_address(shop.address, at=LATER, address1="Calle Nueva 2", postcode="28014")
    shop.writer.repoint_order_address(id_order, kind, moved, at=LATER)  # type: ignore[arg-type]

    outcome = changes.run()

    held = changes.held("MOVEDADDR")
    assert outcome.counts.updated == 1
    assert (held[f"{kind}_address"]["address_line_1"], held[f"{kind}_address"]["postal_code"]) == (
        "Calle Nueva 2",
        "28014",
    )
    assert outcome.update_rows[0].changes == f"{kind} address"


def test_discount_added_after_the_report_lowers_the_shipped_cart(changes: Changes) -> None:
    id_order = changes.reported("DISCOUNTD")
    changes.shop.writer.add_discount(id_order, Discount("Compensación retraso", Decimal("5.00")), at=LATER)

    outcome = changes.run()

    held = changes.held("DISCOUNTD")["shipped_cart"]
    assert outcome.counts.updated == 1
    assert held["order_total_with_tax"] == 2995
    assert [item["total_with_tax"] for item in held["items"] if item["type"] == "discount"] == [-500]


def test_shipping_cost_changed_after_the_report_is_sent(changes: Changes) -> None:
    id_order = changes.reported("SHIPPING1")
    changes.shop.writer.change_shipping(id_order, Decimal("0.00"), at=LATER)

    outcome = changes.run()

    assert outcome.counts.updated == 1
    assert items(changes.held("SHIPPING1")["shipped_cart"]) == [("TSHIRT-1", 3, 3000)]


def test_tracking_number_added_later_is_sent(changes: Changes) -> None:
    id_order = changes.reported("TRACKEDLT")
    changes.shop.writer.set_tracking(id_order, "PK123456789ES", at=LATER)

    outcome = changes.run()

    assert outcome.counts.updated == 1
    assert [t["tracking_number"] for t in changes.held("TRACKEDLT")["trackings"]] == ["PK123456789ES"]
    assert outcome.update_rows[0].changes == "tracking"


def test_line_added_in_the_back_office_before_the_rest_shipped_joins_the_unshipped_cart(
    changes: Changes,
) -> None:
    shop = changes.shop
    shop.shipped_order("ADDEDLINE", lines=[SHIRT])
    rest = shop.order("ADDEDLINE", lines=[SOCKS])
    shop.writer.set_state(rest, PREPARATION, at=MORNING)
    changes.run()
    shop.writer.add_line(rest, Line("Gorra", "CAP-1", 1, Decimal("8.00")), at=LATER)

    outcome = changes.run()

    assert outcome.counts.updated == 1
    assert items(changes.held("ADDEDLINE")["unshipped_cart"]) == [
        ("SOCKS-1", 1, 200),
        ("CAP-1", 1, 800),
        ("shipping", None, 495),
    ]


def test_shipped_to_delivered_with_nothing_else_changed_sends_nothing(changes: Changes) -> None:
    id_order = changes.reported("DELIVERED")
    changes.shop.writer.set_state(id_order, DELIVERED, at=LATER)

    outcome = changes.run()

    assert (outcome.counts.changed, outcome.counts.updated, outcome.requests) == (0, 0, 0)
    assert changes.updates() == []


def test_refused_update_is_quarantined_with_sequras_words_and_not_resent_until_the_order_changes(
    changes: Changes,
) -> None:
    refused = changes.shop.shipped_order("REFUSEDUP", lines=[SHIRT])
    accepted = changes.shop.shipped_order("ACCEPTEDU", lines=[SHIRT])
    changes.run()
    for id_order in (refused, accepted):
        changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    changes.faults(reject_refs=["REFUSEDUP"])

    outcome = changes.run()

    assert (outcome.counts.updated, outcome.counts.update_failed, outcome.counts.quarantined) == (1, 1, 0)
    [entry] = outcome.quarantined_rows
    assert (entry.reference, entry.stage) == ("REFUSEDUP", "update")
    assert "SeQura refused the update (409)" in entry.reason and "rejected by the sandbox" in entry.reason
    changes.faults()
    assert changes.run().counts.updated == 0  # the same update, from the same snapshot, is held
    changes.shop.writer.refund(
        refused, product_reference="TSHIRT-1", quantity=1, at=LATER + timedelta(hours=1)
    )
    assert changes.run().counts.updated == 1
    assert items(changes.held("REFUSEDUP")["shipped_cart"])[0] == ("TSHIRT-1", 1, 1000)


def test_update_of_an_order_sequra_does_not_know_is_quarantined_and_not_retried_every_night(
    changes: Changes,
) -> None:
    id_order = changes.reported("UNKNOWNSQ")
    requests.post(changes.sandbox.url + "_sandbox/reset", timeout=5).raise_for_status()  # SeQura forgot it
    changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)

    outcome = changes.run()

    [entry] = outcome.quarantined_rows
    assert "SeQura does not know order UNKNOWNSQ for merchant demo_merchant (404)" in entry.reason
    assert "SEQURA_MERCHANT_ID" in entry.reason
    assert changes.retried() == []


def test_update_that_would_make_a_cart_negative_is_quarantined_naming_the_order_and_never_sent(
    changes: Changes,
) -> None:
    id_order = changes.reported(
        "NEGATIVE1", lines=[SHIRT, SOCKS], discounts=[Discount("Bienvenida", Decimal("20.00"))]
    )
    changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=3, at=LATER)

    outcome = changes.run()

    [entry] = outcome.quarantined_rows
    named = (
        f"the shipped part of order {id_order} would total -13.05 EUR: its discounts ('Bienvenida' -20.00)"
    )
    assert entry.reason.startswith(named)
    assert changes.updates() == []


def test_update_that_got_no_answer_is_simply_sent_again_by_the_next_run_whatever_its_window(
    changes: Changes,
) -> None:
    id_order = changes.reported("NOANSWER1")
    changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    changes.faults(drop_next=2)

    first = changes.run(SEQURA_MAX_ATTEMPTS="2")
    later = changes.run(Window(UNTIL, UNTIL + timedelta(days=1), continues=False))

    assert (first.counts.updated, first.counts.unanswered, later.counts.updated) == (0, 1, 1)
    assert items(changes.held("NOANSWER1")["shipped_cart"])[0] == ("TSHIRT-1", 2, 2000)
    assert changes.retried() == []


def test_describe_change_names_the_cart_totals_and_the_parts_in_a_merchants_words() -> None:
    before = order_report("A", total=9999)
    after = order_report("A", total=7499)
    after["delivery_address"] = {**after["delivery_address"], "city": "Sevilla"}

    assert describe_change(dict(before), after) == "shipped 99.99 → 74.99 EUR, delivery address"


def test_release_lets_a_refused_update_go_again_as_it_stands(changes: Changes, capsys: Any) -> None:
    id_order = changes.reported("RELEASED1")
    changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    changes.faults(reject_refs=["RELEASED1"])
    assert changes.run().counts.update_failed == 1
    changes.faults()
    held = changes.run().counts
    assert (held.updated, held.update_failed) == (0, 1)  # still held, and counted as held

    assert main(["release", "RELEASED1", "--merchant", MERCHANT, "--state-db-url", changes.state_url]) == 0

    assert "the next run sends their order updates again: RELEASED1" in capsys.readouterr().out
    assert changes.retried() == ["RELEASED1"]
    assert changes.run().counts.updated == 1


def test_a_dry_run_lists_the_updates_it_would_send_and_sends_none(changes: Changes, tmp_path: Path) -> None:
    id_order = changes.reported("DRYUPDATE")
    changes.shop.writer.set_tracking(id_order, "PK999ES", at=LATER)
    outcome = dry_run(changes.settings(), WINDOW, tmp_path / "dry-run.json").outcome

    assert [(row.order_ref_1, row.changes, row.result) for row in outcome.update_rows] == [
        ("DRYUPDATE", "tracking", "dry run: not sent")
    ]
    assert changes.updates() == []


def test_a_refused_update_of_an_order_changed_back_is_closed(changes: Changes) -> None:
    id_order = changes.reported("CHANGEDBK")
    changes.shop.writer.set_tracking(id_order, "PK1ES", at=LATER)
    changes.faults(reject_refs=["CHANGEDBK"])
    assert changes.run().counts.update_failed == 1
    changes.faults()

    changes.shop.writer.set_tracking(id_order, "", at=LATER + timedelta(hours=1))
    outcome = changes.run()

    assert (outcome.counts.changed, outcome.counts.updated, outcome.counts.quarantined) == (0, 0, 0)
    store = open_state_store(changes.state_url)
    with store.engine.connect() as conn:
        assert conn.execute(select(quarantine.c.resolved_at)).scalar_one() is not None
        assert conn.execute(select(order_changes.c.outcome)).scalars().all() == ["superseded"]
    store.dispose()


def test_an_update_that_may_have_arrived_unanswered_is_sent_again_even_if_the_order_changed_back(
    changes: Changes,
) -> None:
    id_order = changes.reported("UNDONEAGN")
    changes.shop.writer.set_tracking(id_order, "PK1ES", at=LATER)
    changes.faults(lose_answer_next=1)  # SeQura applies it, but its answer never arrives
    first = changes.run(SEQURA_MAX_ATTEMPTS="1")
    assert [row.result for row in first.update_rows] == ["no answer from SeQura: the next run sends it again"]
    assert (first.counts.updated, first.counts.update_failed, first.counts.unanswered) == (0, 0, 1)
    assert [t["tracking_number"] for t in changes.held("UNDONEAGN")["trackings"]] == ["PK1ES"]

    changes.shop.writer.set_tracking(id_order, "", at=LATER + timedelta(hours=1))
    second = changes.run()

    assert [(row.changes, row.result) for row in second.update_rows] == [
        ("sent again: the last update got no answer", "accepted (200)")
    ]
    assert changes.held("UNDONEAGN")["trackings"] == []
    assert changes.retried() == []


def test_one_unanswered_update_does_not_stop_the_others_but_three_in_a_row_stop_the_run(
    changes: Changes,
) -> None:
    ids = [changes.shop.shipped_order(f"NOANSWER{n}", lines=[SHIRT]) for n in range(4)]
    changes.run()
    for id_order in ids:
        changes.shop.writer.set_tracking(id_order, f"PK{id_order}ES", at=LATER)
    changes.faults(drop_next=1)

    outcome = changes.run(SEQURA_MAX_ATTEMPTS="1")

    assert (outcome.counts.updated, outcome.counts.update_failed, outcome.counts.unanswered) == (3, 0, 1)
    for id_order in ids:
        changes.shop.writer.set_tracking(id_order, f"PK{id_order}XX", at=LATER + timedelta(hours=1))
    changes.faults(drop_next=3)
    with pytest.raises(SequraUnavailableError, match="SeQura answered none of 3 order updates in a row"):
        changes.run(SEQURA_MAX_ATTEMPTS="1")
    changes.faults()
    assert changes.run().counts.updated == 4


def test_an_order_sequra_does_not_know_stays_quarantined_until_a_person_has_it_reported_again(
    changes: Changes, capsys: Any
) -> None:
    id_order = changes.reported("FORGOTTEN")
    requests.post(changes.sandbox.url + "_sandbox/reset", timeout=5).raise_for_status()  # SeQura lost it
    changes.shop.writer.set_tracking(id_order, "PK1ES", at=LATER)
    assert changes.run().counts.update_failed == 1
    changes.shop.writer.set_tracking(id_order, "", at=LATER + timedelta(hours=1))  # back as reported
    assert changes.run().quarantined_rows == ()
    store = open_state_store(changes.state_url)
    with store.engine.connect() as conn:
        assert conn.execute(select(quarantine.c.resolved_at)).scalar_one() is None  # SeQura still has nothing
    store.dispose()

    main(["release", "FORGOTTEN", "--resend", "--merchant", MERCHANT, "--state-db-url", changes.state_url])

    assert "the next run reports them again as new: FORGOTTEN" in capsys.readouterr().out
    assert changes.run().counts.sent == 1
    assert changes.held("FORGOTTEN")["delivery_reports"] == 1


JSON = (("Content-Type", "application/json"),)


def test_an_order_reference_of_two_dots_is_quarantined_naming_it_and_never_reaches_sequra(
    changes: Changes,
) -> None:
    with Replay() as sequra:
        sequra.answers = {"POST": Scripted(204), "PUT": Scripted(200, JSON, b"{}")}
        id_order = changes.shop.shipped_order("..", lines=[SHIRT])
        changes.shop.shipped_order("GOODORDER", lines=[SHIRT])
        first = changes.run(SEQURA_API_URL=sequra.url)
        changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
        second = changes.run(SEQURA_API_URL=sequra.url)

    assert (first.counts.sent, second.counts.updated) == (1, 0)
    [entry] = second.quarantined_rows
    assert (entry.reference, entry.stage) == ("..", "build")
    assert entry.reason.startswith("order reference '..' would be read as a path")
    assert "SeQura's back office" in entry.reason
    assert "PUT" not in {method for method, _ in sequra.requests}


def test_a_2xx_that_is_not_sequras_leaves_the_report_unsent_and_a_later_run_sends_it(
    changes: Changes,
) -> None:
    changes.shop.shipped_order("LOGINPAGE", lines=[SHIRT])
    with Replay() as proxy:
        proxy.answers["POST"] = Scripted(200, JSON, LOGIN_PAGE[2])
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL"):
            changes.run(SEQURA_API_URL=proxy.url)

    assert changes.run().counts.sent == 1
    assert items(changes.held("LOGINPAGE")["shipped_cart"])[0] == ("TSHIRT-1", 3, 3000)


def test_a_2xx_to_an_update_that_is_not_sequras_leaves_the_update_owed_and_a_later_run_sends_it(
    changes: Changes,
) -> None:
    id_order = changes.reported("LOGINUPDT")
    changes.shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=LATER)
    with Replay() as proxy:
        proxy.answers = {"POST": Scripted(204), "PUT": Scripted(200, JSON, LOGIN_PAGE[2])}
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL"):
            changes.run(SEQURA_API_URL=proxy.url)
        assert ("PUT", "/merchants/demo_merchant/orders/LOGINUPDT") in proxy.requests

    assert changes.run().counts.updated == 1
    assert items(changes.held("LOGINUPDT")["shipped_cart"])[0] == ("TSHIRT-1", 2, 2000)

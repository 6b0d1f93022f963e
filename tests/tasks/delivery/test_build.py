from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import String, literal, update

from schemas.prestashop_types import ZERO_DATETIME
from schemas.reports import Stage
from schemas.shown import shown
from seeding.vocabulary import GBP, Discount, Line
from tasks.delivery.build import quarantine_reason, serialised
from tasks.delivery.cart import ADJUSTMENT_NAME
from tasks.delivery.statistics import build_statistics
from tasks.extract.configuration import read_config
from tasks.extract.scope import OrderFilter
from tasks.extract.statistics import extract_recent_orders
from tests.shops import CANCELED, DELIVERED, MORNING, PLACED, PREPARATION, SHIPPED, SINCE, Shop, new_address


def items_by_type(cart) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for item in cart["items"]:
        grouped.setdefault(item["type"], []).append(item)
    return grouped


def test_shipped_order_reports_products_discounts_and_shipping_in_cents(shop: Shop) -> None:
    shop.shipped_order(
        "ABCDEFGHI",
        lines=[
            Line("Camisa azul", "SHIRT-B", 2, Decimal("12.50")),
            Line("Calcetines", "SOCKS", 1, Decimal("5.00")),
        ],
        discounts=[Discount("Bienvenida", Decimal("3.00"))],
        shipping=Decimal("4.95"),
    )
    cart = shop.report("ABCDEFGHI").report["cart"]
    kinds = items_by_type(cart)
    assert [
        (i["reference"], i["quantity"], i["price_with_tax"], i["total_with_tax"]) for i in kinds["product"]
    ] == [
        ("SHIRT-B", 2, 1250, 2500),
        ("SOCKS", 1, 500, 500),
    ]
    assert [i["total_with_tax"] for i in kinds["discount"]] == [-300]
    assert [(i["name"], i["total_with_tax"]) for i in kinds["handling"]] == [("Correos Express", 495)]
    assert cart["order_total_with_tax"] == 3195 == sum(i["total_with_tax"] for i in cart["items"])
    assert cart["currency"] == "EUR"


def test_order_refs_are_the_reference_and_the_first_id_order(shop: Shop) -> None:
    id_order = shop.shipped_order("REFERENCE")
    reference = shop.report("REFERENCE").report["merchant_reference"]
    assert (reference["order_ref_1"], reference["order_ref_2"]) == ("REFERENCE", str(id_order))


def test_order_ref_1_can_be_the_id_order_as_in_the_php_module_setting(shop: Shop) -> None:
    id_order = shop.shipped_order("REFERENCE")
    built = shop.build(order_ref_field="id_order").reports[0]
    assert built.order_ref_1 == str(id_order)
    assert "order_ref_2" not in built.report["merchant_reference"]


def test_sent_at_is_the_first_shipped_history_row_in_utc(shop: Shop) -> None:
    id_order = shop.shipped_order("SHIPTIME", at=MORNING)
    shop.writer.set_state(id_order, DELIVERED, at=MORNING.replace(hour=18))
    report = shop.report("SHIPTIME").report
    assert report["sent_at"] == "2026-11-20T09:00:00+00:00"


def test_shipped_becoming_delivered_keeps_the_fingerprint(shop: Shop) -> None:
    id_order = shop.shipped_order("ARRIVEDOK")
    shipped = shop.report("ARRIVEDOK")
    shop.writer.set_state(id_order, DELIVERED, at=MORNING.replace(hour=19))
    delivered = shop.report("ARRIVEDOK")
    assert (shipped.report["state"], delivered.report["state"]) == ("shipped", "delivered")
    assert shipped.fingerprint == delivered.fingerprint


def test_a_blank_tracking_number_is_not_sent(shop: Shop) -> None:
    shop.shipped_order("BLANKTRAK", tracking_number="   ")
    assert shop.report("BLANKTRAK").report["trackings"] == []


def test_an_unexpected_error_quarantines_the_order_with_its_type() -> None:
    reason = quarantine_reason(KeyError("product_quantity"))
    assert reason.startswith("could not build the report (KeyError: 'product_quantity')")


def test_state_is_delivered_when_the_current_state_is_ps_os_delivered(shop: Shop) -> None:
    delivered = shop.shipped_order("DELIVERED")
    shop.writer.set_state(delivered, DELIVERED, at=MORNING.replace(hour=12))
    shop.shipped_order("SHIPPEDONLY")
    states = {b.reference: b.report["state"] for b in shop.build().reports}
    assert states == {"DELIVERED": "delivered", "SHIPPEDONLY": "shipped"}


def test_an_order_stays_shipped_once_it_entered_a_shipped_state(shop: Shop) -> None:
    id_order = shop.shipped_order("RETURNED")
    shop.writer.set_state(id_order, CANCELED, at=MORNING.replace(hour=20))
    assert shop.report("RETURNED").report["state"] == "shipped"


def test_split_order_reports_unshipped_part_as_remaining_cart(shop: Shop) -> None:
    first = shop.shipped_order("SPLITORDR", lines=[Line("Libro", "BOOK", 1, Decimal("20.00"))])
    second = shop.order(
        "SPLITORDR", lines=[Line("Lámpara", "LAMP", 1, Decimal("35.00"))], initial_state=PREPARATION
    )
    report = shop.report("SPLITORDR").report
    assert [i["reference"] for i in report["cart"]["items"] if i["type"] == "product"] == ["BOOK"]
    assert [i["reference"] for i in report["remaining_cart"]["items"] if i["type"] == "product"] == ["LAMP"]
    assert report["cart"]["order_total_with_tax"] == 2000 + 495
    assert report["remaining_cart"]["order_total_with_tax"] == 3500 + 495
    assert report["merchant_reference"]["order_ref_2"] == str(min(first, second))


def test_split_order_whose_parts_ship_on_different_days_changes_when_the_second_ships(shop: Shop) -> None:
    shop.shipped_order("SPLITDAYS", lines=[Line("Libro", "BOOK", 1, Decimal("20.00"))])
    second = shop.order("SPLITDAYS", lines=[Line("Lámpara", "LAMP", 1, Decimal("35.00"))])
    before = shop.report("SPLITDAYS")
    shop.writer.set_state(second, SHIPPED, at=MORNING.replace(day=21))
    after = shop.report("SPLITDAYS", until=datetime(2026, 11, 22).astimezone())
    assert before.fingerprint != after.fingerprint
    assert after.report["remaining_cart"]["items"] == []
    assert after.report["sent_at"] == before.report["sent_at"]


def test_quantities_are_net_of_refunds_and_the_total_follows(shop: Shop) -> None:
    id_order = shop.shipped_order("REFUNDED", lines=[Line("Vaso", "GLASS", 4, Decimal("2.50"))])
    shop.writer.refund(id_order, product_reference="GLASS", quantity=1, at=MORNING.replace(hour=11))
    cart = shop.report("REFUNDED").report["cart"]
    product = items_by_type(cart)["product"][0]
    assert (product["quantity"], product["total_with_tax"]) == (3, 750)
    assert cart["order_total_with_tax"] == 750 + 495


def test_a_rounding_gap_of_one_cent_is_absorbed_by_an_adjustment_line(shop: Shop) -> None:
    id_order = shop.shipped_order("ROUNDING")
    shop.set_order(id_order, total_paid_tax_incl=Decimal("17.460000"))
    cart = shop.report("ROUNDING").report["cart"]
    assert cart["items"][-1]["name"] == ADJUSTMENT_NAME
    assert cart["items"][-1]["total_with_tax"] == 1
    assert cart["order_total_with_tax"] == 1746 == sum(i["total_with_tax"] for i in cart["items"])


def test_totals_that_do_not_add_up_are_quarantined_with_both_sums(shop: Shop) -> None:
    id_order = shop.shipped_order("BROKENSUM")
    shop.shipped_order("HEALTHY")
    shop.set_order(id_order, total_paid_tax_incl=Decimal("50.97"))
    result = shop.build()
    assert [b.reference for b in result.reports] == ["HEALTHY"]
    (entry,) = result.quarantined
    assert (entry.reference, entry.stage) == ("BROKENSUM", Stage.BUILD)
    assert "totals do not add up: items 17.45 EUR, order 50.97 EUR" in entry.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ({"product_quantity_refunded": 2}, "has 2 units refunded and 0 returned but 1 ordered"),
        ({"product_quantity": -1}, "has -1 units ordered, 0 refunded and 0 returned; quantities cannot be"),
        ({"product_quantity": 0}, "has 0 units ordered"),
        ({"product_name": "  "}, "has no product name, which SeQura shows the buyer"),
        ({"product_name": "x" * 1_000_000}, "has a product name of 1,000,000 characters, more than the 255"),
    ],
    ids=["refunded beyond ordered", "negative quantity", "zero quantity", "empty name", "1 MB name"],
)
def test_a_line_that_cannot_be_sent_quarantines_its_order_naming_order_and_line(
    shop: Shop, line: dict, reason: str
) -> None:
    id_order = shop.shipped_order("BADLINE01")
    shop.shipped_order("FINEORDER")
    detail = shop.tables.order_detail
    with shop.engine.begin() as conn:
        conn.execute(update(detail).where(detail.c.id_order == id_order).values(**line))
    result = shop.build()
    (entry,) = result.quarantined
    assert [built.reference for built in result.reports] == ["FINEORDER"]
    assert entry.reason.startswith(f"line TSHIRT-1 of order {id_order} {reason}")


def test_sub_orders_of_one_reference_in_two_currencies_are_quarantined_naming_each(shop: Shop) -> None:
    euros = shop.shipped_order("TWOCURREN")
    pounds = shop.shipped_order("TWOCURREN", id_currency=GBP)
    (entry,) = shop.build().quarantined
    assert (
        f"(order {euros} in EUR, order {pounds} in GBP); SeQura takes one currency per order" in entry.reason
    )


@pytest.mark.parametrize("email", ["not-an-email", "ana@", "ana @example.com", "ana@example"])
def test_an_email_that_is_not_an_email_is_quarantined_naming_the_customer(shop: Shop, email: str) -> None:
    buyer = shop.writer.add_customer(firstname="Ana", lastname="García", email=email, at=PLACED)
    id_order = shop.shipped_order("BADEMAIL1", id_customer=buyer)
    (entry,) = shop.build().quarantined
    assert entry.reason.startswith(
        f"customer {buyer} of order {id_order} has the email {email!r}, which is not"
    )


def test_unknown_currency_is_quarantined_naming_it(shop: Shop) -> None:
    shop.shipped_order("NOCURRENC", id_currency=99)
    (entry,) = shop.build().quarantined
    assert "currency id 99" in entry.reason


def test_unknown_country_is_quarantined_naming_the_address(shop: Shop) -> None:
    address = shop.new_address(address1="Nowhere 1", city="Atlantis", postcode="00000", id_country=999)
    shop.shipped_order("NOCOUNTRY", id_address_delivery=address)
    (entry,) = shop.build().quarantined
    assert f"delivery address {address} has country id 999" in entry.reason


def test_soft_deleted_address_is_reported_as_the_order_points_to_it(shop: Shop) -> None:
    shop.shipped_order("OLDADDRES")
    shop.writer.edit_address(shop.address, at=MORNING.replace(hour=12), address1="Calle Nueva 2")
    report = shop.report("OLDADDRES").report
    assert report["delivery_address"]["address_line_1"] == "Calle Mayor 1"
    assert report["delivery_address"]["country_code"] == "ES"


def test_deleted_carrier_still_names_the_delivery_method(shop: Shop) -> None:
    shop.shipped_order("OLDCARRIE", tracking_number="PK123")
    shop.writer.edit_carrier(shop.carrier, name="Correos Express 24h")
    report = shop.report("OLDCARRIE").report
    assert report["delivery_method"]["name"] == "Correos Express"


def test_tracking_number_comes_with_the_carriers_tracking_url(shop: Shop) -> None:
    shop.shipped_order("TRACKED", tracking_number="PK123")
    shop.shipped_order("UNTRACKED")
    reports = {b.reference: b.report for b in shop.build().reports}
    (tracking,) = reports["TRACKED"]["trackings"]
    assert tracking["tracking_number"] == "PK123"
    assert tracking["tracking_url"] == "https://s.correosexpress.com/search?n=PK123"
    assert reports["UNTRACKED"]["trackings"] == []


def test_guest_and_deleted_customers_are_reported(shop: Shop) -> None:
    guest = shop.writer.add_customer(
        firstname="Guest", lastname="Buyer", email="guest@example.com", is_guest=True, at=MORNING
    )
    gone = shop.writer.add_customer(
        firstname="Gone", lastname="Buyer", email="gone@example.com", deleted=True, at=MORNING
    )
    shop.shipped_order("GUESTBUYR", id_customer=guest)
    shop.shipped_order("GONEBUYER", id_customer=gone)
    customers = {b.reference: b.report["customer"] for b in shop.build().reports}
    assert customers["GUESTBUYR"]["logged_in"] is False
    assert customers["GUESTBUYR"]["email"] == "guest@example.com"
    assert customers["GONEBUYER"]["email"] == "gone@example.com"


def test_an_order_whose_customer_row_is_gone_is_quarantined_asking_for_the_email(shop: Shop) -> None:
    shop.shipped_order("NOBUYER99", id_customer=9999)
    (entry,) = shop.build().quarantined
    assert "customer 9999 has no row or no email" in entry.reason


def test_names_with_accents_and_emoji_survive_byte_exact(shop: Shop) -> None:
    name = "José Ñúñez 🚀"
    customer = shop.writer.add_customer(
        firstname="José", lastname="Ñúñez 🚀", email="jose@example.com", at=MORNING
    )
    address = new_address(
        shop.writer,
        customer,
        firstname="José",
        lastname="Ñúñez 🚀",
        address1="Carrer d'Aragó 7",
        city="Barcelona",
        postcode="08011",
    )
    shop.shipped_order(
        "EMOJIBUYR",
        id_customer=customer,
        id_address_delivery=address,
        lines=[Line("Taza «Zoë» ☕", "MUG", 1, Decimal("9.90"))],
    )
    built = shop.report("EMOJIBUYR")
    report = built.report
    customer = report["customer"]
    assert f"{customer['given_names']} {customer['surnames']}" == name
    assert "Taza «Zoë» ☕".encode() in built.payload
    assert report["delivery_address"]["address_line_1"] == "Carrer d'Aragó 7"


def test_full_discount_reports_a_zero_total(shop: Shop) -> None:
    shop.shipped_order(
        "FREEORDER",
        lines=[Line("Regalo", "GIFT", 1, Decimal("30.00"))],
        shipping=Decimal("0"),
        discounts=[Discount("100%", Decimal("30.00"))],
    )
    cart = shop.report("FREEORDER").report["cart"]
    assert cart["order_total_with_tax"] == 0
    assert sorted(i["total_with_tax"] for i in cart["items"]) == [-3000, 3000]


def test_an_order_of_five_hundred_lines_adds_up(shop: Shop) -> None:
    lines = [
        Line(f"Tornillo {n}", f"SCREW-{n}", 1 + n % 3, Decimal("0.33") + Decimal(n) / 100) for n in range(500)
    ]
    shop.shipped_order("BIGORDERS", lines=lines)
    cart = shop.report("BIGORDERS").report["cart"]
    assert len([i for i in cart["items"] if i["type"] == "product"]) == 500
    assert cart["order_total_with_tax"] == sum(i["total_with_tax"] for i in cart["items"])


def test_gift_wrapping_is_a_handling_line_and_sets_the_gift_flag(shop: Shop) -> None:
    shop.shipped_order("GIFTWRAPS", gift=True, wrapping=Decimal("2.00"))
    cart = shop.report("GIFTWRAPS").report["cart"]
    assert cart["gift"] is True
    assert ("gift-wrapping", 200) in [
        (i["reference"], i["total_with_tax"]) for i in items_by_type(cart)["handling"]
    ]


def test_a_shipped_state_dated_zero_is_quarantined_with_what_to_do(shop: Shop) -> None:
    id_order = shop.order("ZERODATED")
    shop.writer.set_state(id_order, SHIPPED, at=MORNING)
    with shop.engine.begin() as conn:
        history = shop.tables.order_history
        conn.execute(
            history.update()
            .where(history.c.id_order == id_order, history.c.id_order_state == SHIPPED)
            .values(date_add=literal(ZERO_DATETIME, String))
        )
    (entry,) = shop.build().quarantined
    assert "0000-00-00" in entry.reason


def test_the_same_report_always_has_the_same_fingerprint(shop: Shop) -> None:
    shop.shipped_order("STABLEREF")
    first, second = shop.report("STABLEREF"), shop.report("STABLEREF")
    assert first.fingerprint == second.fingerprint == serialised(second.report)[1]


def test_the_fingerprint_is_the_hash_of_the_bytes_sent_without_the_state(shop: Shop) -> None:
    shop.shipped_order("HASHEDREF")
    built = shop.report("HASHEDREF")
    assert built.payload.startswith(b'{"state":"shipped","cart":')
    without_state = b"{" + built.payload[len(b'{"state":"shipped",') :]
    assert hashlib.sha256(without_state).hexdigest() == built.fingerprint
    assert orjson.loads(built.payload) == built.report


def test_module_marked_orders_are_flagged_and_other_merchants_orders_left_out(shop: Shop) -> None:
    mine = shop.shipped_order("MODULESNT")
    theirs = shop.shipped_order("OTHERMERC")
    shop.writer.mark_sent_by_module(mine, merchant_id="demo_merchant", sent=True)
    shop.writer.mark_sent_by_module(theirs, merchant_id="another_merchant", sent=False)
    result = shop.build()
    assert [(b.reference, b.reported_by_module) for b in result.reports] == [("MODULESNT", True)]
    assert result.other_merchant == ["OTHERMERC"]


def test_statistics_list_every_recent_order_with_payment_method_and_status(shop: Shop) -> None:
    shop.shipped_order("SEQURASHP")
    shop.order("CHEQUEORD", module="ps_checkpayment")
    cancelled = shop.order("CANCELLED", module="paypal")
    shop.writer.set_state(cancelled, CANCELED, at=MORNING)
    config = read_config(shop.engine, shop.tables, None)
    recent = extract_recent_orders(
        shop.engine, shop.tables, config, OrderFilter(()), SINCE - timedelta(days=7)
    )
    statistics = build_statistics(recent, config, ("sequrapayment",))
    by_method = {o["payment_method"]: o for o in statistics["orders"]}
    assert set(by_method) == {"SQ", "TR", "PP"}
    assert (by_method["SQ"]["status"], by_method["SQ"]["merchant_reference"]["order_ref_1"]) == (
        "shipped",
        "SEQURASHP",
    )
    assert by_method["TR"]["status"] == "processing"
    assert "merchant_reference" not in by_method["TR"]
    assert by_method["PP"]["status"] == "cancelled"
    assert by_method["SQ"]["completed_at"] == "2026-11-18T18:30:00+01:00"
    assert (by_method["SQ"]["amount"], by_method["SQ"]["currency"], by_method["SQ"]["country"]) == (
        1745,
        "EUR",
        "ES",
    )


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("..", "would be read as a path"),
        (".", "would be read as a path"),
        ("%2e%2e", "would be read as a path"),
        ("A/../..", "would be read as a path"),
        ("\uff0e\uff0e", "would be read as a path"),
        ("", "is empty"),
        ("AB\tCD", "holds a control or invisible character"),
        ("R" * 256, "is 256 characters long, more than PrestaShop's 255"),
    ],
)
def test_an_order_reference_no_url_segment_can_carry_is_quarantined_naming_it_and_what_to_do(
    shop: Shop, reference: str, problem: str
) -> None:
    shop.shipped_order(reference)
    shop.shipped_order("GOODORDER")
    result = shop.build()
    [entry] = result.quarantined
    assert (entry.reference, entry.stage) == (reference, Stage.BUILD)
    assert entry.reason.startswith(f"order reference '{shown(reference)}' {problem}")
    assert problem in entry.reason and "SeQura's back office" in entry.reason
    assert [built.reference for built in result.reports] == ["GOODORDER"]


def test_an_order_reference_with_dots_among_other_characters_is_built_as_any_other(shop: Shop) -> None:
    shop.shipped_order("...")
    shop.shipped_order("A.B")
    assert sorted(built.order_ref_1 for built in shop.build().reports) == ["...", "A.B"]

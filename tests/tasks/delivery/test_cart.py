from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from schemas.prestashop import shop_tables
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from seeding.vocabulary import Line
from tasks.delivery.cart import ADJUSTMENT_NAME
from tests.shops import MORNING, seeded_shop

WASHER = Line("Arandela", "WASHER", 3, Decimal("12.345678"))
NUT = Line("Tuerca", "NUT", 3, Decimal("12.3457"))
GIFT = Line("Regalo", "GIFT", 1, Decimal("0"))
VOUCHER = Line("Vale", "VOUCHER", 1, Decimal("-5.00"))


@pytest.mark.mysql
@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_product_lines_send_price_times_quantity_and_the_shops_total_and_a_negative_price_is_quarantined(
    version: str, mysql_shop_engine_factory: Callable[..., Engine]
) -> None:
    prefix = "shop_" if version == "9.1.0" else "ps_"
    shop = seeded_shop(mysql_shop_engine_factory(version, prefix), shop_tables(prefix))
    shop.shipped_order("FOURPLACE", lines=[NUT, GIFT])
    shop.shipped_order("SIXPLACES", lines=[WASHER])
    shop.shipped_order("HUNDREDS", lines=[Line("Arandela", "WASHER", 100, WASHER.unit_price_tax_incl)])
    refunded = shop.shipped_order(
        "REFUNDED", lines=[Line("Arandela", "WASHER", 7, WASHER.unit_price_tax_incl), NUT]
    )
    shop.writer.refund(refunded, product_reference="WASHER", quantity=2, at=MORNING.replace(hour=11))
    negative = shop.shipped_order(
        "NEGATIVE", lines=[Line("Camiseta", "TSHIRT-1", 1, Decimal("12.50")), VOUCHER]
    )
    detail = shop.tables.order_detail
    with shop.engine.connect() as conn:
        stored = set(conn.scalars(select(detail.c.unit_price_tax_incl)))
    assert {WASHER.unit_price_tax_incl, NUT.unit_price_tax_incl} <= stored

    result = shop.build()

    carts = {built.reference: built.report["cart"] for built in result.reports}
    # the shop's totals in cents: products kept at their six-decimal prices, plus 4.95 shipping
    assert {reference: cart["order_total_with_tax"] for reference, cart in carts.items()} == {
        "FOURPLACE": 4199,  # 37.0371 + 4.95
        "SIXPLACES": 4199,  # 37.037034 + 4.95
        "HUNDREDS": 123952,  # 1234.5678 + 4.95
        "REFUNDED": 10372,  # 5 x 12.345678 + 37.0371 + 4.95
    }
    for cart in carts.values():
        products = [item for item in cart["items"] if item["type"] == "product"]
        assert all(item["price_with_tax"] * item["quantity"] == item["total_with_tax"] for item in products)
        assert sum(item["total_with_tax"] for item in cart["items"]) == cart["order_total_with_tax"]
    hundreds = carts["HUNDREDS"]["items"]
    assert [(item["price_with_tax"], item["quantity"], item["total_with_tax"]) for item in hundreds[:1]] == [
        (1235, 100, 123500)
    ]
    assert (hundreds[-1]["name"], hundreds[-1]["total_with_tax"]) == (ADJUSTMENT_NAME, -43)
    assert [item["quantity"] for item in carts["REFUNDED"]["items"][:2]] == [5, 3]
    (entry,) = result.quarantined
    assert entry.reference == "NEGATIVE"
    assert entry.reason.startswith(f"line VOUCHER of order {negative} has a unit price of -5.00, below zero")
    assert "cart rule (discount)" in entry.reason

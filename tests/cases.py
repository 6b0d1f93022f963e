"""Small ready-made SeQura objects for tests that need a valid order report without a shop."""

from __future__ import annotations

from schemas.reports import BuiltReport
from schemas.sequra import (
    Address,
    Cart,
    Customer,
    DeliveryMethod,
    Item,
    MerchantReference,
    OrderReport,
    Platform,
)
from tasks.build import fingerprint

PLATFORM = Platform(name="PrestaShop", version="8.1.7", uname="Linux", db_name="mariadb", db_version="10.11")


def order_report(order_ref_1: str, total: int = 2495) -> OrderReport:
    """A valid shipped order report of one product and shipping."""
    items = (
        Item(
            type="product",
            reference="SKU-1",
            name="Camisa",
            price_with_tax=total - 495,
            quantity=1,
            total_with_tax=total - 495,
        ),
        Item(type="handling", reference="shipping", name="Correos", total_with_tax=495),
    )
    address = Address(
        given_names="Ana",
        surnames="García",
        address_line_1="Calle Mayor 1",
        postal_code="28013",
        city="Madrid",
        country_code="ES",
    )
    return OrderReport(
        state="shipped",
        sent_at="2026-11-20T09:15:00+00:00",
        merchant_reference=MerchantReference(order_ref_1=order_ref_1, order_ref_2="1"),
        cart=Cart(currency="EUR", order_total_with_tax=total, items=items),
        remaining_cart=Cart(currency="EUR", order_total_with_tax=0, items=()),
        delivery_method=DeliveryMethod(name="Correos"),
        delivery_address=address,
        invoice_address=address,
        customer=Customer(email="ana@example.com", given_names="Ana", surnames="García"),
    )


def built_report(order_ref_1: str, total: int = 2495) -> BuiltReport:
    """A built report as the build stage hands it on."""
    report = order_report(order_ref_1, total)
    return BuiltReport(order_ref_1, order_ref_1, (1,), report, fingerprint(report))

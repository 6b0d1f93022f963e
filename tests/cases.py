"""Small ready-made SeQura objects for tests that need a valid order report without a shop."""

from __future__ import annotations

from schemas.reports import BuiltReport
from schemas.sequra import Address, OrderReport, Platform
from tasks.delivery.build import serialised

PLATFORM: Platform = {
    "name": "PrestaShop",
    "version": "8.1.7",
    "plugin_version": "sequra-etl 0.1.0",
    "uname": "Linux",
    "db_name": "mariadb",
    "db_version": "10.11",
}


def order_report(order_ref_1: str, total: int = 2495) -> OrderReport:
    """A valid shipped order report of one product and shipping."""
    address: Address = {
        "given_names": "Ana",
        "surnames": "García",
        "company": "",
        "address_line_1": "Calle Mayor 1",
        "address_line_2": "",
        "postal_code": "28013",
        "city": "Madrid",
        "country_code": "ES",
    }
    return {
        "state": "shipped",
        "sent_at": "2026-11-20T09:15:00+00:00",
        "merchant_reference": {"order_ref_1": order_ref_1, "order_ref_2": "1"},
        "cart": {
            "currency": "EUR",
            "gift": False,
            "order_total_with_tax": total,
            "items": [
                {
                    "type": "product",
                    "reference": "SKU-1",
                    "name": "Camisa",
                    "price_with_tax": total - 495,
                    "quantity": 1,
                    "total_with_tax": total - 495,
                },
                {"type": "handling", "reference": "shipping", "name": "Correos", "total_with_tax": 495},
            ],
        },
        "remaining_cart": {"currency": "EUR", "gift": False, "order_total_with_tax": 0, "items": []},
        "delivery_method": {"name": "Correos"},
        "delivery_address": address,
        "invoice_address": dict(address),  # type: ignore[typeddict-item]
        "customer": {"email": "ana@example.com", "given_names": "Ana", "surnames": "García"},
        "trackings": [],
    }


def built_report(order_ref_1: str, total: int = 2495) -> BuiltReport:
    """A built report as the build stage hands it on."""
    report = order_report(order_ref_1, total)
    payload, fingerprint = serialised(report)
    return BuiltReport(order_ref_1, order_ref_1, (1,), payload, fingerprint)

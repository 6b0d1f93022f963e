"""Build: one chunk's frames into one SeQura order report per order reference (pure functions).

Each report is a plain dict in the shapes of `schemas.sequra`, serialised once with orjson: the same bytes
are fingerprinted, stored and sent.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections import defaultdict
from collections.abc import Sequence

import orjson
import pandas as pd

from schemas.frames import ShopConfig, ShopExtract
from schemas.reports import BuildResult, BuiltReport, QuarantinedOrder, Stage
from schemas.sequra import (
    Cancellation,
    DeliveryMethod,
    MerchantReference,
    OrderReport,
    Platform,
    Tracking,
    unsafe_order_ref,
)
from schemas.version import package_version
from tasks.delivery.buyer import addresses_by_id, build_address, build_customer
from tasks.delivery.cart import build_cart, carrier_label, discount_items, product_items
from tasks.delivery.order_rows import OrderRefField, OrderRows, UnreportableOrderError, merchant_reference
from tasks.rows import Row, columns_of, grouped, records, text_or_none, with_optional

PLAIN_ORDER_REF = re.compile(r"[A-Za-z0-9]{1,255}")  # an order_ref_1 that needs no closer look


def serialised(report: OrderReport | Cancellation) -> tuple[bytes, str]:
    """The report's wire bytes and its fingerprint, from one serialisation.

    The fingerprint is the SHA-256 of the report with sorted keys and without `state`: shipped becoming
    delivered is no change to act on (SeQura's order update carries carts, addresses, buyer and trackings,
    not the state). The wire bytes are those same bytes with `state` put first.
    """
    rest = orjson.dumps(
        {key: value for key, value in report.items() if key != "state"}, option=orjson.OPT_SORT_KEYS
    )
    payload = b'{"state":"' + report["state"].encode() + b'",' + rest[1:]
    return payload, hashlib.sha256(rest).hexdigest()


def trackings_by_order(trackings: pd.DataFrame) -> dict[int, list[Tracking]]:
    """Per order, its tracking numbers with the carrier's URL ('@' is the number); blank ones left out."""
    found: dict[int, list[Tracking]] = defaultdict(list)
    for id_order, id_order_carrier, number, carrier, url in columns_of(
        trackings, "id_order id_order_carrier tracking_number carrier_name carrier_url"
    ):
        number = str(number).strip()
        if not number:
            continue
        url = text_or_none(url)
        found[id_order].append(
            with_optional(
                {"type": "postal", "reference": str(id_order_carrier), "tracking_number": number},
                carrier=text_or_none(carrier),
                tracking_url=url.replace("@", number) if url else None,
            )
        )
    return found


def build_trackings(shipped: Sequence[Row], rows: OrderRows) -> list[Tracking]:
    """Tracking numbers of the shipped sub-orders."""
    return [tracking for sub_order in shipped for tracking in rows.trackings.get(sub_order["id_order"], [])]


def check_currency(sub_orders: Sequence[Row]) -> None:
    """Refuse an order whose sub-orders are in different currencies, or in one the shop no longer has."""
    currencies = {sub_order["currency_iso"] for sub_order in sub_orders}
    if len(currencies) == 1 and text_or_none(next(iter(currencies))) is not None:
        return  # the common case, told without looking at each sub-order again
    currencies = {text_or_none(currency) for currency in currencies}
    if len(currencies) > 1:
        parts = ", ".join(f"order {row['id_order']} in {row['currency_iso']}" for row in sub_orders)
        raise UnreportableOrderError(
            f"the sub-orders of reference {sub_orders[0]['reference']} are in different currencies "
            f"({parts}); SeQura takes one currency per order: correct the currency of the odd sub-order in "
            "the back office"
        )
    for sub_order in sub_orders:
        if text_or_none(sub_order["currency_iso"]) is None:
            raise UnreportableOrderError(
                f"order {sub_order['id_order']} has currency id {sub_order['id_currency']}, which is not in "
                "the currency table; restore the currency (International > Localization > Currencies)"
            )


def check_sub_orders(rows: OrderRows, shipped: Sequence[Row]) -> None:
    """Refuse what no report can carry: an unknown currency, an unsendable line, an undated shipment."""
    check_currency(rows.sub_orders)
    for sub_order in rows.sub_orders:
        if sub_order["id_order"] in rows.unsendable:
            raise UnreportableOrderError(rows.unsendable[sub_order["id_order"]])
    if all(sub_order["shipped_at"] is None for sub_order in shipped):
        raise UnreportableOrderError(
            f"order {shipped[0]['id_order']} is shipped but every shipped state in its history is dated "
            "0000-00-00 00:00:00; set the order's status again in the back office to record a real date"
        )


def check_order_ref(merchant_reference: MerchantReference) -> None:
    """Refuse an order_ref_1 that SeQura's order URL cannot carry: an update could reach another address."""
    if PLAIN_ORDER_REF.fullmatch(merchant_reference["order_ref_1"]):
        return  # letters and digits, as PrestaShop makes them: nothing a URL could read otherwise
    reason = unsafe_order_ref(merchant_reference["order_ref_1"])
    if reason is not None:
        raise UnreportableOrderError(reason)


def build_order_report(
    rows: OrderRows, config: ShopConfig, merchant_reference: MerchantReference
) -> OrderReport:
    """The SeQura report of one order reference: shipped sub-orders in cart, the rest in remaining_cart.

    A shipped sub-order that was cancelled afterwards, or whose every product was refunded or returned,
    leaves the cart: SeQura must hold what the buyer kept, and both carts empty mean the order is cancelled.
    """
    shipped = [row for row in rows.sub_orders if row["shipped_rows"] > 0]
    kept = [
        row
        for row in shipped
        if row["current_state"] not in config.canceled_states and rows.products.get(row["id_order"])
    ]
    unshipped = [
        row
        for row in rows.sub_orders
        if row["shipped_rows"] == 0 and row["current_state"] not in config.canceled_states
    ]
    check_order_ref(merchant_reference)
    check_sub_orders(rows, shipped)
    dated = sorted((row for row in shipped if row["shipped_at"] is not None), key=lambda r: r["shipped_at"])
    first = dated[0]
    delivered = config.delivered_state is not None and all(
        row["current_state"] == config.delivered_state for row in shipped
    )
    delivery_method: DeliveryMethod = with_optional(
        {"name": carrier_label(first, config)}, days=text_or_none(first["carrier_delay"])
    )
    return {
        "state": "delivered" if delivered else "shipped",
        "sent_at": first["shipped_at"],
        "merchant_reference": merchant_reference,
        "cart": build_cart(kept, rows, config, "shipped part"),
        "remaining_cart": build_cart(unshipped, rows, config, "unshipped part"),
        "delivery_method": delivery_method,
        "delivery_address": build_address(rows, first["id_address_delivery"], "delivery"),
        "invoice_address": build_address(rows, first["id_address_invoice"], "invoice"),
        "customer": build_customer(first, rows),
        "trackings": build_trackings(shipped, rows),
    }


def cancelled_before_shipment(sub_orders: Sequence[Row], config: ShopConfig) -> bool:
    """Whether an order never shipped and is cancelled: every sub-order cancelled, one in PS_OS_CANCELED.

    An order whose payment failed (PS_OS_ERROR) alone is no SeQura order to cancel.
    """
    states = {row["current_state"] for row in sub_orders}
    return (
        config.cancelled_state in states
        and states <= set(config.canceled_states)
        and all(row["shipped_rows"] == 0 for row in sub_orders)
    )


def build_cancellation(
    rows: OrderRows, config: ShopConfig, merchant_reference: MerchantReference
) -> Cancellation:
    """What SeQura hears of an order cancelled before it shipped: both carts empty, nothing more.

    Its buyer and addresses are left out: they cannot change what SeQura does with a cancelled order, and
    leaving them out keeps a later edit of them from sending the cancellation again.
    """
    check_order_ref(merchant_reference)
    check_currency(rows.sub_orders)
    empty = build_cart([], rows, config, "cancelled order")
    return {
        "state": "cancelled",
        "merchant_reference": merchant_reference,
        "cart": empty,
        "remaining_cart": empty,
    }


def _other_merchant(sub_orders: Sequence[Row], merchant_id: str) -> bool:
    """True when the PHP module's table says this order belongs to another SeQura merchant."""
    owners = {text_or_none(row["module_merchant_id"]) for row in sub_orders} - {None}
    return bool(owners) and merchant_id not in owners


def quarantine_reason(problem: Exception) -> str:
    """Why an order could not be built, in words a merchant (or, for a defect, a developer) can act on."""
    if isinstance(problem, UnreportableOrderError):
        return str(problem)
    return f"could not build the report ({type(problem).__name__}: {problem}); report this sequra-etl defect"


def build_reports(
    extract: ShopExtract, merchant_id: str, order_ref_field: OrderRefField = "reference"
) -> BuildResult:
    """One report per shipped or cancelled reference, or a quarantine entry saying what to fix.

    An order cancelled before it shipped gets a Cancellation; one bad order stops no other.
    """
    products, removed, unit_rounding, unsendable = product_items(extract.order_lines)
    address_rows = {row["id_address"]: row for row in records(extract.order_addresses)}
    parts = {
        "products": products,
        "removed": removed,
        "unit_rounding": unit_rounding,
        "unsendable": unsendable,
        "discounts": discount_items(extract.order_discounts),
        "trackings": trackings_by_order(extract.order_trackings),
        "addresses": addresses_by_id(address_rows),
        "address_rows": address_rows,
    }
    result = BuildResult()
    for reference, reason in extract.unreadable.items():
        result.quarantined.append(QuarantinedOrder(reference, reference, (), Stage.BUILD, reason))
    for reference, sub_orders in grouped(records(extract.shipped_orders), "reference").items():
        if reference in extract.unreadable:
            continue
        sub_orders.sort(key=lambda row: row["id_order"])
        shipped = any(row["shipped_rows"] > 0 for row in sub_orders)
        if not shipped and not cancelled_before_shipment(sub_orders, extract.config):
            continue
        if _other_merchant(sub_orders, merchant_id):
            result.other_merchant.append(reference)
            continue
        reference_sent = merchant_reference(sub_orders, order_ref_field)
        order_ref_1 = reference_sent["order_ref_1"]
        id_orders = tuple(int(row["id_order"]) for row in sub_orders)
        rows = OrderRows(sub_orders, **parts)
        try:
            report: OrderReport | Cancellation = (
                build_order_report(rows, extract.config, reference_sent)
                if shipped
                else build_cancellation(rows, extract.config, reference_sent)
            )
            payload, fingerprint = serialised(report)
        except Exception as problem:  # one order's surprise must not stop the others
            result.quarantined.append(
                QuarantinedOrder(reference, order_ref_1, id_orders, Stage.BUILD, quarantine_reason(problem))
            )
            continue
        result.reports.append(
            BuiltReport(
                reference=reference,
                order_ref_1=order_ref_1,
                id_orders=id_orders,
                payload=payload,
                fingerprint=fingerprint,
                reported_by_module=any(row["module_sent"] == 1 for row in sub_orders),
            )
        )
    return result


def platform_block(config: ShopConfig) -> Platform:
    """The report's platform block: PrestaShop's version, this ETL's version, the shop database."""
    return {
        "name": "PrestaShop",
        "version": config.ps_version,
        "plugin_version": f"sequra-etl {package_version()}",
        "uname": platform.platform(),
        "db_name": config.db_name,
        "db_version": config.db_version,
    }

"""Build: turn one chunk's extracted frames into one SeQura order report per order reference (pure functions).

Each report is a plain dict in the shapes of `schemas.sequra`, serialised once with orjson: the same bytes
are fingerprinted, stored and sent.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from schemas.frames import ShopConfig, ShopExtract
from schemas.reports import BuildResult, BuiltReport, QuarantinedOrder, Stage
from schemas.sequra import (
    Address,
    Cart,
    Customer,
    DeliveryMethod,
    Item,
    MerchantReference,
    OrderReport,
    OrderStatistics,
    Platform,
    Statistics,
    Tracking,
    amount_shown,
    cents,
    total_shown,
)

Row = dict[str, Any]
OrderRefField = Literal["reference", "id_order"]
ADJUSTMENT_NAME = "Rounding adjustment"


EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")  # local@domain.tld, nothing blank
PRODUCT_NAME_LONGEST = 255  # order_detail.product_name in PrestaShop 1.7 (product_lang.name allows 128)


class UnreportableOrderError(ValueError):
    """An order cannot be reported as it is; the message says what to fix in the shop."""


@dataclass(frozen=True)
class OrderRows:
    """One chunk's rows made ready for building, keyed by id_order or id_address.

    Lines, discounts, trackings and addresses are turned into SeQura's shapes once, column by column, for
    the whole chunk; each report then only picks its sub-orders' parts.
    """

    sub_orders: list[Row]
    products: Mapping[int, list[Item]]  # product lines net of refunds and returns
    removed: Mapping[int, Decimal]  # value refunded or returned, which the order total still contains
    unsendable: Mapping[int, str]  # a line that cannot be sent as it is (quantities, name), in words
    discounts: Mapping[int, list[Item]]
    trackings: Mapping[int, list[Tracking]]
    addresses: Mapping[int, Address]  # addresses whose country is known
    address_rows: Mapping[int, Row]  # every address row read, for the buyer's NIN and for errors


def _values(column: pd.Series) -> list[Any]:
    """A column's values as Python objects, missing ones as None; UTC timestamps as ISO 8601 to the second.

    The timestamps become the text SeQura reads ('2026-11-20T09:00:00+00:00'), which also sorts in time
    order; converted all at once, which is a hundred times faster than one Timestamp object each.
    """
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        seconds = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
        texts = np.datetime_as_string(seconds, unit="s").tolist()
        missing = column.isna().tolist()
        return [None if gone else f"{text}+00:00" for text, gone in zip(texts, missing, strict=True)]
    values = column.tolist()
    if column.hasnans:
        missing = column.isna().tolist()
        values = [None if gone else value for value, gone in zip(values, missing, strict=True)]
    return values


def records(frame: pd.DataFrame) -> list[Row]:
    """Frame rows as dicts, built column by column, with every kind of missing value turned into None."""
    names = list(frame.columns)
    columns = [_values(frame[name]) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def grouped(rows: Iterable[Row], key: str) -> dict[Any, list[Row]]:
    """Rows grouped by one column, keeping their order."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return groups


def serialised(report: OrderReport) -> tuple[bytes, str]:
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


def _text(value: Any) -> str | None:
    """A non-empty string, or None for a missing or blank value."""
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _with(target: dict[str, Any], **optional: Any) -> Any:
    """`target` with the optional keys whose value is not None: SeQura leaves out null keys."""
    for key, value in optional.items():
        if value is not None:
            target[key] = value
    return target


def _columns(frame: pd.DataFrame, names: str) -> Iterable[tuple[Any, ...]]:
    """The frame's rows as tuples of the named columns (space-separated), as Python values."""
    return zip(*(_values(frame[name]) for name in names.split()), strict=True)


def product_items(
    lines: pd.DataFrame,
) -> tuple[dict[int, list[Item]], dict[int, Decimal], dict[int, str]]:
    """Per order, the product lines with quantities net of refunds and returns, and the value removed.

    A fully refunded line is left out; what was refunded or returned is still in the order's total, so it
    is handed back to be taken off it. A line that cannot be sent as it is (see line_problem) is named in
    the third mapping, for its order to be quarantined.
    """
    items: dict[int, list[Item]] = defaultdict(list)
    removed: dict[int, Decimal] = defaultdict(Decimal)
    unsendable: dict[int, str] = {}
    for id_order, product_id, reference, name, ordered, refunded, returned, unit, total in _columns(
        lines,
        "id_order product_id product_reference product_name product_quantity product_quantity_refunded "
        "product_quantity_return unit_price_tax_incl total_price_tax_incl",
    ):
        gone = refunded + returned
        problem = line_problem(
            id_order, _text(reference) or str(product_id), name, ordered, refunded, returned
        )
        if problem is not None:
            unsendable[id_order] = problem
        if ordered > 0 and gone > 0:
            removed[id_order] += total * min(ordered, gone) / ordered
        net = ordered - gone
        if net <= 0 or ordered <= 0:
            continue
        items[id_order].append(
            {
                "type": "product",
                "reference": _text(reference) or str(product_id),
                "name": str(name),
                "price_with_tax": cents(unit),
                "quantity": net,
                "total_with_tax": cents(total if net == ordered else total * net / ordered),
                "downloadable": False,
                "product_id": str(product_id),
            }
        )
    return items, removed, unsendable


def line_problem(
    id_order: int, reference: str, name: object, ordered: int, refunded: int, returned: int
) -> str | None:
    """What makes an order line unsendable, in words naming the order and the line; None if nothing."""
    line = f"line {reference} of order {id_order}"
    label = _text(name)
    if ordered <= 0 or refunded < 0 or returned < 0:
        return (
            f"{line} has {ordered} units ordered, {refunded} refunded and {returned} returned; quantities "
            "cannot be zero or negative: correct the line in the back office"
        )
    if refunded + returned > ordered:
        return (
            f"{line} has {refunded} units refunded and {returned} returned but {ordered} ordered; correct "
            "the refund or the return in the back office"
        )
    if label is None:
        return (
            f"{line} has no product name, which SeQura shows the buyer: name the product on the order line "
            "in the back office"
        )
    if len(label) > PRODUCT_NAME_LONGEST:
        return (
            f"{line} has a product name of {len(label):,} characters, more than the {PRODUCT_NAME_LONGEST} "
            "PrestaShop allows (SeQura documents no limit, so it is not cut): correct the line's name"
        )
    return None


def discount_items(discounts: pd.DataFrame) -> dict[int, list[Item]]:
    """Per order, its discounts (order_cart_rule) as negative lines."""
    items: dict[int, list[Item]] = defaultdict(list)
    for id_order, id_order_cart_rule, name, value in _columns(
        discounts, "id_order id_order_cart_rule name value"
    ):
        amount = cents(value)
        if amount:
            items[id_order].append(
                {
                    "type": "discount",
                    "reference": f"discount-{id_order_cart_rule}",
                    "name": str(name),
                    "total_with_tax": -amount,
                }
            )
    return items


def handling_items(sub_order: Row, carrier_name: str) -> list[Item]:
    """Shipping and gift wrapping as handling lines, when they cost something."""
    items: list[Item] = []
    shipping = cents(sub_order["total_shipping_tax_incl"])
    if shipping:
        items.append(
            {"type": "handling", "reference": "shipping", "name": carrier_name, "total_with_tax": shipping}
        )
    wrapping = cents(sub_order["total_wrapping_tax_incl"])
    if wrapping:
        items.append(
            {
                "type": "handling",
                "reference": "gift-wrapping",
                "name": "Gift wrapping",
                "total_with_tax": wrapping,
            }
        )
    return items


def balanced(items: list[Item], expected_total: int, what: str, currency: str) -> list[Item]:
    """Absorb a rounding gap of at most one cent per line into an adjustment line; refuse a larger one."""
    total = sum(item["total_with_tax"] for item in items)
    gap = expected_total - total
    if gap == 0:
        return items
    if abs(gap) > max(len(items), 1):
        items_total, order_total = amount_shown(total), amount_shown(expected_total)
        raise UnreportableOrderError(
            f"totals do not add up: items {items_total} {currency}, order {order_total} {currency} ({what}); "
            "correct the order lines or totals in the back office"
        )
    kind: Literal["handling", "discount"] = "handling" if gap > 0 else "discount"
    return [*items, {"type": kind, "reference": "rounding", "name": ADJUSTMENT_NAME, "total_with_tax": gap}]


def build_cart(sub_orders: Sequence[Row], rows: OrderRows, config: ShopConfig, what: str) -> Cart:
    """One cart from some sub-orders: products, discounts, shipping and wrapping, totals that add up."""
    if not sub_orders:
        return {
            "currency": rows.sub_orders[0]["currency_iso"],
            "gift": False,
            "order_total_with_tax": 0,
            "items": [],
        }
    items: list[Item] = []
    expected = Decimal(0)
    for sub_order in sub_orders:
        id_order = sub_order["id_order"]
        items += rows.products.get(id_order, [])
        items += rows.discounts.get(id_order, [])
        items += handling_items(sub_order, carrier_label(sub_order, config))
        expected += sub_order["total_paid_tax_incl"] - rows.removed.get(id_order, 0)
    cart: Cart = {
        "currency": sub_orders[0]["currency_iso"],
        "gift": any(bool(sub_order["gift"]) for sub_order in sub_orders),
        "order_total_with_tax": cents(expected),
        "items": balanced(items, cents(expected), what, sub_orders[0]["currency_iso"]),
    }
    if cart["order_total_with_tax"] < 0:
        discounts = ", ".join(
            f"'{item.get('name', item['type'])}' {amount_shown(item['total_with_tax'])}"
            for item in cart["items"]
            if item["total_with_tax"] < 0
        )
        raise UnreportableOrderError(
            f"the {what} of order {', '.join(str(row['id_order']) for row in sub_orders)} would total "
            f"{total_shown(cart)}: its discounts ({discounts}) exceed what is left of it; correct the "
            "discounts or refunds of the order in the back office"
        )
    return cart


def carrier_label(sub_order: Row, config: ShopConfig) -> str:
    """The carrier's name; PrestaShop's carrier named '0' is the shop itself (pick-up in store)."""
    name = _text(sub_order["carrier_name"])
    if name is None:
        raise UnreportableOrderError(
            f"carrier {sub_order['id_carrier']} of order {sub_order['id_order']} is not in the carrier "
            "table; "
            "set a carrier on the order in the back office"
        )
    return (config.shop_name or "Pick-up in store") if name == "0" else name


ADDRESS_KEYS = (  # SeQura's key, the address column, whether a blank value is sent as "" or left out
    ("given_names", "firstname", False),
    ("surnames", "lastname", False),
    ("company", "company", True),
    ("address_line_1", "address1", True),
    ("address_line_2", "address2", True),
    ("postal_code", "postcode", True),
    ("city", "city", True),
    ("phone", "phone", False),
    ("mobile_phone", "phone_mobile", False),
    ("state", "state_name", False),
    ("extra", "other", False),
    ("vat_number", "vat_number", False),
)


def addresses_by_id(address_rows: Mapping[int, Row]) -> dict[int, Address]:
    """SeQura addresses of the rows whose country is known, by id_address, soft-deleted rows included."""
    addresses: dict[int, Address] = {}
    for id_address, row in address_rows.items():
        country = _text(row["country_iso"])
        if country is None:
            continue
        address: dict[str, str] = {"country_code": country.upper()}
        for key, column, always in ADDRESS_KEYS:
            value = _text(row[column])
            if value is not None:
                address[key] = value
            elif always:
                address[key] = ""
        addresses[id_address] = address  # type: ignore[assignment]
    return addresses


def build_address(rows: OrderRows, id_address: int, kind: str) -> Address:
    """The SeQura address the order points to, deleted or not; else an error saying what to fix."""
    address = rows.addresses.get(id_address)
    if address is not None:
        return address
    row = rows.address_rows.get(id_address)
    if row is None:
        raise UnreportableOrderError(
            f"{kind} address {id_address} is not in the address table; point the order to an existing address"
        )
    raise UnreportableOrderError(
        f"{kind} address {id_address} has country id {row['id_country']}, which is not in the country "
        "table; fix the address country in the back office (Customers > Addresses)"
    )


def build_customer(sub_order: Row, rows: OrderRows) -> Customer:
    """The buyer from the customer row (guest or deleted alike), their NIN from the invoice address."""
    email = _text(sub_order["customer_email"])
    if not sub_order["customer_found"] or email is None:
        raise UnreportableOrderError(
            f"customer {sub_order['id_customer']} has no row or no email in the customer table; "
            "SeQura needs the buyer's email: restore the customer or set the order's customer"
        )
    if not EMAIL.fullmatch(email):
        raise UnreportableOrderError(
            f"customer {sub_order['id_customer']} of order {sub_order['id_order']} has the email "
            f"{email[:80]!r}, which is not an email address; correct it on the customer's page "
            "(Customers > Customers)"
        )
    invoice = rows.address_rows.get(sub_order["id_address_invoice"]) or {}
    is_guest = sub_order["customer_is_guest"]
    return _with(
        {"email": email},
        given_names=_text(sub_order["customer_firstname"]),
        surnames=_text(sub_order["customer_lastname"]),
        logged_in=None if is_guest is None else not bool(is_guest),
        language_code=_text(sub_order["language_code"]),
        ref=str(sub_order["id_customer"]),
        nin=_text(invoice.get("dni")),
        company=_text(sub_order["customer_company"]),
    )


def trackings_by_order(trackings: pd.DataFrame) -> dict[int, list[Tracking]]:
    """Per order, its tracking numbers with the carrier's URL ('@' is the number); blank ones left out."""
    found: dict[int, list[Tracking]] = defaultdict(list)
    for id_order, id_order_carrier, number, carrier, url in _columns(
        trackings, "id_order id_order_carrier tracking_number carrier_name carrier_url"
    ):
        number = str(number).strip()
        if not number:
            continue
        url = _text(url)
        found[id_order].append(
            _with(
                {"type": "postal", "reference": str(id_order_carrier), "tracking_number": number},
                carrier=_text(carrier),
                tracking_url=url.replace("@", number) if url else None,
            )
        )
    return found


def build_trackings(shipped: Sequence[Row], rows: OrderRows) -> list[Tracking]:
    """Tracking numbers of the shipped sub-orders."""
    return [tracking for sub_order in shipped for tracking in rows.trackings.get(sub_order["id_order"], [])]


def check_sub_orders(rows: OrderRows, shipped: Sequence[Row]) -> None:
    """Refuse what no report can carry: an unknown currency, an unsendable line, an undated shipment."""
    sub_orders = rows.sub_orders
    currencies = {_text(sub_order["currency_iso"]) for sub_order in sub_orders}
    if len(currencies) > 1:
        parts = ", ".join(f"order {row['id_order']} in {row['currency_iso']}" for row in sub_orders)
        raise UnreportableOrderError(
            f"the sub-orders of reference {sub_orders[0]['reference']} are in different currencies "
            f"({parts}); SeQura takes one currency per order: correct the currency of the odd sub-order in "
            "the back office"
        )
    for sub_order in sub_orders:
        if sub_order["id_order"] in rows.unsendable:
            raise UnreportableOrderError(rows.unsendable[sub_order["id_order"]])
        if _text(sub_order["currency_iso"]) is None:
            raise UnreportableOrderError(
                f"order {sub_order['id_order']} has currency id {sub_order['id_currency']}, which is not in "
                "the currency table; restore the currency (International > Localization > Currencies)"
            )
    if all(sub_order["shipped_at"] is None for sub_order in shipped):
        raise UnreportableOrderError(
            f"order {shipped[0]['id_order']} is shipped but every shipped state in its history is dated "
            "0000-00-00 00:00:00; set the order's status again in the back office to record a real date"
        )


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
    check_sub_orders(rows, shipped)
    dated = sorted((row for row in shipped if row["shipped_at"] is not None), key=lambda r: r["shipped_at"])
    first = dated[0]
    delivered = config.delivered_state is not None and all(
        row["current_state"] == config.delivered_state for row in shipped
    )
    delivery_method: DeliveryMethod = _with(
        {"name": carrier_label(first, config)}, days=_text(first["carrier_delay"])
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


def merchant_reference(sub_orders: Sequence[Row], order_ref_field: OrderRefField) -> MerchantReference:
    """order_ref_1 = shop reference and order_ref_2 = first id_order; or order_ref_1 = first id_order."""
    first_id = str(sub_orders[0]["id_order"])
    if order_ref_field == "id_order":
        return {"order_ref_1": first_id}
    return {"order_ref_1": str(sub_orders[0]["reference"]), "order_ref_2": first_id}


def _other_merchant(sub_orders: Sequence[Row], merchant_id: str) -> bool:
    """True when the PHP module's table says this order belongs to another SeQura merchant."""
    owners = {_text(row["module_merchant_id"]) for row in sub_orders} - {None}
    return bool(owners) and merchant_id not in owners


def quarantine_reason(problem: Exception) -> str:
    """Why an order could not be built, in words a merchant (or, for a defect, a developer) can act on."""
    if isinstance(problem, UnreportableOrderError):
        return str(problem)
    return f"could not build the report ({type(problem).__name__}: {problem}); report this sequra-etl defect"


def build_reports(
    extract: ShopExtract, merchant_id: str, order_ref_field: OrderRefField = "reference"
) -> BuildResult:
    """One order report per reference, or a quarantine entry saying what to fix; bad orders stop no other."""
    products, removed, unsendable = product_items(extract.order_lines)
    address_rows = {row["id_address"]: row for row in records(extract.order_addresses)}
    parts = {
        "products": products,
        "removed": removed,
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
        if not any(row["shipped_rows"] > 0 for row in sub_orders):
            continue
        if _other_merchant(sub_orders, merchant_id):
            result.other_merchant.append(reference)
            continue
        reference_sent = merchant_reference(sub_orders, order_ref_field)
        order_ref_1 = reference_sent["order_ref_1"]
        id_orders = tuple(int(row["id_order"]) for row in sub_orders)
        rows = OrderRows(sub_orders, **parts)
        try:
            report = build_order_report(rows, extract.config, reference_sent)
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
                report=report,
                payload=payload,
                fingerprint=fingerprint,
                reported_by_module=any(row["module_sent"] == 1 for row in sub_orders),
            )
        )
    return result


PAYMENT_METHODS = {
    "ps_checkpayment": "TR",
    "ps_wirepayment": "TR",
    "ps_cashondelivery": "COD",
    "paypal": "PP",
    "ps_checkout": "CC",
    "stripe_official": "CC",
    "redsys": "CC",
}


def payment_method(module: str | None, sequra_modules: Sequence[str]) -> str:
    """SeQura's payment method code: SQ for SeQura, CC, PP, TR or COD when known, else O/<module>."""
    if module in sequra_modules:
        return "SQ"
    return PAYMENT_METHODS.get(module or "", f"O/{module or 'unknown'}")


def statistics_status(row: Row, config: ShopConfig) -> Literal["processing", "shipped", "cancelled"]:
    """Cancelled when the order is in the shop's cancelled or error state, shipped once it shipped."""
    if row["current_state"] in config.canceled_states:
        return "cancelled"
    return "shipped" if row["ever_shipped"] else "processing"


def build_statistics(
    recent_orders: pd.DataFrame,
    config: ShopConfig,
    sequra_modules: Sequence[str],
    order_ref_field: OrderRefField = "reference",
) -> Statistics:
    """The statistics block: every order placed in the last 7 days; one without a currency is left out."""
    orders: list[OrderStatistics] = []
    local = recent_orders["placed_at"].dt.tz_convert(config.timezone)
    completed = [None if pd.isna(moment) else moment.isoformat(timespec="seconds") for moment in local]
    for row, completed_at in zip(records(recent_orders), completed, strict=True):
        currency = _text(row["currency_iso"])
        if currency is None or completed_at is None:
            continue
        sequra = row["module"] in sequra_modules and _text(row["reference"]) is not None
        country = _text(row["country_iso"])
        orders.append(
            _with(
                {
                    "completed_at": completed_at,
                    "amount": cents(row["total_paid_tax_incl"]),
                    "currency": currency.upper(),
                    "payment_method": payment_method(row["module"], sequra_modules),
                    "status": statistics_status(row, config),
                },
                merchant_reference=merchant_reference([row], order_ref_field) if sequra else None,
                country=country.upper() if country else None,
                raw_status=_text(row["state_name"]),
            )
        )
    return {"orders": orders}


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


def package_version() -> str:
    """The installed version of sequra-etl."""
    try:
        return metadata.version("sequra-etl")
    except metadata.PackageNotFoundError:
        return "0+unknown"

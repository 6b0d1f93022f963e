"""Build: turn the extracted frames into one SeQura order report per order reference (pure functions)."""

from __future__ import annotations

import hashlib
import json
import platform
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from typing import Any, Literal

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

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
    cents,
)
from schemas.settings import Settings

Row = dict[str, Any]
OrderRefField = Literal["reference", "id_order"]
ADJUSTMENT_NAME = "Rounding adjustment"


class UnreportableOrderError(ValueError):
    """An order cannot be reported as it is; the message says what to fix in the shop."""


@dataclass(frozen=True)
class OrderRows:
    """The extracted rows of one order reference, grouped for building."""

    sub_orders: list[Row]
    lines: Mapping[int, list[Row]]
    discounts: Mapping[int, list[Row]]
    trackings: Mapping[int, list[Row]]
    addresses: Mapping[int, Row]


def records(frame: pd.DataFrame) -> list[Row]:
    """Frame rows as dicts, with every kind of missing value turned into None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _grouped(rows: Iterable[Row], key: str) -> dict[Any, list[Row]]:
    """Rows grouped by one column, keeping their order."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return groups


def fingerprint(report: OrderReport) -> str:
    """A canonical SHA-256 of the report as it would be sent, `state` left out.

    Shipped becoming delivered is no change to act on: SeQura's order update carries carts, addresses,
    buyer and trackings, not the state.
    """
    payload = {key: value for key, value in report.wire().items() if key != "state"}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text(value: Any) -> str | None:
    """A non-empty string, or None for a missing or blank value."""
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def product_items(lines: Sequence[Row]) -> list[Item]:
    """Product lines, with quantities net of refunds and returns; fully refunded lines are left out."""
    items = []
    for line in lines:
        ordered = int(line["product_quantity"])
        net = ordered - int(line["product_quantity_refunded"]) - int(line["product_quantity_return"])
        if net <= 0 or ordered <= 0:
            continue
        total = Decimal(line["total_price_tax_incl"]) * net / ordered
        items.append(
            Item(
                type="product",
                reference=_text(line["product_reference"]) or str(line["product_id"]),
                name=str(line["product_name"]),
                price_with_tax=cents(line["unit_price_tax_incl"]),
                quantity=net,
                total_with_tax=cents(total),
                downloadable=False,
                product_id=str(line["product_id"]),
            )
        )
    return items


def removed_value(lines: Sequence[Row]) -> Decimal:
    """The value of the quantities refunded or returned, which the order total still contains."""
    removed = Decimal(0)
    for line in lines:
        ordered = int(line["product_quantity"])
        gone = min(ordered, int(line["product_quantity_refunded"]) + int(line["product_quantity_return"]))
        if ordered > 0 and gone > 0:
            removed += Decimal(line["total_price_tax_incl"]) * gone / ordered
    return removed


def discount_items(discounts: Sequence[Row]) -> list[Item]:
    """Discounts (order_cart_rule) as negative lines."""
    return [
        Item(
            type="discount",
            reference=f"discount-{row['id_order_cart_rule']}",
            name=str(row["name"]),
            total_with_tax=-cents(row["value"]),
        )
        for row in discounts
        if cents(row["value"]) != 0
    ]


def handling_items(sub_order: Row, carrier_name: str) -> list[Item]:
    """Shipping and gift wrapping as handling lines, when they cost something."""
    items = []
    shipping = cents(sub_order["total_shipping_tax_incl"])
    if shipping:
        items.append(Item(type="handling", reference="shipping", name=carrier_name, total_with_tax=shipping))
    wrapping = cents(sub_order["total_wrapping_tax_incl"])
    if wrapping:
        items.append(
            Item(type="handling", reference="gift-wrapping", name="Gift wrapping", total_with_tax=wrapping)
        )
    return items


def balanced(items: list[Item], expected_total: int, what: str) -> list[Item]:
    """Absorb a rounding gap of at most one cent per line into an adjustment line; refuse a larger one."""
    total = sum(item.total_with_tax for item in items)
    gap = expected_total - total
    if gap == 0:
        return items
    if abs(gap) > max(len(items), 1):
        raise UnreportableOrderError(
            f"totals do not add up: items {total}, order {expected_total} ({what}); "
            "correct the order lines or totals in the back office"
        )
    kind = "handling" if gap > 0 else "discount"
    return [*items, Item(type=kind, reference="rounding", name=ADJUSTMENT_NAME, total_with_tax=gap)]


def build_cart(sub_orders: Sequence[Row], rows: OrderRows, config: ShopConfig, what: str) -> Cart:
    """One cart from some sub-orders: products, discounts, shipping and wrapping, totals that add up."""
    if not sub_orders:
        currency = rows.sub_orders[0]["currency_iso"]
        return Cart(currency=currency, gift=False, order_total_with_tax=0, items=())
    items: list[Item] = []
    expected = Decimal(0)
    for sub_order in sub_orders:
        lines = rows.lines.get(sub_order["id_order"], [])
        items += product_items(lines)
        items += discount_items(rows.discounts.get(sub_order["id_order"], []))
        items += handling_items(sub_order, carrier_label(sub_order, config))
        expected += Decimal(sub_order["total_paid_tax_incl"]) - removed_value(lines)
    return Cart(
        currency=sub_orders[0]["currency_iso"],
        gift=any(bool(sub_order["gift"]) for sub_order in sub_orders),
        order_total_with_tax=cents(expected),
        items=tuple(balanced(items, cents(expected), what)),
    )


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


def build_address(rows: OrderRows, id_address: int, kind: str) -> Address:
    """A SeQura address from the address row the order points to, deleted or not."""
    row = rows.addresses.get(id_address)
    if row is None:
        raise UnreportableOrderError(
            f"{kind} address {id_address} is not in the address table; point the order to an existing address"
        )
    if _text(row["country_iso"]) is None:
        raise UnreportableOrderError(
            f"{kind} address {id_address} has country id {row['id_country']}, which is not in the country "
            "table; fix the address country in the back office (Customers > Addresses)"
        )
    return Address(
        given_names=_text(row["firstname"]),
        surnames=_text(row["lastname"]),
        company=_text(row["company"]) or "",
        address_line_1=_text(row["address1"]) or "",
        address_line_2=_text(row["address2"]) or "",
        postal_code=_text(row["postcode"]) or "",
        city=_text(row["city"]) or "",
        country_code=str(row["country_iso"]).upper(),
        phone=_text(row["phone"]),
        mobile_phone=_text(row["phone_mobile"]),
        state=_text(row["state_name"]),
        extra=_text(row["other"]),
        vat_number=_text(row["vat_number"]),
    )


def build_customer(sub_order: Row, rows: OrderRows) -> Customer:
    """The buyer from the customer row (guest or deleted alike), their NIN from the invoice address."""
    email = _text(sub_order["customer_email"])
    if not sub_order["customer_found"] or email is None:
        raise UnreportableOrderError(
            f"customer {sub_order['id_customer']} has no row or no email in the customer table; "
            "SeQura needs the buyer's email: restore the customer or set the order's customer"
        )
    invoice = rows.addresses.get(sub_order["id_address_invoice"]) or {}
    is_guest = sub_order["customer_is_guest"]
    return Customer(
        given_names=_text(sub_order["customer_firstname"]),
        surnames=_text(sub_order["customer_lastname"]),
        email=email,
        logged_in=None if is_guest is None else not bool(is_guest),
        language_code=_text(sub_order["language_code"]),
        ref=str(sub_order["id_customer"]),
        nin=_text(invoice.get("dni")),
        company=_text(sub_order["customer_company"]),
    )


def build_trackings(shipped: Sequence[Row], rows: OrderRows) -> tuple[Tracking, ...]:
    """Tracking numbers of the shipped sub-orders, with the carrier's URL ('@' is the number)."""
    trackings = []
    for sub_order in shipped:
        for row in rows.trackings.get(sub_order["id_order"], []):
            number = str(row["tracking_number"]).strip()
            if not number:
                continue
            url = _text(row["carrier_url"])
            trackings.append(
                Tracking(
                    reference=str(row["id_order_carrier"]),
                    carrier=_text(row["carrier_name"]),
                    tracking_number=number,
                    tracking_url=url.replace("@", number) if url else None,
                )
            )
    return tuple(trackings)


def check_sub_orders(sub_orders: Sequence[Row], shipped: Sequence[Row]) -> None:
    """Refuse what no report can carry: an unknown currency, or a shipment with no valid date."""
    for sub_order in sub_orders:
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
    """The SeQura report of one order reference: shipped sub-orders in cart, the rest in remaining_cart."""
    shipped = [row for row in rows.sub_orders if row["shipped_rows"] > 0]
    unshipped = [
        row
        for row in rows.sub_orders
        if row["shipped_rows"] == 0 and row["current_state"] not in config.canceled_states
    ]
    check_sub_orders(rows.sub_orders, shipped)
    dated = sorted((row for row in shipped if row["shipped_at"] is not None), key=lambda r: r["shipped_at"])
    first = dated[0]
    delivered = config.delivered_state is not None and all(
        row["current_state"] == config.delivered_state for row in shipped
    )
    return OrderReport(
        state="delivered" if delivered else "shipped",
        sent_at=pd.Timestamp(first["shipped_at"]).isoformat(timespec="seconds"),
        merchant_reference=merchant_reference,
        cart=build_cart(shipped, rows, config, "shipped part"),
        remaining_cart=build_cart(unshipped, rows, config, "unshipped part"),
        delivery_method=DeliveryMethod(name=carrier_label(first, config), days=_text(first["carrier_delay"])),
        delivery_address=build_address(rows, first["id_address_delivery"], "delivery"),
        invoice_address=build_address(rows, first["id_address_invoice"], "invoice"),
        customer=build_customer(first, rows),
        trackings=build_trackings(shipped, rows),
    )


def merchant_reference(sub_orders: Sequence[Row], order_ref_field: OrderRefField) -> MerchantReference:
    """order_ref_1 = shop reference and order_ref_2 = first id_order; or order_ref_1 = first id_order."""
    first_id = str(sub_orders[0]["id_order"])
    if order_ref_field == "id_order":
        return MerchantReference(order_ref_1=first_id)
    return MerchantReference(order_ref_1=str(sub_orders[0]["reference"]), order_ref_2=first_id)


def _other_merchant(sub_orders: Sequence[Row], merchant_id: str) -> bool:
    """True when the PHP module's table says this order belongs to another SeQura merchant."""
    owners = {_text(row["module_merchant_id"]) for row in sub_orders} - {None}
    return bool(owners) and merchant_id not in owners


def quarantine_reason(problem: Exception) -> str:
    """Why an order could not be built, in words a merchant (or, for a defect, a developer) can act on."""
    if isinstance(problem, UnreportableOrderError):
        return str(problem)
    if isinstance(problem, ValidationError):
        return unreportable_value(problem)
    return f"could not build the report ({type(problem).__name__}: {problem}); report this sequra-etl defect"


def unreportable_value(error: ValidationError) -> str:
    """A SeQura model refusal in a merchant's words: which field, what was wrong."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    return f"{field}: {first['msg']} (got {first.get('input')!r}); correct it in the back office"


def build_reports(
    extract: ShopExtract, merchant_id: str, order_ref_field: OrderRefField = "reference"
) -> BuildResult:
    """One order report per reference, or a quarantine entry saying what to fix; bad orders stop no other."""
    lines = _grouped(records(extract.order_lines), "id_order")
    discounts = _grouped(records(extract.order_discounts), "id_order")
    trackings = _grouped(records(extract.order_trackings), "id_order")
    addresses = {row["id_address"]: row for row in records(extract.order_addresses)}
    result = BuildResult()
    for reference, sub_orders in _grouped(records(extract.shipped_orders), "reference").items():
        sub_orders.sort(key=lambda row: row["id_order"])
        if not any(row["shipped_rows"] > 0 for row in sub_orders):
            continue
        if _other_merchant(sub_orders, merchant_id):
            result.other_merchant.append(reference)
            continue
        reference_sent = merchant_reference(sub_orders, order_ref_field)
        order_ref_1 = reference_sent.order_ref_1
        id_orders = tuple(int(row["id_order"]) for row in sub_orders)
        rows = OrderRows(sub_orders, lines, discounts, trackings, addresses)
        try:
            report = build_order_report(rows, extract.config, reference_sent)
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
                fingerprint=fingerprint(report),
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
    extract: ShopExtract, sequra_modules: Sequence[str], order_ref_field: OrderRefField = "reference"
) -> Statistics:
    """The statistics block: every order placed in the last 7 days; one without a currency is left out."""
    orders = []
    for row in records(extract.recent_orders):
        currency = _text(row["currency_iso"])
        if currency is None or row["placed_at"] is None:
            continue
        sequra = row["module"] in sequra_modules and _text(row["reference"]) is not None
        country = _text(row["country_iso"])
        orders.append(
            OrderStatistics(
                completed_at=pd.Timestamp(row["placed_at"])
                .tz_convert(extract.config.timezone)
                .isoformat(timespec="seconds"),
                amount=cents(row["total_paid_tax_incl"]),
                currency=currency.upper(),
                merchant_reference=merchant_reference([row], order_ref_field) if sequra else None,
                payment_method=payment_method(row["module"], sequra_modules),
                country=country.upper() if country else None,
                status=statistics_status(row, extract.config),
                raw_status=_text(row["state_name"]),
            )
        )
    return Statistics(orders=tuple(orders))


def platform_of(extract: ShopExtract) -> Platform:
    """The report's platform block: PrestaShop's version, this ETL's version, the shop database."""
    return Platform(
        name="PrestaShop",
        version=extract.config.ps_version,
        plugin_version=f"sequra-etl {package_version()}",
        uname=platform.platform(),
        db_name=extract.db_name,
        db_version=extract.db_version,
    )


def package_version() -> str:
    """The installed version of sequra-etl."""
    try:
        return metadata.version("sequra-etl")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@task(name="build-order-reports", cache_policy=NO_CACHE)
def build_order_reports(extract: ShopExtract, settings: Settings) -> tuple[BuildResult, Statistics]:
    """The build stage as a Prefect task: the order reports and the statistics block; no side effects."""
    merchant_id = settings.merchant_id or ""
    return (
        build_reports(extract, merchant_id, settings.order_ref_field),
        build_statistics(extract, settings.payment_modules, settings.order_ref_field),
    )

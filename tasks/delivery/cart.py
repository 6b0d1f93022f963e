"""Carts: products net of refunds and returns, discounts, handling, totals that add up."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

import pandas as pd

from schemas.frames import ShopConfig
from schemas.sequra import Cart, Item, amount_shown, cents, total_shown
from tasks.delivery.order_rows import OrderRows, UnreportableOrderError
from tasks.rows import Row, columns_of, text_or_none

ADJUSTMENT_NAME = "Rounding adjustment"


PRODUCT_NAME_LONGEST = 255  # order_detail.product_name in PrestaShop 1.7 (product_lang.name allows 128)


def product_items(
    lines: pd.DataFrame,
) -> tuple[dict[int, list[Item]], dict[int, Decimal], dict[int, int], dict[int, str]]:
    """Per order, the product lines with quantities net of refunds and returns, and the value removed.

    A fully refunded line is left out; what was refunded or returned is still in the order's total, so it
    is handed back to be taken off it. A line is sent as SeQura reads it, its total the unit price in cents
    times the quantity; what that differs from the line's own total is handed back in the third mapping
    (unit rounding, in cents), for the cart's rounding line to take it back. A line that cannot be sent as
    it is (see line_problem) is named in the fourth mapping, for its order to be quarantined.
    """
    items: dict[int, list[Item]] = defaultdict(list)
    removed: dict[int, Decimal] = defaultdict(Decimal)
    unit_rounding: dict[int, int] = defaultdict(int)
    unsendable: dict[int, str] = {}
    for id_order, product_id, reference, name, ordered, refunded, returned, unit, total in columns_of(
        lines,
        "id_order product_id product_reference product_name product_quantity product_quantity_refunded "
        "product_quantity_return unit_price_tax_incl total_price_tax_incl",
    ):
        gone = refunded + returned
        line_reference = text_or_none(reference) or str(product_id)
        problem = line_problem(id_order, line_reference, name, ordered, refunded, returned, unit)
        if problem is not None:
            unsendable[id_order] = problem
        if ordered > 0 and gone > 0:
            removed[id_order] += total * min(ordered, gone) / ordered
        net = ordered - gone
        if net <= 0 or ordered <= 0:
            continue
        price = cents(unit)
        unit_rounding[id_order] += price * net - cents(total if net == ordered else total * net / ordered)
        items[id_order].append(
            {
                "type": "product",
                "reference": line_reference,
                "name": str(name),
                "price_with_tax": price,
                "quantity": net,
                "total_with_tax": price * net,
                "downloadable": False,
                "product_id": str(product_id),
            }
        )
    return items, removed, unit_rounding, unsendable


def line_problem(
    id_order: int, reference: str, name: object, ordered: int, refunded: int, returned: int, unit: Decimal
) -> str | None:
    """What makes an order line unsendable, in words naming the order and the line; None if nothing."""
    line = f"line {reference} of order {id_order}"
    label = text_or_none(name)
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
    if unit < 0:
        return (
            f"{line} has a unit price of {amount_shown(cents(unit))}, below zero; SeQura takes products at "
            "zero or more and discounts as lines of their own: remove the line and give the amount as a cart "
            "rule (discount) on the order in the back office"
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
    for id_order, id_order_cart_rule, name, value in columns_of(
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


def balanced(
    items: list[Item], expected_total: int, unit_rounding: int, what: str, currency: str
) -> list[Item]:
    """Absorb the unit rounding and a gap of at most one cent per line into an adjustment line.

    The unit rounding is what sending unit price x quantity adds to the lines' own totals; only the gap
    between the lines as the shop totals them and the order's total is a data problem when larger.
    """
    total = sum(item["total_with_tax"] for item in items)
    gap = expected_total - total
    if gap == 0:
        return items
    shop_total = total - unit_rounding
    if abs(expected_total - shop_total) > max(len(items), 1):
        items_total, order_total = amount_shown(shop_total), amount_shown(expected_total)
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
    unit_rounding = 0
    for sub_order in sub_orders:
        id_order = sub_order["id_order"]
        items += rows.products.get(id_order, [])
        items += rows.discounts.get(id_order, [])
        items += handling_items(sub_order, carrier_label(sub_order, config))
        expected += sub_order["total_paid_tax_incl"] - rows.removed.get(id_order, 0)
        unit_rounding += rows.unit_rounding.get(id_order, 0)
    currency = sub_orders[0]["currency_iso"]
    cart: Cart = {
        "currency": currency,
        "gift": any(bool(sub_order["gift"]) for sub_order in sub_orders),
        "order_total_with_tax": cents(expected),
        "items": balanced(items, cents(expected), unit_rounding, what, currency),
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
    name = text_or_none(sub_order["carrier_name"])
    if name is None:
        raise UnreportableOrderError(
            f"carrier {sub_order['id_carrier']} of order {sub_order['id_order']} is not in the carrier "
            "table; "
            "set a carrier on the order in the back office"
        )
    return (config.shop_name or "Pick-up in store") if name == "0" else name

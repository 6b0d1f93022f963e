"""SeQura wire format: the delivery report and its orders as JSON objects, money in integer cents.

The shapes are TypedDicts rather than models: a backfill builds hundreds of thousands of order reports, and
plain dicts serialised once (orjson) cost a twentieth of what validated models did. The build stage makes
every amount with `cents`, so no float can reach the wire; the sandbox checks every request like SeQura.
Keys whose value is None are left out, never sent as null.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, NotRequired, TypedDict
from urllib.parse import unquote

from schemas.shown import shown

ItemType = Literal[
    "product", "service", "handling", "discount", "invoice_fee", "other_payment", "registration"
]
OrderState = Literal["shipped", "delivered"]


class Item(TypedDict):
    """One cart line: a product, a handling charge (shipping, wrapping) or a discount."""

    type: ItemType
    reference: NotRequired[str]
    name: NotRequired[str]
    price_with_tax: NotRequired[int]
    quantity: NotRequired[int]
    total_with_tax: int
    downloadable: NotRequired[bool]
    product_id: NotRequired[str]


class Cart(TypedDict):
    """The shipped (`cart`) or unshipped (`remaining_cart`) part of an order."""

    currency: str
    gift: bool
    order_total_with_tax: int
    items: list[Item]


class MerchantReference(TypedDict):
    """How SeQura knows the order: order_ref_1 as sent at checkout, order_ref_2 as a second key."""

    order_ref_1: str
    order_ref_2: NotRequired[str]


class DeliveryMethod(TypedDict):
    """The carrier that took the parcel."""

    name: str
    days: NotRequired[str]


class Tracking(TypedDict):
    """A postal tracking number and where the buyer can follow it."""

    type: Literal["postal"]
    reference: str
    carrier: NotRequired[str]
    tracking_number: str
    tracking_url: NotRequired[str]


class Address(TypedDict):
    """A delivery or invoice address as the order points to it."""

    given_names: NotRequired[str]
    surnames: NotRequired[str]
    company: str
    address_line_1: str
    address_line_2: str
    postal_code: str
    city: str
    country_code: str
    phone: NotRequired[str]
    mobile_phone: NotRequired[str]
    state: NotRequired[str]
    extra: NotRequired[str]
    vat_number: NotRequired[str]


class Customer(TypedDict):
    """The buyer, as the shop knows them."""

    given_names: NotRequired[str]
    surnames: NotRequired[str]
    email: str
    logged_in: NotRequired[bool]
    language_code: NotRequired[str]
    ref: NotRequired[str]
    nin: NotRequired[str]
    company: NotRequired[str]


class OrderReport(TypedDict):
    """One order in a delivery report: what shipped, what remains, to whom and how."""

    state: OrderState
    sent_at: str
    merchant_reference: MerchantReference
    cart: Cart
    remaining_cart: Cart
    delivery_method: DeliveryMethod
    delivery_address: Address
    invoice_address: Address
    customer: Customer
    trackings: list[Tracking]


class Cancellation(TypedDict):
    """An order cancelled before it shipped, as SeQura hears of it: its reference and both carts empty.

    It goes only as an order update, never in a delivery report; `state` is never sent.
    """

    state: Literal["cancelled"]
    merchant_reference: MerchantReference
    cart: Cart
    remaining_cart: Cart


class Platform(TypedDict):
    """The shop platform and database the report comes from."""

    name: str
    version: str
    plugin_version: str
    uname: str
    db_name: str
    db_version: str


class MerchantId(TypedDict):
    """The merchant an order belongs to."""

    id: str


class OrderUpdate(TypedDict):
    """An order update (the `order` of PUT merchants/{merchant}/orders/{order_ref_1}): absolute state.

    Both carts as they stand now, never a difference; both empty means the order is cancelled.
    """

    merchant: MerchantId
    merchant_reference: MerchantReference
    shipped_cart: Cart
    unshipped_cart: Cart
    delivery_method: NotRequired[DeliveryMethod]  # not in a cancellation before shipment
    delivery_address: NotRequired[Address]
    invoice_address: NotRequired[Address]
    customer: NotRequired[Customer]
    trackings: NotRequired[list[Tracking]]
    platform: Platform


class OrderStatistics(TypedDict):
    """One order placed in the last 7 days, whatever its payment method, for SeQura's statistics."""

    completed_at: str
    amount: int
    currency: str
    merchant_reference: NotRequired[MerchantReference]
    payment_method: str
    country: NotRequired[str]
    status: Literal["processing", "shipped", "cancelled"]
    raw_status: NotRequired[str]


class Statistics(TypedDict):
    """The statistics block of a delivery report."""

    orders: list[OrderStatistics]


_HUNDRED, _UNIT = Decimal(100), Decimal(1)
_CENTS_KNOWN: dict[Decimal, int] = {}  # prices and shipping costs repeat: a backfill rounds millions of them
_CENTS_KNOWN_AT_MOST = 100_000


def cents(amount: Decimal) -> int:
    """The one rounding rule: a Decimal amount to integer cents, half away from zero (PHP's round())."""
    known = _CENTS_KNOWN.get(amount)
    if known is None:
        known = int((amount * _HUNDRED).quantize(_UNIT, rounding=ROUND_HALF_UP))
        if len(_CENTS_KNOWN) < _CENTS_KNOWN_AT_MOST:
            _CENTS_KNOWN[amount] = known
    return known


def amount_shown(cents: int) -> str:
    """Integer cents as an amount a person reads, e.g. -1305 -> '-13.05'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def total_shown(cart: Cart) -> str:
    """A cart's total with its currency, e.g. '99.99 EUR'."""
    return f"{amount_shown(cart['order_total_with_tax'])} {cart['currency']}"


ORDER_REF_LONGEST = 255
"""Characters of the longest order_ref_1: ps_orders.reference is varchar(9) before PrestaShop 9 and
varchar(255) in 9.x; an id_order has at most 10 digits. A longer one is no order of any shop: it never reaches
a query or a URL."""
DOT_SEGMENTS = frozenset({".", ".."})
# Unicode categories an order reference never holds: controls, invisible formatting, surrogates, private
# use, unassigned code points and line or paragraph separators.
UNSHOWN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def segments_as_read(path: str) -> list[str]:
    r"""The segments of a URL path as a lenient server or proxy in front of SeQura may read them.

    Percent-decoded and NFKC-normalised (a fullwidth full stop is a dot to some) until nothing changes, split
    at / and \\, each without its ;parameters: a path none of whose segments so read is a dot segment
    cannot climb above where it was written.
    """
    for _ in range(len(path) + 1):
        read = unicodedata.normalize("NFKC", unquote(path))
        if read == path:
            break
        path = read
    return [segment.split(";", 1)[0] for segment in re.split(r"[/\\]", path)]


def order_ref_problem(order_ref_1: str) -> str | None:
    """What keeps order_ref_1 out of SeQura's order URL, in words; None when nothing does."""
    if len(order_ref_1) > ORDER_REF_LONGEST:
        return f"is {len(order_ref_1)} characters long, more than PrestaShop's {ORDER_REF_LONGEST}"
    if any(unicodedata.category(character) in UNSHOWN_CATEGORIES for character in order_ref_1):
        return "holds a control or invisible character"
    segments = segments_as_read(order_ref_1)
    if not segments[0].strip():
        return "is empty"
    if len(segments) > 1 or segments[0].strip() in DOT_SEGMENTS:
        return "would be read as a path ('.', '..', a / or \\, also percent-encoded)"
    return None


def unsafe_order_ref(order_ref_1: str) -> str | None:
    """Why an order whose order_ref_1 cannot be sent safely is held back, and what to do; None if it can."""
    problem = order_ref_problem(order_ref_1)
    if problem is None:
        return None
    return (
        f"order reference '{shown(order_ref_1)}' {problem}, so SeQura's order URL "
        "(merchants/{merchant}/orders/{reference}) cannot carry it and the order is not sent; PrestaShop "
        "never makes such a reference (a module or a hand edit wrote it): correct it in the shop if it "
        "changed after checkout, or tell SeQura of this order's shipment in SeQura's back office"
    )

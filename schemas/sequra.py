"""SeQura wire format: the delivery report and its orders as JSON objects, money in integer cents.

The shapes are TypedDicts rather than models: a backfill builds hundreds of thousands of order reports, and
plain dicts serialised once (orjson) cost a twentieth of what validated models did. The build stage makes
every amount with `cents`, so no float can reach the wire; the sandbox checks every request like SeQura.
Keys whose value is None are left out, never sent as null.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, NotRequired, TypedDict

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
    delivery_method: DeliveryMethod
    delivery_address: Address
    invoice_address: Address
    customer: Customer
    trackings: list[Tracking]
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

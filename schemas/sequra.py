"""SeQura wire models: the delivery report and order update payloads, money in integer cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ItemType = Literal[
    "product", "service", "handling", "discount", "invoice_fee", "other_payment", "registration"
]
OrderState = Literal["shipped", "delivered"]


class WireModel(BaseModel):
    """A SeQura JSON object: strict types (cents are ints, never floats), null keys left out."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict SeQura expects, without null keys."""
        return self.model_dump(mode="json", exclude_none=True)


class Item(WireModel):
    """One cart line: a product, a handling charge (shipping, wrapping) or a discount."""

    type: ItemType
    reference: str | None = None
    name: str | None = None
    price_with_tax: int | None = None
    quantity: int | None = None
    total_with_tax: int
    downloadable: bool | None = None
    product_id: str | None = None


class Cart(WireModel):
    """The shipped (`cart`) or unshipped (`remaining_cart`) part of an order."""

    currency: str
    gift: bool = False
    order_total_with_tax: int
    items: tuple[Item, ...]


class MerchantReference(WireModel):
    """How SeQura knows the order: order_ref_1 as sent at checkout, order_ref_2 as a second key."""

    order_ref_1: str
    order_ref_2: str | None = None


class DeliveryMethod(WireModel):
    """The carrier that took the parcel."""

    name: str
    days: str | None = None
    provider: str | None = None


class Tracking(WireModel):
    """A postal tracking number and where the buyer can follow it."""

    type: Literal["postal"] = "postal"
    reference: str
    carrier: str | None = None
    tracking_number: str
    tracking_url: str | None = None


class Address(WireModel):
    """A delivery or invoice address as the order points to it."""

    given_names: str | None = None
    surnames: str | None = None
    company: str = ""
    address_line_1: str = ""
    address_line_2: str = ""
    postal_code: str = ""
    city: str = ""
    country_code: str = ""
    phone: str | None = None
    mobile_phone: str | None = None
    state: str | None = None
    extra: str | None = None
    vat_number: str | None = None


class Customer(WireModel):
    """The buyer, as the shop knows them."""

    given_names: str | None = None
    surnames: str | None = None
    email: str
    logged_in: bool | None = None
    language_code: str | None = None
    ref: str | None = None
    nin: str | None = None
    company: str | None = None
    vat_number: str | None = None


class OrderReport(WireModel):
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
    trackings: tuple[Tracking, ...] = ()


class Platform(WireModel):
    """The shop platform and database the report comes from."""

    name: str
    version: str
    plugin_version: str | None = None
    uname: str
    db_name: str
    db_version: str


class OrderStatistics(WireModel):
    """One order placed in the last 7 days, whatever its payment method, for SeQura's statistics."""

    completed_at: str
    amount: int | None = None
    currency: str
    merchant_reference: MerchantReference | None = None
    payment_method: str | None = None
    country: str | None = None
    status: Literal["processing", "shipped", "cancelled"] | None = None
    raw_status: str | None = None


class Statistics(WireModel):
    """The statistics block of a delivery report."""

    orders: tuple[OrderStatistics, ...]


class Merchant(WireModel):
    """The merchant the report is for."""

    id: str


class DeliveryReport(WireModel):
    """The body of POST orders/delivery_reports, without its `delivery_report` wrapper."""

    merchant: Merchant
    orders: tuple[OrderReport, ...]
    statistics: Statistics | None = None
    platform: Platform

    def body(self) -> dict[str, Any]:
        """The JSON body SeQura expects."""
        return {"delivery_report": self.wire()}


def cents(amount: Decimal) -> int:
    """The one rounding rule: a Decimal amount to integer cents, half away from zero (PHP's round())."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))

"""One order reference's rows, made ready to build its report, and what refuses a report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from schemas.errors import TerminalError
from schemas.sequra import Address, Item, MerchantReference, Tracking
from tasks.rows import Row

OrderRefField = Literal["reference", "id_order"]


class UnreportableOrderError(TerminalError, ValueError):
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
    unit_rounding: Mapping[int, int]  # cents unit price x quantity adds to the product lines' own totals
    unsendable: Mapping[int, str]  # a line that cannot be sent as it is (quantities, name, price), in words
    discounts: Mapping[int, list[Item]]
    trackings: Mapping[int, list[Tracking]]
    addresses: Mapping[int, Address]  # addresses whose country is known
    address_rows: Mapping[int, Row]  # every address row read, for the buyer's NIN and for errors


def merchant_reference(sub_orders: Sequence[Row], order_ref_field: OrderRefField) -> MerchantReference:
    """order_ref_1 = shop reference and order_ref_2 = first id_order; or order_ref_1 = first id_order."""
    first_id = str(sub_orders[0]["id_order"])
    if order_ref_field == "id_order":
        return {"order_ref_1": first_id}
    return {"order_ref_1": str(sub_orders[0]["reference"]), "order_ref_2": first_id}

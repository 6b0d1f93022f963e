"""The buyer and the addresses of a report, as the order points to them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from schemas.sequra import Address, Customer
from tasks.delivery.order_rows import OrderRows, UnreportableOrderError
from tasks.rows import Row, text_or_none, with_optional

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")  # local@domain.tld, nothing blank


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
        country = text_or_none(row["country_iso"])
        if country is None:
            continue
        address: dict[str, str] = {"country_code": country.upper()}
        for key, column, always in ADDRESS_KEYS:
            value = text_or_none(row[column])
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
    email = text_or_none(sub_order["customer_email"])
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
    return with_optional(
        {"email": email},
        given_names=text_or_none(sub_order["customer_firstname"]),
        surnames=text_or_none(sub_order["customer_lastname"]),
        logged_in=None if is_guest is None else not bool(is_guest),
        language_code=text_or_none(sub_order["language_code"]),
        ref=str(sub_order["id_customer"]),
        nin=text_or_none(invoice.get("dni")),
        company=text_or_none(sub_order["customer_company"]),
    )

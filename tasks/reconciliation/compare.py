"""Compare: every shop value that differs from SeQura's corrections, field by field, and where to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.corrections import (
    ADDRESS_COLUMNS,
    CUSTOMER_COLUMNS,
    INVOICE_ADDRESS_COLUMNS,
    ROLE_OF_RECORD,
    Correction,
    Difference,
    ReconciliationCounts,
    RecordName,
    Repoint,
    Role,
)
from tasks.reconciliation.normalise import same
from tasks.reconciliation.shop_records import Row, ShopRecords
from tasks.rows import grouped

IDENTITY_KEYS = (  # an address row holds a correction when it agrees on these, and on every key SeQura sent
    "given_names",
    "surnames",
    "address_line_1",
    "address_line_2",
    "postal_code",
    "city",
    "country_code",
)


FORM_LABELS = {  # the labels of PrestaShop's back-office forms, per shop column
    "firstname": "First name",
    "lastname": "Last name",
    "email": "Email",
    "company": "Company",
    "address1": "Address",
    "address2": "Address (2)",
    "postcode": "Zip/postal code",
    "city": "City",
    "id_country": "Country",
    "id_state": "State",
    "phone": "Phone",
    "phone_mobile": "Mobile phone",
    "other": "Other",
    "vat_number": "VAT number",
    "dni": "Identification number",
}


@dataclass(frozen=True)
class OrderFix:
    """What `--apply` needs to correct one order: its differences and the row versions they were read at."""

    order_reference: str
    id_orders: tuple[int, ...]
    id_customer: int
    differences: tuple[Difference, ...]
    versions: Mapping[tuple[str, int], datetime | None]  # (table, id): date_upd as read
    repoints: tuple[Repoint, ...] = ()


@dataclass
class ChunkReconciliation:
    """One chunk's differences, the orders to fix, the references the shop does not know, and counts."""

    differences: list[Difference] = field(default_factory=list)
    fixes: list[OrderFix] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)  # (line, order_ref_1)
    counts: ReconciliationCounts = field(default_factory=ReconciliationCounts)


def address_view(row: Row | None) -> dict[str, str | None]:
    """An address row in SeQura's keys, as raw shop values (country by ISO code, state by name)."""
    if row is None:
        return {}
    view: dict[str, str | None] = {
        key: row[column]
        for key, column in ADDRESS_COLUMNS.items()
        if column not in ("id_country", "id_state")
    }
    view["country_code"] = row["country_iso"]
    view["state"] = row["state_name"]
    return view


def holds_correction(candidate: Row, order_view: Mapping[str, str | None], sent: Mapping[str, str]) -> bool:
    """Whether an address row is the order's address with SeQura's correction made."""
    corrected = {**order_view, **sent}
    view = address_view(candidate)
    country = corrected.get("country_code")
    return all(same(key, view.get(key), corrected.get(key), country) for key in {*sent, *IDENTITY_KEYS})


def fixed_copy(row: Row | None, current: Sequence[Row], holds: Any) -> Row | None:
    """The buyer's current address that replaced the order's `row` with the correction made, if any.

    PrestaShop replaces an edited address by a new row and soft-deletes the old one at the same moment: only
    a row added since the order's row was retired counts, never an address the buyer simply also has.
    """
    if row is None or not row["deleted"] or row["date_upd"] is None:
        return None
    copies = [
        candidate
        for candidate in current
        if candidate["id_address"] != row["id_address"]
        and candidate["date_add"] is not None
        and candidate["date_add"] >= row["date_upd"]
        and holds(candidate)
    ]
    return max(copies, key=lambda candidate: candidate["date_add"], default=None)


def _admin_link(admin_url: str | None, path: str) -> str | None:
    """A back-office page, when SHOP_ADMIN_URL is set."""
    return f"{admin_url}index.php/sell/{path}" if admin_url else None


def where_to_fix(
    record: RecordName, key: str, id_order: int, id_customer: int, admin_url: str | None
) -> tuple[str, str | None]:
    """Where a merchant fixes `key` of `record` in the back office, and the page's link if configured."""
    if record == "customer" and key in CUSTOMER_COLUMNS:
        label = FORM_LABELS[CUSTOMER_COLUMNS[key]]
        return (
            f"Customers > Customers > customer {id_customer} > Edit: {label}",
            _admin_link(admin_url, f"customers/{id_customer}/edit"),
        )
    role = "Invoice" if record != "delivery_address" else "Delivery"
    column = INVOICE_ADDRESS_COLUMNS[key] if record == "customer" else ADDRESS_COLUMNS[key]
    return (
        f"Orders > order {id_order} > {role} address > Edit: {FORM_LABELS[column]}",
        _admin_link(admin_url, f"orders/{id_order}/view"),
    )


def _difference(
    order_ref: str,
    record: RecordName,
    key: str,
    pointing: Sequence[Row],
    row: int,
    values: tuple[str | None, str],
    admin_url: str | None,
) -> Difference:
    """One difference on the row `row` that the sub-orders `pointing` share."""
    first = pointing[0]
    fix_in, link = where_to_fix(record, key, first["id_order"], first["id_customer"], admin_url)
    return Difference(
        order_reference=order_ref,
        id_order=first["id_order"],
        record=record,
        field=key,
        shop_value=values[0],
        sequra_value=values[1],
        fix_in=fix_in,
        link=link,
        id_orders=_ids(pointing),
        row=row,
    )


def _by_address(sub_orders: Sequence[Row], role: Role) -> dict[int, list[Row]]:
    """The sub-orders grouped by the address they point to as `role`."""
    return grouped(sub_orders, f"id_address_{role}")


def address_differences(
    correction: Correction, record: RecordName, shop: ShopRecords, admin_url: str | None
) -> tuple[list[Difference], list[Repoint]]:
    """The differences of one corrected address record, or the buyer's fixed copy to repoint the order to."""
    sent = correction.records[record]
    role = ROLE_OF_RECORD[record]
    differences: list[Difference] = []
    repoints: list[Repoint] = []
    for id_address, pointing in _by_address(_sub_orders(correction, shop), role).items():
        row = shop.addresses.get(id_address)
        view = address_view(row)
        country = sent.get("country_code") or view.get("country_code")
        differing = [key for key, value in sent.items() if not same(key, view.get(key), value, country)]
        if not differing:
            continue
        current = shop.current.get(pointing[0]["id_customer"], [])
        copy = fixed_copy(row, current, lambda candidate, view=view: holds_correction(candidate, view, sent))
        if copy is not None:
            repoints.append(Repoint(role, id_address, copy["id_address"], _ids(pointing)))
            continue
        differences += [
            _difference(
                correction.order_ref_1,
                record,
                key,
                pointing,
                id_address,
                (view.get(key), sent[key]),
                admin_url,
            )
            for key in differing
        ]
    return differences, repoints


def _ids(rows: Sequence[Row]) -> tuple[int, ...]:
    """The id_order of each row."""
    return tuple(row["id_order"] for row in rows)


def _sub_orders(correction: Correction, shop: ShopRecords) -> list[Row]:
    """The sub-orders a correction matched."""
    return list(shop.sub_orders[shop.keys[correction.order_ref_1]])


def customer_differences(
    correction: Correction, shop: ShopRecords, admin_url: str | None
) -> tuple[list[Difference], list[Repoint]]:
    """The differences of a corrected customer record: the buyer's row, the invoice address's NIN and VAT."""
    sent = correction.records["customer"]
    sub_orders = _sub_orders(correction, shop)
    differences: list[Difference] = []
    repoints: list[Repoint] = []
    for id_customer, pointing in grouped(sub_orders, "id_customer").items():
        customer = shop.customers.get(id_customer) or {}
        for key in (key for key in sent if key in CUSTOMER_COLUMNS):
            shop_value = customer.get(CUSTOMER_COLUMNS[key])
            if not same(key, shop_value, sent[key]):
                differences.append(
                    _difference(
                        correction.order_ref_1,
                        "customer",
                        key,
                        pointing,
                        id_customer,
                        (shop_value, sent[key]),
                        admin_url,
                    )
                )
    on_invoice = {
        INVOICE_ADDRESS_COLUMNS[key]: value for key, value in sent.items() if key in INVOICE_ADDRESS_COLUMNS
    }
    for id_address, pointing in _by_address(sub_orders, "invoice").items():
        row = shop.addresses.get(id_address)
        differing = [c for c, value in on_invoice.items() if not same(c, (row or {}).get(c), value)]
        if not differing:
            continue

        def holds(candidate: Row, row: Row | None = row, differing: list[str] = differing) -> bool:
            return holds_correction(candidate, address_view(row), {}) and all(
                same(c, candidate[c], on_invoice[c]) for c in differing
            )

        copy = fixed_copy(row, shop.current.get(pointing[0]["id_customer"], []), holds)
        if copy is not None:
            repoints.append(Repoint("invoice", id_address, copy["id_address"], _ids(pointing)))
            continue
        key_of = {column: key for key, column in INVOICE_ADDRESS_COLUMNS.items()}
        differences += [
            _difference(
                correction.order_ref_1,
                "customer",
                key_of[c],
                pointing,
                id_address,
                ((row or {}).get(c), on_invoice[c]),
                admin_url,
            )
            for c in differing
        ]
    return differences, repoints


def order_differences(
    correction: Correction, shop: ShopRecords, admin_url: str | None
) -> tuple[list[Difference], list[Repoint], int]:
    """A correction's differences with the shop, its repoints to fixed copies, and how many records they fix.

    A record the merchant already fixed in a new address row is no difference: its order is repointed.
    """
    differences: list[Difference] = []
    repoints: dict[tuple[str, int], Repoint] = {}
    fixed = 0
    for record in correction.records:
        found, copies = (
            customer_differences(correction, shop, admin_url)
            if record == "customer"
            else address_differences(correction, record, shop, admin_url)  # type: ignore[arg-type]
        )
        differences += found
        fixed += bool(copies)
        repoints |= {(repoint.role, repoint.old): repoint for repoint in copies}
    return differences, list(repoints.values()), fixed


def versions_of(sub_orders: Sequence[Row], shop: ShopRecords) -> dict[tuple[str, int], datetime | None]:
    """The date_upd of every row an order's fix may write: its orders, its buyer and its addresses."""
    versions: dict[tuple[str, int], datetime | None] = {}
    for row in sub_orders:
        versions[("orders", row["id_order"])] = row["date_upd"]
        customer = shop.customers.get(row["id_customer"])
        if customer is not None:
            versions[("customer", row["id_customer"])] = customer["date_upd"]
        for role in ("delivery", "invoice"):
            address = shop.addresses.get(row[f"id_address_{role}"])
            if address is not None:
                versions[("address", address["id_address"])] = address["date_upd"]
    return versions


def reconcile_corrections(
    corrections: Sequence[Correction],
    shop: ShopRecords,
    admin_url: str | None,
    repeats_in: Mapping[str, str],
) -> ChunkReconciliation:
    """Compare a chunk of corrections with the shop's records (pure): differences, fixes, unknown references.

    `repeats_in` names, per order_ref_1 as the shop has it, what would send the shop's value to SeQura again.
    """
    result = ChunkReconciliation()
    counts = result.counts
    counts.records = len(corrections)
    for correction in corrections:
        key = shop.keys.get(correction.order_ref_1)
        if key is None:
            result.unknown.append((correction.line, correction.order_ref_1))
            continue
        sub_orders = shop.sub_orders[key]
        counts.matched += 1
        differences, repoints, fixed = order_differences(correction, shop, admin_url)
        counts.already_fixed += fixed
        if not differences and not repoints:
            continue
        repeats = repeats_in.get(shop.order_ref_1s[key])
        if repeats == "delivery report" and any(row["module_sent"] for row in sub_orders):
            repeats = None  # the PHP module reported it: the next run keeps it as its baseline
        differences = [
            Difference(**{**difference.__dict__, "repeats_in": repeats}) for difference in differences
        ]
        counts.orders_with_differences += bool(differences)
        counts.repeating += repeats is not None
        counts.differences += len(differences)
        for difference in differences:
            name = f"{difference.record}.{difference.field}"
            counts.by_field[name] = counts.by_field.get(name, 0) + 1
        result.differences += differences
        result.fixes.append(
            OrderFix(
                order_reference=correction.order_ref_1,
                id_orders=_ids(sub_orders),
                id_customer=sub_orders[0]["id_customer"],
                differences=tuple(differences),
                versions=versions_of(sub_orders, shop),
                repoints=tuple(repoints),
            )
        )
    counts.unknown = len(result.unknown)
    return result

"""SeQura-corrected buyer data, and the differences a reconciliation finds between it and the shop.

SeQura talks to buyers and corrects their email, names and addresses in its own records. A correction is one
record per order, keyed by `order_ref_1`, in SeQura's key names; a difference is one field of one shop row
that disagrees with it. Here are the names both use and where each field lives in PrestaShop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.outcomes import ROWS_SHOWN
from schemas.sequra import Address

RecordName = Literal["customer", "delivery_address", "invoice_address"]
Role = Literal["delivery", "invoice"]

CUSTOMER_FIELDS = ("given_names", "surnames", "email", "nin", "company", "vat_number")
ADDRESS_FIELDS = tuple(Address.__annotations__)  # SeQura's address keys, as the wire format names them
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "customer": CUSTOMER_FIELDS,
    "delivery_address": ADDRESS_FIELDS,
    "invoice_address": ADDRESS_FIELDS,
}
ROLE_OF_RECORD: dict[str, Role] = {"delivery_address": "delivery", "invoice_address": "invoice"}

ADDRESS_COLUMNS = {  # SeQura's address key: the ps_address column (country and state through their ids)
    "given_names": "firstname",
    "surnames": "lastname",
    "company": "company",
    "address_line_1": "address1",
    "address_line_2": "address2",
    "postal_code": "postcode",
    "city": "city",
    "country_code": "id_country",
    "phone": "phone",
    "mobile_phone": "phone_mobile",
    "state": "id_state",
    "extra": "other",
    "vat_number": "vat_number",
}
CUSTOMER_COLUMNS = {  # SeQura's customer key kept on ps_customer, changed in place
    "given_names": "firstname",
    "surnames": "lastname",
    "email": "email",
    "company": "company",
}
INVOICE_ADDRESS_COLUMNS = {  # SeQura's customer key kept on the order's invoice address (as the report does)
    "nin": "dni",
    "vat_number": "vat_number",
}

LONGEST = {  # characters PrestaShop's columns (and validators) take, per SeQura key
    "given_names": 255,
    "surnames": 255,
    "email": 255,
    "company": 255,
    "address_line_1": 128,
    "address_line_2": 128,
    "postal_code": 12,
    "city": 64,
    "country_code": 2,
    "phone": 32,
    "mobile_phone": 32,
    "state": 80,
    "extra": 300,
    "vat_number": 32,
    "nin": 16,
}
REQUIRED_IN_SHOP = {"given_names", "surnames", "email", "address_line_1", "city", "country_code"}
"""Keys whose PrestaShop column cannot be blank: SeQura cannot correct them to nothing."""

DIFFERENCE_COLUMNS = (
    "order_reference",
    "id_order",
    "record",
    "field",
    "shop_value",
    "sequra_value",
    "fix_in",
)
"""The columns of the reconciliation's CSV, in order: one row per difference."""


@dataclass(frozen=True)
class Correction:
    """What SeQura holds for one order, as it sent it: record name to {SeQura key: value}."""

    line: int  # where the record starts in the source (1-based)
    order_ref_1: str
    records: dict[str, dict[str, str]]


@dataclass(frozen=True)
class MalformedRecord:
    """A record of the source that cannot be reconciled, and why, naming its line and field."""

    line: int
    field: str
    problem: str
    order_ref_1: str | None = None
    record: bool = True  # False for a problem of the file's header (a CSV column), which is no record

    def __str__(self) -> str:
        """The line, the field and the problem, in one sentence."""
        return f"line {self.line}: {self.field}: {self.problem}"


@dataclass(frozen=True)
class Difference:
    """One shop value that disagrees with SeQura's, and where to fix it.

    One difference per shop row and field: the sub-orders of a split order that point to the same address
    share it, and `id_orders` names them all (`id_order` is the first).
    """

    order_reference: str  # order_ref_1
    id_order: int
    record: RecordName
    field: str
    shop_value: str | None
    sequra_value: str
    fix_in: str
    link: str | None = None  # the back-office page, when SHOP_ADMIN_URL is set
    id_orders: tuple[int, ...] = ()
    row: int = 0  # id_customer, or the id_address the orders point to
    repeats_in: str | None = None  # what would send the shop's value to SeQura again, if anything

    def csv_row(self) -> dict[str, object]:
        """The difference as a row of the reconciliation CSV."""
        fix_in = f"{self.fix_in} ({self.link})" if self.link else self.fix_in
        return {
            "order_reference": self.order_reference,
            "id_order": self.id_order,
            "record": self.record,
            "field": self.field,
            "shop_value": self.shop_value or "",
            "sequra_value": self.sequra_value,
            "fix_in": fix_in,
        }


@dataclass(frozen=True)
class Repoint:
    """Sub-orders to point at an address the buyer already has with SeQura's correction (a fixed copy)."""

    role: Role
    old: int  # the id_address the sub-orders point to now
    new: int  # the buyer's current address that holds the correction
    id_orders: tuple[int, ...]


@dataclass(frozen=True)
class SkippedFix:
    """An order whose corrections were not written to the shop, and why."""

    order_reference: str
    id_order: int
    reason: str


@dataclass(frozen=True)
class AppliedFix:
    """One shop value a reconciliation changed: the audit trail of `--apply`."""

    order_reference: str
    id_order: int
    record: str
    field: str
    shop_table: Literal["customer", "address"]
    row_before: int
    row_after: int
    before: str | None
    after: str


@dataclass
class ReconciliationCounts:
    """What a reconciliation read, matched and found; added up over its chunks."""

    read: int = 0  # records in the source, malformed ones included
    records: int = 0  # well-formed records compared
    malformed: int = 0  # malformed records, and problems of a CSV's header
    matched: int = 0
    unknown: int = 0
    differences: int = 0
    orders_with_differences: int = 0
    already_fixed: int = 0  # records the merchant already fixed in a new address row (--apply repoints)
    repeating: int = 0  # orders whose next report or update would send a corrected error again
    fixed_orders: int = 0
    skipped_orders: int = 0
    change_lines: int = 0  # lines of the changes --apply made (or would make)
    by_field: dict[str, int] = field(default_factory=dict)  # "record.field": differences

    def add(self, other: ReconciliationCounts) -> None:
        """Add another chunk's counts to these."""
        for name in (
            "read",
            "records",
            "malformed",
            "matched",
            "unknown",
            "differences",
            "orders_with_differences",
            "already_fixed",
            "repeating",
            "fixed_orders",
            "skipped_orders",
            "change_lines",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, count in other.by_field.items():
            self.by_field[key] = self.by_field.get(key, 0) + count


@dataclass
class ReconcileOutcome:
    """What chunks found and did, added up; each list keeps at most ROWS_SHOWN rows."""

    counts: ReconciliationCounts = field(default_factory=ReconciliationCounts)
    differences: list[Difference] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)  # the changes --apply makes (or would make)
    applied_values: int = 0
    skipped: list[SkippedFix] = field(default_factory=list)

    def add(self, later: ReconcileOutcome) -> None:
        """Add a later chunk's outcome to this one."""
        self.counts.add(later.counts)
        self.differences = (self.differences + later.differences)[:ROWS_SHOWN]
        self.unknown = (self.unknown + later.unknown)[:ROWS_SHOWN]
        self.planned = (self.planned + later.planned)[:ROWS_SHOWN]
        self.applied_values += later.applied_values
        self.skipped = (self.skipped + later.skipped)[:ROWS_SHOWN]

"""SeQura's disbursements as read from its API: the list of payouts, and the per-order lines of each one.

Pure parsing of decoded JSON; amounts are integer cents, dates `datetime.date`, and every text from SeQura a
message shows goes through shown. Errors are DisbursementFormatError, naming the disbursement and the field.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime

from schemas.errors import DisbursementFormatError
from schemas.sequra import ORDER_REF_LONGEST
from schemas.shown import shown

DETAIL_DEPTH = 32  # the deepest nesting of dicts and lists walked to find a detail's order lines
ID_LONGEST = 100  # characters of the last segment of a disbursement's path
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CURRENCY = re.compile(r"[A-Z]{3}")
DISBURSEMENT_ID = re.compile(rf"[A-Za-z0-9-]{{1,{ID_LONGEST}}}")
REFERENCE_LONGEST = 255  # characters of a disbursement's reference (the state store's column)
REFERENCE = re.compile(rf"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]{{1,{REFERENCE_LONGEST}}}")


@dataclass(frozen=True)
class Disbursement:
    """One payout SeQura lists: when, for orders up to when, how much (cents), and its detail's path."""

    reference: str
    issue_date: date
    to_date: date
    currency: str
    disbursed_amount: int
    adjustments_with_tax: int
    path: str


@dataclass(frozen=True)
class DisbursementLine:
    """One order a disbursement pays: its reference and amounts in cents."""

    order_ref_1: str
    amount_with_tax: int
    maximum_amount_with_tax: int | None


@dataclass(frozen=True)
class DisbursementDetail:
    """The order lines of one disbursement, and its detail's JSON as SeQura answered it (kept whole)."""

    reference: str
    lines: tuple[DisbursementLine, ...]
    raw: str = ""


def disbursements(document: object) -> list[Disbursement]:
    """The disbursements of SeQura's list: a JSON array of {"disbursement": {...}}, in its order."""
    if not isinstance(document, list):
        raise DisbursementFormatError(
            f"SeQura's disbursement list is {_kind(document)}, not an array of disbursements"
        )
    return [_disbursement(element, position) for position, element in enumerate(document, start=1)]


def _disbursement(element: object, position: int) -> Disbursement:
    """One element of the list, named by its reference when it has one, else by its position."""
    fields = element.get("disbursement") if isinstance(element, dict) else None
    if not isinstance(fields, dict):
        raise DisbursementFormatError(
            f"disbursement #{position} of SeQura's list is not an object with a 'disbursement' object"
        )
    raw_reference = fields.get("reference")
    name = (
        f"disbursement {shown(raw_reference)}"
        if isinstance(raw_reference, str)
        else f"disbursement #{position}"
    )
    return Disbursement(
        reference=_reference(fields, name),
        issue_date=_date(fields, "issue_date", name),
        to_date=_date(fields, "to_date", name),
        currency=_currency(fields, name),
        disbursed_amount=_cents(fields, "disbursed_amount", name),
        adjustments_with_tax=_cents(fields, "adjustments_with_tax", name),
        path=_text(fields, "path", name),
    )


def _field(fields: dict, key: str, name: str) -> object:
    """The value of `key`; DisbursementFormatError naming the disbursement when it is missing."""
    if key not in fields:
        raise DisbursementFormatError(f"{name} has no '{key}'")
    return fields[key]


def _text(fields: dict, key: str, name: str) -> str:
    """A non-empty string field."""
    value = _field(fields, key, name)
    if not isinstance(value, str) or not value:
        raise DisbursementFormatError(f"{name}: '{key}' is {_kind(value)}, not a non-empty string")
    return value


def _reference(fields: dict, name: str) -> str:
    """A disbursement's reference: one word of at most REFERENCE_LONGEST printable characters.

    The CSV lists references space-separated and the store keeps them in a column of that width.
    """
    value = _text(fields, "reference", name)
    if not REFERENCE.fullmatch(value):
        raise DisbursementFormatError(
            f"{name}: its reference is not one word of at most {REFERENCE_LONGEST} printable characters"
        )
    return value


def _date(fields: dict, key: str, name: str) -> date:
    """A YYYY-MM-DD date field."""
    value = _field(fields, key, name)
    try:
        if isinstance(value, str) and ISO_DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise DisbursementFormatError(f"{name}: '{key}' is {_kind(value)}, not a date like 2014-12-02")


def _currency(fields: dict, name: str) -> str:
    """A three-letter currency code."""
    value = _field(fields, "currency", name)
    if not isinstance(value, str) or not CURRENCY.fullmatch(value):
        raise DisbursementFormatError(f"{name}: 'currency' is {_kind(value)}, not a code like EUR")
    return value


def _cents(fields: dict, key: str, name: str) -> int:
    """An amount in integer cents (a JSON integer: never a boolean, a decimal or a string)."""
    value = _field(fields, key, name)
    if not _is_int(value):
        raise DisbursementFormatError(f"{name}: '{key}' is {_kind(value)}, not an amount in integer cents")
    return value  # type: ignore[return-value]


def _is_int(value: object) -> bool:
    """Whether a JSON value is an integer (Python's bool is an int, JSON's true is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: object) -> str:
    """A JSON value as a message shows it: its text when short, its type otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool | int | str):
        return repr(shown(str(value)))
    return {dict: "an object", list: "an array", float: f"{shown(str(value))} (a decimal)"}.get(
        type(value), type(value).__name__
    )


def disbursement_id(disbursement: Disbursement, merchant_id: str) -> str:
    """The id that ends the disbursement's path, accepted only as /merchants/{merchant_id}/disbursements/{id}.

    The path is SeQura's data, never a URL to follow: anything else (a scheme or host, another merchant, a
    dot segment, an escape, a backslash, a query or fragment) raises DisbursementFormatError naming it.
    """
    prefix = f"/merchants/{merchant_id}/disbursements/"
    path = disbursement.path
    if path.startswith(prefix) and DISBURSEMENT_ID.fullmatch(path[len(prefix) :]):
        return path[len(prefix) :]
    raise DisbursementFormatError(
        f"disbursement {shown(disbursement.reference)}: its path '{shown(path, 120)}' is not "
        f"{prefix}<id> (letters, digits and dashes); its detail is not requested"
    )


def disbursement_detail(disbursement: Disbursement, document: object, raw: str = "") -> DisbursementDetail:
    """The order lines of a disbursement's detail, wherever it holds them.

    A line is any object, at any depth, with `order_ref_1` and `amount_with_tax`. A detail with none raises
    DisbursementFormatError naming its top-level keys, rather than leaving every order looking unpaid.
    """
    name = f"disbursement {shown(disbursement.reference)}"
    lines = tuple(_lines(document, name, 0))
    if not lines:
        keys = sorted(document) if isinstance(document, dict) else []
        found = ", ".join(shown(key) for key in keys[:20]) + (", …" if len(keys) > 20 else "")
        raise DisbursementFormatError(
            f"{name}: its detail holds no order lines (objects with order_ref_1 and amount_with_tax); it is "
            + (f"an object with keys {found}" if keys else _kind(document))
            + ": its orders are not called unpaid until this reading of SeQura's detail is updated"
        )
    return DisbursementDetail(disbursement.reference, lines, raw)


def _lines(value: object, name: str, depth: int) -> list[DisbursementLine]:
    """The order lines within `value`, in document order; DisbursementFormatError past DETAIL_DEPTH."""
    if depth > DETAIL_DEPTH:
        raise DisbursementFormatError(f"{name}: its detail nests deeper than {DETAIL_DEPTH} levels")
    if isinstance(value, dict):
        if "order_ref_1" in value and "amount_with_tax" in value:
            return [_line(value, name)]
        children: list = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return []
    return [line for child in children for line in _lines(child, name, depth + 1)]


def _line(fields: dict, name: str) -> DisbursementLine:
    """One order line: its reference kept as text (SeQura may write it as a number), amounts in cents."""
    raw = fields["order_ref_1"]
    if not (_is_int(raw) or isinstance(raw, str)) or not str(raw) or len(str(raw)) > ORDER_REF_LONGEST:
        raise DisbursementFormatError(
            f"{name}: an order line's 'order_ref_1' is {_kind(raw)}, not a reference of 1 to "
            f"{ORDER_REF_LONGEST} characters"
        )
    order = f"{name}, order {shown(str(raw))}"
    maximum = fields.get("maximum_amount_with_tax")
    if maximum is not None and not _is_int(maximum):
        raise DisbursementFormatError(
            f"{order}: 'maximum_amount_with_tax' is {_kind(maximum)}, not an amount in integer cents"
        )
    return DisbursementLine(str(raw), _cents(fields, "amount_with_tax", order), maximum)


class Finding(enum.StrEnum):
    """What the payout check found of one order (an order paid exactly as reported has none)."""

    NOT_PAID = "not_paid"  # reported as shipped before the grace period, and in no disbursement
    PAID_DIFFERS = "paid_differs"  # paid, but not what SeQura was last told shipped
    PAID_NOT_REPORTED = "paid_not_reported"  # paid, but never reported as this merchant's from here


PAYOUT_COLUMNS = (
    "order_ref_1",
    "finding",
    "reported",
    "disbursed",
    "difference",
    "currency",
    "shipped_at",
    "disbursements",
    "what_to_do",
)
"""The columns of the payout check's CSV, in order."""


@dataclass(frozen=True)
class PayoutFinding:
    """One order whose payout does not match its report: amounts in cents, None where there is none."""

    order_ref_1: str
    finding: Finding
    reported: int | None
    disbursed: int | None
    currency: str
    shipped_at: datetime | None
    disbursements: tuple[str, ...] = ()
    baseline: bool = False  # its report is this project's baseline of what the PHP module (or adopt) sent

    @property
    def difference(self) -> int | None:
        """Disbursed minus reported, in cents; None unless both are known."""
        if self.reported is None or self.disbursed is None:
            return None
        return self.disbursed - self.reported

    @property
    def at_stake(self) -> int:
        """The money this finding is about, in cents: what is unpaid, or paid beyond or short of it."""
        if self.finding is Finding.NOT_PAID:
            return self.reported or 0
        if self.finding is Finding.PAID_NOT_REPORTED:
            return self.disbursed or 0
        return self.difference or 0

    def what_to_do(self) -> str:
        """What the merchant does about it, in words."""
        if self.finding is Finding.NOT_PAID:
            return (
                "SeQura was told this order shipped and has paid nothing for it: ask SeQura's merchant "
                "support why, giving the order reference and when it shipped"
            )
        if self.finding is Finding.PAID_NOT_REPORTED:
            return (
                "SeQura paid an order this merchant never reported from here: check whether it was reported "
                "by hand, by the PrestaShop module before the switch, or under another merchant id"
            )
        if self.baseline:
            return (
                "SeQura paid other than the report this project keeps for an order the PrestaShop module "
                "reported before the switch (built from the shop, not the module's own report): check in "
                "SeQura's back office what it was told, and correct the order there or in the shop"
            )
        if self.reported == 0:
            return (
                "SeQura paid an order it was told was cancelled: ask SeQura to take the payment back, or "
                "check that the shop's cancellation is right"
            )
        if (self.difference or 0) < 0:
            return (
                "SeQura paid less than it was told shipped: look for a return or discount SeQura knows of "
                "and the shop does not show; if there is none, ask SeQura, giving the disbursements"
            )
        return (
            "SeQura paid more than it was told shipped: look for a return or cancellation the shop has "
            "and SeQura was not told (the next run sends it); if there is none, tell SeQura, giving the "
            "disbursements"
        )

"""The weekly disbursements the sandbox pays, computed from the shipped totals it accepted.

SeQura documents the Disbursement API's list call and per-order lines, not its rules; the sandbox's choices:
- A disbursement covers a week ending on a Sunday, its to_date (the docs' examples end on Sundays), and is
  issued delay_days later (default 7; the docs' examples show 16, a shorter gap keeps demos short).
- An order's change in shipped total, accepted at least pay_after_days before a to_date and not paid by an
  earlier disbursement, is paid as one line of it: the first line pays the shipped total, a return after
  payment gives a negative line, so an order's lines sum to its last shipped total.
- One disbursement per week and currency; its id and reference derive from (merchant, to_date, currency), so
  every read gives the same ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby

from pydantic import BaseModel, ConfigDict, Field

SUNDAY = 6
IDS = uuid.uuid5(uuid.NAMESPACE_URL, "https://sandbox.sequrapi.com/disbursements")
Record = dict[str, object]


@dataclass(frozen=True)
class ShippedTotal:
    """An order's shipped-cart total as SeQura held it once it accepted a report or update, at that time."""

    merchant: str
    order_ref_1: str
    total: int
    currency: str
    at: datetime


class UnknownPayment(BaseModel):
    """A line paid in the latest disbursement for an order the sandbox never received."""

    model_config = ConfigDict(extra="forbid")

    order_ref_1: str
    amount_with_tax: int
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    merchant: str | None = None  # None: paid to every merchant


class PayoutSettings(BaseModel):
    """The sandbox's clock and payout rules, and the payout faults it injects."""

    model_config = ConfigDict(extra="forbid")

    now: datetime | None = None  # None: the real time; naive times are UTC
    delay_days: int = Field(7, ge=0)
    pay_after_days: int = Field(3, ge=0)
    leave_out: list[str | int] = Field(default_factory=list)  # orders never paid
    pay_less: dict[str, int] = Field(default_factory=dict)  # cents taken off an order's first line
    pay_unknown: list[UnknownPayment] = Field(default_factory=list)

    def clock(self) -> datetime:
        """The sandbox's current UTC time: `now` when set, the real time otherwise."""
        if self.now is None:
            return datetime.now(UTC)
        return self.now.replace(tzinfo=UTC) if self.now.tzinfo is None else self.now.astimezone(UTC)


def first_to_date(accepted_on: date, pay_after_days: int) -> date:
    """The first to_date (a Sunday) at least pay_after_days after the day a change was accepted."""
    earliest = accepted_on + timedelta(days=pay_after_days)
    return earliest + timedelta(days=(SUNDAY - earliest.weekday()) % 7)


def last_to_date(today: date, delay_days: int) -> date:
    """The latest to_date (a Sunday) whose disbursement is issued by today."""
    latest = today - timedelta(days=delay_days)
    return latest - timedelta(days=(latest.weekday() - SUNDAY) % 7)


def _order_lines(
    ref: str, history: list[ShippedTotal], settings: PayoutSettings, last: date
) -> list[tuple[date, str, Record]]:
    """The lines paying one order (history oldest first), with their to_date and currency, up to last."""
    lines: list[tuple[date, str, Record]] = []
    paid = highest = 0
    for to_date, group in groupby(
        history, key=lambda entry: first_to_date(entry.at.date(), settings.pay_after_days)
    ):
        if to_date > last:
            break
        entries = list(group)
        highest = max(highest, *(entry.total for entry in entries))
        change = entries[-1].total - paid
        if change:
            less = 0 if lines else settings.pay_less.get(ref, 0)
            paid += change
            line = {"order_ref_1": ref, "amount_with_tax": change - less, "maximum_amount_with_tax": highest}
            lines.append((to_date, entries[-1].currency, line))
    return lines


def _disbursement(
    merchant: str, to_date: date, currency: str, lines: list[Record], delay_days: int
) -> Record:
    """One disbursement with its lines under "orders" (the sandbox's key: SeQura does not document it)."""
    disbursement_id = uuid.uuid5(IDS, f"{merchant}/{to_date.isoformat()}/{currency}")
    return {
        "issue_date": (to_date + timedelta(days=delay_days)).isoformat(),
        "to_date": to_date.isoformat(),
        "currency": currency,
        "disbursed_amount": sum(int(line["amount_with_tax"]) for line in lines),  # type: ignore[call-overload]
        "adjustments_with_tax": 0,
        "adjustments": [],
        "reference": disbursement_id.hex[:13].upper(),
        "path": f"/merchants/{merchant}/disbursements/{disbursement_id}",
        "orders": lines,
    }


def disbursements(merchant: str, history: list[ShippedTotal], settings: PayoutSettings) -> list[Record]:
    """The merchant's disbursements issued by the sandbox's clock, newest first, each with its lines."""
    last = last_to_date(settings.clock().date(), settings.delay_days)
    left_out = {str(ref) for ref in settings.leave_out}
    ordered = sorted((entry for entry in history if entry.merchant == merchant), key=lambda entry: entry.at)
    weeks: dict[tuple[date, str], list[Record]] = {}
    for ref in dict.fromkeys(entry.order_ref_1 for entry in ordered):
        if ref in left_out:
            continue
        order_history = [entry for entry in ordered if entry.order_ref_1 == ref]
        for to_date, currency, line in _order_lines(ref, order_history, settings, last):
            weeks.setdefault((to_date, currency), []).append(line)
    for unknown in settings.pay_unknown:
        if unknown.merchant in (None, merchant):
            line = {
                "order_ref_1": unknown.order_ref_1,
                "amount_with_tax": unknown.amount_with_tax,
                "maximum_amount_with_tax": unknown.amount_with_tax,
            }
            weeks.setdefault((last, unknown.currency), []).append(line)
    return [
        _disbursement(merchant, to_date, currency, lines, settings.delay_days)
        for (to_date, currency), lines in sorted(weeks.items(), reverse=True)
    ]


def listed(disbursement: Record) -> Record:
    """A disbursement as the list call shows it, without its lines."""
    return {key: value for key, value in disbursement.items() if key != "orders"}

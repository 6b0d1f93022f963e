"""A payout check from start to end: read SeQura's new disbursements, compare every order, write the CSV.

The one owner of a payout check, free of Prefect, as DeliveryRun is of a delivery report: it works with the
run's resources (one state store, one SeQura session) and hands them to the stages. What it returns is
counts, totals and the first ROWS_SHOWN findings; every finding is in the CSV.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from schemas.outcomes import ROWS_SHOWN
from schemas.payouts import Finding, PayoutFinding
from tasks.payouts.output import write_findings
from tasks.payouts.read import DisbursementsRead, read_new_disbursements
from tasks.resources import RunResources
from tasks.state.payouts import (
    CurrencyTotals,
    PaidPeriods,
    paid_periods,
    payout_findings,
    payout_totals,
    unpaid_past_grace,
)


@dataclass(frozen=True)
class AtStake:
    """Orders of one finding in one currency, and the money they are about (cents).

    Orders paid other than reported are two parts, those paid more and those paid less, never netted.
    """

    finding: Finding
    currency: str
    orders: int
    amount: int
    paid_more: bool = False


@dataclass(frozen=True)
class PayoutSummary:
    """What one payout check read and found; `findings` holds at most ROWS_SHOWN of them, the CSV all."""

    merchant: str
    out: str
    read: DisbursementsRead
    periods: PaidPeriods
    grace_days: int
    due_before: datetime | None
    timezone: str
    totals: list[CurrencyTotals]
    at_stake: list[AtStake]
    oldest_unpaid: PayoutFinding | None
    findings: list[PayoutFinding] = field(default_factory=list)
    started_at: datetime | None = None
    unpaid_past_grace: int = 0  # due by today, in no disbursement, and no period listed late enough to say so

    def count(self, finding: Finding) -> int:
        """How many orders have `finding`."""
        return sum(part.orders for part in self.at_stake if part.finding is finding)

    @property
    def found(self) -> int:
        """How many orders have a finding."""
        return sum(part.orders for part in self.at_stake)

    @property
    def all_paid(self) -> bool:
        """Whether every order was paid as reported, and none is past the grace unpaid."""
        return not self.found and not self.unpaid_past_grace


def due_before(latest_to_date: date | None, grace_days: int, timezone: str) -> datetime | None:
    """When an order must have been reported by to be due: the latest period's end less the grace days.

    The period ends at midnight after its to_date, in the shop's time zone; None before any disbursement.
    """
    if latest_to_date is None:
        return None
    period_end = datetime.combine(latest_to_date + timedelta(days=1), time(), ZoneInfo(timezone))
    return period_end - timedelta(days=grace_days)


class TallyKey(NamedTuple):
    """A part of the money at stake: a finding, a currency and, for paid_differs, whether SeQura paid more."""

    finding: Finding
    currency: str
    paid_more: bool


@dataclass
class FindingTally:
    """Counts findings as they stream past: per finding and currency, the oldest unpaid, the first rows."""

    orders: Counter[TallyKey] = field(default_factory=Counter)
    amounts: Counter[TallyKey] = field(default_factory=Counter)
    oldest_unpaid: PayoutFinding | None = None
    shown: list[PayoutFinding] = field(default_factory=list)

    def count(self, findings: Iterable[PayoutFinding]) -> None:
        """Take every finding of `findings` into the tally."""
        for finding in findings:
            more = finding.finding is Finding.PAID_DIFFERS and finding.at_stake > 0
            key = TallyKey(finding.finding, finding.currency, more)
            self.orders[key] += 1
            self.amounts[key] += finding.at_stake
            if len(self.shown) < ROWS_SHOWN:
                self.shown.append(finding)
            if finding.finding is Finding.NOT_PAID and _older(finding, self.oldest_unpaid):
                self.oldest_unpaid = finding

    def at_stake(self) -> list[AtStake]:
        """Per finding (in Finding's order), currency, and paid less then more: orders and money."""
        ordered = sorted(self.orders, key=lambda part: (list(Finding).index(part.finding), part[1:]))
        return [
            AtStake(part.finding, part.currency, self.orders[part], self.amounts[part], part.paid_more)
            for part in ordered
        ]


def _older(finding: PayoutFinding, than: PayoutFinding | None) -> bool:
    """Whether `finding` shipped before `than` (or `than` is none)."""
    if than is None:
        return True
    assert finding.shipped_at is not None and than.shipped_at is not None  # not_paid: always shipped
    return finding.shipped_at < than.shipped_at


def check_payouts(resources: RunResources, out: Path) -> PayoutSummary:
    """Read the disbursements SeQura lists and the store has not, compare every order, write `out`.

    Reads SeQura (the list, and the detail of each new disbursement) and the store; writes the store (the
    disbursements read) and the CSV. SeQura's refusals and malformed answers are raised, named.
    """
    read = read_new_disbursements(resources)
    store, merchant = resources.store, resources.merchant
    timezone = resources.shop_timezone()
    periods = paid_periods(store, merchant)
    grace = resources.settings.payout_grace_days
    due = due_before(periods.latest_to_date, grace, timezone)
    tally = FindingTally()
    tally.count(write_findings(out, payout_findings(store, merchant, due), timezone))
    overdue = unpaid_past_grace(store, merchant, resources.clock.now() - timedelta(days=grace), due)
    return PayoutSummary(
        merchant=merchant,
        out=str(out.resolve()),
        read=read,
        periods=periods,
        grace_days=grace,
        due_before=due,
        timezone=timezone,
        totals=payout_totals(store, merchant, due),
        at_stake=tally.at_stake(),
        oldest_unpaid=tally.oldest_unpaid,
        findings=tally.shown,
        unpaid_past_grace=overdue,
    )

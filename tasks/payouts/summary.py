"""What a payout check read and found, in a merchant's words, as markdown and a table for the Prefect UI.

Every value from SeQura or the shop is escaped (tasks/inert.py): it shows as text.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.outcomes import ROWS_SHOWN
from schemas.payouts import Finding, PayoutFinding
from schemas.sequra import amount_shown
from tasks.inert import markdown_cell_lines, markdown_text
from tasks.payouts.check import PayoutSummary
from tasks.payouts.output import finding_row
from tasks.window import shop_minute

FINDING_IN_WORDS = {
    Finding.NOT_PAID: "Reported as shipped, not paid",
    Finding.PAID_DIFFERS: "Paid, but not what was reported",
    Finding.PAID_NOT_REPORTED: "Paid, never reported from here",
}
FINDING_SHORT = {
    Finding.NOT_PAID: "not paid",
    Finding.PAID_DIFFERS: "paid other than reported",
    Finding.PAID_NOT_REPORTED: "paid, never reported",
}
# Characters per line of the findings table's columns: together they fit the 846 px the Prefect UI gives a
# table at 1400 px, which never wraps a cell by itself
ORDER_WIDTH, FINDING_WIDTH, AMOUNT_WIDTH, DATE_WIDTH, REFERENCES_WIDTH, TODO_WIDTH = 10, 10, 9, 10, 13, 26


def money(cents: int, currency: str) -> str:
    """Cents as a merchant reads money: 1,234.50 EUR, -5.00 EUR."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d} {markdown_text(currency)}"


def findings_in_words(summary: PayoutSummary) -> str:
    """The findings as a state's message says them: `2 orders not paid, 1 paid differently …`."""
    parts = [
        f"{count:,} {'order' if count == 1 else 'orders'} {what}"
        for count, what in (
            (summary.count(Finding.NOT_PAID), "reported as shipped and not paid"),
            (summary.count(Finding.PAID_DIFFERS), "paid other than reported"),
            (summary.count(Finding.PAID_NOT_REPORTED), "paid and never reported from here"),
            (
                summary.unpaid_past_grace,
                f"unpaid {summary.grace_days} days after shipping, in no disbursement listed",
            ),
        )
        if count
    ]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def payouts_markdown(summary: PayoutSummary) -> str:
    """The check's summary: what SeQura paid, what was expected, the money at stake, the oldest unpaid."""
    lines = [
        f"# Did SeQura pay? Merchant {markdown_text(summary.merchant)}",
        "",
        _read_in_words(summary),
    ]
    if summary.totals:
        lines += [
            "",
            "| Currency | Transferred | Paid for orders | Expected |",
            "|---|---:|---:|---:|",
            *(
                f"| {markdown_text(t.currency)} | {money(t.transferred, t.currency)} | "
                f"{money(t.paid, t.currency)} | {money(t.expected, t.currency)} |"
                for t in summary.totals
            ),
            "",
            "Transferred: the disbursements' amounts, after SeQura's fees and adjustments. Paid for orders: "
            "the sum of their order lines. Expected: what SeQura was told shipped, for the orders paid or "
            f"due by now (reported before {_due(summary)}).",
        ]
    lines += ["", *_findings_in_words(summary), *_past_grace_in_words(summary)]
    lines += ["", f"Every finding, with what to do: {markdown_text(summary.out)}."]
    return "\n".join(lines)


def _read_in_words(summary: PayoutSummary) -> str:
    """What was read: disbursements (new this run), and the latest period."""
    periods, read = summary.periods, summary.read
    started = (
        f"Checked {shop_minute(summary.started_at, summary.timezone)} {markdown_text(summary.timezone)}: "
        if summary.started_at
        else ""
    )
    if not periods.count:
        return (
            f"{started}SeQura lists no disbursement for this merchant yet, so no order is called unpaid; "
            "orders paid before any disbursement is listed cannot be checked."
        )
    return (
        f"{started}{_counted(periods.count, 'disbursement')} read ({read.new:,} new in this check, "
        f"{_counted(read.lines, 'order line')}), the latest paying orders up to "
        f"{periods.latest_to_date:%Y-%m-%d}."
    )


def _counted(count: int, noun: str) -> str:
    """A count and its noun: 1 disbursement, 2 disbursements."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _due(summary: PayoutSummary) -> str:
    """The due moment in words: `2026-10-30 00:00 Europe/Madrid, 30 days (PAYOUT_GRACE_DAYS) before …`."""
    if summary.due_before is None:
        return "any disbursement: none is listed"
    return (
        f"{shop_minute(summary.due_before, summary.timezone)} {markdown_text(summary.timezone)}, "
        f"{summary.grace_days} days (PAYOUT_GRACE_DAYS) before the end of the latest disbursement's period"
    )


def _findings_in_words(summary: PayoutSummary) -> list[str]:
    """The money at stake per finding and currency, and the oldest unpaid order."""
    if not summary.found:
        return [] if summary.unpaid_past_grace else ["**Every order was paid as reported.**"]
    lines = [
        "| Finding | Orders | Money at stake |",
        "|---|---:|---:|",
        *(
            f"| {FINDING_IN_WORDS[part.finding]} | {part.orders:,} | {money(part.amount, part.currency)}"
            f"{_direction(part.finding, part.amount)} |"
            for part in summary.at_stake
        ),
    ]
    oldest = summary.oldest_unpaid
    if oldest is not None and oldest.shipped_at is not None:
        lines += ["", f"The oldest unpaid order: {_oldest(oldest, summary)}."]
    return lines


def _past_grace_in_words(summary: PayoutSummary) -> list[str]:
    """The orders past the grace that no disbursement listed can call unpaid yet, when there are some."""
    if not summary.unpaid_past_grace:
        return []
    latest = summary.periods.latest_to_date
    listed = f"the latest one listed pays orders up to {latest:%Y-%m-%d}" if latest else "none is listed"
    return [
        "",
        f"**{_counted(summary.unpaid_past_grace, 'order')} shipped and reported more than "
        f"{summary.grace_days} days ago (PAYOUT_GRACE_DAYS), in no disbursement, and {listed}:** ask SeQura "
        "whether its payments, or its list of them, stopped.",
    ]


def _direction(finding: Finding, amount: int) -> str:
    """Whether SeQura paid more or less, for the orders paid other than reported."""
    if finding is not Finding.PAID_DIFFERS or amount == 0:
        return ""
    return " paid more" if amount > 0 else " paid less"


def _oldest(oldest: PayoutFinding, summary: PayoutSummary) -> str:
    """The oldest unpaid order: its reference, amount, when it shipped and how long ago."""
    assert oldest.shipped_at is not None
    said = (
        f"{markdown_text(oldest.order_ref_1)}, {money(oldest.reported or 0, oldest.currency)}, shipped "
        f"{shop_minute(oldest.shipped_at, summary.timezone)}"
    )
    if summary.started_at is not None:
        said += f" ({_days(summary.started_at - oldest.shipped_at)} ago)"
    return said


def _days(span: timedelta) -> str:
    """A span in whole days, as words."""
    return _counted(max(span.days, 0), "day")


def finding_rows(summary: PayoutSummary) -> list[dict[str, object]]:
    """The findings shown (the first ROWS_SHOWN) as the table artifact's rows, in lines the view can hold.

    The CSV keeps its own columns (PAYOUT_COLUMNS); this table is what a person reads in the UI: amounts with
    their currency, the difference under what was paid, the time shipped in shop time.
    """
    rows = []
    for finding in summary.findings[:ROWS_SHOWN]:
        row = finding_row(finding, summary.timezone)
        paid = [money(finding.disbursed, finding.currency)] if finding.disbursed is not None else []
        if finding.difference:
            paid.append(f"({'+' if finding.difference > 0 else ''}{amount_shown(finding.difference)})")
        rows.append(
            {
                "Order": markdown_cell_lines(row["order_ref_1"], ORDER_WIDTH),
                "Finding": markdown_cell_lines(FINDING_SHORT[finding.finding], FINDING_WIDTH),
                "Reported": _amount_cell(finding.reported, finding.currency),
                "Paid": "  \n".join(markdown_cell_lines(part, AMOUNT_WIDTH) for part in paid),
                "Shipped": markdown_cell_lines(row["shipped_at"], DATE_WIDTH),
                "Disbursements": markdown_cell_lines(row["disbursements"], REFERENCES_WIDTH),
                "What to do": markdown_cell_lines(row["what_to_do"], TODO_WIDTH),
            }
        )
    return rows


def _amount_cell(cents: int | None, currency: str) -> str:
    """An amount with its currency as a table cell, empty where there is none."""
    return "" if cents is None else markdown_cell_lines(money(cents, currency), AMOUNT_WIDTH)


def stopped_markdown(merchant: str, why: str, started_at: datetime | None, timezone: str) -> str:
    """The summary of a payout check that stopped: why, and that what it read is kept."""
    when = f" ({shop_minute(started_at, timezone)} {markdown_text(timezone)})" if started_at else ""
    return "\n".join(
        [
            f"# Did SeQura pay? Merchant {markdown_text(merchant)}",
            "",
            f"**The payout check stopped{when}:** {markdown_text(why)}.",
            "",
            "The disbursements it read before it stopped are kept, and the next check reads only the rest.",
        ]
    )

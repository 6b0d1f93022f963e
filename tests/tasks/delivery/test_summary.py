from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.outcomes import DeliveryCounts, DeliveryOutcome
from schemas.reports import QuarantinedOrder, SentOrder, Stage, UpdatedOrder
from tasks.delivery.summary import (
    DeliverySummary,
    age_in_words,
    artifact_key,
    open_quarantine_rows,
    quarantine_rows,
    sent_rows,
    summary_markdown,
    update_rows,
    what_is_wrong_and_what_to_do,
)
from tasks.inert import plain_text
from tasks.state.quarantine import WaitingOrder
from tasks.window import Window
from tests.rendered import HOSTILE, live_parts

SINCE = datetime(2026, 11, 20, tzinfo=UTC)


def test_a_reason_is_cut_at_its_last_step_outside_brackets() -> None:
    reason = (
        "its report got no answer and SeQura refused the update sent to settle it (409: a; b); "
        "SeQura may have the order: check in its back office"
    )
    assert what_is_wrong_and_what_to_do(reason, Stage.LOAD) == (
        "its report got no answer and SeQura refused the update sent to settle it (409: a; b)",
        "SeQura may have the order: check in its back office",
    )


def test_sequras_own_refusal_of_a_report_gets_the_usual_step() -> None:
    wrong, to_do = what_is_wrong_and_what_to_do(
        "SeQura refused it (409): name is missing; phone is bad", Stage.LOAD
    )
    assert wrong == "SeQura refused it (409): name is missing; phone is bad"
    assert to_do.startswith("correct what SeQura names in the back office")


def test_a_reason_without_a_step_gets_its_stages_usual_one() -> None:
    assert what_is_wrong_and_what_to_do("something odd", Stage.BUILD)[1].startswith("correct the order")


@pytest.mark.parametrize(
    ("age", "words"),
    [
        (timedelta(minutes=5), "under an hour"),
        (timedelta(minutes=90), "1 hour"),
        (timedelta(hours=30), "30 hours"),
        (timedelta(days=3, hours=4), "3 days"),
    ],
)
def test_an_age_is_said_in_the_largest_whole_unit(age: timedelta, words: str) -> None:
    assert age_in_words(age) == words


def test_an_artifact_key_carries_the_merchant_in_lowercase_and_dashes() -> None:
    assert artifact_key("delivery-report-sent", "Shop_ES.2") == "delivery-report-sent-shop-es-2"


def hostile_summary(value: str) -> DeliverySummary:
    """A run whose every value from the shop, SeQura or an error is `value`."""
    ref = (value, value, (30, 31))
    outcome = DeliveryOutcome(
        counts=DeliveryCounts(found=3, new=1, changed=1, quarantined=1),
        sent_rows=(SentOrder(*ref, value, "2026-11-20 10:00", 1, f"17.45 {value}", f"0.00 {value}"),),
        update_rows=(UpdatedOrder(*ref, f"delivery address: {value}", f"SeQura refused it (409: {value})"),),
        quarantined_rows=(QuarantinedOrder(*ref, Stage.LOAD, f"SeQura refused it (409): {value}; {value}"),),
        other_merchant=(f"{value} (shop_pt)",),
    )
    window = Window(SINCE, SINCE + timedelta(days=1))
    return DeliverySummary(
        "run",
        value,
        window,
        True,
        outcome,
        stopped=f"SequraUnavailable: {value}",
        dry_run_file=f"/{value}",
        statistics=f"refused by SeQura: (409) {value}",
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_a_summary_of_hostile_orders_and_answers_renders_them_as_text(value: str) -> None:
    assert live_parts(summary_markdown(hostile_summary(value))) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_no_text_cell_of_a_run_s_tables_renders_live_from_hostile_orders_and_answers(value: str) -> None:
    outcome = hostile_summary(value).outcome
    waiting = WaitingOrder(value, value, Stage.BUILD, f"its buyer's email '{value}'; {value}", SINCE, 2)
    rows = [
        *sent_rows(outcome.sent_rows),
        *update_rows(outcome.update_rows),
        *quarantine_rows(outcome.quarantined_rows),
        *open_quarantine_rows([waiting], SINCE, "Europe/Madrid"),
    ]
    live = {key: live_parts(cell) for row in rows for key, cell in row.items() if isinstance(cell, str)}
    assert {key: parts for key, parts in live.items() if parts} == {}


def test_a_summary_heads_the_window_in_shop_time_and_says_what_sequra_has_not_answered() -> None:
    outcome = DeliveryOutcome(counts=DeliveryCounts(found=5, new=5, unanswered=5), requests=6)
    window = Window(SINCE, SINCE + timedelta(days=1))
    markdown = summary_markdown(
        DeliverySummary("run", "shop_es", window, False, outcome, timezone="Europe/Madrid")
    )
    assert markdown.startswith("# Delivery report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid\n")
    found = "| New | Changed | Already reported | Quarantined |\n|---:|---:|---:|---:|\n| 5 | 0 | 0 | 0 |"
    answered = (
        "| Sent | Updated | Updates held | No answer yet | Cancelled | Nothing to cancel |\n"
        "|---:|---:|---:|---:|---:|---:|\n| 0 | 0 | 0 | 5 | 0 | 0 |"
    )
    assert found in markdown and answered in markdown
    assert "SeQura has not answered 5 of the reports or order updates sent" in markdown


def test_a_summary_says_in_words_what_became_of_the_statistics() -> None:
    window = Window(SINCE, SINCE + timedelta(days=1))
    said = "not due: sent today at 09:12 (shop time)"
    markdown = summary_markdown(
        DeliverySummary("run", "shop_es", window, False, DeliveryOutcome(), statistics=said)
    )
    assert "\nStatistics: not due: sent today at 09:12 (shop time).\n" in plain_text(markdown)

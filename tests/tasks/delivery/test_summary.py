from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.reports import Stage
from tasks.delivery.summary import age_in_words, artifact_key, what_is_wrong_and_what_to_do


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

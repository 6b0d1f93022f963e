from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.window import Window, WindowError, parse_moment, resolve_window

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
OVERLAP = timedelta(hours=6)
FIRST_RUN = timedelta(days=7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-05", datetime(2026, 11, 5, tzinfo=UTC)),
        ("2026-11-05T00:00:00Z", datetime(2026, 11, 5, tzinfo=UTC)),
        ("2026-11-05T01:00:00+01:00", datetime(2026, 11, 5, tzinfo=UTC)),
        ("2026-11-05T08:30:00", datetime(2026, 11, 5, 8, 30, tzinfo=UTC)),
    ],
)
def test_parse_moment_reads_iso_dates_and_datetimes_as_utc(text: str, expected: datetime) -> None:
    assert parse_moment("since", text) == expected


def test_parse_moment_names_the_parameter_when_the_value_is_not_a_date() -> None:
    with pytest.raises(WindowError, match=r"^until: 'yesterday' is not an ISO 8601"):
        parse_moment("until", "yesterday")


def test_first_run_window_reaches_back_the_first_run_days() -> None:
    window = resolve_window(None, None, last_until=None, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN)
    assert window == Window(NOW - FIRST_RUN, NOW)


def test_scheduled_window_starts_at_last_successful_until_minus_overlap() -> None:
    last = NOW - timedelta(days=1)
    window = resolve_window(None, None, last_until=last, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN)
    assert window == Window(last - OVERLAP, NOW, follows_last_run=True)


def test_given_bounds_win_over_the_state_store() -> None:
    window = resolve_window(
        "2026-11-01", "2026-11-02", last_until=NOW, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN
    )
    assert window == Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(WindowError, match="must be before"):
        resolve_window(
            "2026-11-02", "2026-11-02", last_until=None, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN
        )


def test_window_label_is_utc_to_the_minute() -> None:
    window = Window(datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 6, 12, 30, tzinfo=UTC))
    assert window.label() == "2026-11-05T00:00Z-2026-11-06T12:30Z"


def test_a_window_starting_after_the_last_successful_until_does_not_continue_the_schedule() -> None:
    last = NOW - timedelta(days=3)
    gap = resolve_window("2026-11-25", None, last_until=last, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN)
    overlapping = resolve_window(
        "2026-11-22", None, last_until=last, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN
    )
    assert (gap.continues, overlapping.continues) == (False, True)


def test_a_window_ending_in_the_future_does_not_continue_the_schedule() -> None:
    ahead = resolve_window(
        "2026-11-25", "2026-11-27", last_until=None, now=NOW, overlap=OVERLAP, first_run=FIRST_RUN
    )
    assert ahead.continues is False


def test_a_window_in_shop_time_names_the_zone_and_follows_summer_time() -> None:
    winter = Window(datetime(2026, 11, 26, 20, 58, tzinfo=UTC), datetime(2026, 12, 3, 20, 58, tzinfo=UTC))
    summer = Window(datetime(2026, 7, 1, 22, 0, tzinfo=UTC), datetime(2026, 7, 2, 22, 0, tzinfo=UTC))
    assert winter.in_shop_time("Europe/Madrid") == "2026-11-26 21:58 → 2026-12-03 21:58 Europe/Madrid"
    assert summer.in_shop_time("Europe/Madrid") == "2026-07-02 00:00 → 2026-07-03 00:00 Europe/Madrid"

"""ALERT_SILENCE_HOURS and ALERT_QUARANTINE_SHARE: read as a user writes them, or refused in one line."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import SettingError
from schemas.setting_values import parse_percent, parse_silence_hours
from schemas.settings import Settings
from tests.hostile import hostile


def test_alert_settings_default_to_26_hours_and_5_percent_and_take_decimals() -> None:
    assert (Settings.from_env({}).alert_silence_hours, Settings.from_env({}).alert_quarantine_share) == (
        26,
        Decimal("5"),
    )
    settings = Settings.from_env({"ALERT_SILENCE_HOURS": "1.5", "ALERT_QUARANTINE_SHARE": "2.5"})
    assert (settings.alert_silence().total_seconds(), settings.alert_quarantine_share) == (
        5400,
        Decimal("2.5"),
    )


@pytest.mark.parametrize(
    ("variable", "value", "refusal"),
    [
        ("ALERT_SILENCE_HOURS", "0.002", "is not a number of hours from 0.003 (10 seconds"),
        ("ALERT_SILENCE_HOURS", "nan", "is not a number of hours"),
        ("ALERT_SILENCE_HOURS", "9000", "is not a number of hours"),
        ("ALERT_QUARANTINE_SHARE", "101", "is not a percentage from 0 to 100"),
        ("ALERT_QUARANTINE_SHARE", "5%", "is not a percentage from 0 to 100"),
        ("ALERT_QUARANTINE_SHARE", "-0.1", "is not a percentage from 0 to 100"),
    ],
)
def test_an_alert_setting_out_of_range_is_refused_naming_it(variable: str, value: str, refusal: str) -> None:
    with pytest.raises(SettingError, match=re.escape(f"{variable}: '{value}' {refusal}")):
        Settings.from_env({variable: value})


@pytest.mark.hostile
@hostile
@given(text=st.text() | st.from_regex(r"-?[0-9]{0,5}(\.[0-9]{0,5})?(e-?[0-9]{1,4})?", fullmatch=True))
def test_an_alert_setting_is_a_value_in_its_range_or_one_line_naming_it(text: str) -> None:
    for name, parse, low, high in (
        ("ALERT_SILENCE_HOURS", parse_silence_hours, 10 / 3600, 8760),
        ("ALERT_QUARANTINE_SHARE", parse_percent, 0, 100),
    ):
        try:
            value = parse(name, text)
        except SettingError as refused:
            assert str(refused).startswith(f"{name}: '") and "\n" not in str(refused)
            continue
        assert low <= value <= high

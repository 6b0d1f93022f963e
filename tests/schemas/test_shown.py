"""Text from outside as a message shows it: cut short, on one line, nothing unprintable carried raw."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.shown import SHOWN, shown
from tests.hostile import hostile


def test_a_short_printable_text_is_shown_as_it_is() -> None:
    assert shown("Ana María O'Brien \\ 東京 🚚") == "Ana María O'Brien \\ 東京 🚚"


def test_a_long_text_is_cut_after_the_limit_with_an_ellipsis() -> None:
    assert shown("R" * 300) == "R" * SHOWN + "…"
    assert shown("abcdef", 3) == "abc…"
    assert shown("abc", 3) == "abc"


def test_an_unprintable_character_is_shown_escaped_never_raw() -> None:
    assert shown("line\nbreak, tab\t, \r\x00\x1b[31m") == "line\\nbreak, tab\\t, \\r\\x00\\x1b[31m"
    assert shown("zero\u200bwidth, right\u202eleft", 60) == "zero\\u200bwidth, right\\u202eleft"
    assert shown("not utf-8 \udcff, line\u2028separator") == "not utf-8 \\udcff, line\\u2028separator"


@pytest.mark.hostile
@hostile
@given(text=st.text(st.characters(exclude_categories=())), limit=st.integers(1, 80))
def test_any_text_is_shown_printable_and_short_its_end_marked_when_cut(text: str, limit: int) -> None:
    result = shown(text, limit)

    assert result.isprintable()
    assert len(result) <= 10 * limit + 1  # an escape is at most 10 characters (\U0010ffff), then …
    assert result.endswith("…") or len(text) <= limit

"""A long table cell in lines: the Vue UI never wraps a cell, so the cell brings its own line breaks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.inert import markdown_cell_lines
from tests.hostile import hostile
from tests.rendered import MARKDOWN, live_parts
from tests.tasks.test_inert import HOSTILE_TEXT, TEXT

ONE_PARAGRAPH = ["paragraph_open", "inline", "paragraph_close"]


def blocks(markdown: str) -> list[str]:
    """The block tokens the markdown parses into."""
    return [token.type for token in MARKDOWN.parse(markdown)]


def lines_shown(markdown: str) -> list[str]:
    """The text of each line of the cell as the UI shows it, split at its hard line breaks."""
    [inline] = [token for token in MARKDOWN.parse(markdown) if token.type == "inline"]
    shown = [""]
    for token in inline.children or []:
        if token.type == "hardbreak":
            shown.append("")
        elif token.type in ("text", "text_special"):
            shown[-1] += token.content
    return shown


def test_a_long_reason_is_shown_in_lines_of_at_most_the_width_the_table_has_room_for() -> None:
    cell = markdown_cell_lines("totals do not add up: items 17.45 EUR, order 99.00 EUR (shipped part)", 30)
    assert lines_shown(cell) == [
        "totals do not add up: items",
        "17.45 EUR, order 99.00 EUR",
        "(shipped part)",
    ]


def test_a_line_that_would_begin_a_heading_a_list_or_a_table_stays_text_in_the_cell() -> None:
    cell = markdown_cell_lines("aaaaaaaaa # heading - item one 1. first :--- | ---", 10)
    assert blocks(cell) == ONE_PARAGRAPH
    assert lines_shown(cell) == ["aaaaaaaaa", "# heading", "- item one", "1. first", ":--- | ---"]


def live_in_lines(cell: str) -> list[str]:
    """What renders live in the cell: HTML, links and images in it, and bare URLs within each of its lines.

    A hard line break ends a bare URL (the UI shows the lines apart), so a URL is looked for line by line.
    """
    live = [part for part in live_parts(cell) if not part.startswith("autolink: ")]
    return live + [part for line in cell.split("  \n") for part in live_parts(line)]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_hostile_value_in_lines_renders_no_html_link_or_image(text: str) -> None:
    cell = markdown_cell_lines(text, 8)
    assert live_in_lines(cell) == []
    assert blocks(cell) == ONE_PARAGRAPH


@pytest.mark.hostile
@hostile
@given(TEXT, st.integers(min_value=4, max_value=60))
def test_any_text_in_lines_is_one_paragraph_with_no_html_link_image_or_autolink(
    text: str, width: int
) -> None:
    cell = markdown_cell_lines(text, width)
    assert live_in_lines(cell) == []
    assert blocks(cell) in (ONE_PARAGRAPH, [])


def test_an_email_longer_than_a_line_is_cut_before_its_at_sign_not_in_the_middle_of_a_word() -> None:
    assert lines_shown(markdown_cell_lines("ana.garcia@example.com", 20)) == ["ana.garcia", "@example.com"]

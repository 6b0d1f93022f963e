"""What people open is inert: markdown that shows data as text, CSV cells no spreadsheet evaluates."""

from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.inert import markdown_cell, markdown_link, markdown_text, plain_text, spreadsheet_cell
from tests.hostile import hostile
from tests.rendered import live_parts, rendered_text, table_rows

LIVE_WHEN_RAW = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(document.cookie)</script>",
    "[click](javascript:alert(1))",
    "![pixel](https://evil.example/track.png)",
    "<a href='https://evil.example'>your order</a>",
    "<https://evil.example/login>",
    "[click][x]\n\n[x]: https://evil.example",
    "line one\n<details open ontoggle=alert(1)>",
    "`code` and ``more``",
    "**bold** _it_ ~~gone~~",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#106;avascript:alert(1)",
    "\\<img src=x onerror=alert(1)>",
    "\\\\[click](javascript:alert(1))",
    "mail pau.vila@example.cat or visit https://evil.example and www.evil.example",
    "# heading\n> quote\n- item",
]
HOSTILE_TEXT = [
    *LIVE_WHEN_RAW,
    "[x]: javascript:alert(1)",
    "a | b | c",
    "javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "\u202eevil\u202c",
    "\x00\x1e\u2028\x85",
]


# Any text, and text made of the pieces markdown, HTML and spreadsheets act on, which st.text() rarely draws.
PIECES = [
    *"<>[]()!`*_|\\&@:/.#-=+~'\" \t\r\nAaw1",
    "www.",
    "https://",
    "javascript:",
    "<img src=x ",
    "<script>",
]
PIECES += ["](", "![", "&lt;", "&#106;", "\x1b[", "\u202e", "\x00", "=HYPERLINK(", "mailto:a@b.c"]
TEXT = st.one_of(st.text(), st.lists(st.sampled_from(PIECES)).map("".join))


TRIMMED = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
TRIMMED += "\u2028\u2029\u202f\u205f\u3000\ufeff"  # what a table cell loses at its ends (JavaScript's trim)


def shown(text: str) -> str:
    """Text as a person reads it: without the word joiners (U+2060, unseen) that break bare URLs."""
    return text.replace("\u2060", "")


def one_line(text: str) -> str:
    """The text as its markdown shows: line breaks as spaces, NUL as U+FFFD (CommonMark's rule)."""
    return re.sub(r"\r\n|\r|\n", " ", text).replace("\x00", "\ufffd")


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_hostile_value_renders_as_its_own_text_with_no_html_link_or_image(text: str) -> None:
    markdown = f"order {markdown_text(text)} here"
    assert live_parts(markdown) == []
    assert shown(rendered_text(markdown)) == shown(f"order {one_line(text)} here")


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_hostile_value_in_a_table_cell_renders_no_html_link_or_image(text: str) -> None:
    assert live_parts(markdown_cell(text)) == []


@pytest.mark.parametrize("text", LIVE_WHEN_RAW)
def test_a_hostile_value_is_live_without_the_escape(text: str) -> None:
    """These inputs are hostile indeed: raw, each renders HTML, a link or an image, or changes its text."""
    markdown = f"order {text} here"
    assert live_parts(markdown) != [] or rendered_text(markdown) != f"order {one_line(text)} here"


def test_a_pipe_in_a_value_leaves_a_markdown_table_its_cells() -> None:
    table = f"| value | field |\n|---|---|\n| {markdown_text('a | b | <b>c</b>')} | email |"
    assert table_rows(table) == [["value", "field"], ["a | b | <b>c</b>", "email"]]
    assert live_parts(table) == []


def test_a_link_the_project_builds_keeps_its_http_target_and_escapes_its_label() -> None:
    link = markdown_link("Orders > order 30 <b>x</b>", "https://shop.example/admin (1)/index.php?a=b")
    assert live_parts(link) == ["link: https://shop.example/admin%20%281%29/index.php?a=b"]
    assert rendered_text(link) == "Orders > order 30 <b>x</b>"


@pytest.mark.parametrize(
    "target",
    ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example", "http://[::1"],
)
def test_a_link_to_anything_but_an_http_page_is_only_its_label(target: str) -> None:
    assert live_parts(markdown_link("Orders > order 30", target)) == []


def test_a_link_shows_no_password_of_its_url() -> None:
    link = markdown_link("Orders", "https://admin:s3cret@shop.example/admin123/")
    assert "s3cret" not in link
    assert live_parts(link) == ["link: https://***@shop.example/admin123/"]


def test_the_terminal_sees_the_value_as_it_is_and_its_control_characters_as_codes() -> None:
    value = "<b>Ana</b> [x](y) \x1b]0;pwned\x07\x1b[2J \u202egnp.exe"
    assert plain_text(f"**{markdown_text(value)}**") == (
        "**<b>Ana</b> [x](y) \\x1b]0;pwned\\x07\\x1b[2J \\u202egnp.exe**"
    )


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+9)*cmd|' /C calc'!A0", "'@SUM(1+9)*cmd|' /C calc'!A0"),
        ("\t=1+2", "'\t=1+2"),
        ("\r=1+2", "'\r=1+2"),
        ("  =1+2", "'  =1+2"),
        ("+34 600 123 456", "'+34 600 123 456"),
        ("Calle Mayor 1", "Calle Mayor 1"),
        ("'=already text", "'=already text"),
        ("", ""),
    ],
)
def test_a_text_cell_a_spreadsheet_would_evaluate_gets_a_leading_quote(value: str, cell: str) -> None:
    assert spreadsheet_cell(value) == cell


@pytest.mark.parametrize("number", [-5, -12.5, 17, 0])
def test_a_number_the_project_writes_stays_a_number(number: int | float) -> None:
    assert spreadsheet_cell(number) == number


@pytest.mark.hostile
@hostile
@given(TEXT)
def test_any_text_renders_as_itself_with_no_html_link_image_or_autolink(text: str) -> None:
    markdown = f"before {markdown_text(text)} after"
    assert live_parts(markdown) == []
    assert shown(rendered_text(markdown)) == shown(f"before {one_line(text)} after")


@pytest.mark.hostile
@hostile
@given(TEXT)
def test_any_text_in_a_table_cell_renders_no_html_link_image_or_autolink(text: str) -> None:
    assert live_parts(markdown_cell(text)) == []


@pytest.mark.hostile
@hostile
@given(st.lists(TEXT, min_size=1, max_size=4))
def test_any_text_in_table_cells_keeps_the_table_its_cells(values: list[str]) -> None:
    header = "| " + " | ".join("c" for _ in values) + " |\n|" + "---|" * len(values)
    table = header + "\n| " + " | ".join(markdown_text(value) for value in values) + " |"
    assert live_parts(table) == []
    assert [shown(cell) for cell in table_rows(table)[1]] == [
        shown(one_line(value)).strip(TRIMMED) for value in values
    ]


@pytest.mark.hostile
@hostile
@given(TEXT)
def test_any_text_as_a_csv_cell_starts_with_no_formula_and_reads_back_after_the_quote(text: str) -> None:
    cell = spreadsheet_cell(text)
    assert isinstance(cell, str)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert not cell.lstrip().startswith(("=", "+", "-", "@"))
    assert cell in (text, "'" + text)
    stream = io.StringIO(newline="")
    csv.writer(stream).writerow([cell, 1])
    assert next(csv.reader(io.StringIO(stream.getvalue(), newline=""))) == [cell, "1"]

"""Values from the shop, a corrections file or SeQura made inert where people open them.

- `markdown_text`: a value in a markdown artifact (or its description): every character that could begin
  HTML, a link, an image, code, emphasis or a table cell is backslash-escaped, line breaks become spaces,
  and a bare URL gets a word joiner (U+2060, invisible) after its `:` or `www`, since both of Prefect's UIs
  link bare URLs (the newer one even after escapes). The value renders as the text it is.
- `markdown_cell`: a text cell of a table artifact, which the Vue UI renders as markdown (and the newer
  one as plain text): only what could begin HTML, a link or an image is escaped (backslash, `<`, `[`, `]`),
  and bare URLs are broken as above, so the plain-text UI shows as few backslashes as it can.
- `markdown_link`: a link the project builds itself (a back-office page): an http(s) target only.
- `plain_text`: markdown built with these, as a terminal shows it.
- `spreadsheet_cell`: a CSV cell: a text a spreadsheet would evaluate as a formula gets a leading single
  quote, as OWASP recommends ("CSV Injection"); numbers stay numbers.

An email is left as it is: a UI may link it to itself (mailto:), which shows where it goes.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from urllib.parse import quote, urlsplit

from schemas.masking import masked_url

MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]()!<>&|]")  # HTML, links, images, code, emphasis, table cells
CELL_SPECIAL = re.compile(r"[\\\[\]<]")  # HTML, links, images: what a cell rendered on its own makes live
ESCAPED = re.compile(r"\\([\\`*_\[\]()!<>&|])")  # an escape either makes, undone
BARE_URL = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)", re.IGNORECASE)  # where a bare URL would be linked
JOINED_URL = re.compile(r"(?<=:)\u2060(?=//)|(?<=www)\u2060(?=\.)", re.IGNORECASE)
WORD_JOINER = "\u2060"
LINE_BREAK = re.compile(r"\r\n|\r|\n")
BLOCK_START = re.compile(r"[#>+*=`~|:_-]|\d+[.)]")  # what begins a block when a line starts with it
LINK_SAFE = "/:?#[]@!$&*+,;=%~"  # what a link target keeps as it is; ( ) < > spaces and quotes are encoded
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def markdown_text(value: object) -> str:
    """`value` as markdown that renders as its own text: no HTML, link, image or table cell of its own."""
    return _inert(value, MARKDOWN_SPECIAL)


def markdown_cell(value: object) -> str:
    """`value` as a table artifact's text cell: no HTML, link or image when rendered as markdown."""
    return _inert(value, CELL_SPECIAL)


def markdown_cell_lines(value: object, width: int) -> str:
    """`value` as a text cell in lines of at most `width` characters (hard line breaks), each inert.

    The Vue UI never wraps a table cell: a long one widens the table past the artifact's view, which cuts
    the last columns at 1400 px. The newer UI shows the cell on one line again. A word longer than a line
    (an email) is cut before its @ first, then wherever the width falls.
    """
    words = LINE_BREAK.sub(" ", str(value)).strip().split(" ")
    parts = " ".join(_cut_at(word, width) for word in words).split("\n")
    lines = [line for part in parts for line in textwrap.wrap(part, width)] or [""]
    return "  \n".join(_line(markdown_cell(line)) for line in lines)


def _cut_at(word: str, width: int) -> str:
    """A word longer than a line, a line break before its @: an email's halves start lines of their own."""
    return word[0] + word[1:].replace("@", "\n@", 1) if len(word) > width else word


def _line(line: str) -> str:
    """A line of a cell with what would begin a block there (a heading, a list, a quote) escaped."""
    found = BLOCK_START.match(line)
    if found is None:
        return line
    at = found.end() - 1
    return f"{line[:at]}\\{line[at:]}"


def _inert(value: object, special: re.Pattern[str]) -> str:
    """`value` on one line, the characters `special` matches escaped, bare URLs broken."""
    escaped = special.sub(lambda found: "\\" + found.group(), LINE_BREAK.sub(" ", str(value)))
    return BARE_URL.sub(WORD_JOINER, escaped)


def markdown_link(label: object, url: str) -> str:
    """A table cell's link to a page the project built (its label escaped); the label alone if not http(s)."""
    try:
        parts = urlsplit(url)
        web = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # not a URL at all (an unclosed IPv6 bracket)
        web = False
    if not web:
        return markdown_cell(label)
    return f"[{markdown_cell(label)}]({quote(masked_url(url), safe=LINK_SAFE)})"


def markdown_cells(row: dict[str, object]) -> dict[str, object]:
    """A table artifact's row with every text cell made inert (the Vue UI renders them as markdown)."""
    return {key: markdown_cell(value) if isinstance(value, str) else value for key, value in row.items()}


def plain_text(markdown: str) -> str:
    """Markdown built with `markdown_text` as a terminal shows it: escapes undone, control characters shown.

    A control character (an ANSI escape sequence, a bidirectional override) would otherwise act on the
    terminal instead of being read; it is shown as its code (ESC as backslash x1b).
    """
    text = JOINED_URL.sub("", ESCAPED.sub(r"\1", markdown))
    return "".join(_shown(character) for character in text)


def _shown(character: str) -> str:
    """A character as a terminal may print it: itself, or its code when it would steer the terminal."""
    if character in "\n\t" or (unicodedata.category(character) != "Cc" and character not in BIDI_CONTROLS):
        return character
    return f"\\x{ord(character):02x}" if ord(character) < 0x100 else f"\\u{ord(character):04x}"


def spreadsheet_cell(value: object) -> object:
    """`value` as a CSV cell: text a spreadsheet would evaluate gets a leading single quote; numbers stay.

    A text starting with =, +, -, @, a tab or a carriage return (also after leading spaces) is a formula
    to a spreadsheet; the quote makes it text, and the spreadsheet does not show it.
    """
    if isinstance(value, str) and any(text.startswith(FORMULA_START) for text in (value, value.lstrip())):
        return "'" + value
    return value

"""Markdown as the Prefect UI renders it, to find what in it is live: HTML, links, images, autolinks.

Prefect's Vue UI renders markdown artifacts, their descriptions and the text cells of table artifacts with
`marked` (GitHub-flavoured: tables, and links of bare URLs), which links any target, javascript: included;
the newer React UI renders markdown artifacts with remark (GitHub-flavoured too) and table cells as plain
text. markdown-it is told to link any target too, and the text it shows is searched for what
GitHub-flavoured markdown would link as a bare URL (markdown-it's CommonMark does not). A bare email is left
to be linked to itself (mailto:).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

MARKDOWN = MarkdownIt("commonmark").enable("table").disable("text_join")  # escapes stay tokens of their own
MARKDOWN.validateLink = lambda url: True  # type: ignore[method-assign]  # as marked: every target is a link
AUTOLINKED = re.compile(r"www\.|://", re.IGNORECASE)  # what starts a GFM link of a bare URL


def _tokens(tokens: list[Token]) -> Iterator[Token]:
    """Every token, its inline children included."""
    for token in tokens:
        yield token
        yield from _tokens(token.children or [])


def live_parts(markdown: str) -> list[str]:
    """What the markdown renders live: 'html: <b>', 'link: target', 'image: target', 'autolink: text'."""
    found = []
    for token in _tokens(MARKDOWN.parse(markdown)):
        if token.type in ("html_inline", "html_block"):
            found.append(f"html: {token.content}")
        elif token.type in ("link_open", "image"):
            found.append(
                f"{token.type.removesuffix('_open')}: {token.attrGet('href') or token.attrGet('src')}"
            )
        elif token.type == "inline" and AUTOLINKED.search(_text(token.children or [])):
            found.append(f"autolink: {_text(token.children or [])}")  # remark links it after escapes
    return found


def rendered_text(markdown: str) -> str:
    """The text the markdown shows, escapes resolved (one paragraph's inline text)."""
    return _text(list(_tokens(MARKDOWN.parse(markdown))))


def _text(tokens: list[Token]) -> str:
    """The text of these tokens, escapes resolved."""
    return "".join(token.content for token in tokens if token.type in ("text", "text_special"))


def table_rows(markdown: str) -> list[list[str]]:
    """The text of each cell of each row of the markdown's tables, header included, escapes resolved."""
    rows: list[list[str]] = []
    cell = False
    for token in MARKDOWN.parse(markdown):
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and cell:
            rows[-1].append(_text(token.children or []))
        cell = token.type in ("th_open", "td_open")
    return rows


def artifact_markdown(artifact_type: str, data: object) -> list[str]:
    """What the UI renders as markdown of an artifact: its markdown, or each text cell of its table."""
    if artifact_type == "markdown":
        return [str(data)]
    rows = json.loads(data) if isinstance(data, str) else data
    return [value for row in rows for value in row.values() if isinstance(value, str)]


IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(document.cookie)</script>"
JS_LINK = "[click](javascript:alert(1))"
PIXEL = "![pixel](https://evil.example/track.png)"
HOSTILE = (IMG, SCRIPT, JS_LINK, PIXEL, "https://evil.example/login")
"""What a hostile shop, corrections file or SeQura answer puts in a value: HTML, links, images, pipes."""

"""Corrections: SeQura-corrected buyer data, read, checked record by record, staged in chunks.

The source is JSON Lines, a JSON array or CSV (flattened column names such as `delivery_address.postal_code`,
an empty cell meaning "not sent"), told apart by its first character. Every record is checked on its own: a
malformed one is named with its line and field and left out, and the others are still reconciled. The valid
records are written in chunk files of a working folder, so that a reconciliation's tasks pass only the
folder and a chunk number.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from schemas.corrections import (
    LONGEST,
    RECORD_FIELDS,
    REQUIRED_IN_SHOP,
    Correction,
    MalformedRecord,
)
from schemas.sequra import ORDER_REF_LONGEST
from schemas.settings import Settings
from schemas.shown import shown
from tasks.reconciliation.source import is_url, local_copy

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")
NOT_UTF8 = re.compile(r"[\ud800-\udfff]")  # a byte that was not UTF-8 (kept escaped), or a lone surrogate
UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")  # tab, CR and LF are text
JSON_STRUCTURE = re.compile(r'[][{}",\\]')
READ_BLOCK = 1 << 16  # characters read at a time while looking for the file's first one


MALFORMED_FILE = "malformed.jsonl"
JSON = json.JSONDecoder()


@dataclass(frozen=True)
class StagedCorrections:
    """The checked corrections of one source, in chunk files of `folder`."""

    folder: str
    chunks: int
    records: int  # records read, malformed ones included
    malformed: int


def _described(value: Any) -> str:
    """A JSON value that is not text, described in a few characters (a list or object is not written out)."""
    if isinstance(value, bool | int | float) or value is None:
        return shown(json.dumps(value))
    return "a list" if isinstance(value, list) else "an object"


def unreadable(text: str) -> str | None:
    """What makes `text` no value PrestaShop can keep (a control character, a byte not UTF-8), or None."""
    found = UNREADABLE.search(text)
    if found is None:
        return None
    at = found.start() + 1
    if NOT_UTF8.match(found.group()):
        return f"is not UTF-8 text at character {at}; save the file as UTF-8"
    return f"holds a control character (U+{ord(found.group()):04X}) at character {at}; remove it"


def check_field(line: int, name: str, key: str, value: Any) -> tuple[str | None, MalformedRecord | None]:
    """A sent value (None when not sent), or the problem with it."""
    if value is None:
        return None, None
    where = f"{name}.{key}"
    if not isinstance(value, str):
        return None, MalformedRecord(
            line, where, f'is {_described(value)}, not text; write it in quotes ("08001" keeps its 0)'
        )
    stripped = value.strip()
    if not stripped and key in REQUIRED_IN_SHOP:
        return None, MalformedRecord(line, where, "is blank, and PrestaShop needs a value")
    if len(stripped) > LONGEST[key]:
        return None, MalformedRecord(
            line,
            where,
            f"is {len(stripped):,} characters long; PrestaShop keeps at most {LONGEST[key]}: check it with "
            "SeQura",
        )
    problem = unreadable(value)
    if problem is not None:
        return None, MalformedRecord(line, where, problem)
    if key == "email" and not EMAIL.fullmatch(stripped):
        return None, MalformedRecord(line, where, f"{stripped[:80]!r} is not an email address")
    if key == "country_code" and not COUNTRY_CODE.fullmatch(stripped):
        return None, MalformedRecord(line, where, f"{stripped!r} is not a two-letter ISO country code")
    return value, None


def _order_ref(line: int, raw: Mapping[str, Any]) -> str | MalformedRecord:
    """The record's order_ref_1 as text (a number read as text, spaces around it dropped), or its problem."""
    order_ref = raw.get("order_ref_1")
    if isinstance(order_ref, int) and not isinstance(order_ref, bool):
        order_ref = str(order_ref)
    if not isinstance(order_ref, str) or not order_ref.strip():
        return MalformedRecord(line, "order_ref_1", "is missing; every record names its order")
    order_ref = order_ref.strip()
    if len(order_ref) > ORDER_REF_LONGEST:
        return MalformedRecord(
            line,
            "order_ref_1",
            f"is {len(order_ref):,} characters long; an order reference has at most {ORDER_REF_LONGEST} "
            "(9 before PrestaShop 9): check the record with SeQura",
        )
    problem = unreadable(order_ref)
    return order_ref if problem is None else MalformedRecord(line, "order_ref_1", problem)


def check_record(line: int, raw: Any) -> Correction | MalformedRecord:
    """One source record checked: a Correction, or the first problem found, naming its line and field."""
    if not isinstance(raw, Mapping):
        return MalformedRecord(line, "record", "is not an object with order_ref_1 and the corrected records")
    order_ref = _order_ref(line, raw)
    if isinstance(order_ref, MalformedRecord):
        return order_ref
    records: dict[str, dict[str, str]] = {}
    for name, fields in raw.items():
        if name == "order_ref_1":
            continue
        if name not in RECORD_FIELDS:
            return MalformedRecord(
                line,
                shown(name),
                "is not a part of a correction; use customer, delivery_address or invoice_address",
                order_ref,
            )
        if fields is None:
            continue
        if not isinstance(fields, Mapping):
            return MalformedRecord(line, name, "is not an object of SeQura's keys", order_ref)
        sent: dict[str, str] = {}
        for key, value in fields.items():
            if key not in RECORD_FIELDS[name]:
                expected = ", ".join(RECORD_FIELDS[name])
                return MalformedRecord(
                    line, f"{name}.{shown(key)}", f"is not one of SeQura's keys here ({expected})", order_ref
                )
            text, problem = check_field(line, name, key, value)
            if problem is not None:
                return MalformedRecord(problem.line, problem.field, problem.problem, order_ref)
            if text is not None:
                sent[key] = text
        if sent:
            records[name] = sent
    return Correction(line, order_ref, records)


def _parsed(line: int, text: str, start: int = 0) -> tuple[Any, int]:
    """The JSON value at `start` of `text` and where it ends, or a MalformedRecord naming why it is none."""
    try:
        return JSON.raw_decode(text, start)
    except json.JSONDecodeError as error:
        problem = f"is not JSON ({error.msg} at column {error.colno}); correct it, or ask SeQura for the file"
    except RecursionError:
        problem = "is nested too deep to be a correction (lists or objects within each other); correct it"
    except ValueError:  # a number of more than 4,300 digits
        problem = "holds a number too long to be read; write values as text, in quotes"
    return MalformedRecord(line, "record", problem), len(text)


def _json_lines(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """(line, parsed value) of each non-blank line; a line that is not JSON gives a MalformedRecord."""
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        broken = NOT_UTF8.search(text)
        if broken is not None:  # a byte outside any string makes it no JSON: say which problem it is
            problem = f"is not UTF-8 text at column {broken.start() + 1}; save the file as UTF-8"
            yield line, MalformedRecord(line, "record", problem)
            continue
        value, end = _parsed(line, text, len(text) - len(text.lstrip()))
        if not isinstance(value, MalformedRecord) and text[end:].strip():
            value = MalformedRecord(line, "record", "has text after its record; keep one record a line")
        yield line, value


def _element_end(text: str, start: int) -> int:
    """Where the array element at `start` ends: the next `,` or `]` outside its strings and brackets.

    Finds the end of an element that is not JSON, so that the elements after it are still read; the end of
    the text when there is none (an unclosed string or bracket).
    """
    depth, in_string, escaped_until = 0, False, -1
    for found in JSON_STRUCTURE.finditer(text, start):
        at, mark = found.start(), found.group()
        if at < escaped_until:
            continue
        if in_string:
            in_string = mark != '"'
            escaped_until = at + 2 if mark == "\\" else escaped_until
        elif mark == '"':
            in_string = True
        elif mark in "[{":
            depth += 1
        elif mark in "]}" and depth:
            depth -= 1
        elif mark in ",]" and not depth:
            return at
    return len(text)


def _json_array(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """(line, parsed value) of each element of a JSON array, each parsed on its own to know its line.

    An element (what lies between two commas of the array) that is not one JSON value is named as one
    malformed record, and the elements after it are still read; a missing `]` and text after it are named too.
    """
    text = stream.read()
    blank = re.compile(r"\s*")

    def skip(at: int) -> int:
        found = blank.match(text, at)
        assert found is not None
        return found.end()

    counted_to, lines_before = 0, 0

    def line_of(at: int) -> int:  # asked of positions in order, so the text is counted through once
        nonlocal counted_to, lines_before
        lines_before += text.count("\n", counted_to, at)
        counted_to = at
        return 1 + lines_before

    def broken(at: int, problem: str) -> tuple[int, MalformedRecord]:
        return line_of(at), MalformedRecord(line_of(at), "record", problem, record=False)

    position = skip(text.index("[") + 1)
    closed = text.startswith("]", position)
    while position < len(text) and not closed:
        line = line_of(position)
        value, end = _parsed(line, text, position)
        after = skip(end)
        if not isinstance(value, MalformedRecord) and after < len(text) and text[after] not in ",]":
            value = MalformedRecord(
                line,
                "record",
                "is not one record: a comma is missing after it, or text follows it; correct it",
            )
        if isinstance(value, MalformedRecord):
            after = skip(_element_end(text, position))
        yield line, value
        position = after
        if text.startswith(",", position):
            position = skip(position + 1)
        closed = text.startswith("]", position)
    if not closed:
        yield broken(len(text), "the array is not closed with ]; the records before were read")
    elif text[skip(position + 1) :].strip():
        yield broken(skip(position + 1), "follows the array's closing ], and was not read")


def _nested(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row with flattened column names (`customer.email`) as a nested record; empty cells left out."""
    record: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or value == "":
            continue
        if "." in column:
            name, key = column.split(".", 1)
            record.setdefault(name, {})[key] = value
        else:
            record[column] = value
    return record


def _csv_lines(reader: Any) -> Iterator[tuple[int, list[str] | MalformedRecord]]:
    """(line, cells) of each row a csv reader reads; one it cannot read (a cell too long) is malformed."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problem = f"cannot be read as CSV ({error}): a cell far too long for a correction; check the file"
            yield start, MalformedRecord(start, "record", problem)
            continue
        yield start, row


def _csv_rows(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """(line, nested record) of each CSV row; a column that is no correction field is named as line 1."""
    rows = _csv_lines(csv.reader(stream))  # not DictReader: its line_num lags behind the blank lines it skips
    _, columns = next(rows, (1, []))
    if isinstance(columns, MalformedRecord):
        yield 1, MalformedRecord(1, "header", f"{columns.problem}; no record was read", record=False)
        return
    known = {"order_ref_1"} | {f"{name}.{key}" for name, keys in RECORD_FIELDS.items() for key in keys}
    unknown = [column for column in columns if column not in known]
    for column in unknown:
        yield (
            1,
            MalformedRecord(
                1, shown(column), "is not a column of corrections; its values were not read", record=False
            ),
        )
    if "order_ref_1" not in columns:
        yield (
            1,
            MalformedRecord(
                1, "order_ref_1", "is not a column; no record can be matched to an order", record=False
            ),
        )
        return
    for start, row in rows:
        if isinstance(row, MalformedRecord):
            yield start, row
            continue
        cells = {column: value for column, value in zip(columns, row, strict=False) if column in known}
        if len(row) > len(columns):
            yield start, MalformedRecord(start, "record", "has more cells than the header has columns")
        elif any(cells.values()):  # a blank line, or a row of empty cells, is no record
            yield start, _nested(cells)


def read_corrections(path: Path) -> Iterator[Correction | MalformedRecord]:
    """Every record of the file, checked, in order: JSON Lines, a JSON array or CSV by its first character."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
        first = ""
        while not first:
            block = stream.read(READ_BLOCK)
            if not block:
                return
            first = block.lstrip()[:1]
        stream.seek(0)
        rows = _json_array if first == "[" else _json_lines if first == "{" else _csv_rows
        for line, raw in rows(stream):
            yield raw if isinstance(raw, MalformedRecord) else check_record(line, raw)


def _correction_line(correction: Correction) -> str:
    """A correction as one line of a chunk file."""
    return json.dumps(
        {"line": correction.line, "order_ref_1": correction.order_ref_1, "records": correction.records},
        ensure_ascii=False,
    )


def chunk_path(folder: str | Path, chunk: int) -> Path:
    """The file holding chunk `chunk` of a staged source."""
    return Path(folder) / f"chunk-{chunk:05d}.jsonl"


def stage_corrections(source: str, settings: Settings, folder: Path, chunk_size: int) -> StagedCorrections:
    """Fetch and check every record of `source`, writing valid ones in chunk files of `folder`.

    A second record for an order already corrected is malformed: which of the two SeQura meant is a guess.
    Writes the folder (created if needed); a downloaded source is removed once read.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = local_copy(source, settings, folder)
    seen: dict[str, int] = {}
    chunks = records = malformed = 0
    chunk: list[str] = []
    try:
        with (folder / MALFORMED_FILE).open("w", encoding="utf-8") as bad:
            for item in read_corrections(path):
                records += not isinstance(item, MalformedRecord) or item.record
                if isinstance(item, Correction) and item.order_ref_1 in seen:
                    item = MalformedRecord(
                        item.line,
                        "order_ref_1",
                        f"{item.order_ref_1} was already corrected on line {seen[item.order_ref_1]}; "
                        "keep one record per order",
                        item.order_ref_1,
                    )
                if isinstance(item, MalformedRecord):
                    malformed += 1
                    bad.write(json.dumps(item.__dict__, ensure_ascii=False) + "\n")
                    continue
                seen[item.order_ref_1] = item.line
                chunk.append(_correction_line(item))
                if len(chunk) == chunk_size:
                    chunk_path(folder, chunks).write_text("\n".join(chunk) + "\n", encoding="utf-8")
                    chunks, chunk = chunks + 1, []
    finally:
        if is_url(source):
            path.unlink(missing_ok=True)
    if chunk:
        chunk_path(folder, chunks).write_text("\n".join(chunk) + "\n", encoding="utf-8")
        chunks += 1
    return StagedCorrections(str(folder), chunks, records, malformed)


def staged_chunk(folder: str | Path, chunk: int) -> list[Correction]:
    """The corrections of one staged chunk."""
    with chunk_path(folder, chunk).open(encoding="utf-8") as stream:
        return [Correction(**json.loads(text)) for text in stream if text.strip()]


def staged_malformed(folder: str | Path, limit: int | None = None) -> list[MalformedRecord]:
    """The malformed records of a staged source, the first `limit` of them when given."""
    found: list[MalformedRecord] = []
    with (Path(folder) / MALFORMED_FILE).open(encoding="utf-8") as stream:
        for text in stream:
            if limit is not None and len(found) >= limit:
                break
            found.append(MalformedRecord(**json.loads(text)))
    return found


def remove_staged(folder: str | Path) -> None:
    """Delete a staged source's working folder."""
    shutil.rmtree(folder, ignore_errors=True)

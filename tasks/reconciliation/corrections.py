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

from schemas.corrections import LONGEST, RECORD_FIELDS, REQUIRED_IN_SHOP, Correction, MalformedRecord
from schemas.settings import Settings
from tasks.reconciliation.source import CorrectionsSourceError, is_url, local_copy, source_label

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")


MALFORMED_FILE = "malformed.jsonl"


@dataclass(frozen=True)
class StagedCorrections:
    """The checked corrections of one source, in chunk files of `folder`."""

    folder: str
    chunks: int
    records: int  # records read, malformed ones included
    malformed: int


def _text_value(value: Any) -> str | None:
    """A field's value as text, or None when it is not text."""
    return value if isinstance(value, str) else None


def check_field(line: int, name: str, key: str, value: Any) -> tuple[str | None, MalformedRecord | None]:
    """A sent value (None when not sent), or the problem with it."""
    if value is None:
        return None, None
    text = _text_value(value)
    where = f"{name}.{key}"
    if text is None:
        return None, MalformedRecord(
            line, where, f'is {json.dumps(value)[:40]}, not text; write it in quotes ("08001" keeps its 0)'
        )
    stripped = text.strip()
    if not stripped and key in REQUIRED_IN_SHOP:
        return None, MalformedRecord(line, where, "is blank, and PrestaShop needs a value")
    if len(stripped) > LONGEST[key]:
        return None, MalformedRecord(
            line, where, f"is {len(stripped)} characters long; PrestaShop keeps at most {LONGEST[key]}"
        )
    if key == "email" and not EMAIL.fullmatch(stripped):
        return None, MalformedRecord(line, where, f"{stripped[:80]!r} is not an email address")
    if key == "country_code" and not COUNTRY_CODE.fullmatch(stripped):
        return None, MalformedRecord(line, where, f"{stripped!r} is not a two-letter ISO country code")
    return text, None


def check_record(line: int, raw: Any) -> Correction | MalformedRecord:
    """One source record checked: a Correction, or the first problem found, naming its line and field."""
    if not isinstance(raw, Mapping):
        return MalformedRecord(line, "record", "is not an object with order_ref_1 and the corrected records")
    order_ref = raw.get("order_ref_1")
    if isinstance(order_ref, int) and not isinstance(order_ref, bool):
        order_ref = str(order_ref)
    if not isinstance(order_ref, str) or not order_ref.strip():
        return MalformedRecord(line, "order_ref_1", "is missing; every record names its order")
    order_ref = order_ref.strip()
    records: dict[str, dict[str, str]] = {}
    for name, fields in raw.items():
        if name == "order_ref_1":
            continue
        if name not in RECORD_FIELDS:
            return MalformedRecord(
                line,
                name,
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
                    line, f"{name}.{key}", f"is not one of SeQura's keys here ({expected})", order_ref
                )
            text, problem = check_field(line, name, key, value)
            if problem is not None:
                return MalformedRecord(problem.line, problem.field, problem.problem, order_ref)
            if text is not None:
                sent[key] = text
        if sent:
            records[name] = sent
    return Correction(line, order_ref, records)


def _json_lines(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """(line, parsed value) of each non-blank line; a line that is not JSON gives a MalformedRecord."""
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as error:
            yield line, MalformedRecord(line, "record", f"is not JSON ({error.msg} at column {error.colno})")


def _json_array(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """(line, parsed value) of each element of a JSON array, each parsed on its own to know its line.

    A syntax error ends the array (what follows cannot be told apart) and is named as one malformed record,
    as are a missing `]` and text after it; the elements before it are kept.
    """
    text = stream.read()
    decoder = json.JSONDecoder()
    blank = re.compile(r"\s*")

    def skip(at: int) -> int:
        found = blank.match(text, at)
        assert found is not None
        return found.end()

    def line_of(at: int) -> int:
        return 1 + text.count("\n", 0, at)

    def broken(at: int, problem: str) -> tuple[int, MalformedRecord]:
        return line_of(at), MalformedRecord(line_of(at), "record", problem)

    position = skip(text.index("[") + 1)
    closed = position < len(text) and text[position] == "]"
    while position < len(text) and not closed:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            yield broken(error.pos, f"is not JSON ({error.msg}); the rest of the array was not read")
            return
        yield line_of(position), value
        position = skip(end)
        if position < len(text) and text[position] == ",":
            position = skip(position + 1)
        elif position < len(text) and text[position] == "]":
            closed = True
        elif position < len(text):
            yield broken(
                position, "is not separated from the record before by a comma; the rest was not read"
            )
            return
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


def _csv_rows(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """(line, nested record) of each CSV row; a column that is no correction field is named as line 1."""
    reader = csv.reader(stream)  # not DictReader: its line_num lags behind the blank lines it skips
    columns = next(reader, [])
    known = {"order_ref_1"} | {f"{name}.{key}" for name, keys in RECORD_FIELDS.items() for key in keys}
    unknown = [column for column in columns if column not in known]
    for column in unknown:
        yield (
            1,
            MalformedRecord(
                1, column, "is not a column of corrections; its values were not read", record=False
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
    start = reader.line_num + 1
    for row in reader:
        cells = {column: value for column, value in zip(columns, row, strict=False) if column in known}
        if len(row) > len(columns):
            yield start, MalformedRecord(start, "record", "has more cells than the header has columns")
        elif any(cells.values()):  # a blank line, or a row of empty cells, is no record
            yield start, _nested(cells)
        start = reader.line_num + 1


def read_corrections(path: Path) -> Iterator[Correction | MalformedRecord]:
    """Every record of the file, checked, in order: JSON Lines, a JSON array or CSV by its first character."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        first = ""
        while not first:
            character = stream.read(1)
            if not character:
                return
            first = character.strip()
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
    except UnicodeDecodeError as error:
        raise CorrectionsSourceError(
            f"{source_label(source)} is not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from None
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

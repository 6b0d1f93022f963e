"""Hostile corrections: one malformed record (deep, huge, badly encoded) is named by line; others are read."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from schemas.corrections import Correction, MalformedRecord
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from tasks.reconciliation.corrections import (
    read_corrections,
    stage_corrections,
    staged_chunk,
    staged_malformed,
)
from tasks.reconciliation.run import ReconciliationRun
from tasks.resources import RunResources
from tests.hostile import hostile
from tests.runs import settings_for
from tests.shops import seeded_shop

BEFORE = {"order_ref_1": "AAAAAAAAA", "customer": {"given_names": "Ana"}}
AFTER = {"order_ref_1": "CCCCCCCCC", "customer": {"given_names": "Carla"}}
HUGE = 20_000_000  # characters: a 20 MB value
SHOWN_AT_MOST = 400  # characters of a malformed record's sentence, whatever the record holds


def jsonl_around(path: Path, bad: bytes) -> Path:
    """A JSON Lines file: a good record, `bad` on line 2, a good record on line 3."""
    path.write_bytes(b"\n".join([json.dumps(BEFORE).encode(), bad, json.dumps(AFTER).encode()]) + b"\n")
    return path


def array_around(path: Path, bad: bytes) -> Path:
    """A JSON array, one element a line: a good record, `bad` on line 3, a good record on line 4."""
    path.write_bytes(
        b"[\n" + json.dumps(BEFORE).encode() + b",\n" + bad + b",\n" + json.dumps(AFTER).encode() + b"\n]"
    )
    return path


def csv_around(path: Path, bad: bytes) -> Path:
    """A CSV file: its header, a good row, `bad` on line 3, a good row on line 4."""
    path.write_bytes(b"order_ref_1,customer.given_names\nAAAAAAAAA,Ana\n" + bad + b"\nCCCCCCCCC,Carla\n")
    return path


def only_the_bad_one_is_malformed(
    items: list[Correction | MalformedRecord], line: int, field: str, words: str
) -> MalformedRecord:
    """Assert the good records around line `line` were read and the bad one named by line and field."""
    first, bad, last = items
    assert isinstance(first, Correction) and first.order_ref_1 == "AAAAAAAAA"
    assert isinstance(last, Correction) and last.order_ref_1 == "CCCCCCCCC"
    assert isinstance(bad, MalformedRecord), bad
    assert (bad.line, bad.field) == (line, field)
    assert words in bad.problem
    assert str(bad).startswith(f"line {line}: {field}: ")
    assert len(str(bad)) < SHOWN_AT_MOST
    return bad


def quoted(text: str) -> bytes:
    return json.dumps(text).encode()


JSONL_CASES = {
    "nested 100,000 deep": (b"[" * 100_000, "record", "nested too deep"),
    "objects nested 100,000 deep": (b'{"a":' * 100_000, "record", "nested too deep"),
    "a 20 MB order_ref_1": (b'{"order_ref_1": ' + quoted("X" * HUGE) + b"}", "order_ref_1", "at most 255"),
    "an order_ref_1 longer than any PrestaShop keeps": (
        b'{"order_ref_1": ' + quoted("R" * 256) + b"}",
        "order_ref_1",
        "at most 255",
    ),
    "a 20 MB name": (
        b'{"order_ref_1": "B", "customer": {"given_names": ' + quoted("n" * HUGE) + b"}}",
        "customer.given_names",
        "at most 255",
    ),
    "bytes that are not UTF-8": (
        b'{"order_ref_1": "B", "customer": {"surnames": "Pe\xf1a"}}',
        "record",
        "UTF-8",
    ),
    "a NUL in a value": (
        b'{"order_ref_1": "B", "customer": {"surnames": "Pe\\u0000a"}}',
        "customer.surnames",
        "control character",
    ),
    "a NUL in order_ref_1": (b'{"order_ref_1": "B\\u0000"}', "order_ref_1", "control character"),
    "a raw NUL byte": (b'{"order_ref_1": "B\x00"}', "record", "not JSON"),
    "a lone surrogate": (
        b'{"order_ref_1": "B", "customer": {"surnames": "\\ud800"}}',
        "customer.surnames",
        "not UTF-8",
    ),
    "a number of 5,000 digits": (b'{"order_ref_1": ' + b"1" * 5000 + b"}", "record", "number"),
    "a value nested 900 deep": (
        b'{"order_ref_1": "B", "customer": {"surnames": ' + b"[" * 900 + b"]" * 900 + b"}}",
        "customer.surnames",
        "not text",
    ),
}


@pytest.mark.parametrize(("bad", "field", "words"), JSONL_CASES.values(), ids=JSONL_CASES.keys())
def test_one_hostile_json_line_is_a_malformed_record_and_the_lines_around_it_are_read(
    tmp_path: Path, bad: bytes, field: str, words: str
) -> None:
    items = list(read_corrections(jsonl_around(tmp_path / "c.jsonl", bad)))

    only_the_bad_one_is_malformed(items, 2, field, words)


def test_a_huge_unknown_key_is_named_in_a_few_characters(tmp_path: Path) -> None:
    bad = b'{"order_ref_1": "B", "customer": {' + quoted("k\x00" * 1_000_000) + b': "x"}}'

    items = list(read_corrections(jsonl_around(tmp_path / "c.jsonl", bad)))

    malformed = only_the_bad_one_is_malformed(items, 2, items[1].field, "is not one of SeQura's keys")
    assert malformed.field.startswith("customer.k\\x00k")
    assert malformed.order_ref_1 == "B"


def test_a_malformed_order_ref_1_is_not_kept_as_the_records_order(tmp_path: Path) -> None:
    items = list(read_corrections(jsonl_around(tmp_path / "c.jsonl", JSONL_CASES["a 20 MB order_ref_1"][0])))

    assert isinstance(items[1], MalformedRecord)
    assert items[1].order_ref_1 is None


ARRAY_CASES = {
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "record", "nested too deep"),
    "a broken element": (b'{"order_ref_1": "B",,}', "record", "not JSON"),
    "a comma missing inside an element": (b'{"order_ref_1": "B" "customer": {}}', "record", "not JSON"),
    "bytes that are not UTF-8 outside a string": (b'{"order_ref_1": "B", \xff}', "record", "not JSON"),
    "bytes that are not UTF-8 in a value": (
        b'{"order_ref_1": "B", "customer": {"surnames": "Pe\xf1a"}}',
        "customer.surnames",
        "not UTF-8",
    ),
    "a number of 5,000 digits": (b"1" * 5000, "record", "number"),
    "a 20 MB order_ref_1": (b'{"order_ref_1": ' + quoted("X" * HUGE) + b"}", "order_ref_1", "at most 255"),
    "a stray closing brace": (b'{"order_ref_1": "B"}}', "record", "text follows it"),
}


@pytest.mark.parametrize(("bad", "field", "words"), ARRAY_CASES.values(), ids=ARRAY_CASES.keys())
def test_one_hostile_json_array_element_is_a_malformed_record_and_the_elements_around_it_are_read(
    tmp_path: Path, bad: bytes, field: str, words: str
) -> None:
    items = list(read_corrections(array_around(tmp_path / "c.json", bad)))

    only_the_bad_one_is_malformed(items, 3, field, words)


CSV_CASES = {
    "a field larger than CSV's limit": (b"B," + b"x" * 200_000, "record", "too long"),
    "a 100,000-character order_ref_1": (b"R" * 100_000 + b",Berta", "order_ref_1", "at most 255"),
    "a NUL in a cell": (b"B,Be\x00rta", "customer.given_names", "control character"),
    "bytes that are not UTF-8": (b"B,Pe\xf1a", "customer.given_names", "not UTF-8"),
}


@pytest.mark.parametrize(("bad", "field", "words"), CSV_CASES.values(), ids=CSV_CASES.keys())
def test_one_hostile_csv_row_is_a_malformed_record_and_the_rows_around_it_are_read(
    tmp_path: Path, bad: bytes, field: str, words: str
) -> None:
    items = list(read_corrections(csv_around(tmp_path / "c.csv", bad)))

    only_the_bad_one_is_malformed(items, 3, field, words)


def test_a_csv_header_larger_than_csvs_limit_is_named_and_no_record_read(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes(b"order_ref_1," + b"h" * 200_000 + b"\nA,x\n")

    (problem,) = read_corrections(source)

    assert (problem.line, problem.field, problem.record) == (1, "header", False)
    assert len(str(problem)) < SHOWN_AT_MOST


def test_a_file_not_in_utf8_names_each_record_that_is_not_and_reads_the_others(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_bytes("order_ref_1,customer.surnames\nA-1,Peña\nB-2,Gil\n".encode("latin-1"))

    first, second = read_corrections(source)

    assert isinstance(first, MalformedRecord)
    assert (first.line, first.field) == (2, "customer.surnames")
    assert "save the file as UTF-8" in first.problem
    assert second == Correction(3, "B-2", {"customer": {"surnames": "Gil"}})


def test_every_hostile_line_is_staged_as_malformed_and_the_good_ones_as_corrections(tmp_path: Path) -> None:
    source = tmp_path / "c.jsonl"
    lines = [
        json.dumps(BEFORE).encode(),
        *(bad for bad, _, _ in JSONL_CASES.values()),
        json.dumps(AFTER).encode(),
    ]
    source.write_bytes(b"\n".join(lines) + b"\n")
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), Settings.from_env(environ={}), folder, chunk_size=10)

    assert [c.order_ref_1 for c in staged_chunk(folder, 0)] == ["AAAAAAAAA", "CCCCCCCCC"]
    assert (result.records, result.malformed) == (len(lines), len(JSONL_CASES))
    assert [m.line for m in staged_malformed(folder)] == list(range(2, len(lines)))


@pytest.mark.mysql
def test_a_20_mb_order_ref_1_never_reaches_the_shop_and_the_other_records_are_reconciled(
    mysql_shop_engine_factory: Callable[..., Engine], tmp_path: Path
) -> None:
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    shop.shipped_order("AAAAAAAAA")
    shop.shipped_order("CCCCCCCCC")
    source = jsonl_around(tmp_path / "c.jsonl", JSONL_CASES["a 20 MB order_ref_1"][0])
    settings = settings_for(shop.engine, f"sqlite:///{tmp_path / 'state.sqlite'}")

    with RunResources.open(settings) as resources:
        summary = ReconciliationRun(resources, str(source), tmp_path / "differences.csv").run()

    counts: Any = summary.outcome.counts
    assert (counts.read, counts.malformed, counts.matched) == (3, 1, 2)
    assert [(m.line, m.field) for m in summary.malformed] == [(2, "order_ref_1")]


def test_a_json_array_of_50000_records_is_read_in_one_pass(tmp_path: Path) -> None:
    source = tmp_path / "c.json"
    source.write_text(
        json.dumps(
            [{"order_ref_1": f"R{n}", "customer": {"given_names": "Ana"}} for n in range(50_000)], indent=1
        )
    )
    started = time.monotonic()

    items = list(read_corrections(source))

    assert time.monotonic() - started < 20  # counting the lines from the start for each element took minutes
    assert (len(items), items[-1].line) == (50_000, 50_000 * 6 - 4)


# Properties: whatever the bytes, records and malformed records only; every good record among bad ones is read

PER_EXAMPLE_SECONDS = 5.0
TOKENS = [
    *(bytes([c]) for c in b'{}[],:"\\\n\r \x00\xff'),
    b"\xe2\x82",  # a UTF-8 sequence cut short
    b"\xef\xbb\xbf",
    b'"order_ref_1"',
    b'"customer"',
    b'"delivery_address"',
    b'"email"',
    b'"given_names"',
    b'"A-1"',
    b"\\u0000",
    b"\\ud800",
    b"\\udc80",
    b"1e999",
    b"NaN",
    b"true",
    b"null",
    b"[" * 3000,
    b'{"a":' * 1500,
    b"9" * 5000,
    b"x" * 300,
]
hostile_bytes = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=24)), max_size=40).map(
    b"".join
)
FORMAT_STARTS = {
    "jsonl": b"{",
    "json array": b"[",
    "csv": b"order_ref_1,customer.email,delivery_address.city\n",
}


@pytest.mark.hostile
@pytest.mark.parametrize("start", FORMAT_STARTS.values(), ids=FORMAT_STARTS.keys())
@hostile
@given(content=hostile_bytes)
def test_whatever_the_bytes_staging_gives_records_and_malformed_records_only_in_seconds(
    start: bytes, content: bytes
) -> None:
    with tempfile.TemporaryDirectory() as work:
        source, folder = Path(work) / "corrections", Path(work) / "staged"
        source.write_bytes(start + content)
        started = time.monotonic()

        result = stage_corrections(str(source), Settings.from_env(environ={}), folder, 50)

        assert time.monotonic() - started < PER_EXAMPLE_SECONDS
        corrections = [c for chunk in range(result.chunks) for c in staged_chunk(folder, chunk)]
        malformed = staged_malformed(folder)
    assert all(isinstance(item, Correction) for item in corrections)
    assert len(malformed) == result.malformed
    assert len(corrections) + sum(m.record for m in malformed) == result.records
    assert all(len(str(m)) < SHOWN_AT_MOST for m in malformed)


def without(characters: bytes) -> Callable[[bytes], bytes]:
    """Bytes with `characters` taken out."""
    return lambda data: data.translate(None, characters)


text_values = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=","), min_size=1, max_size=20
).filter(str.strip)
good_records = st.fixed_dictionaries(
    {
        "customer": st.fixed_dictionaries(
            {},
            optional={
                "given_names": text_values,
                "surnames": text_values,
                "email": st.from_regex(r"[a-z]{1,10}@[a-z]{1,10}\.(com|es|cat)", fullmatch=True),
            },
        ),
        "delivery_address": st.fixed_dictionaries(
            {}, optional={"city": text_values, "postal_code": st.from_regex(r"[0-9A-Z]{4,8}", fullmatch=True)}
        ),
    }
).map(lambda record: {name: fields for name, fields in record.items() if fields})
COLUMNS = [
    ("customer", "given_names"),
    ("customer", "surnames"),
    ("customer", "email"),
    ("delivery_address", "city"),
    ("delivery_address", "postal_code"),
]


def mixed_in(bad: st.SearchStrategy[bytes]) -> st.SearchStrategy[list[dict[str, Any] | bytes]]:
    """A good record first, then good records (dicts) and bad ones (bytes) in any order."""
    return st.lists(st.one_of(good_records, bad), max_size=12).map(lambda items: [{}, *items])


def every_good_one_read(
    items: list[dict[str, Any] | bytes], lines: list[bytes], source: Path, before: int = 0
) -> None:
    """Write `lines` to `source` (item i is `lines[before + i]`); assert each good item was read, by line."""
    content = b"".join(lines)
    source.write_bytes(content)
    started = time.monotonic()

    read = list(read_corrections(source))

    assert time.monotonic() - started < PER_EXAMPLE_SECONDS
    assert all(isinstance(item, Correction | MalformedRecord) for item in read)
    for index, item in enumerate(items):
        if isinstance(item, dict):
            line = 1 + b"".join(lines[: before + index]).count(b"\n")
            assert Correction(line, f"G-{index}", item) in read, (line, item, read)


def as_json(index: int, record: dict[str, Any]) -> bytes:
    return json.dumps({"order_ref_1": f"G-{index}", **record}).encode()


@pytest.mark.hostile
@hostile
@given(items=mixed_in(hostile_bytes.map(without(b"\n\r"))))
def test_every_good_json_line_among_hostile_ones_is_read(
    tmp_path: Path, items: list[dict[str, Any] | bytes]
) -> None:
    lines = [(as_json(i, item) if isinstance(item, dict) else item) + b"\n" for i, item in enumerate(items)]

    every_good_one_read(items, lines, tmp_path / "c.jsonl")


JUNK = hostile_bytes.map(without(b'[]{}",\\'))  # no structure: nothing that could end an element early
bad_elements = st.one_of(
    JUNK,
    JUNK.map(lambda junk: b"{" + junk + b"}"),
    st.tuples(JUNK, st.integers(1, 3000)).map(lambda deep: b"[" * deep[1] + deep[0] + b"]" * deep[1]),
    JUNK.map(lambda junk: b'{"order_ref_1": "B", "customer": {"surnames": "' + junk + b'"}}'),
    st.just(b"9" * 5000),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=10,
    ).map(lambda value: json.dumps(value).encode()),
)


@pytest.mark.hostile
@hostile
@given(items=mixed_in(bad_elements))
def test_every_good_json_array_element_among_hostile_ones_is_read(
    tmp_path: Path, items: list[dict[str, Any] | bytes]
) -> None:
    elements = [as_json(i, item) if isinstance(item, dict) else item for i, item in enumerate(items)]
    lines = [b"[\n", *(element + b",\n" for element in elements[:-1]), elements[-1] + b"\n]"]

    every_good_one_read(items, lines, tmp_path / "c.json", before=1)


bad_rows = st.one_of(
    hostile_bytes.map(without(b'"\n\r')),  # no quote: a quoted cell could go on over the next lines
    st.just(b"B," + b"x" * 140_000),
)


def as_csv_row(index: int, record: dict[str, Any]) -> bytes:
    cells = [f"G-{index}", *(record.get(name, {}).get(key, "") for name, key in COLUMNS)]
    row = io.StringIO()
    csv.writer(row, lineterminator="\n").writerow(cells)
    return row.getvalue().encode()


@pytest.mark.hostile
@hostile
@given(items=mixed_in(bad_rows))
def test_every_good_csv_row_among_hostile_ones_is_read(
    tmp_path: Path, items: list[dict[str, Any] | bytes]
) -> None:
    header = ",".join(["order_ref_1", *(f"{name}.{key}" for name, key in COLUMNS)]).encode() + b"\n"
    rows = [as_csv_row(i, item) if isinstance(item, dict) else item + b"\n" for i, item in enumerate(items)]

    every_good_one_read(items, [header, *rows], tmp_path / "c.csv", before=1)

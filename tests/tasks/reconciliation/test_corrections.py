"""Reading SeQura's corrections: three formats, one set of records; every record checked on its own."""

from __future__ import annotations

import csv
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.server import SandboxServer
from schemas.corrections import Correction, MalformedRecord
from schemas.errors import SettingError
from schemas.settings import Settings
from tasks.reconciliation.corrections import (
    MALFORMED_FILE,
    StagedCorrections,
    check_record,
    chunk_path,
    read_corrections,
    stage_corrections,
    staged_chunk,
    staged_malformed,
)
from tasks.reconciliation.source import CorrectionsSourceError, source_label

RECORDS: list[dict[str, Any]] = [
    {
        "order_ref_1": "A-1",
        "customer": {"email": "ana@example.com", "given_names": "Ana"},
        "delivery_address": {"postal_code": "08001", "city": "Barcelona"},
    },
    {"order_ref_1": "B-2", "invoice_address": {"address_line_1": "Calle Mayor 1", "country_code": "ES"}},
    {"order_ref_1": "C-3", "delivery_address": {"phone": "+34 600 123 456", "address_line_2": None}},
]
EXPECTED = [
    (
        "A-1",
        {
            "customer": {"email": "ana@example.com", "given_names": "Ana"},
            "delivery_address": {"postal_code": "08001", "city": "Barcelona"},
        },
    ),
    ("B-2", {"invoice_address": {"address_line_1": "Calle Mayor 1", "country_code": "ES"}}),
    ("C-3", {"delivery_address": {"phone": "+34 600 123 456"}}),
]


def flattened(record: dict[str, Any]) -> dict[str, Any]:
    """A record's columns as SeQura's CSV names them (`delivery_address.postal_code`)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat |= {f"{key}.{inner}": item for inner, item in value.items()}
        else:
            flat[key] = value
    return flat


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_json_array(path: Path, records: list[Any]) -> Path:
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    rows = [flattened(record) for record in records]
    columns = list(dict.fromkeys(column for row in rows for column in row))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def content(items: list[Correction | MalformedRecord]) -> list[tuple[str, dict[str, dict[str, str]]]]:
    """The corrections read, without their lines (which differ between formats)."""
    assert all(isinstance(item, Correction) for item in items), items
    return [(item.order_ref_1, item.records) for item in items if isinstance(item, Correction)]


def settings(**environ: str) -> Settings:
    return Settings.from_env(environ=environ)


def staged(folder: Path, result: StagedCorrections) -> list[Correction]:
    return [correction for chunk in range(result.chunks) for correction in staged_chunk(folder, chunk)]


# The three formats


def test_jsonl_json_array_and_csv_give_the_same_corrections(tmp_path: Path) -> None:
    jsonl = list(read_corrections(write_jsonl(tmp_path / "c.jsonl", RECORDS)))
    array = list(read_corrections(write_json_array(tmp_path / "c.json", RECORDS)))
    table = list(read_corrections(write_csv(tmp_path / "c.csv", RECORDS)))

    assert content(jsonl) == content(array) == content(table) == EXPECTED


def test_the_format_is_told_by_the_first_character_not_the_file_name(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "corrections.json", RECORDS)

    assert content(list(read_corrections(source))) == EXPECTED


def test_jsonl_records_are_named_by_their_line_blank_lines_included(tmp_path: Path) -> None:
    source = tmp_path / "c.jsonl"
    source.write_text('{"order_ref_1": "A-1"}\n\n   \n{"order_ref_1": "B-2"}\r\n', encoding="utf-8")

    assert [(item.line, item.order_ref_1) for item in read_corrections(source)] == [(1, "A-1"), (4, "B-2")]


PRETTY_ARRAY = """[
  {
    "order_ref_1": "A-1",
    "customer": {"email": "ana@example.com"}
  },
  {
    "order_ref_1": "B-2",
    "delivery_address": {
      "postal_code": 28013
    }
  },
  {"order_ref_1": "C-3"}, {"order_ref_1": "D-4"}
]
"""


def test_json_array_element_is_named_by_its_real_line_in_a_pretty_printed_file(tmp_path: Path) -> None:
    source = tmp_path / "c.json"
    source.write_text(PRETTY_ARRAY, encoding="utf-8")

    items = list(read_corrections(source))

    assert [(item.line, item.order_ref_1) for item in items] == [
        (2, "A-1"),
        (6, "B-2"),
        (12, "C-3"),
        (12, "D-4"),
    ]
    assert items[1] == MalformedRecord(6, "delivery_address.postal_code", items[1].problem, "B-2")


def test_json_array_syntax_error_is_named_by_its_line_and_the_elements_after_it_are_read(
    tmp_path: Path,
) -> None:
    source = tmp_path / "c.json"
    source.write_text(
        '[\n  {"order_ref_1": "A-1"},\n  {"order_ref_1": "B-2",,},\n  {"order_ref_1": "C-3"}\n]'
    )

    first, broken, last = read_corrections(source)

    assert isinstance(broken, MalformedRecord)
    assert (broken.line, broken.field) == (3, "record")
    assert "not JSON" in broken.problem
    assert (first.order_ref_1, last.order_ref_1) == ("A-1", "C-3")


def test_json_array_elements_without_a_comma_between_them_are_one_malformed_record(tmp_path: Path) -> None:
    source = tmp_path / "c.json"
    source.write_text(
        '[\n {"order_ref_1": "A"},\n {"order_ref_1": "B"}\n {"order_ref_1": "C"},\n {"order_ref_1": "D"}\n]'
    )

    first, missing_comma, last = read_corrections(source)

    assert isinstance(missing_comma, MalformedRecord)
    assert missing_comma.line == 3
    assert "a comma is missing" in missing_comma.problem
    assert (first.order_ref_1, last.order_ref_1) == ("A", "D")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('[\n {"order_ref_1": "A"},\n {"order_ref_1": "B"}\n', 4, "the array is not closed with ]"),
        ('[\n {"order_ref_1": "A"}\n] {"order_ref_1": "B"}', 3, "follows the array's closing ]"),
    ],
)
def test_a_broken_json_array_is_named_where_it_breaks_and_the_records_before_are_read(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    source = tmp_path / "c.json"
    source.write_text(text)
    first, *rest = read_corrections(source)
    assert isinstance(first, Correction)
    malformed = rest[-1]
    assert isinstance(malformed, MalformedRecord)
    assert malformed.line == line
    assert problem in malformed.problem
    assert malformed.record is False  # a problem of the file, not a record


def test_credentials_are_never_shown_in_a_source_url() -> None:
    assert source_label("https://user:s3cret@[::1]:8443/corrections") == "https://***@[::1]:8443/corrections"


def test_csv_empty_cell_is_not_sent(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text(
        "order_ref_1,delivery_address.postal_code,delivery_address.city\nA-1,,Madrid\nB-2,28013,\n",
        encoding="utf-8",
    )

    assert content(list(read_corrections(source))) == [
        ("A-1", {"delivery_address": {"city": "Madrid"}}),
        ("B-2", {"delivery_address": {"postal_code": "28013"}}),
    ]


def test_csv_keeps_leading_zeros_of_postcodes(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,delivery_address.postal_code\nA-1,08001\n", encoding="utf-8")

    assert content(list(read_corrections(source))) == [
        ("A-1", {"delivery_address": {"postal_code": "08001"}})
    ]


def test_csv_rows_are_named_by_their_line_after_a_blank_line(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,customer.email\nA-1,a@example.com\n\nB-2,b@example.com\nC-3,bad\n")

    items = list(read_corrections(source))

    assert [(item.line, item.order_ref_1) for item in items] == [(2, "A-1"), (4, "B-2"), (5, "C-3")]
    assert str(items[2]).startswith("line 5: customer.email:")


def test_csv_quoted_cell_across_lines_keeps_the_next_rows_line(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text('order_ref_1,delivery_address.extra\nA-1,"ring twice\nthen wait"\nB-2,door\n')

    items = list(read_corrections(source))

    assert [(item.line, item.order_ref_1) for item in items] == [(2, "A-1"), (4, "B-2")]
    assert content(items)[0] == ("A-1", {"delivery_address": {"extra": "ring twice\nthen wait"}})


def test_csv_row_of_empty_cells_is_no_record(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,customer.email\n,\nA-1,a@example.com\n")

    assert [(item.line, item.order_ref_1) for item in read_corrections(source)] == [(3, "A-1")]


def test_csv_unknown_column_is_named_on_line_1_and_its_values_are_not_read(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,delivery_address.postcode,delivery_address.city\nA-1,28013,Madrid\n")

    first, second = read_corrections(source)

    assert isinstance(first, MalformedRecord)
    assert (first.line, first.field) == (1, "delivery_address.postcode")
    assert second == Correction(2, "A-1", {"delivery_address": {"city": "Madrid"}})


def test_csv_without_an_order_ref_1_column_reads_no_record(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("customer.email\na@example.com\n")

    assert [(item.line, item.field) for item in read_corrections(source)] == [(1, "order_ref_1")]


def test_csv_row_with_more_cells_than_the_header_is_malformed(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,customer.email\nA-1,a@example.com,extra\nB-2,b@example.com\n")

    first, second = read_corrections(source)

    assert isinstance(first, MalformedRecord)
    assert (first.line, first.field) == (2, "record")
    assert isinstance(second, Correction)
    assert second.order_ref_1 == "B-2"


def test_csv_row_with_fewer_cells_than_the_header_sends_only_those_it_has(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,customer.email,customer.given_names\nA-1,a@example.com\n")

    assert content(list(read_corrections(source))) == [("A-1", {"customer": {"email": "a@example.com"}})]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json"])
def test_a_byte_order_mark_is_not_part_of_the_first_value(tmp_path: Path, suffix: str) -> None:
    plain = {"csv": write_csv, "jsonl": write_jsonl, "json": write_json_array}[suffix](
        tmp_path / f"c.{suffix}", RECORDS
    )
    plain.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())

    assert content(list(read_corrections(plain))) == EXPECTED


def test_an_empty_file_has_no_record(tmp_path: Path) -> None:
    source = tmp_path / "c.jsonl"
    source.write_text("\n  \n")

    assert list(read_corrections(source)) == []


# Checking one record


def test_null_values_are_not_sent() -> None:
    record = {
        "order_ref_1": "A-1",
        "customer": None,
        "delivery_address": {"postal_code": None, "city": "Madrid"},
        "invoice_address": {"company": None},
    }

    assert check_record(1, record) == Correction(1, "A-1", {"delivery_address": {"city": "Madrid"}})


def test_a_number_order_ref_1_is_read_as_text_and_spaces_around_it_dropped() -> None:
    assert check_record(1, {"order_ref_1": 1001}) == Correction(1, "1001", {})
    assert check_record(1, {"order_ref_1": " ABC "}) == Correction(1, "ABC", {})


def test_values_are_kept_as_sent() -> None:
    record = {"order_ref_1": "A-1", "customer": {"given_names": "  Ana  María "}}

    assert check_record(1, record) == Correction(1, "A-1", {"customer": {"given_names": "  Ana  María "}})


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        (
            {"order_ref_1": "A-1", "delivery_address": {"postal_code": 8001}},
            "delivery_address.postal_code",
            "not text",
        ),
        (
            {"order_ref_1": "A-1", "delivery_address": {"postcode": "08001"}},
            "delivery_address.postcode",
            "not one of",
        ),
        ({"order_ref_1": "A-1", "customer": {"postal_code": "08001"}}, "customer.postal_code", "not one of"),
        ({"order_ref_1": "A-1", "customer": {"email": "ana@example"}}, "customer.email", "not an email"),
        ({"order_ref_1": "A-1", "customer": {"email": "ana example.com"}}, "customer.email", "not an email"),
        ({"order_ref_1": "A-1", "customer": {"given_names": "   "}}, "customer.given_names", "blank"),
        ({"order_ref_1": "A-1", "invoice_address": {"city": ""}}, "invoice_address.city", "blank"),
        (
            {"order_ref_1": "A-1", "delivery_address": {"postal_code": "1" * 13}},
            "delivery_address.postal_code",
            "at most 12",
        ),
        ({"order_ref_1": "A-1", "customer": {"nin": "X" * 17}}, "customer.nin", "at most 16"),
        (
            {"order_ref_1": "A-1", "delivery_address": {"country_code": "ESP"}},
            "delivery_address.country_code",
            "at most 2",
        ),
        (
            {"order_ref_1": "A-1", "delivery_address": {"country_code": "E1"}},
            "delivery_address.country_code",
            "country code",
        ),
        ({"order_ref_1": "A-1", "customer": {"surnames": True}}, "customer.surnames", "not text"),
        ({"order_ref_1": "A-1", "shipping_address": {"city": "Madrid"}}, "shipping_address", "not a part"),
        ({"order_ref_1": "A-1", "customer": "ana@example.com"}, "customer", "not an object"),
        ({"customer": {"email": "ana@example.com"}}, "order_ref_1", "missing"),
        ({"order_ref_1": "  "}, "order_ref_1", "missing"),
        ({"order_ref_1": None}, "order_ref_1", "missing"),
        ({"order_ref_1": True}, "order_ref_1", "missing"),
        (["A-1"], "record", "not an object"),
    ],
)
def test_a_malformed_record_is_named_by_its_line_and_field(record: Any, field: str, problem: str) -> None:
    found = check_record(7, record)

    assert isinstance(found, MalformedRecord)
    assert (found.line, found.field) == (7, field)
    assert problem in found.problem
    assert str(found).startswith(f"line 7: {field}: ")


def test_a_malformed_record_keeps_its_order_ref_1_when_it_has_one() -> None:
    found = check_record(1, {"order_ref_1": "A-1", "customer": {"email": "nope"}})

    assert isinstance(found, MalformedRecord)
    assert found.order_ref_1 == "A-1"


def test_a_blank_optional_field_is_not_malformed() -> None:
    assert check_record(1, {"order_ref_1": "A-1", "delivery_address": {"address_line_2": ""}}) == Correction(
        1, "A-1", {"delivery_address": {"address_line_2": ""}}
    )


def test_the_longest_value_prestashop_keeps_is_not_malformed() -> None:
    record = {"order_ref_1": "A-1", "delivery_address": {"postal_code": "1" * 12, "city": "C" * 64}}

    assert isinstance(check_record(1, record), Correction)


def test_invalid_json_on_a_jsonl_line_is_malformed_and_the_next_lines_are_read(tmp_path: Path) -> None:
    source = tmp_path / "c.jsonl"
    source.write_text('{"order_ref_1": "A-1"}\n{"order_ref_1": "B-2",\n{"order_ref_1": "C-3"}\n')

    items = list(read_corrections(source))

    assert [type(item) for item in items] == [Correction, MalformedRecord, Correction]
    assert (items[1].line, items[1].field) == (2, "record")
    assert "not JSON" in items[1].problem


# Staging


def test_a_malformed_line_among_valid_ones_is_named_and_the_valid_ones_are_staged(tmp_path: Path) -> None:
    records = [*RECORDS[:2], {"order_ref_1": "X-9", "delivery_address": {"postal_code": 28013}}, RECORDS[2]]
    source = write_jsonl(tmp_path / "c.jsonl", records)
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), settings(), folder, chunk_size=10)

    assert result == StagedCorrections(str(folder), chunks=1, records=4, malformed=1)
    assert [(c.line, c.order_ref_1) for c in staged(folder, result)] == [(1, "A-1"), (2, "B-2"), (4, "C-3")]
    assert [(c.order_ref_1, c.records) for c in staged(folder, result)] == EXPECTED
    assert staged_malformed(folder) == [
        MalformedRecord(3, "delivery_address.postal_code", staged_malformed(folder)[0].problem, "X-9")
    ]


def test_a_second_record_for_the_same_order_is_malformed_naming_the_first_line(tmp_path: Path) -> None:
    records = [
        {"order_ref_1": "A-1"},
        {"order_ref_1": "B-2"},
        {"order_ref_1": "A-1", "customer": {"surnames": "Gil"}},
    ]
    source = write_jsonl(tmp_path / "c.jsonl", records)
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), settings(), folder, chunk_size=10)

    assert [c.order_ref_1 for c in staged(folder, result)] == ["A-1", "B-2"]
    assert staged(folder, result)[0].records == {}
    (duplicate,) = staged_malformed(folder)
    assert (duplicate.line, duplicate.field, duplicate.order_ref_1) == (3, "order_ref_1", "A-1")
    assert "line 1" in duplicate.problem
    assert result.malformed == 1


def test_five_records_in_chunks_of_two_make_three_chunk_files_in_order(tmp_path: Path) -> None:
    records = [{"order_ref_1": f"R-{n}", "customer": {"given_names": f"Name {n}"}} for n in range(5)]
    source = write_jsonl(tmp_path / "c.jsonl", records)
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), settings(), folder, chunk_size=2)

    assert result == StagedCorrections(str(folder), chunks=3, records=5, malformed=0)
    assert [[c.order_ref_1 for c in staged_chunk(folder, n)] for n in range(3)] == [
        ["R-0", "R-1"],
        ["R-2", "R-3"],
        ["R-4"],
    ]
    assert staged_chunk(folder, 2) == [Correction(5, "R-4", {"customer": {"given_names": "Name 4"}})]
    assert not chunk_path(folder, 3).exists()
    assert staged_malformed(folder) == []


def test_records_filling_their_last_chunk_leave_no_empty_chunk(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "c.jsonl", [{"order_ref_1": f"R-{n}"} for n in range(4)])
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), settings(), folder, chunk_size=2)

    assert result.chunks == 2
    assert not chunk_path(folder, 2).exists()


def test_a_source_of_only_malformed_records_stages_no_chunk(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "c.jsonl", [{"customer": {}}, {"order_ref_1": "A-1", "x": {}}])
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), settings(), folder, chunk_size=2)

    assert result == StagedCorrections(str(folder), chunks=0, records=2, malformed=2)
    assert [m.field for m in staged_malformed(folder)] == ["order_ref_1", "x"]
    assert [m.field for m in staged_malformed(folder, limit=1)] == ["order_ref_1"]


def test_the_three_formats_stage_the_same_chunks(tmp_path: Path) -> None:
    staged_records = []
    for name, write in (("c.jsonl", write_jsonl), ("c.json", write_json_array), ("c.csv", write_csv)):
        folder = tmp_path / f"staged-{name}"
        result = stage_corrections(str(write(tmp_path / name, RECORDS)), settings(), folder, chunk_size=2)
        staged_records.append([(c.order_ref_1, c.records) for c in staged(folder, result)])

    assert staged_records == [EXPECTED, EXPECTED, EXPECTED]


def test_staged_values_keep_their_non_ascii_characters(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "c.jsonl", [{"order_ref_1": "Ñ-1", "customer": {"surnames": "Peña Ibáñez"}}]
    )
    folder = tmp_path / "staged"

    result = stage_corrections(str(source), settings(), folder, chunk_size=2)

    assert staged(folder, result) == [Correction(1, "Ñ-1", {"customer": {"surnames": "Peña Ibáñez"}})]


def test_a_missing_file_raises_a_setting_error_naming_corrections(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as raised:
        stage_corrections(str(tmp_path / "nowhere.jsonl"), settings(), tmp_path / "staged", chunk_size=2)

    assert raised.value.name == "--corrections"
    assert "nowhere.jsonl" in str(raised.value)


def test_a_source_is_shown_by_its_file_name_or_its_url_without_query(tmp_path: Path) -> None:
    assert source_label(str(tmp_path / "corrections.csv")) == "corrections.csv"
    assert source_label("https://sequra.example:8443/c/export?format=csv&token=s3cret") == (
        "https://sequra.example:8443/c/export"
    )


# URL sources, against the session sandbox


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The session sandbox serving RECORDS as corrections; they are removed after the test."""
    response = requests.post(f"{sandbox_server.url}_sandbox/corrections", json=RECORDS, timeout=5)
    assert response.status_code == 200, response.text
    yield sandbox_server
    sandbox_server.state.set_corrections([])


def corrections_settings(sandbox: SandboxServer, password: str | None = None) -> Settings:
    return settings(
        CORRECTIONS_USERNAME=sandbox.config.username,
        CORRECTIONS_PASSWORD=sandbox.config.password if password is None else password,
        CORRECTIONS_TIMEOUT_SECONDS="5",
    )


@pytest.mark.parametrize("file_format", ["csv", "json", "jsonl"])
def test_a_url_source_with_corrections_credentials_is_staged(
    sandbox: SandboxServer, tmp_path: Path, file_format: str
) -> None:
    folder = tmp_path / "staged"

    result = stage_corrections(
        f"{sandbox.url}_sandbox/corrections?format={file_format}", corrections_settings(sandbox), folder, 2
    )

    assert (result.records, result.malformed, result.chunks) == (3, 0, 2)
    assert [(c.order_ref_1, c.records) for c in staged(folder, result)] == EXPECTED


def test_sequra_credentials_are_used_on_sequras_host(sandbox: SandboxServer, tmp_path: Path) -> None:
    on_sequra = settings(
        SEQURA_API_URL=sandbox.url,
        SEQURA_USERNAME=sandbox.config.username,
        SEQURA_PASSWORD=sandbox.config.password,
    )
    folder = tmp_path / "staged"

    result = stage_corrections(f"{sandbox.url}_sandbox/corrections?format=csv", on_sequra, folder, 10)

    assert [(c.order_ref_1, c.records) for c in staged(folder, result)] == EXPECTED


def test_sequra_credentials_are_not_sent_to_another_host(sandbox: SandboxServer, tmp_path: Path) -> None:
    elsewhere = settings(
        SEQURA_API_URL="https://sandbox.sequrapi.com/",
        SEQURA_USERNAME=sandbox.config.username,
        SEQURA_PASSWORD=sandbox.config.password,
    )

    with pytest.raises(CorrectionsSourceError, match="answered 401"):
        stage_corrections(f"{sandbox.url}_sandbox/corrections", elsewhere, tmp_path / "staged", 10)


def test_wrong_credentials_raise_naming_the_settings_and_never_the_password(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    wrong = corrections_settings(sandbox, password="wrong-Pa55word-x")
    url = f"{sandbox.url}_sandbox/corrections?format=csv"

    with pytest.raises(CorrectionsSourceError) as raised:
        stage_corrections(url, wrong, tmp_path / "staged", 10)

    message = str(raised.value)
    assert "401" in message
    assert "CORRECTIONS_USERNAME" in message
    assert "CORRECTIONS_PASSWORD" in message
    assert "wrong-Pa55word-x" not in message
    assert sandbox.config.password not in message
    assert "format=csv" not in message


def test_a_url_holding_a_user_and_password_raises_a_setting_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    host = sandbox.url.removeprefix("http://")
    url = f"http://{sandbox.config.username}:{sandbox.config.password}@{host}_sandbox/corrections"

    with pytest.raises(SettingError) as raised:
        stage_corrections(url, settings(), tmp_path / "staged", 10)

    assert raised.value.name == "--corrections"
    assert sandbox.config.password not in str(raised.value)


def test_a_downloaded_source_is_removed_once_read(sandbox: SandboxServer, tmp_path: Path) -> None:
    folder = tmp_path / "staged"

    stage_corrections(f"{sandbox.url}_sandbox/corrections", corrections_settings(sandbox), folder, 2)

    assert sorted(path.name for path in folder.iterdir()) == [
        chunk_path(folder, 0).name,
        chunk_path(folder, 1).name,
        MALFORMED_FILE,
    ]


def test_malformed_records_served_by_the_url_are_named_and_the_others_staged(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.state.set_corrections([*RECORDS, {"order_ref_1": "X-9", "customer": {"email": "nope"}}])
    folder = tmp_path / "staged"

    result = stage_corrections(
        f"{sandbox.url}_sandbox/corrections", corrections_settings(sandbox), folder, 10
    )

    assert [(c.order_ref_1, c.records) for c in staged(folder, result)] == EXPECTED
    assert [(m.line, m.field) for m in staged_malformed(folder)] == [(4, "customer.email")]


def test_a_url_answering_an_error_raises_a_corrections_source_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    with pytest.raises(CorrectionsSourceError, match="answered 404"):
        stage_corrections(
            f"{sandbox.url}_sandbox/no-such-export", corrections_settings(sandbox), tmp_path, 10
        )


def test_an_unreachable_url_raises_a_corrections_source_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(CorrectionsSourceError, match="could not download"):
        stage_corrections(f"http://127.0.0.1:{port}/corrections", settings(), tmp_path / "staged", 10)


def test_credentials_are_never_sent_over_plain_http_to_another_machine(tmp_path: Path) -> None:
    remote = settings(CORRECTIONS_USERNAME="user", CORRECTIONS_PASSWORD="s3cret")
    with pytest.raises(SettingError, match="credentials are only sent over https") as refused:
        stage_corrections("http://files.example.com/corrections.csv", remote, tmp_path / "staged", 10)
    assert "s3cret" not in str(refused.value)


def test_a_csv_header_problem_is_malformed_but_no_record_read(tmp_path: Path) -> None:
    source = tmp_path / "c.csv"
    source.write_text("order_ref_1,delivery_address.postcode\nA-1,28013\nB-2,28014\n")
    result = stage_corrections(str(source), settings(), tmp_path / "staged", 10)
    assert (result.records, result.malformed) == (2, 1)

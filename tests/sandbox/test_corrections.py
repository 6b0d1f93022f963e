"""The sandbox's corrections export: Basic auth, JSON Lines by default, a JSON array or flattened CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
import requests

from sandbox.server import SandboxServer
from tests.sandbox.helpers import SandboxClient

RECORDS = [
    {
        "order_ref_1": "A-1",
        "customer": {"email": "ana@example.com"},
        "delivery_address": {"postal_code": "08001"},
    },
    {"order_ref_1": 1002, "invoice_address": {"city": "Peñíscola", "address_line_2": None}},
    {"order_ref_1": "C-3", "delivery_address": {"postal_code": 28013}},  # malformed, served as given
]


@pytest.fixture(autouse=True)
def _forget_corrections(sandbox_server: SandboxServer) -> Iterator[None]:
    """The sandbox is shared by the session: leave it serving no corrections."""
    yield
    sandbox_server.state.set_corrections([])


def set_corrections(sandbox: SandboxClient, records: object) -> requests.Response:
    return requests.post(f"{sandbox.url}_sandbox/corrections", json=records, timeout=5)


def get_corrections(sandbox: SandboxClient, query: str = "", **kwargs: object) -> requests.Response:
    return requests.get(f"{sandbox.url}_sandbox/corrections{query}", timeout=5, **kwargs)  # type: ignore[arg-type]


def test_get_without_credentials_is_401(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)

    response = get_corrections(sandbox)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "ana@example.com" not in response.text


def test_get_with_wrong_credentials_is_401(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)

    assert get_corrections(sandbox, auth=(sandbox.auth[0], "wrong")).status_code == 401


def test_post_sets_the_records_and_says_how_many(sandbox: SandboxClient) -> None:
    response = set_corrections(sandbox, RECORDS)

    assert response.status_code == 200
    assert response.json() == {"corrections": 3}
    assert sandbox.server.state.corrections() == RECORDS


def test_get_serves_json_lines_by_default_records_kept_as_given(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)

    response = get_corrections(sandbox, auth=sandbox.auth)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jsonl")
    assert response.text.endswith("\n")
    assert [json.loads(line) for line in response.text.splitlines()] == RECORDS
    assert "Peñíscola" in response.text  # not escaped


def test_get_serves_a_json_array_with_format_json(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)

    response = get_corrections(sandbox, "?format=json", auth=sandbox.auth)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == RECORDS


def test_get_serves_csv_with_flattened_columns_with_format_csv(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)

    response = get_corrections(sandbox, "?format=csv", auth=sandbox.auth)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    assert reader.fieldnames == [
        "order_ref_1",
        "customer.email",
        "delivery_address.postal_code",
        "invoice_address.city",
        "invoice_address.address_line_2",
    ]
    assert list(reader) == [
        {
            "order_ref_1": "A-1",
            "customer.email": "ana@example.com",
            "delivery_address.postal_code": "08001",
            "invoice_address.city": "",
            "invoice_address.address_line_2": "",
        },
        {
            "order_ref_1": "1002",
            "customer.email": "",
            "delivery_address.postal_code": "",
            "invoice_address.city": "Peñíscola",
            "invoice_address.address_line_2": "",
        },
        {
            "order_ref_1": "C-3",
            "customer.email": "",
            "delivery_address.postal_code": "28013",
            "invoice_address.city": "",
            "invoice_address.address_line_2": "",
        },
    ]


def test_an_unknown_format_is_422(sandbox: SandboxClient) -> None:
    assert get_corrections(sandbox, "?format=xml", auth=sandbox.auth).status_code == 422


def test_no_corrections_serve_an_empty_body(sandbox: SandboxClient) -> None:
    assert get_corrections(sandbox, auth=sandbox.auth).text == ""
    assert get_corrections(sandbox, "?format=json", auth=sandbox.auth).json() == []


def test_post_of_a_non_array_is_422_and_keeps_the_records(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)

    for body in ({"order_ref_1": "A-1"}, "A-1", None):
        response = set_corrections(sandbox, body)
        assert response.status_code == 422
        assert response.json() == {"errors": ["send a JSON array of correction records"]}

    assert sandbox.server.state.corrections() == RECORDS


def test_post_of_a_body_that_is_not_json_is_422(sandbox: SandboxClient) -> None:
    response = requests.post(f"{sandbox.url}_sandbox/corrections", data=b"[not json", timeout=5)

    assert response.status_code == 422
    assert response.json() == {"errors": ["send a JSON array of correction records"]}


def test_post_replaces_the_records_and_reset_forgets_them(sandbox: SandboxClient) -> None:
    set_corrections(sandbox, RECORDS)
    set_corrections(sandbox, RECORDS[:1])

    assert sandbox.server.state.corrections() == RECORDS[:1]

    sandbox.reset()

    assert sandbox.server.state.corrections() == []

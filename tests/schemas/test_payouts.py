from __future__ import annotations

from datetime import date

import pytest

from schemas.errors import DisbursementFormatError
from schemas.payouts import (
    DETAIL_DEPTH,
    Disbursement,
    DisbursementLine,
    disbursement_detail,
    disbursement_id,
    disbursements,
)

# The list call's example in SeQura's Disbursement API docs, its last (cut off) element left out.
DOCS_LIST = [
    {
        "disbursement": {
            "issue_date": "2014-12-02",
            "to_date": "2014-11-16",
            "currency": "EUR",
            "disbursed_amount": 34234,
            "adjustments_with_tax": 0,
            "adjustments": [],
            "reference": "0000008mlHWOC",
            "path": "/merchants/yourMerchantName/disbursements/c6105f92-5718-4355-9f5b-56b24fe19baa",
        }
    },
    {
        "disbursement": {
            "issue_date": "2014-11-25",
            "to_date": "2014-11-09",
            "currency": "EUR",
            "disbursed_amount": 54212,
            "adjustments_with_tax": 1210,
            "reference": "0000008mkTH4s",
            "path": "/merchants/yourMerchantName/disbursements/1e8c4c63-3b24-40f5-bbbb-b264835ff40c",
        }
    },
]
FIRST = disbursements(DOCS_LIST)[0]


def with_field(key: str, value: object) -> list[dict]:
    """The docs' first disbursement with `key` set to `value`."""
    return [{"disbursement": {**DOCS_LIST[0]["disbursement"], key: value}}]


def without_field(key: str) -> list[dict]:
    """The docs' first disbursement without `key`."""
    return [{"disbursement": {k: v for k, v in DOCS_LIST[0]["disbursement"].items() if k != key}}]


def test_the_docs_example_list_reads_as_two_disbursements_in_cents_and_dates() -> None:
    assert disbursements(DOCS_LIST) == [
        Disbursement(
            "0000008mlHWOC",
            date(2014, 12, 2),
            date(2014, 11, 16),
            "EUR",
            34234,
            0,
            "/merchants/yourMerchantName/disbursements/c6105f92-5718-4355-9f5b-56b24fe19baa",
        ),
        Disbursement(
            "0000008mkTH4s",
            date(2014, 11, 25),
            date(2014, 11, 9),
            "EUR",
            54212,
            1210,
            "/merchants/yourMerchantName/disbursements/1e8c4c63-3b24-40f5-bbbb-b264835ff40c",
        ),
    ]


def test_a_disbursement_without_adjustments_is_read() -> None:
    assert disbursements(without_field("adjustments"))[0].adjustments_with_tax == 0


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"disbursements": []}, "list is an object, not an array"),
        (None, "list is null, not an array"),
        ([{"reference": "X"}], "disbursement #1 of SeQura's list is not an object with a 'disbursement'"),
        (with_field("disbursed_amount", 342.34), "disbursement 0000008mlHWOC: 'disbursed_amount' is 342.34"),
        (with_field("disbursed_amount", "34234"), "'disbursed_amount' is '34234', not an amount in integer"),
        (with_field("adjustments_with_tax", True), "'adjustments_with_tax' is 'True', not an amount"),
        (with_field("issue_date", "2014-02-30"), "'issue_date' is '2014-02-30', not a date like 2014-12-02"),
        (with_field("to_date", "20141116"), "'to_date' is '20141116', not a date"),
        (with_field("currency", "euro"), "'currency' is 'euro', not a code like EUR"),
        (with_field("path", 7), "'path' is '7', not a non-empty string"),
        (without_field("disbursed_amount"), "disbursement 0000008mlHWOC has no 'disbursed_amount'"),
        (without_field("reference"), "disbursement #1 has no 'reference'"),
        (
            [{"disbursement": {**DOCS_LIST[0]["disbursement"], "reference": "REF\nX\u202e", "path": ""}}],
            "disbursement REF\\nX\\u202e: its reference is not one word of at most 255 printable",
        ),
        (
            with_field("reference", "0000008 mlHWOC"),
            "disbursement 0000008 mlHWOC: its reference is not one word",
        ),
        (
            with_field("reference", "R" * 256),
            "its reference is not one word of at most 255 printable characters",
        ),
    ],
    ids=[
        "object",
        "null",
        "unwrapped",
        "decimal amount",
        "string amount",
        "bool amount",
        "impossible date",
        "basic date",
        "currency",
        "path",
        "missing amount",
        "missing reference",
        "reference shown inert",
        "reference of two words",
        "reference too long",
    ],
)
def test_a_malformed_list_is_refused_naming_the_disbursement_and_the_field(
    document: object, named: str
) -> None:
    with pytest.raises(DisbursementFormatError) as refused:
        disbursements(document)
    assert named in str(refused.value)


def test_lines_are_found_at_any_depth_and_an_int_order_ref_is_kept_as_text() -> None:
    detail = {
        "disbursement": {
            "reference": "0000008mlHWOC",
            "orders": [
                {"order_ref_1": "ABCDEFGHI", "amount_with_tax": 12100, "maximum_amount_with_tax": 12100},
                {"shipments": {"first": [{"order_ref_1": 1042, "amount_with_tax": -300}]}},
            ],
        },
        "order_ref_1": "not a line: no amount",
    }
    assert disbursement_detail(FIRST, detail).lines == (
        DisbursementLine("ABCDEFGHI", 12100, 12100),
        DisbursementLine("1042", -300, None),
    )


def test_a_detail_that_is_itself_a_list_of_lines_is_read() -> None:
    lines = [{"order_ref_1": "A", "amount_with_tax": 1}, {"order_ref_1": "B", "amount_with_tax": 2}]
    assert [line.order_ref_1 for line in disbursement_detail(FIRST, lines).lines] == ["A", "B"]


def test_a_detail_holding_no_lines_is_refused_naming_the_disbursement_and_its_keys() -> None:
    detail = {"disbursement": {"orders": [{"ref": "A", "amount": 1}]}, "total\n": 1}
    with pytest.raises(DisbursementFormatError) as refused:
        disbursement_detail(FIRST, detail)
    assert "disbursement 0000008mlHWOC: its detail holds no order lines" in str(refused.value)
    assert "an object with keys disbursement, total\\n" in str(refused.value)
    assert "not called unpaid" in str(refused.value)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ({"order_ref_1": "A", "amount_with_tax": 12.1}, "order A: 'amount_with_tax' is 12.1 (a decimal)"),
        ({"order_ref_1": "A", "amount_with_tax": False}, "order A: 'amount_with_tax' is 'False', not an"),
        ({"order_ref_1": "A", "amount_with_tax": "121"}, "order A: 'amount_with_tax' is '121', not an"),
        ({"order_ref_1": True, "amount_with_tax": 1}, "'order_ref_1' is 'True', not a reference"),
        ({"order_ref_1": "", "amount_with_tax": 1}, "'order_ref_1' is '', not a reference"),
        ({"order_ref_1": "x" * 256, "amount_with_tax": 1}, "not a reference of 1 to 255 characters"),
        (
            {"order_ref_1": "A", "amount_with_tax": 1, "maximum_amount_with_tax": 1.5},
            "order A: 'maximum_amount_with_tax' is 1.5 (a decimal)",
        ),
    ],
    ids=["decimal", "bool", "string", "bool ref", "empty ref", "long ref", "decimal maximum"],
)
def test_a_malformed_line_is_refused_naming_the_order_rather_than_skipped(line: dict, named: str) -> None:
    with pytest.raises(DisbursementFormatError, match="disbursement 0000008mlHWOC") as refused:
        disbursement_detail(FIRST, {"orders": [{"order_ref_1": "OK", "amount_with_tax": 1}, line]})
    assert named in str(refused.value)


def test_a_detail_nested_past_the_bound_is_refused_not_walked_forever() -> None:
    deep: object = {"order_ref_1": "A", "amount_with_tax": 1}
    for _ in range(DETAIL_DEPTH + 1):
        deep = [deep]
    with pytest.raises(DisbursementFormatError, match=f"deeper than {DETAIL_DEPTH} levels"):
        disbursement_detail(FIRST, deep)


def test_a_path_under_this_merchants_disbursements_gives_its_id() -> None:
    assert disbursement_id(FIRST, "yourMerchantName") == "c6105f92-5718-4355-9f5b-56b24fe19baa"


@pytest.mark.parametrize(
    "path",
    [
        "https://elsewhere.example/merchants/yourMerchantName/disbursements/c6105f92",
        "//elsewhere.example/merchants/yourMerchantName/disbursements/c6105f92",
        "/merchants/yourMerchantName/disbursements/../../other/disbursements/c6105f92",
        "/merchants/yourMerchantName/disbursements/%2e%2e",
        "/merchants/yourMerchantName/disbursements/..",
        "/merchants/yourMerchantName/disbursements/a\\b",
        "/merchants/yourMerchantName/disbursements/c6105f92?x=1",
        "/merchants/yourMerchantName/disbursements/c6105f92#x",
        "/merchants/yourMerchantName/disbursements/c6105f92/more",
        "/merchants/yourMerchantName/disbursements/c6105f92\n",
        "/merchants/yourMerchantName/disbursements/",
        "/merchants/otherMerchant/disbursements/c6105f92",
        "merchants/yourMerchantName/disbursements/c6105f92",
        "/merchants/yourMerchantName/disbursements/\uff10",
    ],
)
def test_any_other_path_is_refused_naming_the_disbursement_and_the_path_shown_inert(path: str) -> None:
    hostile = Disbursement("0000008mlHWOC", date(2014, 12, 2), date(2014, 11, 16), "EUR", 1, 0, path)
    with pytest.raises(DisbursementFormatError, match="disbursement 0000008mlHWOC: its path") as refused:
        disbursement_id(hostile, "yourMerchantName")
    assert "\n" not in str(refused.value)

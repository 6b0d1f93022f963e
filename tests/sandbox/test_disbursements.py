"""The Disbursement API (GET /merchants/{merchant}/disbursements[/{id}]) over a real socket."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.helpers import (
    MERCHANT,
    SandboxClient,
    empty_cart,
    make_cart,
    make_order,
    make_order_update,
    make_report,
    product,
)

SHIPPED_TOTAL = 2495  # make_cart()'s total
OTHER_MERCHANT = "demo_merchant_pt"


def report_on(sandbox: SandboxClient, moment: str, *refs: str, merchant: str = MERCHANT) -> None:
    """Report the orders with the sandbox's clock at moment."""
    sandbox.set_payouts(now=moment)
    response = sandbox.post_report(
        make_report(*(make_order(ref) for ref in refs), merchant=merchant), merchant
    )
    assert response.status_code == 204, response.text


def disbursements(sandbox: SandboxClient, merchant: str = MERCHANT) -> list[dict[str, Any]]:
    """The merchant's disbursements, each with its lines, newest first."""
    response = sandbox.get_api(f"merchants/{merchant}/disbursements", merchant)
    assert response.status_code == 200, response.text
    return [detail(sandbox, item["disbursement"]["path"], merchant) for item in response.json()]


def detail(sandbox: SandboxClient, path: str, merchant: str = MERCHANT) -> dict[str, Any]:
    """One disbursement's detail body."""
    response = sandbox.get_api(path.lstrip("/"), merchant)
    assert response.status_code == 200, response.text
    return response.json()["disbursement"]


@pytest.mark.parametrize(
    ("reported_at", "to_date"),
    [
        ("2026-11-02T10:00:00+00:00", "2026-11-08"),  # a Monday: the Sunday 6 days later
        ("2026-11-05T23:00:00+00:00", "2026-11-08"),  # a Thursday: exactly pay_after_days before
        ("2026-11-06T00:30:00+00:00", "2026-11-15"),  # a Friday: too late for that Sunday
    ],
)
def test_reported_order_is_paid_in_the_first_week_ending_pay_after_days_later(
    sandbox: SandboxClient, reported_at: str, to_date: str
) -> None:
    report_on(sandbox, reported_at, "P-1")
    sandbox.set_payouts(now="2026-11-22T08:00:00+00:00")

    [paid] = disbursements(sandbox)

    assert paid["to_date"] == to_date
    assert paid["orders"] == [
        {"order_ref_1": "P-1", "amount_with_tax": SHIPPED_TOTAL, "maximum_amount_with_tax": SHIPPED_TOTAL}
    ]
    assert (paid["currency"], paid["disbursed_amount"], paid["adjustments_with_tax"]) == (
        "EUR",
        SHIPPED_TOTAL,
        0,
    )
    assert paid["path"] == f"/merchants/{MERCHANT}/disbursements/{paid['path'].rsplit('/', 1)[1]}"


def test_disbursement_is_listed_only_from_its_issue_date(sandbox: SandboxClient) -> None:
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "P-1")

    sandbox.set_payouts(now="2026-11-14T23:59:00+00:00")
    before = disbursements(sandbox)
    sandbox.set_payouts(now="2026-11-15T00:00:00+00:00")
    [issued] = disbursements(sandbox)

    assert before == []
    assert (issued["to_date"], issued["issue_date"]) == ("2026-11-08", "2026-11-15")


def test_return_after_payment_is_a_negative_line_in_a_later_disbursement(sandbox: SandboxClient) -> None:
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "R-1")
    sandbox.set_payouts(now="2026-11-16T10:00:00+00:00")
    kept = make_cart(product("SKU-1", "Camisa azul", quantity=1, price=1250))
    returned = make_order_update("R-1", shipped_cart=kept, unshipped_cart=empty_cart())
    assert sandbox.put_order("R-1", returned).status_code == 200
    sandbox.set_payouts(now="2026-11-29T12:00:00+00:00")

    later, first = disbursements(sandbox)

    assert (later["to_date"], first["to_date"]) == ("2026-11-22", "2026-11-08")
    assert later["orders"] == [
        {
            "order_ref_1": "R-1",
            "amount_with_tax": 1250 - SHIPPED_TOTAL,
            "maximum_amount_with_tax": SHIPPED_TOTAL,
        }
    ]
    assert later["disbursed_amount"] == 1250 - SHIPPED_TOTAL
    assert first["orders"][0]["amount_with_tax"] + later["orders"][0]["amount_with_tax"] == 1250


def test_return_before_payment_shrinks_the_first_line(sandbox: SandboxClient) -> None:
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "R-1")
    kept = make_cart(product("SKU-1", "Camisa azul", quantity=1, price=1250))
    sandbox.set_payouts(now="2026-11-03T10:00:00+00:00")
    assert sandbox.put_order("R-1", make_order_update("R-1", shipped_cart=kept)).status_code == 200
    sandbox.set_payouts(now="2026-11-29T12:00:00+00:00")

    [paid] = disbursements(sandbox)

    assert paid["orders"] == [
        {"order_ref_1": "R-1", "amount_with_tax": 1250, "maximum_amount_with_tax": SHIPPED_TOTAL}
    ]


def test_payout_faults_leave_out_pay_less_and_pay_unknown_orders(sandbox: SandboxClient) -> None:
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "A", "B", "C")
    settings = sandbox.set_payouts(
        now="2026-11-15T10:00:00+00:00",
        leave_out=["A"],
        pay_less={"B": 100},
        pay_unknown=[{"order_ref_1": "GHOST", "amount_with_tax": 1234}],
    )

    [paid] = disbursements(sandbox)

    assert settings["leave_out"] == ["A"]
    assert [(line["order_ref_1"], line["amount_with_tax"]) for line in paid["orders"]] == [
        ("B", SHIPPED_TOTAL - 100),
        ("C", SHIPPED_TOTAL),
        ("GHOST", 1234),
    ]
    assert paid["disbursed_amount"] == 2 * SHIPPED_TOTAL - 100 + 1234


def test_two_reads_give_identical_bodies(sandbox: SandboxClient) -> None:
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "P-1")
    sandbox.set_payouts(now="2026-11-29T10:00:00+00:00")
    listing = sandbox.get_api(f"merchants/{MERCHANT}/disbursements")
    path = listing.json()[0]["disbursement"]["path"].lstrip("/")

    again = sandbox.get_api(f"merchants/{MERCHANT}/disbursements")

    assert again.content == listing.content
    assert sandbox.get_api(path).content == sandbox.get_api(path).content


def test_merchant_sees_only_its_own_disbursements(sandbox: SandboxClient) -> None:
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "MINE")
    report_on(sandbox, "2026-11-02T10:00:00+00:00", "THEIRS", merchant=OTHER_MERCHANT)
    sandbox.set_payouts(now="2026-11-15T10:00:00+00:00")
    theirs = sandbox.get_api(f"merchants/{OTHER_MERCHANT}/disbursements", OTHER_MERCHANT).json()
    their_path = theirs[0]["disbursement"]["path"].lstrip("/")

    [mine] = disbursements(sandbox)

    assert [line["order_ref_1"] for line in mine["orders"]] == ["MINE"]
    assert sandbox.get_api(f"merchants/{OTHER_MERCHANT}/disbursements").status_code == 403
    assert sandbox.get_api(their_path).status_code == 403


def test_unknown_disbursement_id_is_404(sandbox: SandboxClient) -> None:
    response = sandbox.get_api(f"merchants/{MERCHANT}/disbursements/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404
    assert response.json() == {
        "errors": [f"Disbursement 00000000-0000-0000-0000-000000000000 not found for merchant {MERCHANT}"]
    }


def test_wrong_credentials_are_refused_with_401(sandbox: SandboxClient) -> None:
    response = sandbox.get_api(f"merchants/{MERCHANT}/disbursements", auth=("demo", "wrong"))

    assert response.status_code == 401


def test_fault_plan_applies_to_disbursement_calls_and_they_are_logged(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=1)

    statuses = [sandbox.get_api(f"merchants/{MERCHANT}/disbursements").status_code for _ in range(2)]

    assert statuses == [500, 200]
    assert [(r["method"], r["path"], r["status"]) for r in sandbox.inspect("requests")] == [
        ("GET", f"/merchants/{MERCHANT}/disbursements", 500),
        ("GET", f"/merchants/{MERCHANT}/disbursements", 200),
    ]


def test_reset_forgets_the_payout_settings(sandbox: SandboxClient) -> None:
    sandbox.set_payouts(now="2026-11-15T10:00:00+00:00", delay_days=3, leave_out=["A"])

    sandbox.reset()

    assert sandbox.inspect("payouts") == {
        "now": None,
        "delay_days": 7,
        "pay_after_days": 3,
        "leave_out": [],
        "pay_less": {},
        "pay_unknown": [],
    }

"""Order updates (PUT /merchants/{merchant}/orders/{order_ref}) over a real socket."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.helpers import (
    MERCHANT,
    SandboxClient,
    empty_cart,
    make_cart,
    make_order,
    make_order_update,
    product,
)


def test_order_update_is_accepted_with_200_and_recorded(sandbox: SandboxClient) -> None:
    sandbox.report("ORDER-7")
    body = make_order_update("ORDER-7")

    response = sandbox.put_order("ORDER-7", body)

    assert response.status_code == 200
    assert response.json() == {}
    [update] = sandbox.inspect("order_updates")
    assert (update["merchant"], update["order_ref_1"], update["order"]) == (
        MERCHANT,
        "ORDER-7",
        body["order"],
    )


def test_order_ref_with_a_slash_is_reached_through_an_encoded_path(sandbox: SandboxClient) -> None:
    sandbox.report("A14/12345")
    response = sandbox.put_order("A14/12345", make_order_update("A14/12345"))

    assert response.status_code == 200
    assert [u["order_ref_1"] for u in sandbox.inspect("order_updates")] == ["A14/12345"]


def test_cancellation_with_two_empty_carts_is_accepted(sandbox: SandboxClient) -> None:
    sandbox.report("C-1")
    body = make_order_update("C-1", shipped_cart=empty_cart(), unshipped_cart=empty_cart())

    assert sandbox.put_order("C-1", body).status_code == 200
    assert sandbox.inspect("order_updates")[0]["order"]["shipped_cart"]["items"] == []


def test_every_update_of_an_order_is_kept_in_order(sandbox: SandboxClient) -> None:
    sandbox.report("P-1")
    partial = make_order_update(
        "P-1",
        shipped_cart=make_cart(product("A", "Camisa")),
        unshipped_cart=make_cart(product("B", "Pantalón")),
    )
    full = make_order_update("P-1", shipped_cart=make_cart(product("A", "Camisa"), product("B", "Pantalón")))

    assert sandbox.put_order("P-1", partial).status_code == 200
    assert sandbox.put_order("P-1", full).status_code == 200

    assert [u["order"] for u in sandbox.inspect("order_updates")] == [partial["order"], full["order"]]


def test_body_ref_that_differs_from_the_path_ref_is_rejected_with_409(sandbox: SandboxClient) -> None:
    sandbox.report("ORDER-1")
    response = sandbox.put_order("ORDER-1", make_order_update("ORDER-2"))

    assert response.status_code == 409
    assert response.json() == {
        "errors": [
            'Invalid data: merchant_reference.order_ref_1 is "ORDER-2" but the URL names order "ORDER-1"'
        ]
    }
    assert sandbox.inspect("order_updates") == []


def test_shipped_cart_that_does_not_add_up_is_rejected_with_sequra_message(sandbox: SandboxClient) -> None:
    sandbox.report("S-1")
    body = make_order_update("S-1", shipped_cart=make_cart(product("A", "Camisa", price=5055), total=5097))

    response = sandbox.put_order("S-1", body)

    assert response.status_code == 409
    assert response.json()["errors"] == [
        "Invalid data: In shipped_cart, items' total_with_tax add up to 5055 (5055) "
        "but order_total_with_tax is 5097. The diff is 42."
    ]


def test_update_without_unshipped_cart_is_rejected_with_409(sandbox: SandboxClient) -> None:
    sandbox.report("U-1")
    body = make_order_update("U-1")
    del body["order"]["unshipped_cart"]

    response = sandbox.put_order("U-1", body)

    assert response.status_code == 409
    assert response.json()["errors"] == ["Invalid data: unshipped_cart is required"]


def test_path_merchant_other_than_the_header_merchant_is_refused_with_403(sandbox: SandboxClient) -> None:
    response = sandbox.put_order("M-1", make_order_update("M-1"), path_merchant="other_merchant")

    assert response.status_code == 403
    assert response.json() == {"errors": ["You do not have access to this URL"]}


def test_body_merchant_other_than_the_header_merchant_is_refused_with_403(sandbox: SandboxClient) -> None:
    response = sandbox.put_order("M-2", make_order_update("M-2", merchant="other_merchant"))

    assert response.status_code == 403
    assert sandbox.inspect("order_updates") == []


def test_update_of_an_order_never_reported_is_answered_404_and_not_recorded(sandbox: SandboxClient) -> None:
    body = make_order_update("NEVER-1", shipped_cart=make_cart(product("A", "Camisa"), total=1))

    response = sandbox.put_order("NEVER-1", body)  # unknown comes before invalid

    assert response.status_code == 404
    assert response.json() == {"errors": ["Order NEVER-1 not found for merchant demo_merchant"]}
    assert sandbox.inspect("order_updates") == []


def test_negative_quantity_in_an_update_is_refused_with_409(sandbox: SandboxClient) -> None:
    sandbox.report("N-1")
    body = make_order_update("N-1", shipped_cart=make_cart(product("A", "Camisa", quantity=-1, price=-1000)))

    response = sandbox.put_order("N-1", body)

    assert response.status_code == 409
    assert any("quantity must be an integer of at least 1, got -1" in e for e in response.json()["errors"])


def test_held_state_follows_the_report_then_each_update(sandbox: SandboxClient) -> None:
    sandbox.report("H-1")
    reported = sandbox.held("H-1").json()
    shipped = make_cart(product("A", "Camisa"))
    sandbox.put_order("H-1", make_order_update("H-1", shipped_cart=shipped, unshipped_cart=empty_cart()))

    held = sandbox.held("H-1").json()

    assert reported["shipped_cart"] == make_order("H-1")["cart"]
    assert (held["shipped_cart"], held["unshipped_cart"]) == (shipped, empty_cart())
    assert held["customer"] == make_order("H-1")["customer"]
    assert (held["delivery_reports"], held["order_updates"]) == (1, 1)


def test_held_state_of_an_unknown_order_is_404(sandbox: SandboxClient) -> None:
    assert sandbox.held("NOPE").status_code == 404


def test_faults_are_injected_on_updates_as_on_reports(sandbox: SandboxClient) -> None:
    sandbox.report("F-1")
    sandbox.set_faults(fail_next=1, rate_limit_next=1)

    first = sandbox.put_order("F-1", make_order_update("F-1"))
    second = sandbox.put_order("F-1", make_order_update("F-1"))
    third = sandbox.put_order("F-1", make_order_update("F-1"))

    assert (first.status_code, second.status_code, third.status_code) == (429, 500, 200)
    assert len(sandbox.inspect("order_updates")) == 1


def test_a_lost_answer_is_an_update_applied_whose_connection_then_drops(sandbox: SandboxClient) -> None:
    sandbox.report("L-1")
    sandbox.set_faults(lose_answer_next=1)
    shipped = make_cart(product("A", "Camisa"))

    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the body promised never comes
        sandbox.put_order("L-1", make_order_update("L-1", shipped_cart=shipped))

    assert sandbox.held("L-1").json()["shipped_cart"] == shipped


def test_an_order_approved_at_checkout_is_held_approved_then_cancelled_then_shipped(
    sandbox: SandboxClient,
) -> None:
    response = requests.post(
        sandbox.url + "_sandbox/checkouts", json={"merchant": MERCHANT, "order_refs": ["Q-1"]}, timeout=5
    )
    response.raise_for_status()
    assert sandbox.held("Q-1").json()["state"] == "approved"

    cancelled = make_order_update("Q-1", shipped_cart=empty_cart(), unshipped_cart=empty_cart())
    assert sandbox.put_order("Q-1", cancelled).status_code == 200
    assert sandbox.held("Q-1").json()["state"] == "cancelled"

    shipped = make_order_update("Q-1", shipped_cart=make_cart(product("A", "Camisa")))
    assert sandbox.put_order("Q-1", shipped).status_code == 200
    assert sandbox.held("Q-1").json()["state"] == "shipped"


def test_a_cancellation_of_an_order_never_approved_is_answered_404_and_holds_nothing(
    sandbox: SandboxClient,
) -> None:
    cancelled = make_order_update("NEVER-1", shipped_cart=empty_cart(), unshipped_cart=empty_cart())

    assert sandbox.put_order("NEVER-1", cancelled).status_code == 404
    assert sandbox.held("NEVER-1").status_code == 404

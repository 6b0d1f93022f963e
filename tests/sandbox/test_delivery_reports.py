"""Delivery reports over a real socket: auth, merchant checks, validation and what gets recorded."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import (
    MERCHANT,
    SandboxClient,
    make_cart,
    make_order,
    make_report,
    product,
    with_change,
)


def rejected_errors(sandbox: SandboxClient, body: object) -> list[str]:
    """Post body, check it was rejected with 409 and nothing was recorded, and return the errors."""
    response = sandbox.post_report(body)
    assert response.status_code == 409, response.text
    assert sandbox.inspect("orders") == []
    assert sandbox.inspect("delivery_reports") == []
    return response.json()["errors"]


def test_valid_delivery_report_is_accepted_with_204_and_its_orders_are_listed(sandbox: SandboxClient) -> None:
    body = make_report(make_order("A-1"), make_order("A-2"))

    response = sandbox.post_report(body)

    assert response.status_code == 204
    assert response.content == b""
    orders = sandbox.inspect("orders")
    assert [(o["merchant"], o["order_ref_1"]) for o in orders] == [(MERCHANT, "A-1"), (MERCHANT, "A-2")]
    assert [o["order"] for o in orders] == body["delivery_report"]["orders"]
    [report] = sandbox.inspect("delivery_reports")
    assert report["merchant"] == MERCHANT
    assert report["body"] == body


def test_report_with_no_orders_is_accepted(sandbox: SandboxClient) -> None:
    assert sandbox.post_report(make_report()).status_code == 204
    assert len(sandbox.inspect("delivery_reports")) == 1
    assert sandbox.inspect("orders") == []


def test_order_reported_twice_in_two_reports_is_listed_twice(sandbox: SandboxClient) -> None:
    for _ in range(2):
        assert sandbox.post_report(make_report(make_order("TWICE"))).status_code == 204

    assert [o["order_ref_1"] for o in sandbox.inspect("orders")] == ["TWICE", "TWICE"]


def test_integer_order_ref_is_accepted_and_listed_as_a_string(sandbox: SandboxClient) -> None:
    assert sandbox.post_report(make_report(make_order(4711))).status_code == 204

    [listed] = sandbox.inspect("orders")
    assert listed["order_ref_1"] == "4711"
    assert listed["order"]["merchant_reference"]["order_ref_1"] == 4711


def test_wrong_password_is_refused_with_401_in_plain_text(sandbox: SandboxClient) -> None:
    response = sandbox.post_report(make_report(make_order()), auth=("demo", "wrong"))

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "HTTP Basic: Access denied."
    assert sandbox.inspect("orders") == []


def test_request_without_auth_is_refused_with_401_in_plain_text(sandbox: SandboxClient) -> None:
    response = sandbox.post_report(make_report(make_order()), auth=None)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "HTTP Basic: Access denied."


@pytest.mark.parametrize("merchant", [None, "someone_else"], ids=["missing", "unknown"])
def test_missing_or_unknown_merchant_header_is_refused_with_403(
    sandbox: SandboxClient, merchant: str | None
) -> None:
    response = sandbox.post_report(make_report(make_order()), merchant=merchant)

    assert response.status_code == 403
    assert response.json() == {"errors": ["You do not have access to this URL"]}


def test_report_for_another_merchant_than_the_header_is_refused_with_403(sandbox: SandboxClient) -> None:
    response = sandbox.post_report(make_report(make_order(), merchant="other_merchant"))

    assert response.status_code == 403
    assert response.json() == {"errors": ["You do not have access to this URL"]}
    assert sandbox.inspect("orders") == []


def test_malformed_json_is_refused_with_400(sandbox: SandboxClient) -> None:
    response = sandbox.post_report(None, data=b'{"delivery_report": ', auth=sandbox.auth)

    assert response.status_code == 400
    assert response.json() == {"errors": ["Malformed JSON"]}


def test_delivery_report_with_totals_that_do_not_add_up_is_rejected_with_409(sandbox: SandboxClient) -> None:
    items = [
        product("SKU-1", "Camisa", price=200),
        product("SKU-2", "Calcetines", price=295),
        {"type": "discount", "reference": "D", "name": "Descuento", "total_with_tax": -1500},
        product("SKU-3", "Abrigo", price=6060),
    ]
    body = make_report(make_order("ABCDEFGHI", cart=make_cart(*items, total=5097)), make_order("FINE"))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order ABCDEFGHI: In cart, items' total_with_tax add up to 5055 "
        "(200+295+-1500+6060) but order_total_with_tax is 5097. The diff is 42."
    ]


@pytest.mark.parametrize("amount", [12.5, 12.0], ids=["fraction", "whole-float"])
def test_float_money_is_rejected_with_409(sandbox: SandboxClient, amount: float) -> None:
    body = with_change(
        make_report(make_order("F-1")), "delivery_report.orders.0.cart.items.1.total_with_tax", amount
    )

    errors = rejected_errors(sandbox, body)

    assert errors == [
        f"Invalid data: order F-1: cart.items[1].total_with_tax must be an integer number of cents, got "
        f"{amount}"
    ]


def test_boolean_where_an_integer_is_expected_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = with_change(make_report(make_order("B-1")), "delivery_report.orders.0.cart.items.0.quantity", True)

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order B-1: cart.items[0].quantity must be an integer of at least 1, got true"
    ]


def test_unknown_item_type_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = with_change(
        make_report(make_order("T-1")), "delivery_report.orders.0.cart.items.1.type", "gift_card"
    )

    [error] = rejected_errors(sandbox, body)

    assert error.startswith("Invalid data: order T-1: cart.items[1].type must be one of product, service,")
    assert error.endswith('got "gift_card"')


def test_order_state_other_than_shipped_or_delivered_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = make_report(make_order("S-1", state="cancelled"))

    assert rejected_errors(sandbox, body) == [
        'Invalid data: order S-1: state must be one of shipped, delivered, got "cancelled"'
    ]


def test_order_without_delivery_method_name_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = make_report(make_order("D-1", delivery_method={"provider": "Correos"}))

    assert rejected_errors(sandbox, body) == ["Invalid data: order D-1: delivery_method.name is required"]


def test_null_value_in_an_order_is_rejected_with_409_naming_its_path(sandbox: SandboxClient) -> None:
    body = with_change(
        make_report(make_order("N-1")), "delivery_report.orders.0.delivery_address.surnames", None
    )

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order N-1: delivery_address.surnames is null; leave the key out instead"
    ]


def test_sent_at_without_utc_offset_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = make_report(make_order("T-2", sent_at="2026-11-20T10:15:00"))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order T-2: sent_at must be an ISO 8601 date-time with a UTC offset, got "
        '"2026-11-20T10:15:00"'
    ]


def test_discount_with_a_positive_total_is_rejected_with_409(sandbox: SandboxClient) -> None:
    discount = {"type": "discount", "reference": "D", "name": "Descuento", "total_with_tax": 300}
    body = make_report(make_order("P-1", cart=make_cart(product("SKU", "Camisa"), discount)))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order P-1: cart.items[1].total_with_tax of a discount item must be zero or "
        "negative, got 300"
    ]


def test_address_with_an_unknown_key_or_a_lowercase_country_is_rejected_with_409(
    sandbox: SandboxClient,
) -> None:
    address = {"city": "Madrid", "country_code": "es", "nin": "12345678Z"}
    body = make_report(make_order("AD-1", invoice_address=address))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order AD-1: invoice_address.country_code must be a code of 2 uppercase letters, got "
        '"es"',
        "Invalid data: order AD-1: invoice_address.nin is not an allowed key",
    ]


def test_postal_tracking_without_tracking_number_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = make_report(make_order("TR-1", trackings=[{"type": "postal", "carrier": "SEUR"}]))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order TR-1: trackings[0].tracking_number is required"
    ]


def test_same_order_twice_in_one_report_is_rejected_with_409(sandbox: SandboxClient) -> None:
    body = make_report(make_order("DUP"), make_order("OTHER"), make_order("DUP"))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: order DUP: merchant_reference.order_ref_1 appears more than once in this report"
    ]


def test_every_error_of_every_order_is_reported_with_its_own_order_prefix(sandbox: SandboxClient) -> None:
    first = make_order("E-1", state="lost", customer={"email": ""})
    second = make_order("E-2", cart=make_cart(product("SKU", "Camisa", price=1000), total=999))
    body = make_report(first, make_order("E-OK"), second)

    errors = rejected_errors(sandbox, body)

    assert errors == [
        'Invalid data: order E-1: state must be one of shipped, delivered, got "lost"',
        'Invalid data: order E-1: customer.email must be a non-empty string, got ""',
        "Invalid data: order E-2: In cart, items' total_with_tax add up to 1000 (1000) "
        "but order_total_with_tax is 999. The diff is -1.",
    ]


def test_order_without_a_usable_ref_is_named_by_its_position(sandbox: SandboxClient) -> None:
    body = make_report(make_order("GOOD"), make_order(""))

    assert rejected_errors(sandbox, body) == [
        "Invalid data: orders[1]: merchant_reference.order_ref_1 must be a non-empty string or an integer, "
        'got ""'
    ]


def test_report_without_platform_gets_an_error_without_order_prefix(sandbox: SandboxClient) -> None:
    body = make_report(make_order("PL-1"))
    del body["delivery_report"]["platform"]

    assert rejected_errors(sandbox, body) == ["Invalid data: delivery_report.platform is required"]


def test_cart_fully_paid_by_a_discount_with_total_zero_is_accepted(sandbox: SandboxClient) -> None:
    discount = {"type": "discount", "reference": "FREE", "name": "Regalo 100%", "total_with_tax": -2500}
    cart = make_cart(product("SKU-1", "Camisa", quantity=2, price=1250), discount)
    assert cart["order_total_with_tax"] == 0

    response = sandbox.post_report(make_report(make_order("FREE-1", cart=cart)))

    assert response.status_code == 204
    assert [o["order_ref_1"] for o in sandbox.inspect("orders")] == ["FREE-1"]


def test_emoji_and_accents_are_stored_exactly_as_sent(sandbox: SandboxClient) -> None:
    names = {"given_names": "José Ñandú 🦜", "surnames": "Müller-Łukasiewicz 日本"}
    item = product("SKU-ß", "Camiseta «edición» 👕", price=1999)
    order = make_order(
        "ÜTF-8/✓",
        customer={"email": "jose@example.com", **names},
        delivery_address={"city": "A Coruña", **names},
        cart=make_cart(item),
    )

    assert sandbox.post_report(make_report(order)).status_code == 204

    [listed] = sandbox.inspect("orders")
    assert listed["order"] == order
    assert listed["order_ref_1"] == "ÜTF-8/✓"
    assert listed["order"]["customer"]["given_names"].encode() == "José Ñandú 🦜".encode()


def test_unknown_item_keys_are_allowed(sandbox: SandboxClient) -> None:
    item = {**product("SKU", "Camisa"), "downloadable": False, "category": "Ropa", "url": "https://shop/p/1"}
    assert sandbox.post_report(make_report(make_order("K-1", cart=make_cart(item)))).status_code == 204


def test_rejected_requests_are_logged_too(sandbox: SandboxClient) -> None:
    sandbox.post_report(make_report(make_order()), auth=None)
    sandbox.post_report(make_report(make_order("BAD", state="lost")))
    sandbox.post_report(make_report(make_order()))

    log = sandbox.inspect("requests")

    assert [(entry["method"], entry["path"], entry["status"]) for entry in log] == [
        ("POST", "/orders/delivery_reports", 401),
        ("POST", "/orders/delivery_reports", 409),
        ("POST", "/orders/delivery_reports", 204),
    ]

"""The validation rules as pure functions, without a server."""

from __future__ import annotations

from sandbox.validation import order_ref_1, validate_cart, validate_delivery_report, validate_order_update
from tests.sandbox.helpers import empty_cart, make_cart, make_order, make_order_update, make_report, product

MINIMAL_REPORT = {
    "delivery_report": {
        "merchant": {"id": "testMerchantId"},
        "orders": [],
        "platform": {
            "name": "testName",
            "version": "testVersion",
            "uname": "testUName",
            "db_name": "testDbName",
            "db_version": "testDbVersion",
        },
    }
}


def test_minimal_report_from_sequra_fixtures_is_valid() -> None:
    assert validate_delivery_report(MINIMAL_REPORT) == []


def test_body_without_delivery_report_is_invalid() -> None:
    assert validate_delivery_report({"orders": []}) == [
        "Invalid data: the body must be an object with a delivery_report object"
    ]


def test_report_level_errors_are_all_listed_without_order_prefix() -> None:
    body = make_report(make_order("A"))
    body["delivery_report"]["merchant"] = {"id": 12}
    body["delivery_report"]["platform"] = {"name": "PrestaShop", "version": None}
    body["delivery_report"]["statistics"] = {}

    assert validate_delivery_report(body) == [
        "Invalid data: delivery_report.merchant.id must be a non-empty string, got 12",
        "Invalid data: delivery_report.statistics.orders is required",
        "Invalid data: delivery_report.platform.version is null; leave the key out instead",
        "Invalid data: delivery_report.platform.uname is required",
        "Invalid data: delivery_report.platform.db_name is required",
        "Invalid data: delivery_report.platform.db_version is required",
    ]


def test_cart_breakdown_matches_sequra_message_shape() -> None:
    amounts = [200, 295, -1500, 6060]
    items = [{"type": "invoice_fee", "total_with_tax": amount} for amount in amounts]
    cart = {"currency": "EUR", "order_total_with_tax": 5097, "items": items}

    assert validate_cart(cart, "shipped_cart") == [
        "In shipped_cart, items' total_with_tax add up to 5055 (200+295+-1500+6060) "
        "but order_total_with_tax is 5097. The diff is 42."
    ]


def test_empty_cart_is_valid_and_an_empty_cart_with_a_total_is_not() -> None:
    assert validate_cart(empty_cart(), "cart") == []
    assert validate_cart({**empty_cart(), "order_total_with_tax": 10}, "cart") == [
        "In cart, items' total_with_tax add up to 0 (no items) but order_total_with_tax is 10. The diff is "
        "10."
    ]


def test_cart_lists_all_its_errors() -> None:
    cart = {
        "currency": "eur",
        "gift": "no",
        "order_total_with_tax": "2500",
        "items": [{"type": "product", "reference": "SKU", "quantity": 0, "total_with_tax": -5}, None],
    }

    assert validate_cart(cart, "remaining_cart") == [
        'remaining_cart.currency must be a code of 3 uppercase letters, got "eur"',
        'remaining_cart.gift must be true or false, got "no"',
        'remaining_cart.order_total_with_tax must be an integer number of cents, got "2500"',
        "remaining_cart.items[0].name is required",
        "remaining_cart.items[0].quantity must be an integer of at least 1, got 0",
        "remaining_cart.items[0].price_with_tax is required",
        "remaining_cart.items[0].total_with_tax of a product item must be zero or positive, got -5",
        "remaining_cart.items[1] is null; leave the key out instead",
    ]


def test_each_item_type_needs_only_its_own_fields() -> None:
    items = [
        {"type": "invoice_fee", "total_with_tax": 150},
        {"type": "handling", "reference": "ship", "name": "Envío", "total_with_tax": 495},
        {"type": "other_payment", "reference": "gift-card", "name": "Tarjeta regalo", "total_with_tax": -645},
        {"type": "registration", "total_with_tax": 0},
        {**product("SRV", "Instalación"), "type": "service", "ends_in": "P1Y"},
    ]

    assert validate_cart(make_cart(*items), "cart") == []


def test_other_payment_with_a_positive_total_is_invalid() -> None:
    item = {"type": "other_payment", "reference": "gift-card", "name": "Tarjeta", "total_with_tax": 5}

    assert validate_cart(make_cart(item), "cart") == [
        "cart.items[0].total_with_tax of a other_payment item must be zero or negative, got 5"
    ]


def test_nulls_deep_inside_an_order_are_named_once_each() -> None:
    order = make_order("N-1", customer={"email": None, "surnames": None})
    order["cart"]["items"][0]["category"] = None

    errors = validate_delivery_report(make_report(order))

    assert errors == [
        "Invalid data: order N-1: customer.email is null; leave the key out instead",
        "Invalid data: order N-1: customer.surnames is null; leave the key out instead",
        "Invalid data: order N-1: cart.items[0].category is null; leave the key out instead",
    ]


def test_order_that_is_not_an_object_is_named_by_position() -> None:
    assert validate_delivery_report(make_report(make_order("A"), "B")) == [
        'Invalid data: orders[1]: order must be an object, got "B"'
    ]


def test_pickup_trackings_need_no_tracking_number_but_unknown_tracking_types_are_invalid() -> None:
    trackings = [{"type": "pickup_point", "operator_ref": "OP"}, {"type": "drone"}]

    assert validate_delivery_report(make_report(make_order("T", trackings=trackings))) == [
        "Invalid data: order T: trackings[1].type must be one of postal, pickup_point, pickup_store, got "
        '"drone"'
    ]


def test_order_update_with_optional_parts_is_valid_and_its_ref_is_compared_as_text() -> None:
    body = make_order_update("123", customer={"email": "a@example.com"}, delivery_method={"name": "GLS"})
    body["order"]["merchant_reference"]["order_ref_1"] = 123

    assert validate_order_update(body, "123") == []


def test_order_update_body_must_hold_an_order_object() -> None:
    assert validate_order_update({"shipped_cart": {}}, "X") == [
        "Invalid data: the body must be an object with an order object"
    ]


def test_order_ref_1_is_read_as_text_or_none() -> None:
    assert order_ref_1({"merchant_reference": {"order_ref_1": 42}}) == "42"
    assert order_ref_1({"merchant_reference": {"order_ref_1": True}}) is None
    assert order_ref_1({"merchant_reference": {}}) is None
    assert order_ref_1("not an order") is None


def test_statistics_orders_need_a_completion_time_with_offset_and_a_currency() -> None:
    body = {
        "delivery_report": {
            "merchant": {"id": "m"},
            "orders": [],
            "statistics": {
                "orders": [
                    {
                        "completed_at": "2026-11-20T10:00:00+01:00",
                        "currency": "EUR",
                        "amount": 1250,
                        "status": "shipped",
                    },
                    {"completed_at": "2026-11-20", "currency": "eur", "status": "lost"},
                ]
            },
            "platform": {"name": "p", "version": "v", "uname": "u", "db_name": "d", "db_version": "1"},
        }
    }
    errors = validate_delivery_report(body)
    assert len(errors) == 3
    assert all("statistics.orders[1]" in error for error in errors)

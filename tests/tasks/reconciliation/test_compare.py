"""Compare: SeQura's corrections against the shop on MariaDB with PrestaShop 8.0's real DDL."""

from __future__ import annotations

import pytest

from tests.shops import MORNING, Shop
from tests.tasks.reconciliation.reconciling import compare, correction

pytestmark = pytest.mark.mysql


def test_a_corrected_email_is_one_difference_fixed_on_the_customer_page(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(mysql_shop, correction("AAAAAAAAA", customer={"email": "ana.garcia@example.com"}))
    [difference] = found.differences
    assert (difference.record, difference.field) == ("customer", "email")
    assert (difference.shop_value, difference.sequra_value) == ("ana@example.com", "ana.garcia@example.com")
    assert difference.fix_in == f"Customers > Customers > customer {mysql_shop.customer} > Edit: Email"
    assert found.counts.by_field == {"customer.email": 1}


def test_a_postcode_corrected_in_the_delivery_address_only_leaves_the_invoice_address_alone(
    mysql_shop: Shop,
) -> None:
    invoice = mysql_shop.new_address(alias="Oficina", address1="Calle Serrano 3", postcode="28001")
    id_order = mysql_shop.shipped_order("AAAAAAAAA", id_address_invoice=invoice)
    found = compare(
        mysql_shop,
        correction(
            "AAAAAAAAA",
            delivery_address={"postal_code": "28014", "city": "Madrid"},
            invoice_address={"postal_code": "28001"},
        ),
        admin_url="https://shop.example/admin123/",
    )
    [difference] = found.differences
    assert (difference.record, difference.field, difference.shop_value) == (
        "delivery_address",
        "postal_code",
        "28013",
    )
    assert difference.fix_in == f"Orders > order {id_order} > Delivery address > Edit: Zip/postal code"
    assert difference.link == f"https://shop.example/admin123/index.php/sell/orders/{id_order}/view"
    assert difference.row == mysql_shop.address


def test_a_correction_the_merchant_already_made_in_a_new_address_row_is_no_difference(
    mysql_shop: Shop,
) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.writer.edit_address(mysql_shop.address, postcode="28014", at=MORNING)
    found = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"}))
    assert found.differences == []
    assert found.counts.already_fixed == 1


def test_a_current_address_elsewhere_does_not_count_as_the_fix(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.new_address(alias="Trabajo", address1="Gran Vía 1", postcode="28014")
    found = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"}))
    assert [d.field for d in found.differences] == ["postal_code"]
    assert found.counts.already_fixed == 0


def test_one_address_row_used_for_delivery_and_invoice_is_compared_once_per_record(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA", id_address_invoice=mysql_shop.address)
    found = compare(
        mysql_shop,
        correction(
            "AAAAAAAAA",
            delivery_address={"postal_code": "28014"},
            invoice_address={"postal_code": "28014"},
        ),
    )
    assert sorted((d.record, d.row) for d in found.differences) == [
        ("delivery_address", mysql_shop.address),
        ("invoice_address", mysql_shop.address),
    ]


def test_an_address_versioned_twice_is_compared_as_the_order_has_it_and_as_the_buyer_has_it_now(
    mysql_shop: Shop,
) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    second = mysql_shop.writer.edit_address(mysql_shop.address, postcode="28014", at=MORNING)
    mysql_shop.writer.edit_address(second, postcode="28015", at=MORNING)
    held_by_the_buyer_now = compare(
        mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28015"})
    )
    assert held_by_the_buyer_now.differences == []
    replaced_since = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"}))
    [difference] = replaced_since.differences
    assert (difference.shop_value, difference.row) == ("28013", mysql_shop.address)


def test_a_split_order_whose_sub_orders_share_the_corrected_address_gives_one_row(mysql_shop: Shop) -> None:
    first = mysql_shop.shipped_order("AAAAAAAAA")
    second = mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"}))
    [difference] = found.differences
    assert (difference.id_order, difference.id_orders) == (first, (first, second))


def test_unknown_references_are_named_with_their_line(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.shipped_order("OTHERPAID", module="ps_checkpayment")
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", line=1, customer={"email": "ana@example.com"}),
        correction("NOTINSHOP", line=2, customer={"email": "x@example.com"}),
        correction("OTHERPAID", line=3, customer={"email": "x@example.com"}),
    )
    assert found.unknown == [(2, "NOTINSHOP"), (3, "OTHERPAID")]
    assert (found.counts.matched, found.counts.unknown, found.differences) == (1, 2, [])


def test_spacing_case_and_phone_format_are_no_difference(mysql_shop: Shop) -> None:
    address = mysql_shop.new_address(phone_mobile="+34 600 123 456", address2="Escalera B")
    mysql_shop.shipped_order("AAAAAAAAA", id_address_delivery=address)
    found = compare(
        mysql_shop,
        correction(
            "AAAAAAAAA",
            customer={"given_names": "  ANA ", "surnames": "garcía", "email": "Ana@Example.com"},
            delivery_address={
                "address_line_1": "calle  mayor 1",
                "address_line_2": "escalera b",
                "postal_code": " 28013",
                "mobile_phone": "0034 600-12-34-56",
                "country_code": "es",
            },
        ),
    )
    assert found.differences == []
    assert found.counts.matched == 1


def test_a_decomposed_accent_is_the_same_name(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(mysql_shop, correction("AAAAAAAAA", customer={"surnames": "Garci\u0301a"}))
    assert found.differences == []


def test_a_field_sequra_did_not_send_is_no_difference(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"city": "Madrid"}))
    assert found.differences == []


def test_the_nin_is_compared_with_the_invoice_address(mysql_shop: Shop) -> None:
    invoice = mysql_shop.new_address(dni="12345678Z")
    mysql_shop.shipped_order("AAAAAAAAA", id_address_invoice=invoice)
    found = compare(
        mysql_shop, correction("AAAAAAAAA", customer={"nin": "12345678-Z", "email": "ana@example.com"})
    )
    [difference] = found.differences
    assert (difference.record, difference.field, difference.row) == ("customer", "nin", invoice)
    assert difference.fix_in.endswith("Invoice address > Edit: Identification number")


def test_order_ref_1_as_the_first_id_order_matches_the_whole_reference(mysql_shop: Shop) -> None:
    first = mysql_shop.shipped_order("AAAAAAAAA")
    second = mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(
        mysql_shop,
        correction(str(first), delivery_address={"postal_code": "28014"}),
        order_ref_field="id_order",
    )
    [difference] = found.differences
    assert (difference.order_reference, difference.id_orders) == (str(first), (first, second))


def test_orders_whose_next_report_or_update_would_repeat_the_error_are_flagged(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", customer={"email": "ana.garcia@example.com"}),
        repeats_in={"AAAAAAAAA": "delivery report"},
    )
    assert [d.repeats_in for d in found.differences] == ["delivery report"]
    assert found.counts.repeating == 1


def test_an_address_the_buyer_also_has_is_no_fix_of_the_order_address(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.new_address(alias="Casa de verano", postcode="28014")
    found = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"}))
    assert [d.field for d in found.differences] == ["postal_code"]
    assert found.fixes[0].repoints == ()


def test_a_reference_in_another_case_and_an_id_with_leading_zeros_are_matched(mysql_shop: Shop) -> None:
    first = mysql_shop.shipped_order("AAAAAAAAA")
    by_reference = compare(mysql_shop, correction("aaaaaaaaa", customer={"email": "ana.g@example.com"}))
    assert [d.order_reference for d in by_reference.differences] == ["aaaaaaaaa"]
    by_id = compare(
        mysql_shop,
        correction(f"00{first}", line=1, customer={"email": "ana.g@example.com"}),
        correction("²", line=2, customer={"email": "ana.g@example.com"}),
        order_ref_field="id_order",
    )
    assert (len(by_id.differences), by_id.unknown) == (1, [(2, "²")])


def test_an_order_the_php_module_reported_is_not_flagged_as_repeating_in_a_report(mysql_shop: Shop) -> None:
    id_order = mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.writer.mark_sent_by_module(id_order, merchant_id="demo_merchant")
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", customer={"email": "ana.g@example.com"}),
        repeats_in={"AAAAAAAAA": "delivery report"},
        module_table=True,
    )
    assert [d.repeats_in for d in found.differences] == [None]

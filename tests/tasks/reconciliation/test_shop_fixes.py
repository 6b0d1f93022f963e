"""Shop fixes: SeQura's corrections written the way PrestaShop does, on MariaDB with 8.0's real DDL."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url

from schemas.prestashop import shop_tables
from tasks.reconciliation.changes import planned_changes
from tasks.reconciliation.shop_rules import MissingGrantsError, check_write_grants
from tests.shops import MORNING, Shop, seeded_shop
from tests.tasks.reconciliation.reconciling import (
    FIXED_AT,
    KeptAudit,
    address_row,
    apply,
    compare,
    correction,
    customer_row,
    order_row,
)

pytestmark = pytest.mark.mysql
DELIVERED = 5


def test_a_corrected_email_is_changed_in_place(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    applied, skipped = apply(
        mysql_shop,
        compare(mysql_shop, correction("AAAAAAAAA", customer={"email": " ana.garcia@example.com"})),
    )
    customer = customer_row(mysql_shop, mysql_shop.customer)
    assert (customer["email"], customer["date_upd"]) == (
        "ana.garcia@example.com",
        FIXED_AT.replace(microsecond=0),
    )
    [fix] = applied
    assert (fix.shop_table, fix.row_before, fix.row_after) == (
        "customer",
        mysql_shop.customer,
        mysql_shop.customer,
    )
    assert (fix.before, fix.after, skipped) == ("ana@example.com", "ana.garcia@example.com", [])


def test_a_corrected_delivery_address_becomes_a_new_row_and_the_order_points_to_it(mysql_shop: Shop) -> None:
    invoice = mysql_shop.new_address(alias="Oficina", address1="Calle Serrano 3", postcode="28001")
    id_order = mysql_shop.shipped_order("AAAAAAAAA", id_address_invoice=invoice)
    apply(mysql_shop, compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"})))
    order = order_row(mysql_shop, id_order)
    new = address_row(mysql_shop, order["id_address_delivery"])
    old = address_row(mysql_shop, mysql_shop.address)
    assert order["id_address_delivery"] != mysql_shop.address
    assert (order["id_address_invoice"], order["date_upd"]) == (invoice, FIXED_AT.replace(microsecond=0))
    assert (new["postcode"], new["address1"], new["id_customer"], new["deleted"]) == (
        "28014",
        "Calle Mayor 1",
        mysql_shop.customer,
        0,
    )
    assert (old["postcode"], old["deleted"]) == ("28013", 1)
    assert address_row(mysql_shop, invoice)["deleted"] == 0


def test_an_address_used_for_delivery_and_invoice_keeps_the_invoice_when_only_delivery_was_corrected(
    mysql_shop: Shop,
) -> None:
    id_order = mysql_shop.shipped_order("AAAAAAAAA", id_address_invoice=mysql_shop.address)
    apply(mysql_shop, compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"})))
    order = order_row(mysql_shop, id_order)
    assert order["id_address_invoice"] == mysql_shop.address
    assert address_row(mysql_shop, order["id_address_delivery"])["postcode"] == "28014"


def test_an_address_used_for_delivery_and_invoice_corrected_alike_becomes_one_new_row(
    mysql_shop: Shop,
) -> None:
    id_order = mysql_shop.shipped_order("AAAAAAAAA", id_address_invoice=mysql_shop.address)
    corrected = {"postal_code": "28014"}
    found = compare(
        mysql_shop, correction("AAAAAAAAA", delivery_address=corrected, invoice_address=corrected)
    )
    applied, _ = apply(mysql_shop, found)
    order = order_row(mysql_shop, id_order)
    assert order["id_address_delivery"] == order["id_address_invoice"] != mysql_shop.address
    assert {fix.row_after for fix in applied} == {order["id_address_delivery"]}


def test_every_sub_order_of_a_split_order_is_repointed_to_the_one_corrected_address(mysql_shop: Shop) -> None:
    first = mysql_shop.shipped_order("AAAAAAAAA")
    second = mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"}))
    assert planned_changes(found.fixes[0]) == [
        f"AAAAAAAAA: delivery address {mysql_shop.address} copied to a new address with postal_code "
        f"'28013' -> '28014'; address {mysql_shop.address} soft-deleted; orders {first}, {second} "
        "repointed to it"
    ]
    apply(mysql_shop, found)
    pointed = {order_row(mysql_shop, i)["id_address_delivery"] for i in (first, second)}
    assert len(pointed) == 1
    assert pointed != {mysql_shop.address}


def test_an_order_changed_after_the_corrections_were_read_is_skipped_and_left_alone(mysql_shop: Shop) -> None:
    id_order = mysql_shop.shipped_order("AAAAAAAAA")
    found = compare(mysql_shop, correction("AAAAAAAAA", customer={"email": "ana.garcia@example.com"}))
    mysql_shop.writer.set_state(id_order, DELIVERED, at=MORNING.replace(hour=18))
    applied, [skipped] = apply(mysql_shop, found)
    assert applied == []
    assert f"order {id_order} changed in the shop" in skipped.reason
    assert "reconcile again" in skipped.reason
    assert customer_row(mysql_shop, mysql_shop.customer)["email"] == "ana@example.com"


def test_an_email_another_registered_account_uses_is_not_taken(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    other = mysql_shop.writer.add_customer(
        firstname="Ana", lastname="G", email="ana.g@example.com", at=MORNING
    )
    applied, [skipped] = apply(
        mysql_shop, compare(mysql_shop, correction("AAAAAAAAA", customer={"email": "ana.g@example.com"}))
    )
    assert applied == []
    assert f"customer {other}, a registered account, already uses it" in skipped.reason


def test_a_new_country_is_written_by_its_id_and_an_unknown_one_skips_the_order(mysql_shop: Shop) -> None:
    france = mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.shipped_order("BBBBBBBBB", id_address_delivery=mysql_shop.new_address(alias="Otra"))
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", delivery_address={"country_code": "FR", "postal_code": "75002"}),
        correction("BBBBBBBBB", delivery_address={"country_code": "ZZ"}),
    )
    _, [skipped] = apply(mysql_shop, found)
    iso = shop_tables().country
    with mysql_shop.engine.connect() as conn:
        fr = conn.execute(select(iso.c.id_country).where(iso.c.iso_code == "FR")).scalar_one()
    assert address_row(mysql_shop, order_row(mysql_shop, france)["id_address_delivery"])["id_country"] == fr
    assert skipped.order_reference == "BBBBBBBBB"
    assert "'ZZ' is not a country of the shop" in skipped.reason


def test_two_orders_of_one_buyer_corrected_together_share_the_fix(mysql_shop: Shop) -> None:
    first = mysql_shop.shipped_order("AAAAAAAAA")
    second = mysql_shop.shipped_order("BBBBBBBBB")
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", customer={"email": "ana.g@example.com"}, delivery_address={"city": "Alcalá"}),
        correction("BBBBBBBBB", customer={"email": "ana.g@example.com"}, delivery_address={"city": "Alcalá"}),
    )
    applied, skipped = apply(mysql_shop, found)
    assert skipped == []
    assert [fix.field for fix in applied].count("email") == 1
    assert (
        order_row(mysql_shop, first)["id_address_delivery"]
        == order_row(mysql_shop, second)["id_address_delivery"]
    )


def test_a_copy_of_an_address_the_buyer_had_replaced_stays_out_of_their_address_book(
    mysql_shop: Shop,
) -> None:
    id_order = mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.writer.edit_address(mysql_shop.address, address1="Calle Nueva 2", at=MORNING)
    apply(mysql_shop, compare(mysql_shop, correction("AAAAAAAAA", delivery_address={"postal_code": "28014"})))
    assert address_row(mysql_shop, order_row(mysql_shop, id_order)["id_address_delivery"])["deleted"] == 1


@pytest.fixture
def select_only_shop(mysql_shop_engine_factory: Callable[..., Engine]) -> Iterator[tuple[Shop, Engine]]:
    """A shop, and an engine on it as a user granted SELECT only."""
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    user, password = f"reader_{secrets.token_hex(4)}", secrets.token_hex(8)
    database = shop.engine.url.database
    with shop.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%%'")
    reader = create_engine(make_url(shop.engine.url).set(username=user, password=password))
    yield shop, reader
    reader.dispose()
    with shop.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")


def test_apply_names_the_grants_it_lacks_and_reading_needs_only_select(
    select_only_shop: tuple[Shop, Engine],
) -> None:
    shop, reader = select_only_shop
    shop.shipped_order("AAAAAAAAA")
    as_reader = Shop(reader, shop.tables, shop.writer, shop.customer, shop.address, shop.carrier)
    assert compare(as_reader, correction("AAAAAAAAA", customer={"email": "a@example.com"})).differences
    with pytest.raises(MissingGrantsError) as refused:
        check_write_grants(reader, shop.tables)
    message = str(refused.value)
    assert "UPDATE on ps_customer" in message
    assert "INSERT and UPDATE on ps_address" in message
    assert f"GRANT INSERT, UPDATE ON `{shop.engine.url.database}`.`ps_address`" in message


def test_a_user_with_the_grants_passes_the_check(mysql_shop: Shop) -> None:
    check_write_grants(mysql_shop.engine, mysql_shop.tables)


@pytest.mark.parametrize("version", ["1.7.8.1", "8.0", "9.1.0"])
def test_a_corrected_address_is_versioned_the_same_on_every_prestashop_version(
    mysql_shop_engine_factory: Callable[..., Engine], version: str
) -> None:
    shop = seeded_shop(mysql_shop_engine_factory(version, "ps_"), shop_tables("ps_"))
    id_order = shop.shipped_order("AAAAAAAAA")
    found = compare(
        shop,
        correction(
            "AAAAAAAAA", customer={"surnames": "García Pérez"}, invoice_address={"postal_code": "28014"}
        ),
    )
    applied, skipped = apply(shop, found)
    order = order_row(shop, id_order)
    assert (len(applied), skipped) == (2, [])
    assert address_row(shop, order["id_address_invoice"])["postcode"] == "28014"
    assert (order["id_address_delivery"], address_row(shop, shop.address)["deleted"]) == (shop.address, 1)
    assert customer_row(shop, shop.customer)["lastname"] == "García Pérez"
    assert (
        compare(
            shop,
            correction(
                "AAAAAAAAA", customer={"surnames": "García Pérez"}, invoice_address={"postal_code": "28014"}
            ),
        ).differences
        == []
    )


def test_an_order_still_on_an_address_the_merchant_fixed_since_is_repointed_to_the_fixed_copy(
    mysql_shop: Shop,
) -> None:
    first = mysql_shop.shipped_order("AAAAAAAAA")
    second = mysql_shop.shipped_order("BBBBBBBBB")
    corrected = {"postal_code": "28014"}
    apply(mysql_shop, compare(mysql_shop, correction("AAAAAAAAA", delivery_address=corrected)))
    copy = order_row(mysql_shop, first)["id_address_delivery"]
    found = compare(mysql_shop, correction("BBBBBBBBB", delivery_address=corrected))
    assert (found.differences, found.counts.already_fixed) == ([], 1)
    assert planned_changes(found.fixes[0]) == [
        f"BBBBBBBBB: order {second} repointed from delivery address {mysql_shop.address} to address {copy}, "
        "which already holds SeQura's correction"
    ]
    [repointed], _ = apply(mysql_shop, found)
    assert (repointed.row_before, repointed.row_after) == (mysql_shop.address, copy)
    assert order_row(mysql_shop, second)["id_address_delivery"] == copy
    assert compare(mysql_shop, correction("BBBBBBBBB", delivery_address=corrected)).fixes == []


def test_an_order_whose_customer_row_is_gone_is_skipped_and_the_others_fixed(mysql_shop: Shop) -> None:
    gone = mysql_shop.writer.add_customer(
        firstname="Eva", lastname="Gil", email="eva@example.com", at=MORNING
    )
    mysql_shop.shipped_order("AAAAAAAAA", id_customer=gone)
    mysql_shop.shipped_order("BBBBBBBBB")
    customers = mysql_shop.tables.customer
    with mysql_shop.engine.begin() as conn:
        conn.execute(customers.delete().where(customers.c.id_customer == gone))
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", customer={"email": "eva.gil@example.com"}),
        correction("BBBBBBBBB", customer={"email": "ana.garcia@example.com"}),
    )
    applied, [skipped] = apply(mysql_shop, found)
    assert skipped.order_reference == "AAAAAAAAA"
    assert f"customer {gone} is not in the shop's customer table" in skipped.reason
    assert [fix.order_reference for fix in applied] == ["BBBBBBBBB"]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"delivery_address": {"postal_code": "2801A"}}, "postcode '2801A' is not of ES's format NNNNN"),
        ({"delivery_address": {"given_names": "Ana 2"}}, "firstname 'Ana 2' is not a name"),
        ({"delivery_address": {"postal_code": ""}}, "ES addresses need a postcode"),
        ({"customer": {"given_names": "Ana (2)"}}, "customer.firstname 'Ana (2)' is not a name"),
        (
            {"customer": {"vat_number": "ESB1"}, "invoice_address": {"vat_number": "ESB2"}},
            "SeQura sent two values for vat_number",
        ),
    ],
)
def test_a_value_prestashop_would_refuse_skips_the_order_and_writes_nothing(
    mysql_shop: Shop, record: dict[str, dict[str, str]], problem: str
) -> None:
    id_order = mysql_shop.shipped_order("AAAAAAAAA")
    countries = mysql_shop.tables.country
    with mysql_shop.engine.begin() as conn:
        conn.execute(countries.update().where(countries.c.iso_code == "ES").values(zip_code_format="NNNNN"))
    audit = KeptAudit()
    applied, [skipped] = apply(mysql_shop, compare(mysql_shop, correction("AAAAAAAAA", **record)), audit)
    assert applied == []
    assert problem in skipped.reason
    assert order_row(mysql_shop, id_order)["id_address_delivery"] == mysql_shop.address
    assert address_row(mysql_shop, mysql_shop.address)["deleted"] == 0
    assert audit.batches == {}


def test_the_audit_is_pending_before_the_shop_commits_and_settled_after(mysql_shop: Shop) -> None:
    mysql_shop.shipped_order("AAAAAAAAA")
    mysql_shop.shipped_order("BBBBBBBBB", id_address_delivery=mysql_shop.new_address(alias="Otra"))
    audit = KeptAudit()
    found = compare(
        mysql_shop,
        correction("AAAAAAAAA", customer={"email": "ana.garcia@example.com"}),
        correction("BBBBBBBBB", delivery_address={"country_code": "ZZ"}),
    )
    apply(mysql_shop, found, audit)
    [(batch, [fix])] = audit.batches.items()
    assert (fix.order_reference, audit.settled[batch]) == ("AAAAAAAAA", True)
    assert list(audit.settled.values()).count(False) == 1

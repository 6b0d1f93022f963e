"""The shop seeder writes rows as PrestaShop does, on SQLite and on each version's real MariaDB schema."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Row, Table, create_engine, func, select
from sqlalchemy.engine import Engine

from schemas.prestashop import ShopTables, create_shop_schema, shop_tables
from schemas.prestashop_types import ZERO_DATETIME
from seeding.demo_shop import DemoShop, seed_demo_shop
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from seeding.vocabulary import (
    DELIVERED,
    PAYMENT_ACCEPTED,
    PROCESSING_IN_PROGRESS,
    SHIPPED,
    SPAIN,
    Discount,
    Line,
)
from seeding.writer import ShopWriter

NOW = datetime(2024, 6, 11, 12, 0, 0)
EMOJI_LASTNAME = "Ñúñez 🚀"


def sqlite_shop(path: Path, prefix: str = "ps_") -> tuple[Engine, ShopTables]:
    engine = create_engine(f"sqlite:///{path}")
    tables = shop_tables(prefix)
    create_shop_schema(engine, tables)
    return engine, tables


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, ShopTables, DemoShop]]:
    engine, tables = sqlite_shop(tmp_path_factory.mktemp("demo") / "shop.sqlite")
    yield engine, tables, seed_demo_shop(engine, tables, now=NOW)
    engine.dispose()


def all_rows(engine: Engine, table: Table) -> list[Row[tuple[object, ...]]]:
    with engine.connect() as connection:
        return list(connection.execute(select(table).order_by(*table.primary_key.columns)))


def orders_of(engine: Engine, tables: ShopTables, reference: str) -> list[Row[tuple[object, ...]]]:
    orders = tables.orders
    with engine.connect() as connection:
        return list(
            connection.execute(select(orders).where(orders.c.reference == reference).order_by("id_order"))
        )


def history_states(engine: Engine, tables: ShopTables, id_order: int) -> list[int]:
    history = tables.order_history
    with engine.connect() as connection:
        query = select(history.c.id_order_state).where(history.c.id_order == id_order)
        return list(connection.scalars(query.order_by(history.c.date_add, history.c.id_order_history)))


def was_shipped(engine: Engine, tables: ShopTables, id_order: int) -> bool:
    history, state = tables.order_history, tables.order_state
    with engine.connect() as connection:
        shipped = (
            select(func.count())
            .select_from(history.join(state, history.c.id_order_state == state.c.id_order_state))
            .where(history.c.id_order == id_order, state.c.shipped == 1)
        )
        return bool(connection.scalar(shipped))


def test_reference_groups_share_out_every_order_in_the_shop(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    groups = [shop.shipped_refs, shop.quarantine_refs, shop.module_sent_refs, shop.ignored_refs]
    every = [reference for group in groups for reference in group]
    assert len(every) == len(set(every))
    with engine.connect() as connection:
        assert set(every) == set(connection.scalars(select(tables.orders.c.reference)))
    assert set(shop.delivered_refs) <= set(shop.shipped_refs)
    assert 28 <= len(shop.shipped_refs) <= 34


def test_references_are_nine_uppercase_letters(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, _ = demo
    with engine.connect() as connection:
        for reference in connection.scalars(select(tables.orders.c.reference)):
            assert re.fullmatch(r"[A-Z]{9}", reference)


def test_edge_case_fields_name_shipped_quarantined_or_cancelled_references(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    _, _, shop = demo
    quarantined = {"corrupt_totals_ref", "missing_currency_ref", "unknown_country_ref"}
    for name, value in vars(shop).items():
        if name == "cancelled_ref":
            assert value in shop.ignored_refs and value not in shop.shipped_refs
        elif name.endswith("_ref"):
            assert value in (shop.quarantine_refs if name in quarantined else shop.shipped_refs), name


def test_seeding_is_deterministic(demo: tuple[Engine, ShopTables, DemoShop], tmp_path: Path) -> None:
    engine, tables, shop = demo
    again_engine, again_tables = sqlite_shop(tmp_path / "again.sqlite")
    assert seed_demo_shop(again_engine, again_tables, now=NOW) == shop
    for name, table in tables.metadata.tables.items():
        assert all_rows(again_engine, again_tables.metadata.tables[name]) == all_rows(engine, table), name


def test_orders_are_placed_in_the_five_days_before_now_and_nothing_happens_after_it(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, _ = demo
    with engine.connect() as connection:
        placed = list(connection.scalars(select(tables.orders.c.date_add)))
        changes = list(connection.scalars(select(tables.order_history.c.date_add)))
        updated = list(connection.scalars(select(tables.orders.c.date_upd)))
    assert all(NOW - timedelta(days=5) <= at < NOW for at in placed)
    assert all(at < NOW for at in changes + updated)


def test_totals_of_every_sound_order_add_up(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    details = {}
    for line in all_rows(engine, tables.order_detail):
        assert line.total_price_tax_incl == line.unit_price_tax_incl * line.product_quantity
        details.setdefault(line.id_order, []).append(line)
    discounts: dict[int, Decimal] = {}
    for rule in all_rows(engine, tables.order_cart_rule):
        discounts[rule.id_order] = discounts.get(rule.id_order, Decimal(0)) + rule.value
    for order in all_rows(engine, tables.orders):
        lines = sum(line.total_price_tax_incl for line in details[order.id_order])
        assert order.total_products_wt == lines
        expected = max(
            Decimal(0),
            lines
            + order.total_shipping_tax_incl
            + order.total_wrapping_tax_incl
            - discounts.get(order.id_order, 0),
        )
        if order.reference == shop.corrupt_totals_ref:
            assert order.total_paid_tax_incl == expected + Decimal("7.50")
        else:
            assert order.total_paid_tax_incl == expected, order.reference
            assert order.total_paid == order.total_paid_tax_incl
            assert Decimal(0) <= order.total_paid_tax_excl <= order.total_paid_tax_incl


def test_free_order_totals_zero_with_a_free_shipping_discount(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    (order,) = orders_of(engine, tables, shop.free_ref)
    assert order.total_paid_tax_incl == Decimal(0)
    assert order.total_discounts_tax_incl == order.total_products_wt + order.total_shipping_tax_incl > 0


def test_every_shipped_reference_has_a_shipped_history_row(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    for reference in (*shop.shipped_refs, *shop.quarantine_refs, *shop.module_sent_refs):
        orders = orders_of(engine, tables, reference)
        assert all(order.module == "sequrapayment" for order in orders)
        assert any(was_shipped(engine, tables, order.id_order) for order in orders), reference


def test_ignored_orders_are_other_payment_modules_or_never_shipped(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    modules = set()
    for reference in shop.ignored_refs:
        for order in orders_of(engine, tables, reference):
            modules.add(order.module)
            assert order.module != "sequrapayment" or not was_shipped(engine, tables, order.id_order), (
                reference
            )
    assert modules == {"sequrapayment", "ps_checkpayment", "ps_wirepayment"}


def test_split_order_has_one_part_shipped_and_one_in_preparation(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    first, second = orders_of(engine, tables, shop.split_partial_ref)
    assert (first.current_state, second.current_state) == (SHIPPED, PROCESSING_IN_PROGRESS)
    assert first.id_carrier != second.id_carrier
    assert first.id_cart == second.id_cart


def test_staggered_split_order_parts_shipped_on_different_days(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    history = tables.order_history
    shipped_at = []
    for order in orders_of(engine, tables, shop.split_staggered_ref):
        with engine.connect() as connection:
            query = select(history.c.date_add).where(
                history.c.id_order == order.id_order, history.c.id_order_state == SHIPPED
            )
            shipped_at.append(connection.scalar(query))
    assert len(shipped_at) == 2
    assert abs(shipped_at[0] - shipped_at[1]) >= timedelta(days=1)


def test_delivered_orders_went_through_shipped_first(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    for reference in shop.delivered_refs:
        (order,) = orders_of(engine, tables, reference)
        states = history_states(engine, tables, order.id_order)
        assert states.index(SHIPPED) < states.index(DELIVERED), reference


def address_of(engine: Engine, tables: ShopTables, id_address: int) -> Row[tuple[object, ...]]:
    address = tables.address
    with engine.connect() as connection:
        return connection.execute(select(address).where(address.c.id_address == id_address)).one()


def test_edited_address_leaves_the_order_on_the_soft_deleted_row(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    (order,) = orders_of(engine, tables, shop.edited_address_ref)
    old = address_of(engine, tables, order.id_address_delivery)
    assert old.deleted == 1
    address = tables.address
    with engine.connect() as connection:
        live = connection.execute(
            select(address).where(address.c.id_customer == old.id_customer, address.c.deleted == 0)
        ).one()
    assert (old.address1, live.address1) == ("8 place Bellecour", "9 place Bellecour")
    assert live.date_add == old.date_upd > old.date_add


def test_address_edited_from_the_order_page_repoints_the_order(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    (order,) = orders_of(engine, tables, shop.repointed_address_ref)
    assert order.id_address_delivery == order.id_address_invoice
    current = address_of(engine, tables, order.id_address_delivery)
    assert (current.deleted, current.address1) == (0, "Avenida dos Aliados 106")


def test_edited_carrier_leaves_the_order_on_the_deleted_row(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    (order,) = orders_of(engine, tables, shop.edited_carrier_ref)
    carrier = tables.carrier
    with engine.connect() as connection:
        old = connection.execute(select(carrier).where(carrier.c.id_carrier == order.id_carrier)).one()
        same_reference = carrier.c.id_reference == old.id_reference
        versions = connection.execute(
            select(carrier).where(same_reference).order_by(carrier.c.id_carrier)
        ).all()
        delays = connection.scalars(
            select(tables.carrier_lang.c.delay).where(tables.carrier_lang.c.id_carrier == order.id_carrier)
        ).all()
    assert old.deleted == 1
    assert [(row.name, row.deleted) for row in versions] == [("MRW", 1), ("MRW", 0)]
    assert delays == ["48-72 h", "48-72 h"]


def test_only_the_untracked_order_lacks_a_tracking_number(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    for reference in shop.shipped_refs:
        for order in orders_of(engine, tables, reference):
            if not was_shipped(engine, tables, order.id_order):
                continue
            with engine.connect() as connection:
                query = select(tables.order_carrier.c.tracking_number)
                tracking = connection.scalar(query.where(tables.order_carrier.c.id_order == order.id_order))
            assert (tracking is None) is (reference == shop.untracked_ref), reference


def test_customers_include_a_guest_and_a_soft_deleted_one(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    customer = tables.customer
    with engine.connect() as connection:
        for reference, flags in ((shop.guest_ref, (1, 0)), (shop.deleted_customer_ref, (0, 1))):
            (order,) = orders_of(engine, tables, reference)
            row = connection.execute(
                select(customer).where(customer.c.id_customer == order.id_customer)
            ).one()
            assert (row.is_guest, row.deleted) == flags


def test_names_with_accents_and_emoji_are_stored_as_given(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, _ = demo
    with engine.connect() as connection:
        lastnames = set(connection.scalars(select(tables.customer.c.lastname)))
    assert {EMOJI_LASTNAME, "Ångström", "Fernández 🌻"} <= lastnames


def test_partial_refund_is_recorded_on_its_line(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    (order,) = orders_of(engine, tables, shop.partial_refund_ref)
    detail = tables.order_detail
    with engine.connect() as connection:
        line = connection.execute(
            select(detail).where(
                detail.c.id_order == order.id_order, detail.c.product_reference == "SOC-TEC-3"
            )
        ).one()
    assert (line.product_quantity, line.product_quantity_refunded) == (3, 1)
    assert line.total_refunded_tax_incl == line.unit_price_tax_incl == Decimal("12.500000")
    assert order.date_upd > order.date_add


def test_returned_order_was_delivered_then_refunded_in_full(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    (order,) = orders_of(engine, tables, shop.returned_ref)
    assert history_states(engine, tables, order.id_order)[-3:] == [SHIPPED, DELIVERED, 7]
    for line in all_rows(engine, tables.order_detail):
        if line.id_order == order.id_order:
            assert line.product_quantity_refunded == line.product_quantity


def test_large_order_has_500_lines_and_gift_order_is_wrapped(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    (large,) = orders_of(engine, tables, shop.large_ref)
    with engine.connect() as connection:
        count = select(func.count()).where(tables.order_detail.c.id_order == large.id_order)
        assert connection.scalar(count) == 500
    (gift,) = orders_of(engine, tables, shop.gift_ref)
    assert (gift.gift, gift.total_wrapping_tax_incl) == (1, Decimal("2.50"))
    assert gift.gift_message


def test_quarantined_orders_have_the_announced_defects(demo: tuple[Engine, ShopTables, DemoShop]) -> None:
    engine, tables, shop = demo
    (no_currency,) = orders_of(engine, tables, shop.missing_currency_ref)
    (abroad,) = orders_of(engine, tables, shop.unknown_country_ref)
    with engine.connect() as connection:
        currencies = set(connection.scalars(select(tables.currency.c.id_currency)))
        countries = set(connection.scalars(select(tables.country.c.id_country)))
    assert no_currency.id_currency not in currencies
    assert address_of(engine, tables, abroad.id_address_delivery).id_country not in countries


def test_module_table_holds_every_sequra_order_and_marks_one_as_sent(
    demo: tuple[Engine, ShopTables, DemoShop],
) -> None:
    engine, tables, shop = demo
    orders, sequra_order = tables.orders, tables.sequra_order
    with engine.connect() as connection:
        sequra_ids = set(
            connection.scalars(select(orders.c.id_order).where(orders.c.module == "sequrapayment"))
        )
        rows = connection.execute(select(sequra_order)).all()
    assert {row.order_id for row in rows} == sequra_ids
    assert {row.merchant_id for row in rows} == {shop.merchant_id}
    (sent,) = [row.order_id for row in rows if row.sent_to_sequra == 1]
    assert [order.id_order for order in orders_of(engine, tables, shop.module_sent_refs[0])] == [sent]


@pytest.fixture
def writer(tmp_path: Path) -> tuple[ShopWriter, Engine, ShopTables]:
    engine, tables = sqlite_shop(tmp_path / "shop.sqlite")
    shop_writer = ShopWriter(engine, tables)
    shop_writer.install_defaults(at=NOW - timedelta(days=30))
    return shop_writer, engine, tables


def place_order(shop_writer: ShopWriter, **details: object) -> int:
    at = NOW - timedelta(days=2)
    id_customer = shop_writer.add_customer(firstname="Ana", lastname="Pérez", email="ana@example.es", at=at)
    id_address = shop_writer.add_address(
        id_customer,
        firstname="Ana",
        lastname="Pérez",
        address1="Gran Vía 1",
        city="Madrid",
        postcode="28013",
        id_country=SPAIN,
        at=at,
    )
    id_carrier = shop_writer.add_carrier("SEUR")
    order = {
        "reference": "ABCDEFGHI",
        "id_customer": id_customer,
        "id_address_delivery": id_address,
        "id_carrier": id_carrier,
        "lines": [Line("Taza", "MUG-1", 2, Decimal("12.10"))],
        "placed_at": at,
    }
    return shop_writer.add_order(**(order | details))  # type: ignore[arg-type]


def test_new_order_has_zero_delivery_date_until_a_delivery_state(
    writer: tuple[ShopWriter, Engine, ShopTables],
) -> None:
    shop_writer, engine, tables = writer
    id_order = place_order(shop_writer)
    placed_at = NOW - timedelta(days=2)
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT delivery_date, invoice_date FROM ps_orders").one()
    (order,) = orders_of(engine, tables, "ABCDEFGHI")
    assert tuple(stored) == (ZERO_DATETIME, placed_at.isoformat(" "))
    assert (order.delivery_date, order.invoice_date, order.invoice_number) == (None, placed_at, 1)
    assert (order.current_state, order.valid, order.total_paid_real) == (
        PAYMENT_ACCEPTED,
        1,
        order.total_paid,
    )
    shop_writer.set_state(id_order, PROCESSING_IN_PROGRESS, at=NOW)
    (order,) = orders_of(engine, tables, "ABCDEFGHI")
    assert (order.delivery_date, order.date_upd, order.delivery_number) == (NOW, NOW, 1)


def test_order_amounts_are_derived_from_tax_included_prices(
    writer: tuple[ShopWriter, Engine, ShopTables],
) -> None:
    shop_writer, engine, tables = writer
    place_order(
        shop_writer,
        lines=[
            Line("Taza", "MUG-1", 2, Decimal("12.10")),
            Line("Libro", "BK-1", 1, Decimal("10.40"), Decimal("4")),
        ],
        discounts=[Discount("Promo", Decimal("5.00"))],
        shipping=Decimal("4.84"),
        wrapping=Decimal("1.21"),
    )
    (order,) = orders_of(engine, tables, "ABCDEFGHI")
    assert order.total_products_wt == Decimal("34.60")
    assert order.total_products == Decimal("30.00")
    assert (order.total_shipping_tax_excl, order.total_wrapping_tax_excl) == (
        Decimal("4.00"),
        Decimal("1.00"),
    )
    assert order.total_paid_tax_incl == Decimal("34.60") + Decimal("4.84") + Decimal("1.21") - Decimal("5.00")
    assert order.payment == "seQura"


def test_moving_an_order_to_its_current_state_does_nothing(
    writer: tuple[ShopWriter, Engine, ShopTables],
) -> None:
    shop_writer, engine, tables = writer
    id_order = place_order(shop_writer)
    shop_writer.set_state(id_order, PAYMENT_ACCEPTED, at=NOW)
    assert history_states(engine, tables, id_order) == [PAYMENT_ACCEPTED]


def test_split_orders_share_a_cart_and_products_keep_their_id(
    writer: tuple[ShopWriter, Engine, ShopTables],
) -> None:
    shop_writer, engine, tables = writer
    place_order(shop_writer)
    place_order(
        shop_writer, lines=[Line("Taza", "MUG-1", 1, Decimal("12.10")), Line("Plato", None, 1, Decimal("5"))]
    )
    place_order(shop_writer, reference="ZYXWVUTSR")
    first, second = orders_of(engine, tables, "ABCDEFGHI")
    (other,) = orders_of(engine, tables, "ZYXWVUTSR")
    assert first.id_cart == second.id_cart != other.id_cart
    product_ids = [
        (line.product_reference, line.product_id) for line in all_rows(engine, tables.order_detail)
    ]
    assert product_ids == [("MUG-1", 1), ("MUG-1", 1), (None, 2), ("MUG-1", 1)]


def test_refunding_more_than_was_bought_is_refused(writer: tuple[ShopWriter, Engine, ShopTables]) -> None:
    shop_writer, _, _ = writer
    id_order = place_order(shop_writer)
    with pytest.raises(ValueError, match=r"cannot take back 3 of .MUG-1. on order 1: 2 kept"):
        shop_writer.refund(id_order, product_reference="MUG-1", quantity=3, at=NOW)


def test_editing_an_unknown_address_field_is_refused(writer: tuple[ShopWriter, Engine, ShopTables]) -> None:
    shop_writer, _, _ = writer
    id_customer = shop_writer.add_customer(firstname="A", lastname="B", email="a@b.es", at=NOW)
    id_address = shop_writer.add_address(
        id_customer,
        firstname="A",
        lastname="B",
        address1="C",
        city="D",
        postcode="1",
        id_country=SPAIN,
        at=NOW,
    )
    with pytest.raises(TypeError, match="street"):
        shop_writer.edit_address(id_address, at=NOW, street="Calle Mayor 1")


def test_configuration_is_set_once_per_name(writer: tuple[ShopWriter, Engine, ShopTables]) -> None:
    shop_writer, engine, tables = writer
    shop_writer.set_configuration("PS_TIMEZONE", "Atlantic/Canary", at=NOW)
    configuration = tables.configuration
    with engine.connect() as connection:
        rows = connection.execute(select(configuration).where(configuration.c.name == "PS_TIMEZONE")).all()
    assert [(row.value, row.date_upd) for row in rows] == [("Atlantic/Canary", NOW)]


@pytest.fixture(scope="module", params=PRESTASHOP_VERSIONS)
def mysql_demo(
    request: pytest.FixtureRequest,
    mysql_shop_engine_factory: Callable[..., Engine],
) -> tuple[str, Engine, ShopTables, DemoShop]:
    version: str = request.param
    prefix = "shop_" if version == "9.1.0" else "ps_"
    engine = mysql_shop_engine_factory(version, prefix)
    tables = shop_tables(prefix)
    return version, engine, tables, seed_demo_shop(engine, tables, now=NOW)


@pytest.mark.mysql
def test_demo_shop_on_real_prestashop_schema_equals_the_sqlite_one(
    mysql_demo: tuple[str, Engine, ShopTables, DemoShop], demo: tuple[Engine, ShopTables, DemoShop]
) -> None:
    version, engine, tables, shop = mysql_demo
    sqlite_engine, sqlite_tables, sqlite_demo = demo
    assert shop == sqlite_demo
    for name in sqlite_tables.metadata.tables:
        table = tables.metadata.tables[tables.prefix + name.removeprefix("ps_")]
        sqlite_rows = all_rows(sqlite_engine, sqlite_tables.metadata.tables[name])
        rows = all_rows(engine, table)
        assert len(rows) == len(sqlite_rows), f"{table.name} on PrestaShop {version}"
        assert rows == sqlite_rows, f"{table.name} on PrestaShop {version}"


@pytest.mark.mysql
def test_names_with_emoji_read_back_byte_exact_from_mariadb(
    mysql_demo: tuple[str, Engine, ShopTables, DemoShop],
) -> None:
    _, engine, tables, _ = mysql_demo
    customer = tables.customer
    with engine.connect() as connection:
        stored = connection.execute(
            select(customer.c.lastname, func.hex(customer.c.lastname)).where(customer.c.email.like("jose.%"))
        ).one()
    assert stored[0].encode() == EMOJI_LASTNAME.encode()
    assert bytes.fromhex(stored[1]) == EMOJI_LASTNAME.encode("utf-8")  # 4-byte emoji: utf8mb4, not utf8mb3


@pytest.mark.mysql
def test_pymysql_returns_zero_dates_as_strings_and_shop_tables_as_none(
    mysql_demo: tuple[str, Engine, ShopTables, DemoShop],
) -> None:
    _, engine, tables, shop = mysql_demo
    unshipped = next(
        order
        for reference in shop.ignored_refs
        for order in orders_of(engine, tables, reference)
        if order.module == "sequrapayment" and order.current_state == PAYMENT_ACCEPTED
    )
    with engine.connect() as connection:
        raw = connection.exec_driver_sql(
            f"SELECT delivery_date, invoice_date FROM {tables.orders.name} WHERE id_order = %s",
            (unshipped.id_order,),
        ).one()
    assert raw[0] == ZERO_DATETIME  # pymysql cannot build a datetime for year 0, so it hands back the text
    assert isinstance(raw[1], datetime)
    assert unshipped.delivery_date is None
    assert unshipped.invoice_date == raw[1]

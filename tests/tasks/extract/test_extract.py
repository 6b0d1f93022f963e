from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, event, select, update

from schemas.prestashop import create_shop_schema, shop_tables
from schemas.reports import BuildResult
from seeding.demo_shop import seed_demo_shop
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS
from tasks.delivery.build import build_reports
from tasks.extract.candidates import high_water_marks
from tasks.extract.configuration import read_config, read_shop_config
from tasks.extract.connection import ShopReadError, fastest_driver, id_ranges, shop_engine
from tasks.extract.scope import OrderFilter
from tasks.extract.shipped_orders import extract_chunk
from tests.shops import CANCELED, MERCHANT, MORNING, SINCE, UNTIL, Shop, build_window, candidates

DEMO_NOW = datetime(2026, 11, 24, 12, 0)  # shop-local
DEMO_SINCE = datetime(2026, 11, 14, tzinfo=UTC)
DEMO_UNTIL = datetime(2026, 11, 25, tzinfo=UTC)


def demo_build(engine: Engine, prefix: str = "ps_") -> BuildResult:
    """Seed the demo shop into `engine`, then extract and build its whole window in chunks of seven."""
    tables = shop_tables(prefix)
    seed_demo_shop(engine, tables, now=DEMO_NOW)
    return build_window(engine, tables, DEMO_SINCE, DEMO_UNTIL, chunk_size=7)


def outcome(result: BuildResult) -> tuple[dict[str, str], dict[str, str]]:
    """Fingerprints of the built reports and reasons of the quarantined ones, by reference."""
    return (
        {built.reference: built.fingerprint for built in result.reports},
        {entry.reference: entry.reason for entry in result.quarantined},
    )


@pytest.fixture(scope="module")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    engine = create_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('demo')) / 'shop.sqlite'}")
    create_shop_schema(engine, shop_tables())
    return demo_build(engine)


def test_demo_shop_reports_every_shipped_reference_and_quarantines_the_broken(
    sqlite_demo: BuildResult,
) -> None:
    engine = create_engine("sqlite://")
    create_shop_schema(engine, shop_tables())
    demo = seed_demo_shop(engine, shop_tables(), now=DEMO_NOW)
    built, quarantined = outcome(sqlite_demo)
    assert set(built) == set(demo.shipped_refs) | set(demo.module_sent_refs) | {demo.cancelled_ref}
    assert set(quarantined) == set(demo.quarantine_refs)
    assert set(built) & set(demo.ignored_refs) == {demo.cancelled_ref}  # cancelled before it shipped


@pytest.mark.mysql
@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_mariadb_on_the_real_ddl_gives_the_same_reports_as_sqlite(
    version: str, mysql_shop_engine_factory: Callable[..., Engine], sqlite_demo: BuildResult
) -> None:
    prefix = "shop_" if version == "9.1.0" else "ps_"
    engine = mysql_shop_engine_factory(version, prefix)
    on_mariadb = demo_build(engine, prefix)
    built, quarantined = outcome(on_mariadb)
    expected_built, expected_quarantined = outcome(sqlite_demo)
    assert built == expected_built
    assert quarantined == expected_quarantined
    assert on_mariadb.reports[0].report["sent_at"].endswith("+00:00")


@pytest.mark.mysql
def test_emoji_survive_a_mariadb_round_trip_byte_exact(mysql_shop: Shop) -> None:
    customer = mysql_shop.writer.add_customer(
        firstname="Zoë", lastname="Ångström 🚀", email="zoe@example.com", at=MORNING
    )
    mysql_shop.shipped_order("EMOJIMYSQ", id_customer=customer)
    report = mysql_shop.report("EMOJIMYSQ").report
    assert report["customer"]["surnames"].encode("utf-8") == "Ångström 🚀".encode()


@pytest.mark.mysql
@pytest.mark.parametrize(
    ("table", "column", "definition", "named"),
    [
        ("orders", "total_paid_tax_incl", "DECIMAL(20,6) NULL", "shipped_orders.total_paid_tax_incl"),
        ("order_detail", "unit_price_tax_incl", "DECIMAL(20,6) NULL", "order_lines.unit_price_tax_incl"),
        ("address", "id_country", "INT(10) UNSIGNED NULL", "order_addresses.id_country"),
    ],
)
def test_a_null_where_prestashop_requires_a_value_quarantines_that_order_only(
    mysql_shop: Shop, table: str, column: str, definition: str, named: str
) -> None:
    broken = mysql_shop.shipped_order("NULLVALUE", id_address_delivery=mysql_shop.new_address())
    mysql_shop.shipped_order("FINEORDER")
    t, orders = getattr(mysql_shop.tables, table), mysql_shop.tables.orders
    its_address = select(orders.c.id_address_delivery).where(orders.c.id_order == broken).scalar_subquery()
    row = t.c.id_address == its_address if table == "address" else t.c.id_order == broken
    with mysql_shop.engine.begin() as conn:  # a schema altered by hand, then a row written around PrestaShop
        conn.exec_driver_sql(f"ALTER TABLE {t.name} MODIFY {column} {definition}")
        conn.execute(update(t).where(row).values({column: None}))

    result = mysql_shop.build()

    assert [built.reference for built in result.reports] == ["FINEORDER"]
    [entry] = result.quarantined
    assert (entry.reference, entry.reason) == (
        "NULLVALUE",
        f"order {broken}: {named} is empty (NULL) where PrestaShop requires a value; correct it in the back "
        "office or the database",
    )


def count_queries(engine: Engine) -> list[str]:
    """Record every statement the engine runs from now on."""
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_a_chunk_is_read_with_seven_queries_whatever_its_orders_hold(shop: Shop) -> None:
    for number in range(9):
        shop.shipped_order(f"REF{number:06d}", tracking_number=f"PK{number}")
    references = shop.references()
    config = read_config(shop.engine, shop.tables, None)
    statements = count_queries(shop.engine)
    for chunk in (references[:3], references[3:]):
        extract_chunk(shop.engine, shop.tables, OrderFilter(("sequrapayment",)), config, chunk)
    assert len(references) == 9
    assert len(statements) == 2 * 7


def test_orders_shipped_outside_the_window_are_not_candidates(shop: Shop) -> None:
    shop.shipped_order("INWINDOW")
    shop.shipped_order("TOOEARLY", at=MORNING - timedelta(days=3))
    shop.shipped_order("TOOLATE", at=MORNING + timedelta(days=2))
    assert [b.reference for b in shop.build().reports] == ["INWINDOW"]


def test_the_window_is_read_in_the_shops_timezone(shop: Shop) -> None:
    shop.shipped_order("JUSTBEFORE", at=datetime(2026, 11, 20, 0, 30))  # 23:30 UTC the day before
    shop.shipped_order("JUSTAFTER", at=datetime(2026, 11, 21, 0, 30))  # 23:30 UTC, still inside
    assert [b.reference for b in shop.build().reports] == ["JUSTAFTER"]


def test_other_payment_modules_and_unshipped_orders_are_left_out(shop: Shop) -> None:
    shop.shipped_order("CHEQUEPAY", module="ps_checkpayment")
    shop.order("NOTSHIPPED")
    shop.shipped_order("SEQURAPAY")
    assert [b.reference for b in shop.build().reports] == ["SEQURAPAY"]


def test_payment_modules_are_a_configurable_list(shop: Shop) -> None:
    shop.shipped_order("CHECKOUTS", module="sequracheckout")
    shop.shipped_order("SEQURAPAY")
    extract = shop.extract(modules=("sequrapayment", "sequracheckout"))
    assert sorted(extract.shipped_orders["reference"]) == ["CHECKOUTS", "SEQURAPAY"]


def test_an_order_shipped_before_and_changed_in_the_window_is_picked_up(shop: Shop) -> None:
    id_order = shop.shipped_order("OLDSHIPPD", at=MORNING - timedelta(days=5))
    other = shop.new_address(address1="Calle Sol 3", at=MORNING - timedelta(days=9))
    shop.shipped_order("UNTOUCHED", at=MORNING - timedelta(days=5), id_address_delivery=other)
    moved = shop.writer.edit_address(shop.address, at=MORNING, address1="Calle Nueva 2")
    shop.writer.repoint_order_address(id_order, "delivery", moved, at=MORNING)
    assert [b.reference for b in shop.build().reports] == ["OLDSHIPPD"]


def test_an_address_edited_in_place_brings_its_orders_back(shop: Shop) -> None:
    shop.shipped_order("EDITEDINP", at=MORNING - timedelta(days=5))
    with shop.engine.begin() as conn:
        conn.execute(
            shop.tables.address.update()
            .where(shop.tables.address.c.id_address == shop.address)
            .values(address1="Calle Mayor 1, bajo", date_upd=MORNING)
        )
    report = shop.report("EDITEDINP").report
    assert report["delivery_address"]["address_line_1"] == "Calle Mayor 1, bajo"


def test_quarantined_references_are_read_again_outside_the_window(shop: Shop) -> None:
    shop.shipped_order("RETRYLATE", at=MORNING - timedelta(days=5))
    extract = shop.extract(retry=("RETRYLATE",))
    assert list(extract.shipped_orders["reference"]) == ["RETRYLATE"]


def test_shipping_time_is_stored_in_utc(shop: Shop) -> None:
    shop.shipped_order("UTCSTAMP", at=datetime(2026, 11, 20, 10, 0))
    extract = shop.extract()
    assert extract.shipped_orders["shipped_at"].iloc[0] == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_an_empty_window_gives_empty_checked_frames(shop: Shop) -> None:
    extract = shop.extract()
    assert extract.shipped_orders.empty and extract.order_lines.empty
    assert build_reports(extract, MERCHANT) == BuildResult()


def test_a_wrong_table_prefix_says_which_settings_to_check(shop: Shop) -> None:
    with pytest.raises(ShopReadError, match="SHOP_TABLE_PREFIX"):
        read_config(shop.engine, shop_tables("wrong_"), None)


def test_multistore_shop_id_keeps_one_shops_orders(shop: Shop) -> None:
    shop.shipped_order("SHOPONE")
    shop.shipped_order("SHOPTWO", id_shop=2)
    order_filter = OrderFilter(("sequrapayment",), shop_id=2)
    assert candidates(shop.engine, shop.tables, order_filter, SINCE, UNTIL) == ["SHOPTWO"]


def test_a_shipped_state_added_by_a_module_counts_as_shipped(shop: Shop) -> None:
    custom_state = 42
    with shop.engine.begin() as conn:
        conn.execute(
            shop.tables.order_state.insert().values(
                id_order_state=custom_state,
                invoice=1,
                send_email=0,
                module_name="mycarrier",
                color="#00ff00",
                unremovable=0,
                hidden=0,
                logable=1,
                delivery=1,
                shipped=1,
                paid=1,
                pdf_invoice=0,
                pdf_delivery=0,
                deleted=0,
            )
        )
    id_order = shop.order("CUSTOMSTA")
    shop.writer.set_state(id_order, custom_state, at=MORNING)
    assert [b.reference for b in shop.build().reports] == ["CUSTOMSTA"]


def test_a_change_to_an_unshipped_part_brings_the_whole_reference_back(shop: Shop) -> None:
    shop.shipped_order("SPLITCANC", at=MORNING - timedelta(days=5))
    unshipped = shop.order("SPLITCANC")
    shop.writer.set_state(unshipped, CANCELED, at=MORNING)
    report = shop.report("SPLITCANC").report
    assert report["remaining_cart"]["items"] == []


def test_a_buyer_whose_email_changed_brings_their_shipped_orders_back(shop: Shop) -> None:
    shop.shipped_order("NEWEMAILS", at=MORNING - timedelta(days=5))
    with shop.engine.begin() as conn:
        customer = shop.tables.customer
        conn.execute(
            customer.update()
            .where(customer.c.id_customer == shop.customer)
            .values(email="ana.garcia@example.com", date_upd=MORNING)
        )
    assert shop.report("NEWEMAILS").report["customer"]["email"] == "ana.garcia@example.com"


def test_a_row_stamped_in_the_second_the_window_ends_in_belongs_to_it(shop: Shop) -> None:
    shop.shipped_order("LASTSECND", at=datetime(2026, 11, 20, 10, 0, 5))
    until = datetime(2026, 11, 20, 9, 0, 5, 400000, tzinfo=UTC)  # 10:00:05.4 in Madrid
    assert [b.reference for b in shop.build(until=until).reports] == ["LASTSECND"]


def test_a_shop_level_timezone_wins_over_the_global_one_for_that_shop(shop: Shop) -> None:
    with shop.engine.begin() as conn:
        conn.execute(
            shop.tables.configuration.insert().values(
                id_shop=2,
                id_shop_group=1,
                name="PS_TIMEZONE",
                value="America/New_York",
                date_add=MORNING,
                date_upd=MORNING,
            )
        )
    with shop.engine.connect() as conn:
        assert read_shop_config(conn, shop.tables, None).timezone == "Europe/Madrid"
        assert read_shop_config(conn, shop.tables, 2).timezone == "America/New_York"


def test_a_refund_after_shipping_brings_the_order_back_though_the_order_row_is_untouched(shop: Shop) -> None:
    id_order = shop.shipped_order("REFUNDLTR", at=MORNING - timedelta(days=5))
    shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=MORNING)
    report = shop.report("REFUNDLTR").report
    assert [i for i in report["cart"]["items"] if i["type"] == "product"] == []


@pytest.mark.mysql
@pytest.mark.usefixtures("mysqlclient")
def test_mysqlclient_reads_the_same_frames_and_reports_as_pymysql(
    mysql_shop_engine_factory: Callable[..., Engine],
) -> None:
    engine = mysql_shop_engine_factory("8.0", "ps_")
    tables = shop_tables("ps_")
    seed_demo_shop(engine, tables, now=DEMO_NOW)
    url = engine.url
    assert fastest_driver(url).get_driver_name() == "mysqldb"
    frames = {}
    for fast in (False, True):
        reader = shop_engine(url, fast=fast)
        config = read_config(reader, tables, None)
        references = candidates(reader, tables, OrderFilter(("sequrapayment",)), DEMO_SINCE, DEMO_UNTIL)
        frames[fast] = extract_chunk(reader, tables, OrderFilter(("sequrapayment",)), config, references)
        reader.dispose()
    for name in ("shipped_orders", "order_lines", "order_discounts", "order_addresses", "order_trackings"):
        pd.testing.assert_frame_equal(getattr(frames[True], name), getattr(frames[False], name))
    slow, fast = (build_reports(frames[flag], MERCHANT) for flag in (False, True))
    assert [b.payload for b in fast.reports] == [b.payload for b in slow.reports]
    assert len(fast.reports) == 33  # 32 shipped, 1 cancelled before shipment


NEXT_DAY = UNTIL + timedelta(days=1)


def current_marks(shop: Shop) -> dict[str, int]:
    """Marks at the shop's newest rows, as a run that read everything up to now leaves them."""
    return high_water_marks(shop.engine, shop.tables, None, datetime(2100, 1, 1))


def test_above_the_marks_a_shipment_is_found_by_its_history_row_whatever_its_date(shop: Shop) -> None:
    shop.shipped_order("REPORTED1")
    marks = current_marks(shop)
    shop.shipped_order("BACKDATED", at=MORNING - timedelta(days=30))  # recorded now, dated a month ago
    assert shop.references(UNTIL, NEXT_DAY, marks=marks) == ["BACKDATED"]
    assert shop.references() == ["REPORTED1"]  # by date, the backdated shipment is outside the window


def test_above_the_marks_a_refund_brings_a_long_shipped_order_back(shop: Shop) -> None:
    id_order = shop.shipped_order("REFUNDOLD", at=MORNING - timedelta(days=40))
    marks = current_marks(shop)
    shop.writer.refund(id_order, product_reference="TSHIRT-1", quantity=1, at=MORNING)
    assert shop.references(UNTIL, NEXT_DAY, marks=marks) == ["REFUNDOLD"]


def test_with_marks_a_buyer_edited_in_place_is_still_found_by_date(shop: Shop) -> None:
    shop.shipped_order("EMAILEDIT", at=MORNING - timedelta(days=40))
    marks = current_marks(shop)
    with shop.engine.begin() as conn:
        customer = shop.tables.customer
        conn.execute(customer.update().values(email="ana.g@example.com", date_upd=MORNING))
    assert shop.references(marks=marks) == ["EMAILEDIT"]


@pytest.mark.mysql
def test_with_the_readme_s_index_on_date_upd_an_edited_order_is_found_through_it_not_by_reading_every_order(
    mysql_shop: Shop,
) -> None:
    edited = mysql_shop.shipped_order("EDITEDORD", at=MORNING - timedelta(days=40))
    mysql_shop.shipped_order("UNTOUCHED", at=MORNING - timedelta(days=40))
    marks = current_marks(mysql_shop)
    mysql_shop.set_order(edited, date_upd=MORNING)
    with mysql_shop.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ps_orders ADD INDEX sequra_etl_date_upd (date_upd)")
    statements: list[str] = []
    event.listen(mysql_shop.engine, "before_cursor_execute", lambda *sent: statements.append(sent[2]))
    assert mysql_shop.references(marks=marks) == ["EDITEDORD"]
    assert any("FORCE INDEX (`sequra_etl_date_upd`)" in statement for statement in statements)
    assert not any("ps_orders USE INDEX ()" in statement for statement in statements)


@pytest.mark.mysql
def test_a_backfill_reads_the_orders_in_one_sweep_even_with_the_readme_s_index_on_date_upd(
    mysql_shop: Shop,
) -> None:
    edited = mysql_shop.shipped_order("EDITEDOLD", at=MORNING - timedelta(days=40))
    mysql_shop.set_order(edited, date_upd=MORNING)
    with mysql_shop.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ps_orders ADD INDEX sequra_etl_date_upd (date_upd)")
    statements: list[str] = []
    event.listen(mysql_shop.engine, "before_cursor_execute", lambda *sent: statements.append(sent[2]))
    # no marks: a long window, where the index's random reads would cost more than one sweep
    assert mysql_shop.references() == ["EDITEDOLD"]
    assert not any("FORCE INDEX" in statement for statement in statements)
    assert any("ps_orders USE INDEX ()" in statement for statement in statements)


def test_marks_stop_before_rows_dated_after_the_cutoff_so_the_next_run_reads_them_again(shop: Shop) -> None:
    shop.shipped_order("EARLYSHIP", at=MORNING)
    shop.shipped_order("LATESHIPS", at=MORNING + timedelta(hours=5))
    marks = high_water_marks(shop.engine, shop.tables, None, MORNING + timedelta(hours=1))
    assert marks["order_history"] < current_marks(shop)["order_history"]
    assert shop.references(UNTIL, NEXT_DAY, marks=marks) == ["LATESHIPS"]
    assert high_water_marks(shop.engine, shop.tables, marks, datetime(2100, 1, 1)) == current_marks(shop)


def test_an_order_placed_in_the_window_and_not_shipped_is_no_candidate_however_it_changes(shop: Shop) -> None:
    id_order = shop.order("UNSHIPPED", placed_at=MORNING)
    shop.set_order(id_order, date_upd=MORNING.replace(hour=12))
    shop.shipped_order("SHIPPEDIN", at=MORNING)
    assert shop.references() == ["SHIPPEDIN"]


def test_candidates_come_in_the_order_of_their_first_sub_order(shop: Shop) -> None:
    for reference in ("ZZZFIRST", "AAASECOND", "MMMTHIRD"):
        shop.shipped_order(reference)
    assert shop.references() == ["ZZZFIRST", "AAASECOND", "MMMTHIRD"]


def test_id_ranges_join_consecutive_ids_and_close_small_gaps_within_the_over_read_budget() -> None:
    assert id_ranges([]) == []
    assert id_ranges([7]) == [(7, 7)]
    assert id_ranges([1, 2, 3, 10, 11, 40], over_read=0) == [(1, 3), (10, 11), (40, 40)]
    assert id_ranges(range(1, 101), over_read=0) == [(1, 100)]
    # 100 ids allow 25 more: the gap of 6 (4..9) and of 8 (52..59) close, the gap of 60 does not
    ids = [*range(1, 4), *range(10, 52), *range(60, 100), *range(160, 175)]
    assert id_ranges(ids) == [(1, 99), (160, 174)]


def test_a_chunk_reads_only_its_own_orders_from_ranges_that_cover_other_orders(shop: Shop) -> None:
    shop.shipped_order("FIRSTONE")
    shop.shipped_order("NOTASKED", module="ps_checkpayment")
    shop.shipped_order("SKIPPEDBY")
    shop.shipped_order("THIRDONE")
    config = read_config(shop.engine, shop.tables, None)
    extract = extract_chunk(
        shop.engine, shop.tables, OrderFilter(("sequrapayment",)), config, ["FIRSTONE", "THIRDONE"]
    )
    assert list(extract.shipped_orders["reference"]) == ["FIRSTONE", "THIRDONE"]
    assert set(extract.order_lines["id_order"]) == set(extract.shipped_orders["id_order"])

"""Big shops are generated realistic and consistent: every shipped reference builds a report that adds up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from flows.cli.main import main
from schemas.prestashop import shop_tables
from seeding.big_shop import BigShop, BigShopError, loading_engine, seed_big_shop
from tasks.extract.candidates import high_water_marks
from tasks.extract.scope import OrderFilter
from tests.shops import build_window, candidates

NOW = datetime(2026, 11, 20, 12, 0)
YEAR = (datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def big(mysql_database_factory: Callable[[], str]) -> Iterator[tuple[Engine, BigShop]]:
    engine = loading_engine(make_url(mysql_database_factory()))
    yield engine, seed_big_shop(engine, shop_tables(), 1000, now=NOW, seed=7)
    engine.dispose()


def count(engine: Engine, query: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def shipped_sequra_orders(engine: Engine) -> int:
    """SeQura orders with a Shipped row in their history."""
    t = shop_tables()
    return count(
        engine,
        select(func.count(func.distinct(t.orders.c.id_order)))
        .select_from(t.orders.join(t.order_history, t.order_history.c.id_order == t.orders.c.id_order))
        .where(t.orders.c.module == "sequrapayment", t.order_history.c.id_order_state == 4),
    )


def test_it_holds_exactly_the_shipped_sequra_orders_asked_for_and_others_besides(
    big: tuple[Engine, BigShop],
) -> None:
    engine, shop = big
    t = shop_tables()
    assert shop.shipped_orders == shipped_sequra_orders(engine) == 1000
    assert shop.other_orders > 0
    assert shop.rows["ps_orders"] == 1000 + shop.other_orders
    others = select(func.count()).where(t.orders.c.module != "sequrapayment")
    assert count(engine, others) > 0


def test_every_shipped_reference_builds_a_report_whose_totals_add_up(big: tuple[Engine, BigShop]) -> None:
    engine, shop = big
    result = build_window(engine, shop_tables(), *YEAR, chunk_size=250)
    shipped = [built for built in result.reports if not built.cancellation]
    assert result.quarantined == []
    assert len(shipped) == shop.shipped_references
    for built in shipped:
        for cart in (built.report["cart"], built.report["remaining_cart"]):
            assert cart["order_total_with_tax"] == sum(item["total_with_tax"] for item in cart["items"])


def test_it_has_split_orders_refunds_discounts_gift_wrapping_and_edited_addresses(
    big: tuple[Engine, BigShop],
) -> None:
    engine, _ = big
    t = shop_tables()
    o = t.orders
    split = select(func.count()).select_from(
        select(o.c.reference).group_by(o.c.reference).having(func.count() > 1).subquery()
    )
    assert count(engine, split) > 0
    assert count(engine, select(func.count()).select_from(t.order_slip)) > 0
    assert count(engine, select(func.count()).select_from(t.order_cart_rule)) > 0
    assert count(engine, select(func.count()).where(o.c.gift == 1)) > 0
    assert count(engine, select(func.count()).where(t.address.c.deleted == 1)) > 0
    assert count(engine, select(func.count()).where(t.carrier.c.deleted == 1)) == 1
    assert count(engine, select(func.count(func.distinct(t.address.c.id_country)))) >= 4


def test_adding_orders_continues_its_ids_and_keeps_references_unique(
    mysql_database_factory: Callable[[], str],
) -> None:
    engine = loading_engine(make_url(mysql_database_factory()))
    seed_big_shop(engine, shop_tables(), 200, now=NOW)
    later = seed_big_shop(engine, shop_tables(), 50, now=NOW.replace(day=21), days=1)
    o = shop_tables().orders
    references = count(engine, select(func.count(func.distinct(o.c.reference))))
    assert later.shipped_orders == 50
    assert shipped_sequra_orders(engine) == 250
    assert references == count(engine, select(func.count(func.distinct(o.c.id_cart))))
    engine.dispose()


def history_dates_by_id(engine: Engine, above: int = 0) -> list[datetime]:
    """The dates of the order_history rows above the id `above`, in id order."""
    oh = shop_tables().order_history
    with engine.connect() as conn:
        query = select(oh.c.date_add).where(oh.c.id_order_history > above).order_by(oh.c.id_order_history)
        return list(conn.execute(query).scalars())


def test_history_ids_follow_the_dates_the_states_changed_as_prestashop_inserts_them(
    big: tuple[Engine, BigShop],
) -> None:
    engine, shop = big
    dates = history_dates_by_id(engine)
    assert len(dates) == shop.rows["ps_order_history"] > 3 * 1000
    assert dates == sorted(dates)


def test_a_night_added_to_a_shop_writes_its_history_above_the_shop_s_in_date_order(
    mysql_database_factory: Callable[[], str],
) -> None:
    engine = loading_engine(make_url(mysql_database_factory()))
    first = seed_big_shop(engine, shop_tables(), 300, now=NOW)
    night = seed_big_shop(engine, shop_tables(), 100, now=NOW.replace(day=21), days=1, seed=2)
    shop_rows = first.rows["ps_order_history"]
    added = history_dates_by_id(engine, above=shop_rows)
    assert len(added) == night.rows["ps_order_history"]
    assert added == sorted(added)
    assert added[-1] > NOW
    engine.dispose()


def changed_since(engine: Engine, cutoff: datetime) -> set[str]:
    """References with a history row dated from `cutoff` on, or whose order, buyer or address changed then."""
    t = shop_tables()
    o, oh, cust, a = t.orders, t.order_history, t.customer, t.address
    queries = [
        select(o.c.reference).join(oh, oh.c.id_order == o.c.id_order).where(oh.c.date_add >= cutoff),
        select(o.c.reference).where(o.c.date_upd >= cutoff),
        select(o.c.reference)
        .join(cust, cust.c.id_customer == o.c.id_customer)
        .where(cust.c.date_upd >= cutoff),
        select(o.c.reference)
        .join(a, a.c.id_address.in_([o.c.id_address_delivery, o.c.id_address_invoice]))
        .where(a.c.date_upd >= cutoff),
    ]
    with engine.connect() as conn:
        return {reference for query in queries for reference in conn.execute(query).scalars()}


def test_a_night_added_to_a_generated_shop_reads_again_only_the_orders_changed_in_the_overlap(
    mysql_database_factory: Callable[[], str],
) -> None:
    engine = loading_engine(make_url(mysql_database_factory()))
    tables = shop_tables()
    seed_big_shop(engine, tables, 2000, now=NOW, days=30)
    cutoff = NOW - timedelta(hours=6)  # the last run's end less the overlap, shop-local
    marks = high_water_marks(engine, tables, None, cutoff)
    seed_big_shop(engine, tables, 100, now=NOW + timedelta(days=1), days=1, seed=2)
    since, until = (datetime(2026, 11, 20, 5, 0, tzinfo=UTC), datetime(2026, 11, 21, 11, 0, tzinfo=UTC))
    read = candidates(engine, tables, OrderFilter(("sequrapayment",)), since, until, marks=marks)
    assert len(read) > 100
    assert set(read) - changed_since(engine, cutoff) == set()
    engine.dispose()


def test_only_mariadb_and_mysql_can_be_seeded() -> None:
    with pytest.raises(BigShopError, match="MariaDB or MySQL"):
        loading_engine(make_url("sqlite:///shop.sqlite"))


def test_the_seed_command_says_what_it_added(
    mysql_database_factory: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = mysql_database_factory()
    assert main(["seed", "--orders", "120", "--shop-db", url, "--now", "2026-11-20T12:00"]) == 0
    assert "Added 120 shipped SeQura orders" in capsys.readouterr().out
    assert main(["seed", "--orders", "0", "--shop-db", url]) == 2

"""Extract: read shipped SeQura orders from the PrestaShop database into checked frames, set-based.

A run first finds the order references to look at (`find_candidate_references`), then reads them one chunk
at a time (`extract_chunk`). Every chunk query selects by primary key or by an indexed id from an explicit
list of ids, and joins other tables only by primary key: MariaDB and MySQL cannot turn it into a scan of the
shop's whole history, whatever their statistics say. Finding the candidates of a scheduled run reads what
is new in the append-only tables (order_history, order_slip) above the high-water marks of the last run.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy import (
    Column,
    Engine,
    Select,
    String,
    and_,
    cast,
    create_engine,
    event,
    false,
    func,
    inspect,
    not_,
    or_,
    select,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.sql.elements import ColumnElement

from schemas import frames
from schemas.prestashop import ShopTables
from schemas.state import Marks
from tasks.chunks import in_chunks

STATISTICS_PERIOD = timedelta(days=7)
GROUPING_MEMORY = 256 * 2**20  # bytes the database may use to group a backfill's shipments in memory
KEYS_PER_QUERY = 10_000  # ids in one IN list: far below SQLite's 32,766 variables and MySQL's packet size
CONFIG_NAMES = (
    "PS_TIMEZONE",
    "PS_OS_DELIVERED",
    "PS_OS_CANCELED",
    "PS_OS_ERROR",
    "PS_SHOP_NAME",
    "PS_VERSION_DB",
)
# The append-only tables whose new rows bring an order back, read above a high-water mark by scheduled runs.
LOG = logging.getLogger(__name__)
MARKED_TABLES = ("order_history", "order_slip")


IdRange = tuple[int, int]
OVER_READ = 0.25  # rows of ids between a chunk's own that a range read may fetch, as a share of its ids


def id_ranges(ids: Collection[int], over_read: float = OVER_READ) -> list[IdRange]:
    """Inclusive ranges covering `ids`, as few as possible while reading at most `over_read` more ids.

    Consecutive ids make one range; the smallest gaps between ranges are then closed while the ids they
    add stay within the budget. A chunk of a backfill, whose orders were placed together, becomes a
    handful of ranges; a sparse chunk (a nightly run's) stays close to one range per order.
    """
    ordered = sorted(ids)
    if not ordered:
        return []
    gaps = sorted(
        (after - before - 1, index)
        for index, (before, after) in enumerate(pairwise(ordered))
        if after - before > 1
    )
    budget = over_read * len(ordered)
    closed: set[int] = set()
    for size, index in gaps:
        if size > budget:
            break
        budget -= size
        closed.add(index)
    ranges = []
    start = ordered[0]
    for index, (before, after) in enumerate(pairwise(ordered)):
        if after - before > 1 and index not in closed:
            ranges.append((start, before))
            start = after
    ranges.append((start, ordered[-1]))
    return ranges


SHORTEST_BETWEEN = 8  # ids in a range read with BETWEEN; shorter ranges go in the IN list


def in_ranges(column: Column[int], ranges: Sequence[IdRange]) -> Any:
    """`column` falls in one of the inclusive ranges: long ones as BETWEEN, the ids of the rest as one IN."""
    listed = [i for low, high in ranges if high - low + 1 < SHORTEST_BETWEEN for i in range(low, high + 1)]
    spans = [column.between(low, high) for low, high in ranges if high - low + 1 >= SHORTEST_BETWEEN]
    clauses = ([column.in_(listed)] if listed else []) + spans
    return or_(*clauses) if clauses else false()


class ShopReadError(RuntimeError):
    """The shop database could not be read as a PrestaShop database; the message says what to check."""


@contextmanager
def reading_the_shop(tables: ShopTables) -> Iterator[None]:
    """Turn the database's refusals into a ShopReadError that names the settings to check."""
    try:
        yield
    except (OperationalError, ProgrammingError) as error:
        raise ShopReadError(
            f"could not read the PrestaShop tables (prefix '{tables.prefix}'): {error.orig}; "
            "check SHOP_DB_URL and SHOP_TABLE_PREFIX"
        ) from None


@dataclass(frozen=True)
class OrderFilter:
    """Which orders are the merchant's SeQura orders: payment modules, one shop, delivery countries."""

    payment_modules: tuple[str, ...]
    shop_id: int | None = None
    delivery_countries: tuple[str, ...] = ()  # ISO codes; empty: every country not claimed elsewhere
    claimed_elsewhere: tuple[
        tuple[int | None, tuple[str, ...]], ...
    ] = ()  # other merchants' (shop, countries)


def _state_id(value: str | None) -> int | None:
    """An order state id from a configuration value, or None when unset or not a number."""
    return int(value) if value and value.strip().isdigit() else None


def _configuration_values(conn: Connection, tables: ShopTables, shop_id: int | None) -> dict[str, str]:
    """CONFIG_NAMES resolved like Configuration::get: the shop's row, its group's, then the global one."""
    cfg, shop = tables.configuration, tables.shop
    group = None
    if shop_id is not None:
        group = conn.execute(select(shop.c.id_shop_group).where(shop.c.id_shop == shop_id)).scalar()
    rows = conn.execute(
        select(cfg.c.name, cfg.c.value, cfg.c.id_shop, cfg.c.id_shop_group).where(
            cfg.c.name.in_(CONFIG_NAMES)
        )
    ).all()

    def rank(row: Any) -> int:
        if shop_id is not None and row.id_shop == shop_id:
            return 0
        if group is not None and row.id_shop is None and row.id_shop_group == group:
            return 1
        return 2 if row.id_shop is None and row.id_shop_group is None else 3

    values: dict[str, str] = {}
    for row in sorted(rows, key=rank, reverse=True):
        values[row.name] = row.value
    return values


def database_identity(conn: Connection) -> tuple[str, str]:
    """The database product and version, for the report's platform block."""
    if conn.dialect.name == "sqlite":
        return "sqlite", sqlite3.sqlite_version
    version = str(conn.execute(select(func.version())).scalar_one())
    return ("mariadb" if "mariadb" in version.lower() else conn.dialect.name), version


def read_shop_config(conn: Connection, tables: ShopTables, shop_id: int | None) -> frames.ShopConfig:
    """Read PS_TIMEZONE, the delivered, cancelled and shipped states, the shop's name and versions."""
    cfg = tables.configuration
    values = _configuration_values(conn, tables, shop_id)
    timezone = values.get("PS_TIMEZONE") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ShopReadError(
            f"PS_TIMEZONE '{timezone}' in {cfg.name} is not a time zone; fix it in the back office "
            "(International > Localization)"
        ) from None
    state = tables.order_state
    shipped = conn.execute(
        select(state.c.id_order_state).where(state.c.shipped == 1).order_by(state.c.id_order_state)
    ).scalars()
    db_name, db_version = database_identity(conn)
    return frames.ShopConfig(
        timezone=timezone,
        delivered_state=_state_id(values.get("PS_OS_DELIVERED")),
        canceled_states=tuple(
            state
            for state in (_state_id(values.get("PS_OS_CANCELED")), _state_id(values.get("PS_OS_ERROR")))
            if state
        ),
        shipped_states=tuple(shipped),
        shop_name=values.get("PS_SHOP_NAME") or "",
        ps_version=values.get("PS_VERSION_DB") or "unknown",
        module_table=inspect(conn).has_table(tables.sequra_order.name),
        db_name=db_name,
        db_version=db_version,
    )


def shop_local(moment: datetime, timezone: str) -> datetime:
    """Turn an aware UTC moment into the shop's naive local time, as PrestaShop stores dates."""
    return moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def shop_local_bounds(since: datetime, until: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The window in shop-local whole seconds, widened outwards to whole seconds.

    The shop stores seconds: a row stamped in the second `until` falls in belongs to this window too.
    """
    start, end = shop_local(since, timezone), shop_local(until, timezone)
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return start.replace(microsecond=0), end


def _sequra_order(order_filter: OrderFilter, tables: ShopTables) -> list:
    """The WHERE clauses that make an order a SeQura order of the merchant."""
    o = tables.orders
    return [
        o.c.module.in_(order_filter.payment_modules),
        o.c.reference.is_not(None),
        *_merchant_scope(order_filter, tables),
    ]


def _merchant_scope(order_filter: OrderFilter, tables: ShopTables) -> list[ColumnElement[bool]]:
    """The WHERE clauses that make an order one of the merchant's, whatever its payment: shop, countries."""
    o = tables.orders
    clauses: list[ColumnElement[bool]] = []
    if order_filter.shop_id is not None:
        clauses.append(o.c.id_shop == order_filter.shop_id)
    if order_filter.delivery_countries:
        clauses.append(_delivered_to(tables, order_filter.delivery_countries))
    for shop_id, countries in order_filter.claimed_elsewhere:
        claimed = _delivered_to(tables, countries)
        clauses.append(not_(and_(o.c.id_shop == shop_id, claimed) if shop_id is not None else claimed))
    return clauses


def _delivered_to(tables: ShopTables, countries: tuple[str, ...]) -> ColumnElement[bool]:
    """The clause: the order's delivery address is in one of `countries` (ISO codes)."""
    a, c = tables.address, tables.country
    return tables.orders.c.id_address_delivery.in_(
        select(a.c.id_address).join(c, c.c.id_country == a.c.id_country).where(c.c.iso_code.in_(countries))
    )


@dataclass(frozen=True)
class CandidateSearch:
    """What to look for: SeQura orders of a shop, in a shop-local window, above high-water marks if any."""

    tables: ShopTables
    order_filter: OrderFilter
    shipped_states: tuple[int, ...]
    since_local: datetime
    until_local: datetime
    marks: Mapping[str, int] | None = None


def _in_window(column: Any, search: CandidateSearch) -> Any:
    """`column` falls in the search's shop-local window."""
    return and_(column >= search.since_local, column < search.until_local)


def _first_orders(query: Select, orders: Any) -> Select:
    """`query` as (reference, lowest id_order) per reference, its FROM tables joined in the order written.

    STRAIGHT_JOIN (MySQL and MariaDB) keeps the table filtered by date or by id as the one read first, so
    the plan cannot depend on statistics a freshly loaded shop may not have.
    """
    return (
        query.with_only_columns(orders.c.reference, func.min(orders.c.id_order))
        .group_by(orders.c.reference)
        .prefix_with("STRAIGHT_JOIN", dialect="mysql")
        .prefix_with("STRAIGHT_JOIN", dialect="mariadb")
    )


def _whole_table_read(query: Select, table: Any) -> Select:
    """`query` reading `table` front to back on MySQL and MariaDB, not through one of its indexes.

    Left to itself MariaDB reads every order through the index on reference, to group by it without a
    sort: a million random reads instead of one sweep, forty seconds instead of two.
    """
    return query.with_hint(table, "USE INDEX ()", dialect_name="mysql").with_hint(
        table, "USE INDEX ()", dialect_name="mariadb"
    )


def shipped_in_window_query(search: CandidateSearch) -> Select:
    """References of SeQura orders that entered a shipped state in the window (scans order_history)."""
    o, oh = search.tables.orders, search.tables.order_history
    return _first_orders(
        select(o.c.reference)
        .select_from(oh.join(o, o.c.id_order == oh.c.id_order))
        .where(
            oh.c.id_order_state.in_(search.shipped_states),
            _in_window(oh.c.date_add, search),
            *_sequra_order(search.order_filter, search.tables),
        ),
        o,
    )


def _above_mark(search: CandidateSearch, name: str) -> Select:
    """References of SeQura orders with a row in the marked table `name` above its high-water mark."""
    o, table = search.tables.orders, getattr(search.tables, name)
    assert search.marks is not None
    row_id = table.primary_key.columns[0]
    return _first_orders(
        select(o.c.reference)
        .select_from(table.join(o, o.c.id_order == table.c.id_order))
        .where(row_id > search.marks.get(name, 0), *_sequra_order(search.order_filter, search.tables)),
        o,
    )


def changed_queries(search: CandidateSearch) -> list[Select]:
    """What may have changed in the window, one query per kind of change, each reading one table.

    Each query selects either references (reference, lowest id_order) or the ids of changed addresses
    (`id_address`) or buyers (`id_customer`), whose orders `orders_pointing_query` then finds by index.
    Changes PrestaShop makes in place (the order row, its buyer, an address edited in place) are found by
    their date_upd in the window, which PrestaShop does not index; so are merchandise returns (order_return,
    whose lines change product_quantity_return and not the order row). Rows added to order_history (a state
    change other than a shipment, as a cancellation) and order_slip (a refund, which leaves the order row
    untouched) are found above the marks of the last run when there are marks, else by their date in the
    window. An order placed in the window can only have shipped in it or after it, so it is found as a
    shipment or not at all: leaving such orders out keeps a backfill from reading every order of its
    window twice. An address or a buyer created in the window can only belong to such orders, or to an
    order repointed to it, whose own date_upd tells.
    """
    t = search.tables
    o, a, cust, slip, oh = t.orders, t.address, t.customer, t.order_slip, t.order_history
    returns = t.order_return
    since = search.since_local
    earlier = [*_sequra_order(search.order_filter, t), o.c.date_add < since]
    queries = [
        _whole_table_read(
            _first_orders(select(o.c.reference).where(*earlier, _in_window(o.c.date_upd, search)), o), o
        ),
        select(a.c.id_address).where(a.c.date_add < since, _in_window(a.c.date_upd, search)),
        select(cust.c.id_customer).where(cust.c.date_add < since, _in_window(cust.c.date_upd, search)),
        _first_orders(
            select(o.c.reference)
            .select_from(returns.join(o, o.c.id_order == returns.c.id_order))
            .where(_in_window(returns.c.date_upd, search), *earlier),
            o,
        ),
    ]
    if search.marks is not None:
        state_changes = _above_mark(search, "order_history").where(
            oh.c.id_order_state.not_in(search.shipped_states)
        )
        return [*queries, state_changes, _above_mark(search, "order_slip")]
    refunded = _first_orders(
        select(o.c.reference)
        .select_from(slip.join(o, o.c.id_order == slip.c.id_order))
        .where(_in_window(slip.c.date_add, search), *earlier),
        o,
    )
    return [*queries, refunded]


def orders_pointing_query(search: CandidateSearch, column: str, ids: Sequence[int]) -> Select:
    """References of SeQura orders placed before the window pointing at `ids` by `column`, by its index."""
    o = search.tables.orders
    earlier = [*_sequra_order(search.order_filter, search.tables), o.c.date_add < search.since_local]
    return _first_orders(select(o.c.reference).where(o.c[column].in_(ids), *earlier), o)


def shipments_query(search: CandidateSearch) -> Select:
    """References shipped in the window (by date) or above the marks, in the order of their first id."""
    o, oh = search.tables.orders, search.tables.order_history
    if search.marks is None:
        return shipped_in_window_query(search).order_by(func.min(o.c.id_order))
    return (
        _above_mark(search, "order_history")
        .where(oh.c.id_order_state.in_(search.shipped_states))
        .order_by(func.min(o.c.id_order))
    )


def shipped_among_query(search: CandidateSearch, references: Sequence[str]) -> Select:
    """Which of `references` have a SeQura sub-order that entered a shipped state at any time."""
    o, oh = search.tables.orders, search.tables.order_history
    return _first_orders(
        select(o.c.reference)
        .select_from(o.join(oh, oh.c.id_order == o.c.id_order))
        .where(
            o.c.reference.in_(references),
            oh.c.id_order_state.in_(search.shipped_states),
            *_sequra_order(search.order_filter, search.tables),
        ),
        o,
    )


POINTERS = {
    "id_address": ("id_address_delivery", "id_address_invoice"),
    "id_customer": ("id_customer",),
}


def _changed_references(engine: Engine, search: CandidateSearch) -> set[str]:
    """Every reference a change in the window (or above the marks) brings back, shipped or not.

    The queries each read one table, on two connections at once: most of their time is the database's.
    """

    def run(query: Select) -> set[str]:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
            if not rows or query.selected_columns[0].name not in POINTERS:
                return {row[0] for row in rows if row[0] is not None}
            column = query.selected_columns[0].name
            found: set[str] = set()
            for pointer in POINTERS[column]:
                for part in in_chunks([row[0] for row in rows], KEYS_PER_QUERY):
                    found |= {row[0] for row in conn.execute(orders_pointing_query(search, pointer, part))}
            return found

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="candidate-search") as pool:
        return set().union(*pool.map(run, changed_queries(search)))


def candidate_references(engine: Engine, search: CandidateSearch, batch: int) -> Iterator[list[str]]:
    """References to read, `batch` at a time: shipped in the window, then shipped before and changed in it.

    The shipments (by date, or above the marks) stream in the order of their first sub-order's id, so
    that a chunk's rows lie close together in the shop's tables; only the changed references, few beside
    them, are held in memory. A scheduled run with marks does not look for shipments by date: a shipment
    is a new order_history row, found above the mark.
    """
    with reading_the_shop(search.tables):
        changed = _changed_references(engine, search)
        with engine.connect() as conn:
            if conn.dialect.name in ("mysql", "mariadb"):
                # Grouping a year's shipments by reference outgrows the default 16 MB in-memory temporary
                # table; on disk it takes three times as long. For this connection only.
                conn.exec_driver_sql(
                    f"SET SESSION tmp_table_size = {GROUPING_MEMORY}, max_heap_table_size = {GROUPING_MEMORY}"
                )
            result = conn.execution_options(stream_results=True).execute(shipments_query(search))
            for rows in result.partitions(batch):
                references = [row[0] for row in rows if row[0] is not None]
                changed.difference_update(references)
                yield references
        with engine.connect() as conn:
            earlier: list[tuple[int, str]] = []
            for part in in_chunks(sorted(changed), KEYS_PER_QUERY):
                earlier += [
                    (first_id, reference)
                    for reference, first_id in conn.execute(shipped_among_query(search, part))
                ]
        for part in in_chunks([reference for _, reference in sorted(earlier)], batch):
            yield list(part)


def find_candidate_references(engine: Engine, search: CandidateSearch) -> list[str]:
    """Every reference candidate_references finds, in its order (for tests and small windows)."""
    return [reference for part in candidate_references(engine, search, KEYS_PER_QUERY) for reference in part]


def high_water_marks(
    engine: Engine, tables: ShopTables, previous: Mapping[str, int] | None, cutoff_local: datetime
) -> Marks:
    """The marks the next scheduled run reads above: per marked table, an id below every recent row.

    Ids are handed out when a row is inserted, not when its transaction commits, so a row with a lower id
    can appear after a higher one. A mark is the highest id dated before `cutoff` (the run's end less the
    overlap), lowered below the first row dated after it: every row dated within the overlap stays above
    the mark and is read again by the next run, as the window's overlap does for dates, even where dates
    do not follow ids (rows dated back, clocks set back). Reads only the ids above the previous marks, by
    primary key, when there are previous marks.
    """
    marks: Marks = {}
    with reading_the_shop(tables), engine.connect() as conn:
        for name in MARKED_TABLES:
            table = getattr(tables, name)
            row_id: Column[int] = table.primary_key.columns[0]
            floor = (previous or {}).get(name, 0)
            above = row_id > floor
            older = conn.execute(select(func.max(row_id)).where(above, table.c.date_add < cutoff_local))
            recent = conn.execute(select(func.min(row_id)).where(above, table.c.date_add >= cutoff_local))
            highest, first_recent = older.scalar(), recent.scalar()
            mark = int(highest or floor)
            if first_recent is not None:
                mark = min(mark, int(first_recent) - 1)
            marks[name] = max(floor, mark)
    return marks


def order_ids_query(tables: ShopTables, references: Sequence[str]) -> Select:
    """The id_order of every order of the references, from the index on orders.reference alone."""
    o = tables.orders
    return select(o.c.id_order).where(o.c.reference.in_(references))


def orders_query(
    tables: ShopTables, order_filter: OrderFilter, config: frames.ShopConfig, ranges: Sequence[IdRange]
) -> Select:
    """One row per SeQura order with its id in the ranges: currency, language, buyer and carrier.

    The orders are read along the primary key; every join is by primary key.
    """
    o, cur, lang, cust, car, car_lang = (
        tables.orders,
        tables.currency,
        tables.lang,
        tables.customer,
        tables.carrier,
        tables.carrier_lang,
    )
    columns = [
        o.c.id_order,
        o.c.reference,
        o.c.id_shop,
        o.c.current_state,
        o.c.id_currency,
        cur.c.iso_code.label("currency_iso"),
        o.c.id_lang,
        lang.c.iso_code.label("language_code"),
        o.c.id_customer,
        (cust.c.id_customer.is_not(None)).label("customer_found"),
        cust.c.firstname.label("customer_firstname"),
        cust.c.lastname.label("customer_lastname"),
        cust.c.email.label("customer_email"),
        cust.c.company.label("customer_company"),
        cust.c.is_guest.label("customer_is_guest"),
        o.c.id_carrier,
        car.c.name.label("carrier_name"),
        car_lang.c.delay.label("carrier_delay"),
        o.c.id_address_delivery,
        o.c.id_address_invoice,
        o.c.gift,
        o.c.total_paid_tax_incl,
        o.c.total_shipping_tax_incl,
        o.c.total_wrapping_tax_incl,
    ]
    joined = (
        o.outerjoin(cur, cur.c.id_currency == o.c.id_currency)
        .outerjoin(lang, lang.c.id_lang == o.c.id_lang)
        .outerjoin(cust, cust.c.id_customer == o.c.id_customer)
        .outerjoin(car, car.c.id_carrier == o.c.id_carrier)
        .outerjoin(
            car_lang,
            and_(
                car_lang.c.id_carrier == o.c.id_carrier,
                car_lang.c.id_lang == o.c.id_lang,
                car_lang.c.id_shop == o.c.id_shop,
            ),
        )
    )
    if config.module_table:
        module = tables.sequra_order
        joined = joined.outerjoin(module, module.c.order_id == o.c.id_order)
        columns += [
            module.c.sent_to_sequra.label("module_sent"),
            module.c.merchant_id.label("module_merchant_id"),
        ]
    return (
        select(*columns)
        .select_from(joined)
        .where(*_sequra_order(order_filter, tables), in_ranges(o.c.id_order, ranges))
    )


def _as_text(column: Column[datetime]) -> Any:
    """A datetime column read as its text ('2026-11-20 10:00:00', zero dates too), for pandas to parse.

    Drivers make a Python datetime of every value one by one; pandas parses a whole column at once.
    """
    return cast(column, String(19)).label(column.name)


def shipping_query(tables: ShopTables, config: frames.ShopConfig, ranges: Sequence[IdRange]) -> Select:
    """Every order_history row in a shipped state of the orders in the ranges (by the index on id_order)."""
    oh = tables.order_history
    return select(oh.c.id_order, _as_text(oh.c.date_add)).where(
        in_ranges(oh.c.id_order, ranges), oh.c.id_order_state.in_(config.shipped_states)
    )


def order_lines_query(tables: ShopTables, ranges: Sequence[IdRange]) -> Select:
    """Every order_detail line of the orders in the ranges."""
    d = tables.order_detail
    return select(
        d.c.id_order,
        d.c.id_order_detail,
        d.c.product_id,
        d.c.product_reference,
        d.c.product_name,
        d.c.product_quantity,
        d.c.product_quantity_refunded,
        d.c.product_quantity_return,
        d.c.unit_price_tax_incl,
        d.c.total_price_tax_incl,
    ).where(in_ranges(d.c.id_order, ranges))


def order_discounts_query(tables: ShopTables, ranges: Sequence[IdRange]) -> Select:
    """Every discount still applied (order_cart_rule.deleted = 0) to the orders in the ranges."""
    r = tables.order_cart_rule
    return select(r.c.id_order, r.c.id_order_cart_rule, r.c.name, r.c.value).where(
        in_ranges(r.c.id_order, ranges), r.c.deleted == 0
    )


def address_rows_query(tables: ShopTables, *extra: Column[Any]) -> Select:
    """Address rows with what a report takes from them, their country's ISO code and their state's name."""
    a, country, state = tables.address, tables.country, tables.state
    return select(
        a.c.id_address,
        a.c.firstname,
        a.c.lastname,
        a.c.company,
        a.c.address1,
        a.c.address2,
        a.c.postcode,
        a.c.city,
        a.c.phone,
        a.c.phone_mobile,
        a.c.vat_number,
        a.c.dni,
        a.c.other,
        a.c.id_country,
        country.c.iso_code.label("country_iso"),
        state.c.name.label("state_name"),
        *extra,
    ).select_from(
        a.outerjoin(country, country.c.id_country == a.c.id_country).outerjoin(
            state, state.c.id_state == a.c.id_state
        )
    )


def order_addresses_query(tables: ShopTables, ranges: Sequence[IdRange]) -> Select:
    """The address rows with their id in the ranges, by primary key, soft-deleted ones included."""
    return address_rows_query(tables).where(in_ranges(tables.address.c.id_address, ranges))


def order_trackings_query(tables: ShopTables, ranges: Sequence[IdRange]) -> Select:
    """Every tracking number (order_carrier) of the orders in the ranges, with its carrier's URL."""
    oc, car = tables.order_carrier, tables.carrier
    return (
        select(
            oc.c.id_order,
            oc.c.id_order_carrier,
            oc.c.tracking_number,
            car.c.name.label("carrier_name"),
            car.c.url.label("carrier_url"),
        )
        .select_from(oc.outerjoin(car, car.c.id_carrier == oc.c.id_carrier))
        .where(
            in_ranges(oc.c.id_order, ranges),
            oc.c.tracking_number.is_not(None),
            oc.c.tracking_number != "",
        )
    )


def _frame(conn: Connection, query: Select) -> pd.DataFrame:
    """Run one query into a frame whose columns are the query's labels.

    MySQL's drivers hand back what the frames need (Decimal, int, str; a zero date as None or its text,
    which the one date column read here turns into NaT): their rows go to pandas as they are. SQLite keeps
    money and dates as text, which the column types turn into Decimal and datetime row by row.
    """
    result = conn.execute(query)
    columns = list(result.keys())
    if conn.dialect.name in ("mysql", "mariadb"):
        return pd.DataFrame.from_records(result.cursor.fetchall(), columns=columns)
    return pd.DataFrame.from_records([tuple(row) for row in result], columns=columns)


def _frame_of_ids(
    conn: Connection,
    query: Callable[[Sequence[IdRange]], Select],
    column: str,
    ids: Collection[int],
    order: Sequence[str],
) -> pd.DataFrame:
    """The rows of `query` whose `column` is one of `ids`, sorted by `order`; one query for a usual chunk.

    The query reads id ranges covering `ids` (see id_ranges) and the rows of ids in between are dropped
    here. The database does not sort: ORDER BY over thousands of ranges makes MariaDB build a temporary
    table, pandas sorts the same rows in a fraction of that time.
    """
    ranges = id_ranges(ids)
    parts = [_frame(conn, query(part)) for part in in_chunks(ranges, KEYS_PER_QUERY)]
    if not parts:
        return pd.DataFrame(columns=[column.name for column in query([]).selected_columns])
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    wanted = frame[column].isin(ids)
    if not wanted.all():
        frame = frame[wanted]
    return frame.sort_values(list(order), ignore_index=True) if order else frame.reset_index(drop=True)


def _to_utc(local: pd.Series, timezone: str) -> pd.Series:
    """Shop-local naive timestamps to UTC (an hour repeated at a DST change is read as its first pass)."""
    stamps = pd.to_datetime(local, errors="coerce").astype("datetime64[us]")
    localized = stamps.dt.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
    return localized.dt.tz_convert("UTC").astype(frames.UTC_TIMESTAMP)


def _with_shipping(orders: pd.DataFrame, shipped_rows: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The orders with how many shipped history rows each has and when it first shipped, in UTC.

    A shipped state dated 0000-00-00 counts as a shipped row without a date.
    """
    shipped_rows = shipped_rows.assign(
        date_add=pd.to_datetime(shipped_rows["date_add"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    )
    per_order = shipped_rows.groupby("id_order", sort=False).agg(
        shipped_rows=("id_order", "size"), first_shipped_local=("date_add", "min")
    )
    orders = orders.join(per_order, on="id_order")
    orders["shipped_rows"] = orders["shipped_rows"].fillna(0).astype("int64")
    orders["shipped_at"] = _to_utc(orders.pop("first_shipped_local"), timezone)
    return orders


def extract_chunk(
    engine: Engine,
    tables: ShopTables,
    order_filter: OrderFilter,
    config: frames.ShopConfig,
    references: Sequence[str],
) -> frames.ShopExtract:
    """Read the five frames of one chunk of references, with seven queries, and check them.

    The first finds the ids of the references' orders in the index on orders.reference; the others read
    those ids as ranges of the primary key or of the index on id_order: a chunk's orders were placed
    close together, and a range is read in one sweep where a list of ids is looked up one by one.
    """
    with reading_the_shop(tables), engine.connect() as conn:
        ids = set()
        for part in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
            ids |= set(conn.execute(order_ids_query(tables, part)).scalars())
        orders = _frame_of_ids(
            conn,
            lambda ranges: orders_query(tables, order_filter, config, ranges),
            "id_order",
            ids,
            ["id_order"],
        )
        orders = orders[orders["reference"].isin(references)].reset_index(drop=True)
        id_orders = set(orders["id_order"])
        id_addresses = set(orders["id_address_delivery"]) | set(orders["id_address_invoice"])
        shipped = _frame_of_ids(
            conn, lambda ranges: shipping_query(tables, config, ranges), "id_order", id_orders, ()
        )
        lines = _frame_of_ids(
            conn,
            lambda ranges: order_lines_query(tables, ranges),
            "id_order",
            id_orders,
            ["id_order", "id_order_detail"],
        )
        discounts = _frame_of_ids(
            conn,
            lambda ranges: order_discounts_query(tables, ranges),
            "id_order",
            id_orders,
            ["id_order", "id_order_cart_rule"],
        )
        addresses = _frame_of_ids(
            conn,
            lambda ranges: order_addresses_query(tables, ranges),
            "id_address",
            id_addresses,
            ["id_address"],
        )
        trackings = _frame_of_ids(
            conn,
            lambda ranges: order_trackings_query(tables, ranges),
            "id_order",
            id_orders,
            ["id_order", "id_order_carrier"],
        )
    if not config.module_table:
        orders["module_sent"] = None
        orders["module_merchant_id"] = None
    shipped_orders = _with_shipping(orders, shipped, config.timezone)
    checked = {
        name: frames.checked(frame, schema, key)
        for name, frame, schema, key in (
            ("shipped_orders", shipped_orders, frames.SHIPPED_ORDERS, "id_order"),
            ("order_lines", lines, frames.ORDER_LINES, "id_order"),
            ("order_discounts", discounts, frames.ORDER_DISCOUNTS, "id_order"),
            ("order_addresses", addresses, frames.ORDER_ADDRESSES, "id_address"),
            ("order_trackings", trackings, frames.ORDER_TRACKINGS, "id_order"),
        )
    }
    return frames.ShopExtract(
        config=config,
        **{name: frame for name, (frame, _) in checked.items()},
        unreadable=unreadable_references(shipped_orders, {name: bad for name, (_, bad) in checked.items()}),
    )


def unreadable_references(orders: pd.DataFrame, broken: Mapping[str, Mapping[int, str]]) -> dict[str, str]:
    """Per reference, what is wrong in those of its rows that broke their frame's contract, naming the order.

    `broken` maps each frame's name to its broken keys: id_address for order_addresses, else id_order.
    """
    addresses = broken.get("order_addresses", {})
    by_order = {
        key: reason
        for name, bad in broken.items()
        if name != "order_addresses"
        for key, reason in bad.items()
    }
    unreadable: dict[str, str] = {}
    for id_order, reference, delivery, invoice in zip(
        orders["id_order"],
        orders["reference"],
        orders["id_address_delivery"],
        orders["id_address_invoice"],
        strict=True,
    ):
        reason = by_order.get(id_order) or addresses.get(delivery) or addresses.get(invoice)
        if reason is not None:
            unreadable.setdefault(
                f"id_order {id_order}" if reference is None else str(reference),
                f"order {id_order}: {reason}; correct it in the back office or the database",
            )
    return unreadable


def recent_orders_query(
    tables: ShopTables, order_filter: OrderFilter, placed_since_local: datetime
) -> Select:
    """Every order of the merchant placed since `placed_since_local`, any payment (date_add is indexed)."""
    o, osl = tables.orders, tables.order_state_lang
    cur, a, country = tables.currency, tables.address, tables.country
    clauses = [o.c.date_add >= placed_since_local, *_merchant_scope(order_filter, tables)]
    return (
        select(
            o.c.id_order,
            o.c.reference,
            o.c.module,
            o.c.date_add.label("placed_local"),
            o.c.total_paid_tax_incl,
            cur.c.iso_code.label("currency_iso"),
            country.c.iso_code.label("country_iso"),
            o.c.current_state,
            osl.c.name.label("state_name"),
        )
        .select_from(
            o.outerjoin(cur, cur.c.id_currency == o.c.id_currency)
            .outerjoin(a, a.c.id_address == o.c.id_address_delivery)
            .outerjoin(country, country.c.id_country == a.c.id_country)
            .outerjoin(osl, and_(osl.c.id_order_state == o.c.current_state, osl.c.id_lang == o.c.id_lang))
        )
        .where(*clauses)
        .order_by(o.c.id_order)
    )


def ever_shipped_query(tables: ShopTables, config: frames.ShopConfig, ranges: Sequence[IdRange]) -> Select:
    """Which of the orders in the ranges entered a shipped state at some time."""
    oh = tables.order_history
    return (
        select(oh.c.id_order)
        .where(in_ranges(oh.c.id_order, ranges), oh.c.id_order_state.in_(config.shipped_states))
        .distinct()
    )


def extract_recent_orders(
    engine: Engine,
    tables: ShopTables,
    config: frames.ShopConfig,
    order_filter: OrderFilter,
    placed_since: datetime,
) -> pd.DataFrame:
    """The checked frame of every order of the merchant placed since `placed_since` (UTC), for statistics."""
    placed_since_local = shop_local(placed_since, config.timezone)
    with reading_the_shop(tables), engine.connect() as conn:
        recent = _frame(conn, recent_orders_query(tables, order_filter, placed_since_local))
        ids = [int(value) for value in recent["id_order"]]
        shipped = set(
            _frame_of_ids(
                conn, lambda ranges: ever_shipped_query(tables, config, ranges), "id_order", ids, ()
            )["id_order"]
        )
    recent["ever_shipped"] = recent["id_order"].isin(shipped).astype("int64")
    recent["placed_at"] = _to_utc(recent.pop("placed_local"), config.timezone)
    checked, broken = frames.checked(recent, frames.RECENT_ORDERS, "id_order")
    if broken:  # statistics are a courtesy: an order that cannot be read is left out of them, said once
        LOG.warning("left out of the statistics: %s", "; ".join(f"order {k}: {v}" for k, v in broken.items()))
    return checked


def _plain_in_lists_on_mariadb(dbapi_connection: Any, _record: object) -> None:
    """Keep MariaDB from turning long IN lists into a derived table, on this connection only.

    With its statistics stale, MariaDB may then scan a whole table per chunk instead of reading the listed
    ids by index; a plain IN list always gets a range read of the index, as on MySQL.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT VERSION()")
        if "mariadb" in str(cursor.fetchone()[0]).lower():
            cursor.execute("SET SESSION in_predicate_conversion_threshold = 0")
    finally:
        cursor.close()


def fastest_driver(url: URL) -> URL:
    """`url` through mysqlclient (C) instead of pymysql when it is installed: same rows, fetched faster."""
    if url.get_backend_name() not in ("mysql", "mariadb") or url.get_driver_name() != "pymysql":
        return url
    try:
        import MySQLdb  # noqa: F401  (only whether the optional fast extra is installed)
    except ImportError:
        return url
    return url.set(drivername=f"{url.get_backend_name()}+mysqldb")


def shop_engine(url: URL, *, fast: bool = True) -> Engine:
    """An engine on the shop database (through mysqlclient if `fast` and installed).

    MySQL connections are forced to utf8mb4 so emoji survive, and MariaDB reads IN lists by index.
    """
    if url.get_backend_name() not in ("mysql", "mariadb"):
        return create_engine(url, pool_pre_ping=True)
    if fast:
        url = fastest_driver(url)
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "connect", _plain_in_lists_on_mariadb)
    return engine


def read_config(engine: Engine, tables: ShopTables, shop_id: int | None) -> frames.ShopConfig:
    """The shop's configuration, or a ShopReadError naming the settings to check."""
    with reading_the_shop(tables), engine.connect() as conn:
        return read_shop_config(conn, tables, shop_id)

"""Candidates: the order references a run reads, by date or above the last run's marks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Column, Engine, Row, Select, and_, case, func, inspect, select

from schemas.prestashop import ShopTables
from schemas.state import Marks
from tasks.extract.connection import KEYS_PER_QUERY, reading_the_shop
from tasks.extract.scope import OrderFilter, in_merchant_countries, shop_order_clauses
from tasks.rows import in_chunks

GROUPING_MEMORY = 256 * 2**20  # bytes the database may use to group a backfill's shipments in memory


# The append-only tables whose new rows bring an order back, read above a high-water mark by scheduled runs.


MARKED_TABLES = ("order_history", "order_slip")


@dataclass(frozen=True)
class CandidateSearch:
    """What to look for: SeQura orders of a shop, in a shop-local window, above high-water marks if any.

    `reporting_states` are the states whose entry SeQura must hear of: shipped, or cancelled unshipped.
    """

    tables: ShopTables
    order_filter: OrderFilter
    reporting_states: tuple[int, ...]
    since_local: datetime
    until_local: datetime
    marks: Mapping[str, int] | None = None


class Candidate(NamedTuple):
    """A reference the search found, and whether it is delivered where the merchant takes orders now."""

    reference: str
    in_scope: bool


def in_scope_now(found: Sequence[Candidate]) -> list[str]:
    """The references of the candidates delivered where the merchant takes orders now."""
    return [candidate.reference for candidate in found if candidate.in_scope]


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


def _with_scope(query: Select, search: CandidateSearch) -> Select:
    """A `_first_orders` query with a third column where orders are told by country: in the scope now.

    The column says whether one of the reference's orders is delivered where the merchant takes orders
    now (1) or not (0). The search itself leaves the countries out: an order stays with the merchant that
    reported it wherever it is delivered now, which only the state store tells.
    """
    order_filter = search.order_filter
    if not order_filter.by_country:
        return query
    in_scope = in_merchant_countries(order_filter, search.tables)
    return query.add_columns(func.max(case((in_scope, 1), else_=0)))


def _candidate(row: Row[Any]) -> Candidate:
    """The candidate of a row of `_with_scope`: in scope when the merchant does not tell orders by country."""
    return Candidate(row[0], bool(row[2]) if len(row) > 2 else True)


def _orders_read(query: Select, table: Any, date_upd_index: str | None = None) -> Select:
    """`query` reading `table` front to back on MySQL and MariaDB, or through `date_upd_index` when given.

    Left to itself MariaDB reads every order through the index on reference, to group by it without a
    sort: a million random reads instead of one sweep, forty seconds instead of two. An index led by
    date_upd (README, "Large shops") reads only the rows changed in the window.
    """
    hint = "USE INDEX ()"
    if date_upd_index is not None:
        hint = "FORCE INDEX (`{}`)".format(date_upd_index.replace("`", "``"))
    return query.with_hint(table, hint, dialect_name="mysql").with_hint(table, hint, dialect_name="mariadb")


def date_upd_index(engine: Engine, table: Any) -> str | None:
    """The name of an index of `table` whose first column is date_upd, or None; reads the shop's schema."""
    for index in inspect(engine).get_indexes(table.name):
        if index["column_names"] and index["column_names"][0] == "date_upd":
            return index["name"]
    return None


def shipped_in_window_query(search: CandidateSearch) -> Select:
    """References of SeQura orders that entered a shipped or the cancelled state in the window (by date)."""
    o, oh = search.tables.orders, search.tables.order_history
    return _first_orders(
        select(o.c.reference)
        .select_from(oh.join(o, o.c.id_order == oh.c.id_order))
        .where(
            oh.c.id_order_state.in_(search.reporting_states),
            _in_window(oh.c.date_add, search),
            *shop_order_clauses(search.order_filter, search.tables),
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
        .where(row_id > search.marks.get(name, 0), *shop_order_clauses(search.order_filter, search.tables)),
        o,
    )


def changed_queries(search: CandidateSearch, orders_date_upd_index: str | None = None) -> list[Select]:
    """What may have changed in the window, one query per kind of change, each reading one table.

    Each query selects either references (reference, lowest id_order) or the ids of changed addresses
    (`id_address`) or buyers (`id_customer`), whose orders `orders_pointing_query` then finds by index.
    Changes PrestaShop makes in place (the order row, its buyer, an address edited in place) are found by
    their date_upd in the window, which PrestaShop does not index (the orders are read through
    `orders_date_upd_index` when the shop has one, README "Large shops"); so are merchandise returns
    (order_return, whose lines change product_quantity_return and not the order row). Rows added to
    order_history (a state change other than a shipment, as a cancellation) and order_slip (a refund, which
    leaves the order row untouched) are found above the marks of the last run when there are marks, else by
    their date in the window. An order placed in the window can only have shipped in it or after it, so it
    is found as a shipment or not at all: leaving such orders out keeps a backfill from reading every order
    of its window twice. An address or a buyer created in the window can only belong to such orders, or to an
    order repointed to it, whose own date_upd tells.
    """
    t = search.tables
    o, a, cust, slip, oh = t.orders, t.address, t.customer, t.order_slip, t.order_history
    returns = t.order_return
    since = search.since_local
    earlier = [*shop_order_clauses(search.order_filter, t), o.c.date_add < since]
    queries = [
        _orders_read(
            _first_orders(select(o.c.reference).where(*earlier, _in_window(o.c.date_upd, search)), o),
            o,
            orders_date_upd_index,
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
            oh.c.id_order_state.not_in(search.reporting_states)
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
    earlier = [*shop_order_clauses(search.order_filter, search.tables), o.c.date_add < search.since_local]
    return _first_orders(select(o.c.reference).where(o.c[column].in_(ids), *earlier), o)


def shipments_query(search: CandidateSearch) -> Select:
    """References shipped or cancelled in the window (by date) or above the marks, by their first id."""
    o, oh = search.tables.orders, search.tables.order_history
    if search.marks is None:
        query = shipped_in_window_query(search)
    else:
        query = _above_mark(search, "order_history").where(oh.c.id_order_state.in_(search.reporting_states))
    return _with_scope(query, search).order_by(func.min(o.c.id_order))


def shipped_among_query(search: CandidateSearch, references: Sequence[str]) -> Select:
    """Which of `references` have a SeQura sub-order that entered a shipped or the cancelled state, ever."""
    o, oh = search.tables.orders, search.tables.order_history
    return _with_scope(
        _first_orders(
            select(o.c.reference)
            .select_from(o.join(oh, oh.c.id_order == o.c.id_order))
            .where(
                o.c.reference.in_(references),
                oh.c.id_order_state.in_(search.reporting_states),
                *shop_order_clauses(search.order_filter, search.tables),
            ),
            o,
        ),
        search,
    )


def orders_among_query(search: CandidateSearch, references: Sequence[str]) -> Select:
    """Which of `references` are SeQura orders of the merchant's shop, by the index on reference."""
    o = search.tables.orders
    clauses = shop_order_clauses(search.order_filter, search.tables)
    return _with_scope(
        _first_orders(select(o.c.reference).where(o.c.reference.in_(references), *clauses), o), search
    )


def candidates_among(engine: Engine, search: CandidateSearch, references: Sequence[str]) -> list[Candidate]:
    """The candidates among `references` that are SeQura orders of the merchant's shop; reads the shop."""
    found: list[Candidate] = []
    with reading_the_shop(search.tables), engine.connect() as conn:
        for part in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
            found += [_candidate(row) for row in conn.execute(orders_among_query(search, part))]
    return found


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
        # a run above marks reads a short window: few rows through the index; a backfill or a first run
        # reads a long one, where the index's random reads cost more than one sweep of the table
        index = date_upd_index(engine, search.tables.orders) if search.marks else None
        queries = changed_queries(search, index)
        return set().union(*pool.map(run, queries))


def found_candidates(engine: Engine, search: CandidateSearch, batch: int) -> Iterator[list[Candidate]]:
    """Candidates, `batch` at a time: shipped in the window, then shipped before and changed in it.

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
                found = [_candidate(row) for row in rows if row[0] is not None]
                changed.difference_update(candidate.reference for candidate in found)
                yield found
        with engine.connect() as conn:
            earlier: list[tuple[int, Candidate]] = []
            for part in in_chunks(sorted(changed), KEYS_PER_QUERY):
                earlier += [
                    (row[1], _candidate(row)) for row in conn.execute(shipped_among_query(search, part))
                ]
    for part in in_chunks([candidate for _, candidate in sorted(earlier)], batch):
        yield list(part)


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

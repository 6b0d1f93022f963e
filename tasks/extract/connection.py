"""The shop's database: its engine, its refusals as one error, and frames read by id ranges."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import pandas as pd
from sqlalchemy import Column, Engine, Select, create_engine, event, false, or_
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from schemas.errors import TerminalError
from schemas.prestashop import ShopTables
from tasks.rows import in_chunks

KEYS_PER_QUERY = 10_000  # ids in one IN list: far below SQLite's 32,766 variables and MySQL's packet size


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


class ShopReadError(TerminalError):
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


def frame_of(conn: Connection, query: Select) -> pd.DataFrame:
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


def frame_of_ids(
    conn: Connection,
    query: Callable[[Sequence[IdRange]], Select],
    column: str,
    ids: Collection[int],
    order: Sequence[str],
    ranges: Sequence[IdRange] | None = None,
) -> pd.DataFrame:
    """The rows of `query` whose `column` is one of `ids`, sorted by `order`; one query for a usual chunk.

    The query reads id ranges covering `ids` (see id_ranges; `ranges` when already worked out for the same
    ids) and the rows of ids in between are dropped here. The database does not sort: ORDER BY over thousands
    of ranges makes MariaDB build a temporary table, pandas sorts the same rows in a fraction of that time.
    """
    ranges = id_ranges(ids) if ranges is None else ranges
    parts = [frame_of(conn, query(part)) for part in in_chunks(ranges, KEYS_PER_QUERY)]
    if not parts:
        return pd.DataFrame(columns=[column.name for column in query([]).selected_columns])
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    wanted = frame[column].isin(ids)
    if not wanted.all():
        frame = frame[wanted]
    return frame.sort_values(list(order), ignore_index=True) if order else frame.reset_index(drop=True)


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

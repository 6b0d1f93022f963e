"""EXPLAIN of every query a run sends the shop, on a freshly loaded shop whose statistics nobody refreshed.

Each plan is summed up table by table (access type, key, estimated rows). A full scan (`ALL`) of a big
table is flagged: in a chunk query it would read the shop's whole history once per chunk; in the plan of a
run (finding the candidates by a date PrestaShop does not index) it happens once per run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Engine

from schemas.prestashop import shop_tables
from tasks.extract.candidates import (
    CandidateSearch,
    changed_queries,
    shipped_among_query,
    shipped_in_window_query,
)
from tasks.extract.configuration import read_config
from tasks.extract.connection import id_ranges
from tasks.extract.scope import OrderFilter
from tasks.extract.shipped_orders import (
    order_addresses_query,
    order_discounts_query,
    order_ids_query,
    order_lines_query,
    order_trackings_query,
    orders_query,
    shipping_query,
)
from tasks.extract.statistics import ever_shipped_query, recent_orders_query

BIG_TABLES = ("orders", "order_history", "order_detail", "order_carrier", "customer", "address")


def _plan(engine: Engine, query: Select) -> list[dict[str, Any]]:
    """MariaDB's plan of one query, a row per table read."""
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION in_predicate_conversion_threshold = 0")
        rows = conn.exec_driver_sql("EXPLAIN " + sql).mappings().all()
    return [
        {"table": row["table"], "type": row["type"], "key": row["key"], "rows": row["rows"]} for row in rows
    ]


def explain_queries(engine: Engine) -> list[dict[str, Any]]:
    """The plan of every chunk query (on the shop's first 5,000 references) and of the candidate search."""
    tables = shop_tables()
    order_filter = OrderFilter(("sequrapayment",))
    config = read_config(engine, tables, None)
    o = tables.orders
    with engine.connect() as conn:
        references = list(
            conn.execute(
                select(o.c.reference).where(o.c.module == "sequrapayment").order_by(o.c.id_order).limit(5000)
            ).scalars()
        )
        ids = list(conn.execute(order_ids_query(tables, references)).scalars())
    ranges = id_ranges(ids)
    window = (datetime(2026, 11, 19, 12), datetime(2026, 11, 20, 12))
    dated = CandidateSearch(tables, order_filter, config.reporting_states, *window)
    marks = {"order_history": 1}
    marked = CandidateSearch(tables, order_filter, config.reporting_states, *window, marks=marks)
    queries: dict[str, Select] = {
        "chunk: order ids by reference": order_ids_query(tables, references),
        "chunk: orders": orders_query(tables, order_filter, config, ranges),
        "chunk: shipped history": shipping_query(tables, config, ranges),
        "chunk: lines": order_lines_query(tables, ranges),
        "chunk: discounts": order_discounts_query(tables, ranges),
        "chunk: addresses": order_addresses_query(tables, id_ranges(range(1, 5001))),
        "chunk: trackings": order_trackings_query(tables, ranges),
        "plan: shipped in the window": shipped_in_window_query(dated),
        "plan: shipped at any time, of references": shipped_among_query(dated, references),
        "statistics: recent orders": recent_orders_query(tables, order_filter, window[0]),
        "statistics: ever shipped": ever_shipped_query(tables, config, ranges),
    }
    queries |= {f"plan: changed by date ({n + 1})": q for n, q in enumerate(changed_queries(dated))}
    queries |= {
        f"plan (scheduled): changed or above the marks ({n + 1})": q
        for n, q in enumerate(changed_queries(marked))
    }
    explained = []
    for name, query in queries.items():
        plan = _plan(engine, query)
        full_scans = [
            step["table"]
            for step in plan
            if step["type"] == "ALL" and str(step["table"]).removeprefix("ps_") in BIG_TABLES
        ]
        explained.append({"query": name, "plan": plan, "full_scans": full_scans})
    return explained

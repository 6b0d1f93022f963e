"""Shop records: the orders, buyers and addresses a chunk of corrections is compared with (four queries)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Select, null, select
from sqlalchemy.engine import Connection

from schemas.prestashop import ShopTables
from tasks.extract.connection import KEYS_PER_QUERY
from tasks.extract.scope import OrderFilter
from tasks.extract.shipped_orders import address_rows_query
from tasks.rows import in_chunks

Row = dict[str, Any]


@dataclass(frozen=True)
class ShopRecords:
    """What the shop holds for one chunk of corrections."""

    sub_orders: Mapping[str, list[Row]]  # match_key(order_ref_1): its SeQura orders, lowest id first
    customers: Mapping[int, Row]
    addresses: Mapping[int, Row]  # the rows the orders point to, soft-deleted ones included
    current: Mapping[int, list[Row]]  # id_customer: the buyer's current addresses (deleted = 0)
    keys: Mapping[str, str] = field(default_factory=dict)  # each matched order_ref_1 as sent: its match key
    order_ref_1s: Mapping[str, str] = field(default_factory=dict)  # match key: order_ref_1 as the shop has it


def _order_columns(tables: ShopTables) -> list[Any]:
    """The order columns a reconciliation reads."""
    o = tables.orders
    return [
        o.c.id_order,
        o.c.reference,
        o.c.id_customer,
        o.c.id_address_delivery,
        o.c.id_address_invoice,
        o.c.date_upd,
    ]


def match_key(order_ref: object, order_ref_field: str) -> str:
    """How an order_ref_1 is matched: a reference in any case (as MySQL compares), an id as a number."""
    text = str(order_ref).strip()
    if order_ref_field == "reference":
        return text.casefold()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def matched_orders_query(
    tables: ShopTables,
    order_filter: OrderFilter,
    order_ref_field: str,
    order_refs: Sequence[str],
    *,
    module_table: bool = False,
) -> Select:
    """Every SeQura order of the given order_ref_1 values (references, or first ids and their references).

    With the PHP module's table, each order says whether the module already reported it.
    """
    o, module = tables.orders, tables.sequra_order
    filters = [o.c.module.in_(order_filter.payment_modules)]
    if order_filter.shop_id is not None:
        filters.append(o.c.id_shop == order_filter.shop_id)
    columns = [
        *_order_columns(tables),
        (module.c.sent_to_sequra if module_table else null()).label("module_sent"),
    ]
    if order_ref_field == "reference":
        query = select(*columns, o.c.reference.label("order_ref_1")).where(
            o.c.reference.in_(order_refs), *filters
        )
        joined = o
    else:
        first = o.alias("named")
        ids = [int(ref) for ref in order_refs if ref.isascii() and ref.isdigit()]
        query = select(*columns, first.c.id_order.label("order_ref_1")).where(
            first.c.id_order.in_(ids), first.c.module.in_(order_filter.payment_modules), *filters
        )
        joined = first.join(o, o.c.reference == first.c.reference)
    if module_table:
        joined = joined.outerjoin(module, module.c.order_id == o.c.id_order)
    return query.select_from(joined)


def customers_query(tables: ShopTables, ids: Sequence[int]) -> Select:
    """The customer rows of the given ids."""
    c = tables.customer
    return select(
        c.c.id_customer,
        c.c.firstname,
        c.c.lastname,
        c.c.email,
        c.c.company,
        c.c.is_guest,
        c.c.deleted,
        c.c.date_upd,
    ).where(c.c.id_customer.in_(ids))


def _address_select(tables: ShopTables) -> Select:
    """Address rows as a report reads them, with what a fix needs: the buyer, the state id and versions."""
    a = tables.address
    return address_rows_query(tables, a.c.id_customer, a.c.id_state, a.c.deleted, a.c.date_add, a.c.date_upd)


def addresses_query(tables: ShopTables, ids: Sequence[int]) -> Select:
    """The address rows of the given ids, soft-deleted or not."""
    return _address_select(tables).where(tables.address.c.id_address.in_(ids))


def current_addresses_query(tables: ShopTables, customer_ids: Sequence[int]) -> Select:
    """The current addresses (deleted = 0) of the given buyers."""
    a = tables.address
    return _address_select(tables).where(a.c.id_customer.in_(customer_ids), a.c.deleted == 0)


def _rows(conn: Connection, query: Select) -> list[Row]:
    """The rows of `query` as dicts."""
    return [dict(row) for row in conn.execute(query).mappings()]


def _rows_of_ids(conn: Connection, query: Any, ids: set[int]) -> list[Row]:
    """The rows of `query(ids)`, in as few IN lists as KEYS_PER_QUERY allows (one for a usual chunk)."""
    return [row for part in in_chunks(sorted(ids), KEYS_PER_QUERY) for row in _rows(conn, query(part))]


def read_shop_records(
    conn: Connection,
    tables: ShopTables,
    order_filter: OrderFilter,
    order_ref_field: str,
    order_refs: Sequence[str],
    *,
    module_table: bool = False,
) -> ShopRecords:
    """The shop's orders, buyers and addresses for a chunk of order_ref_1 values, in four queries."""
    sub_orders: dict[str, list[Row]] = defaultdict(list)
    for part in in_chunks(list(order_refs), KEYS_PER_QUERY):
        query = matched_orders_query(tables, order_filter, order_ref_field, part, module_table=module_table)
        for row in _rows(conn, query):
            sub_orders[match_key(row["order_ref_1"], order_ref_field)].append(row)
    for rows in sub_orders.values():
        rows.sort(key=lambda row: row["id_order"])
    orders = [row for rows in sub_orders.values() for row in rows]
    customer_ids = {row["id_customer"] for row in orders}
    address_ids = {row[f"id_address_{role}"] for row in orders for role in ("delivery", "invoice")}
    customers = {
        row["id_customer"]: row for row in _rows_of_ids(conn, partial(customers_query, tables), customer_ids)
    }
    addresses = {
        row["id_address"]: row for row in _rows_of_ids(conn, partial(addresses_query, tables), address_ids)
    }
    current: dict[int, list[Row]] = defaultdict(list)
    for row in _rows_of_ids(conn, partial(current_addresses_query, tables), customer_ids):
        current[row["id_customer"]].append(row)
    order_ref_1s = {key: str(rows[0]["order_ref_1"]) for key, rows in sub_orders.items()}
    keys = {ref: match_key(ref, order_ref_field) for ref in order_refs}
    keys = {ref: key for ref, key in keys.items() if key in sub_orders}
    return ShopRecords(sub_orders, customers, addresses, current, keys, order_ref_1s)

"""Statistics reads: every order of the merchant placed in the 7 days before a run's end."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, Select, and_, select

from schemas import frames
from schemas.prestashop import ShopTables
from tasks.extract.configuration import shop_local, to_utc
from tasks.extract.connection import IdRange, frame_of, frame_of_ids, in_ranges, reading_the_shop
from tasks.extract.scope import OrderFilter, merchant_scope

LOG = logging.getLogger(__name__)
STATISTICS_PERIOD = timedelta(days=7)


def recent_orders_query(
    tables: ShopTables, order_filter: OrderFilter, placed_since_local: datetime
) -> Select:
    """Every order of the merchant placed since `placed_since_local`, any payment (date_add is indexed)."""
    o, osl = tables.orders, tables.order_state_lang
    cur, a, country = tables.currency, tables.address, tables.country
    clauses = [o.c.date_add >= placed_since_local, *merchant_scope(order_filter, tables)]
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
        recent = frame_of(conn, recent_orders_query(tables, order_filter, placed_since_local))
        ids = [int(value) for value in recent["id_order"]]
        shipped = set(
            frame_of_ids(
                conn, lambda ranges: ever_shipped_query(tables, config, ranges), "id_order", ids, ()
            )["id_order"]
        )
    recent["ever_shipped"] = recent["id_order"].isin(shipped).astype("int64")
    recent["placed_at"] = to_utc(recent.pop("placed_local"), config.timezone)
    checked, broken = frames.checked(recent, frames.RECENT_ORDERS, "id_order")
    if broken:  # statistics are a courtesy: an order that cannot be read is left out of them, said once
        LOG.warning("left out of the statistics: %s", "; ".join(f"order {k}: {v}" for k, v in broken.items()))
    return checked

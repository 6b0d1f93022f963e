"""The shop's configuration, read as PrestaShop resolves it, and its time zone."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.engine import Connection

from schemas import frames
from schemas.prestashop import ShopTables
from tasks.extract.connection import ShopReadError, reading_the_shop

CONFIG_NAMES = (
    "PS_TIMEZONE",
    "PS_OS_DELIVERED",
    "PS_OS_CANCELED",
    "PS_OS_ERROR",
    "PS_SHOP_NAME",
    "PS_VERSION_DB",
)


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
        cancelled_state=_state_id(values.get("PS_OS_CANCELED")),
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


def to_utc(local: pd.Series, timezone: str) -> pd.Series:
    """Shop-local naive timestamps to UTC (an hour repeated at a DST change is read as its first pass)."""
    stamps = pd.to_datetime(local, errors="coerce").astype("datetime64[us]")
    localized = stamps.dt.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
    return localized.dt.tz_convert("UTC").astype(frames.UTC_TIMESTAMP)


def read_config(engine: Engine, tables: ShopTables, shop_id: int | None) -> frames.ShopConfig:
    """The shop's configuration, or a ShopReadError naming the settings to check."""
    with reading_the_shop(tables), engine.connect() as conn:
        return read_shop_config(conn, tables, shop_id)

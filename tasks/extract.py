"""Extract: read shipped SeQura orders from the PrestaShop database into checked frames, set-based."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import (
    Engine,
    Select,
    and_,
    case,
    create_engine,
    func,
    inspect,
    literal,
    select,
    type_coerce,
    union,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

from schemas import frames
from schemas.prestashop import ZERO_DATETIME, ShopTables, shop_tables
from schemas.settings import Settings
from tasks.chunks import in_chunks
from tasks.window import Window

STATISTICS_PERIOD = timedelta(days=7)
CONFIG_NAMES = (
    "PS_TIMEZONE",
    "PS_OS_DELIVERED",
    "PS_OS_CANCELED",
    "PS_OS_ERROR",
    "PS_SHOP_NAME",
    "PS_VERSION_DB",
)


class ShopReadError(RuntimeError):
    """The shop database could not be read as a PrestaShop database; the message says what to check."""


@dataclass(frozen=True)
class OrderFilter:
    """Which orders are SeQura orders: payment modules and, in a multistore, one shop."""

    payment_modules: tuple[str, ...]
    shop_id: int | None = None


@dataclass(frozen=True)
class ExtractScope:
    """What one chunk of queries reads: which tables, which orders, which references."""

    tables: ShopTables
    order_filter: OrderFilter
    references: Sequence[str]
    with_module_table: bool = False


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


def read_shop_config(conn: Connection, tables: ShopTables, shop_id: int | None) -> frames.ShopConfig:
    """Read PS_TIMEZONE, the delivered and cancelled states, PS_SHOP_NAME and PS_VERSION_DB."""
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
    return frames.ShopConfig(
        timezone=timezone,
        delivered_state=_state_id(values.get("PS_OS_DELIVERED")),
        canceled_states=tuple(
            state
            for state in (_state_id(values.get("PS_OS_CANCELED")), _state_id(values.get("PS_OS_ERROR")))
            if state
        ),
        shop_name=values.get("PS_SHOP_NAME") or "",
        ps_version=values.get("PS_VERSION_DB") or "unknown",
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
    """The WHERE clauses that make an order a SeQura order of the configured shop."""
    o = tables.orders
    clauses = [o.c.module.in_(order_filter.payment_modules), o.c.reference.is_not(None)]
    if order_filter.shop_id is not None:
        clauses.append(o.c.id_shop == order_filter.shop_id)
    return clauses


def candidate_references_query(
    tables: ShopTables, order_filter: OrderFilter, since_local: datetime, until_local: datetime
) -> Select:
    """References whose SeQura orders shipped in the window, or shipped at any time and changed in it.

    A change is any sub-order of the reference updated (orders.date_upd), refunded (a credit slip in
    order_slip, which PrestaShop issues without touching the order row), or its buyer or one of the
    addresses it points to updated, inside the window. Every part is a plain join, and the parts are
    combined with UNION, so MySQL and MariaDB can use their indexes instead of dependent subqueries.
    """
    o, oh, os_ = tables.orders, tables.order_history, tables.order_state
    a, cust, slip = tables.address, tables.customer, tables.order_slip
    sequra = _sequra_order(order_filter, tables)

    def in_window(column: Any) -> Any:
        return and_(column >= since_local, column < until_local)

    def shipped_orders(*clauses: Any) -> Select:
        history = o.join(oh, oh.c.id_order == o.c.id_order).join(
            os_, os_.c.id_order_state == oh.c.id_order_state
        )
        return select(o.c.reference).select_from(history).where(*sequra, os_.c.shipped == 1, *clauses)

    changed = union(
        select(o.c.reference).where(*sequra, in_window(o.c.date_upd)),
        select(o.c.reference)
        .select_from(o.join(a, a.c.id_address == o.c.id_address_delivery))
        .where(*sequra, in_window(a.c.date_upd)),
        select(o.c.reference)
        .select_from(o.join(a, a.c.id_address == o.c.id_address_invoice))
        .where(*sequra, in_window(a.c.date_upd)),
        select(o.c.reference)
        .select_from(o.join(cust, cust.c.id_customer == o.c.id_customer))
        .where(*sequra, in_window(cust.c.date_upd)),
        select(o.c.reference)
        .select_from(o.join(slip, slip.c.id_order == o.c.id_order))
        .where(*sequra, in_window(slip.c.date_add)),
    ).subquery("changed")
    changed_and_shipped = shipped_orders().join(changed, changed.c.reference == o.c.reference)
    return (
        union(shipped_orders(in_window(oh.c.date_add)), changed_and_shipped).subquery("candidates").select()
    )


def _orders_of(scope: ExtractScope) -> Select:
    """The id_order of every SeQura sub-order sharing one of the scope's references."""
    o = scope.tables.orders
    return select(o.c.id_order).where(
        *_sequra_order(scope.order_filter, scope.tables), o.c.reference.in_(scope.references)
    )


def shipped_orders_query(scope: ExtractScope) -> Select:
    """One row per sub-order of the references: currency, language, buyer, carrier, shipping time."""
    tables = scope.tables
    o, oh, os_ = tables.orders, tables.order_history, tables.order_state
    cur, lang, cust, car, car_lang = (
        tables.currency,
        tables.lang,
        tables.customer,
        tables.carrier,
        tables.carrier_lang,
    )
    first_shipped = type_coerce(
        func.min(func.nullif(oh.c.date_add, literal(ZERO_DATETIME))), oh.c.date_add.type
    )
    shipping = (
        select(
            oh.c.id_order,
            func.count().label("shipped_rows"),
            first_shipped.label("first_shipped_local"),
        )
        .join(os_, os_.c.id_order_state == oh.c.id_order_state)
        .where(os_.c.shipped == 1, oh.c.id_order.in_(_orders_of(scope)))
        .group_by(oh.c.id_order)
        .subquery("shipping")
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
        func.coalesce(shipping.c.shipped_rows, 0).label("shipped_rows"),
        shipping.c.first_shipped_local,
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
        .outerjoin(shipping, shipping.c.id_order == o.c.id_order)
    )
    if scope.with_module_table:
        module = tables.sequra_order
        joined = joined.outerjoin(module, module.c.order_id == o.c.id_order)
        columns += [
            module.c.sent_to_sequra.label("module_sent"),
            module.c.merchant_id.label("module_merchant_id"),
        ]
    else:
        columns += [literal(None).label("module_sent"), literal(None).label("module_merchant_id")]
    return (
        select(*columns)
        .select_from(joined)
        .where(*_sequra_order(scope.order_filter, tables), o.c.reference.in_(scope.references))
        .order_by(o.c.id_order)
    )


def order_lines_query(scope: ExtractScope) -> Select:
    """Every order_detail line of the sub-orders of the references."""
    tables = scope.tables
    d = tables.order_detail
    return (
        select(
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
        )
        .where(d.c.id_order.in_(_orders_of(scope)))
        .order_by(d.c.id_order, d.c.id_order_detail)
    )


def order_discounts_query(scope: ExtractScope) -> Select:
    """Every discount still applied (order_cart_rule.deleted = 0) to the sub-orders of the references."""
    tables = scope.tables
    r = tables.order_cart_rule
    return (
        select(r.c.id_order, r.c.id_order_cart_rule, r.c.name, r.c.value)
        .where(r.c.id_order.in_(_orders_of(scope)), r.c.deleted == 0)
        .order_by(r.c.id_order, r.c.id_order_cart_rule)
    )


def order_addresses_query(scope: ExtractScope) -> Select:
    """Every address row the sub-orders of the references point to, soft-deleted ones included.

    The addresses come from a derived table joined by key: MariaDB cannot semi-join an IN over a UNION.
    """
    tables = scope.tables
    o, a, country, state = tables.orders, tables.address, tables.country, tables.state
    wanted = [*_sequra_order(scope.order_filter, tables), o.c.reference.in_(scope.references)]
    pointed = union(
        select(o.c.id_address_delivery.label("id_address")).where(*wanted),
        select(o.c.id_address_invoice.label("id_address")).where(*wanted),
    ).subquery("pointed")
    return (
        select(
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
        )
        .select_from(
            a.join(pointed, pointed.c.id_address == a.c.id_address)
            .outerjoin(country, country.c.id_country == a.c.id_country)
            .outerjoin(state, state.c.id_state == a.c.id_state)
        )
        .order_by(a.c.id_address)
    )


def order_trackings_query(scope: ExtractScope) -> Select:
    """Every tracking number (order_carrier) of the sub-orders of the references, with its carrier's URL."""
    tables = scope.tables
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
            oc.c.id_order.in_(_orders_of(scope)),
            oc.c.tracking_number.is_not(None),
            oc.c.tracking_number != "",
        )
        .order_by(oc.c.id_order, oc.c.id_order_carrier)
    )


CHUNK_QUERIES = (
    shipped_orders_query,
    order_lines_query,
    order_discounts_query,
    order_addresses_query,
    order_trackings_query,
)


def _empty_frame(query: Select) -> pd.DataFrame:
    """An empty frame with the columns `query` would return."""
    return pd.DataFrame(columns=[column.name for column in query.selected_columns])


def _frame(conn: Connection, query: Select) -> pd.DataFrame:
    """Run one query into a frame whose columns are the query's labels."""
    result = conn.execute(query)
    return pd.DataFrame(result.all(), columns=list(result.keys()))


def _to_utc(local: pd.Series, timezone: str) -> pd.Series:
    """Shop-local naive timestamps to UTC (an hour repeated at a DST change is read as its first pass)."""
    stamps = pd.to_datetime(local, errors="coerce").astype("datetime64[us]")
    localized = stamps.dt.tz_localize(timezone, ambiguous=True, nonexistent="shift_forward")
    return localized.dt.tz_convert("UTC").astype(frames.UTC_TIMESTAMP)


def database_identity(conn: Connection) -> tuple[str, str]:
    """The database product and version, for the report's platform block."""
    if conn.dialect.name == "sqlite":
        return "sqlite", sqlite3.sqlite_version
    version = str(conn.execute(select(func.version())).scalar_one())
    return ("mariadb" if "mariadb" in version.lower() else conn.dialect.name), version


def find_candidate_references(
    engine: Engine, tables: ShopTables, order_filter: OrderFilter, since: datetime, until: datetime
) -> list[str]:
    """References of the SeQura orders to look at for the UTC window [since, until)."""
    with engine.connect() as conn:
        config = read_shop_config(conn, tables, order_filter.shop_id)
        query = candidate_references_query(
            tables, order_filter, *shop_local_bounds(since, until, config.timezone)
        )
        return sorted(conn.execute(query).scalars())


def recent_orders_query(tables: ShopTables, shop_id: int | None, placed_since_local: datetime) -> Select:
    """Every order placed since `placed_since_local`, any payment method: the report's statistics."""
    o, oh, os_, osl = tables.orders, tables.order_history, tables.order_state, tables.order_state_lang
    cur, a, country = tables.currency, tables.address, tables.country
    shipped = (
        select(oh.c.id_order).join(os_, os_.c.id_order_state == oh.c.id_order_state).where(os_.c.shipped == 1)
    )
    clauses = [o.c.date_add >= placed_since_local]
    if shop_id is not None:
        clauses.append(o.c.id_shop == shop_id)
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
            case((o.c.id_order.in_(shipped), 1), else_=0).label("ever_shipped"),
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


def extract_orders(
    engine: Engine,
    tables: ShopTables,
    order_filter: OrderFilter,
    references: Sequence[str],
    chunk_size: int = 500,
    placed_since: datetime | None = None,
) -> frames.ShopExtract:
    """Read the five frames for `references`, five queries per chunk of references, and check them.

    With `placed_since`, one more query reads the orders placed since then, for the statistics block.
    """
    try:
        with engine.connect() as conn:
            config = read_shop_config(conn, tables, order_filter.shop_id)
            recent_query = recent_orders_query(
                tables,
                order_filter.shop_id,
                shop_local(placed_since, config.timezone) if placed_since else datetime.max,
            )
            recent = _frame(conn, recent_query) if placed_since else _empty_frame(recent_query)
            with_module_table = inspect(conn).has_table(tables.sequra_order.name)
            parts: list[list[pd.DataFrame]] = [[] for _ in CHUNK_QUERIES]
            for chunk in in_chunks(sorted(set(references)), chunk_size):
                scope = ExtractScope(tables, order_filter, chunk, with_module_table)
                for part, query in zip(parts, CHUNK_QUERIES, strict=True):
                    part.append(_frame(conn, query(scope)))
            db_name, db_version = database_identity(conn)
    except (OperationalError, ProgrammingError) as error:
        raise ShopReadError(
            f"could not read the PrestaShop tables (prefix '{tables.prefix}'): {error.orig}; "
            "check SHOP_DB_URL and SHOP_TABLE_PREFIX"
        ) from None
    no_references = ExtractScope(tables, order_filter, [], with_module_table)
    shipped, lines, discounts, addresses, trackings = (
        pd.concat(part, ignore_index=True) if part else _empty_frame(query(no_references))
        for part, query in zip(parts, CHUNK_QUERIES, strict=True)
    )
    shipped["shipped_at"] = _to_utc(shipped.pop("first_shipped_local"), config.timezone)
    shipped = shipped.drop_duplicates("id_order", ignore_index=True)
    addresses = addresses.drop_duplicates("id_address", ignore_index=True)
    recent["placed_at"] = _to_utc(recent.pop("placed_local"), config.timezone)
    return frames.ShopExtract(
        config=config,
        shipped_orders=frames.checked(shipped, frames.SHIPPED_ORDERS),
        order_lines=frames.checked(lines, frames.ORDER_LINES),
        order_discounts=frames.checked(discounts, frames.ORDER_DISCOUNTS),
        order_addresses=frames.checked(addresses, frames.ORDER_ADDRESSES),
        order_trackings=frames.checked(trackings, frames.ORDER_TRACKINGS),
        recent_orders=frames.checked(recent, frames.RECENT_ORDERS),
        db_name=db_name,
        db_version=db_version,
    )


def shop_engine(url: URL) -> Engine:
    """An engine on the shop database; MySQL connections are forced to utf8mb4 so emoji survive."""
    if url.get_backend_name() in ("mysql", "mariadb") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return create_engine(url, pool_pre_ping=True)


@task(name="extract-shipped-orders", cache_policy=NO_CACHE)
def extract_shipped_orders(
    settings: Settings, window: Window, retry_references: Sequence[str]
) -> frames.ShopExtract:
    """Read the orders shipped or changed in the window, plus quarantined ones to retry; reads the shop."""
    settings.require("shop_db_url")
    assert settings.shop_db_url is not None
    engine = shop_engine(settings.shop_db_url)
    tables = shop_tables(settings.shop_table_prefix)
    order_filter = OrderFilter(settings.payment_modules, settings.shop_id)
    try:
        references = find_candidate_references(engine, tables, order_filter, window.since, window.until)
        wanted = sorted(set(references) | set(retry_references))
        return extract_orders(
            engine,
            tables,
            order_filter,
            wanted,
            settings.chunk_size,
            placed_since=window.until - STATISTICS_PERIOD,
        )
    finally:
        engine.dispose()

"""Merchant scope: which orders are a merchant's SeQura orders (modules, shop, countries)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, not_, select
from sqlalchemy.sql.elements import ColumnElement

from schemas.prestashop import ShopTables


@dataclass(frozen=True)
class OrderFilter:
    """Which orders are the merchant's SeQura orders: payment modules, one shop, delivery countries."""

    payment_modules: tuple[str, ...]
    shop_id: int | None = None
    delivery_countries: tuple[str, ...] = ()  # ISO codes; empty: every country not claimed elsewhere
    claimed_elsewhere: tuple[
        tuple[int | None, tuple[str, ...]], ...
    ] = ()  # other merchants' (shop, countries)


def sequra_order_clauses(order_filter: OrderFilter, tables: ShopTables) -> list:
    """The WHERE clauses that make an order a SeQura order of the merchant."""
    o = tables.orders
    return [
        o.c.module.in_(order_filter.payment_modules),
        o.c.reference.is_not(None),
        *merchant_scope(order_filter, tables),
    ]


def merchant_scope(order_filter: OrderFilter, tables: ShopTables) -> list[ColumnElement[bool]]:
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

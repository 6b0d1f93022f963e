"""Merchant scope: which orders are a merchant's SeQura orders (modules, shop, countries)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, not_, select, true
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

    @property
    def by_country(self) -> bool:
        """Whether the merchant's orders are told from another merchant's by their delivery country."""
        return bool(self.delivery_countries or self.claimed_elsewhere)


def shop_order_clauses(order_filter: OrderFilter, tables: ShopTables) -> list:
    """The WHERE clauses that make an order a SeQura order of the merchant's shop, whatever its country.

    An order stays with the merchant that reported it when its delivery country changes, so what the
    merchant reads again is told by the state store, not by the country (see in_merchant_countries).
    """
    o = tables.orders
    return [
        o.c.module.in_(order_filter.payment_modules),
        o.c.reference.is_not(None),
        *_shop_clauses(order_filter, tables),
    ]


def merchant_scope(order_filter: OrderFilter, tables: ShopTables) -> list[ColumnElement[bool]]:
    """The WHERE clauses that make an order one of the merchant's, whatever its payment: shop, countries."""
    return [*_shop_clauses(order_filter, tables), *_country_clauses(order_filter, tables)]


def in_merchant_countries(order_filter: OrderFilter, tables: ShopTables) -> ColumnElement[bool]:
    """The clause: the order is delivered where the merchant takes orders now (true without countries)."""
    clauses = _country_clauses(order_filter, tables)
    return and_(*clauses) if clauses else true()


def _shop_clauses(order_filter: OrderFilter, tables: ShopTables) -> list[ColumnElement[bool]]:
    """The WHERE clause of the merchant's shop, if it has one."""
    if order_filter.shop_id is None:
        return []
    return [tables.orders.c.id_shop == order_filter.shop_id]


def _country_clauses(order_filter: OrderFilter, tables: ShopTables) -> list[ColumnElement[bool]]:
    """The WHERE clauses of the merchant's delivery countries: its own, and none another merchant lists."""
    o = tables.orders
    clauses: list[ColumnElement[bool]] = []
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

"""The PrestaShop tables the ETL reads, as SQLAlchemy Core tables faithful to PrestaShop's own DDL.

Each table carries every column that exists in PrestaShop 1.7.8.1, 8.0 and 9.1.0 (install-dev/data/
db_structure.sql), with the 8.0 types, nullability, server defaults and primary keys (9.1.0's for `lang` and
`shop`, which are Doctrine entities before 9.x). Columns only some versions have are left out:
`orders.shipping_number` (1.7 only) and `carrier.id_tax_rules_group` (1.7 only). Single-column KEYs of the
real DDL are mirrored as indexes, so the SQLite demo shop joins the way MySQL does. seeding/ddl/
holds the real DDL these declarations are checked against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    MetaData,
    Table,
)
from sqlalchemy.engine import Engine
from sqlalchemy.schema import SchemaItem

from schemas.errors import SettingError
from schemas.prestashop_orders import order_tables
from schemas.prestashop_shop import shop_record_tables

_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_]*")  # PrestaShop's Validate::isTablePrefix, which allows ''


@dataclass(frozen=True)
class ShopTables:
    """The PrestaShop tables the ETL reads, named with one shop's table prefix."""

    metadata: MetaData
    prefix: str
    orders: Table
    order_detail: Table
    order_history: Table
    order_state: Table
    order_state_lang: Table
    order_carrier: Table
    order_cart_rule: Table
    order_slip: Table
    order_return: Table
    order_return_detail: Table
    customer: Table
    address: Table
    country: Table
    country_lang: Table
    state: Table
    currency: Table
    carrier: Table
    carrier_lang: Table
    configuration: Table
    lang: Table
    shop: Table
    sequra_order: Table


def shop_tables(prefix: str = "ps_") -> ShopTables:
    """The shop's tables as `prefix + name`, declared once per prefix; SettingError on a bad prefix."""
    return _declared_tables(prefix)


@cache
def _declared_tables(prefix: str) -> ShopTables:
    """Declare the shop's tables as `prefix + name` in a `MetaData` of their own."""
    if not _TABLE_PREFIX.fullmatch(prefix):
        raise SettingError(
            "SHOP_TABLE_PREFIX",
            f"{prefix!r} is not a PrestaShop table prefix: use only letters, digits and underscores, like "
            "the default 'ps_' (it is _DB_PREFIX_ in the shop's app/config/parameters.php)",
        )
    metadata = MetaData()

    def table(name: str, *columns: SchemaItem) -> Table:
        return Table(f"{prefix}{name}", metadata, *columns)

    return ShopTables(
        metadata=metadata,
        prefix=prefix,
        **order_tables(table),
        **shop_record_tables(table),
    )


def create_shop_schema(engine: Engine, tables: ShopTables) -> None:
    """Create the shop's tables where missing (the SQLite demo shop and fast tests; real shops have them)."""
    tables.metadata.create_all(engine)

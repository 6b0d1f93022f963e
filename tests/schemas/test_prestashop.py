"""shop_tables() checked against PrestaShop's real DDL (1.7.8.1, 8.0, 9.1.0), and its column types."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, SmallInteger, String, Table, Text, create_engine
from sqlalchemy import inspect as inspect_db
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlalchemy.sql.elements import TextClause

from schemas.prestashop import ShopTables, create_shop_schema, shop_tables
from schemas.prestashop_types import ZERO_DATETIME, Money, ShopDate, ShopDateTime
from seeding.prestashop_ddl import PRESTASHOP_VERSIONS, prestashop_ddl

TABLES = shop_tables()
TABLE_NAMES = [field.name for field in fields(ShopTables) if field.name not in ("metadata", "prefix")]


@dataclass(frozen=True)
class DdlColumn:
    name: str
    type: str
    args: tuple[int, ...]
    not_null: bool
    default: str | None
    auto_increment: bool


@dataclass(frozen=True)
class DdlTable:
    columns: dict[str, DdlColumn]
    primary_key: tuple[str, ...]


_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?`(\w+)` \((.*)\)", re.S)
_COLUMN = re.compile(r"^\s*`(\w+)`\s+(\w+)\s*(?:\(([\d,\s]*)\))?(.*?),?\s*(?:/\*.*\*/)?$", re.M)
_DEFAULT = re.compile(r"\bDEFAULT\s+('[^']*'|\S+)", re.I)


@cache
def ddl_tables(version: str) -> dict[str, DdlTable]:
    """The vendored DDL of one version, parsed: table name (no prefix) -> columns and primary key."""
    tables = {}
    for statement in prestashop_ddl(version, prefix=""):
        match = _TABLE.match(statement)
        assert match, statement
        name, body = match.groups()
        primary_key = re.search(r"PRIMARY KEY\s*\(([^)]*)\)", body)
        assert primary_key, name
        pk = tuple(re.findall(r"`(\w+)`", primary_key.group(1)))
        columns = {}
        for column, type_, args, rest in _COLUMN.findall(body):
            default = _DEFAULT.search(rest)
            value = default.group(1).strip("'") if default else None
            columns[column] = DdlColumn(
                name=column,
                type=type_.lower(),
                args=tuple(int(arg) for arg in args.split(",")) if args else (),
                not_null="NOT NULL" in rest.upper() or column in pk,
                default=None if value is not None and value.upper() == "NULL" else value,
                auto_increment="AUTO_INCREMENT" in rest.upper(),
            )
        tables[name] = DdlTable(columns, pk)
    return tables


def ddl_kind(column: DdlColumn) -> tuple[object, ...]:
    """A DDL column type as (kind, size): tinyint, smallint and BOOLEAN are one kind, as are int sizes."""
    kinds = {"integer": "int", "smallint": "tinyint", "boolean": "tinyint", "char": "varchar"}
    kinds |= {"mediumtext": "text", "timestamp": "datetime"}
    kind = kinds.get(column.type, column.type)
    return (kind, column.args) if kind in ("varchar", "decimal") else (kind,)


def declared_kind(column: Column[object]) -> tuple[object, ...]:
    """A declared column type in the same terms as ddl_kind."""
    type_ = column.type
    if isinstance(type_, Money):
        return ("decimal", (20, 6))
    if isinstance(type_, ShopDateTime):
        return ("datetime",)
    if isinstance(type_, ShopDate):
        return ("date",)
    if isinstance(type_, Numeric):
        return ("decimal", (type_.precision, type_.scale))
    if isinstance(type_, SmallInteger):
        return ("tinyint",)
    if isinstance(type_, Integer):
        return ("int",)
    if isinstance(type_, Text):
        return ("text",)
    assert isinstance(type_, String), column
    return ("varchar", (type_.length,))


def family(kind: tuple[object, ...]) -> object:
    """Kinds that hold the same values: text and varchar of any length, decimals of any size."""
    return "string" if kind[0] in ("varchar", "text") else kind[0]


def declared_default(column: Column[object]) -> str | None:
    if column.server_default is None:
        return None
    arg = column.server_default.arg  # type: ignore[attr-defined]
    return arg.text if isinstance(arg, TextClause) else str(arg)


def table_of(name: str, tables: ShopTables = TABLES) -> Table:
    table: Table = getattr(tables, name)
    return table


@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_every_declared_column_exists_in_each_version_with_same_nullability_and_compatible_type(
    version: str,
) -> None:
    ddl = ddl_tables(version)
    for name in TABLE_NAMES:
        for column in table_of(name).columns:
            real = ddl[name].columns.get(column.name)
            assert real is not None, f"{name}.{column.name} is not in PrestaShop {version}"
            assert column.nullable is not real.not_null, (
                f"{name}.{column.name} nullability differs in {version}"
            )
            assert family(declared_kind(column)) == family(ddl_kind(real)), (
                f"{name}.{column.name} in {version}"
            )


def test_tables_declare_every_column_that_all_three_versions_have() -> None:
    for name in TABLE_NAMES:
        common = set.intersection(
            *(set(ddl_tables(version)[name].columns) for version in PRESTASHOP_VERSIONS)
        )
        assert set(table_of(name).columns.keys()) == common, name


def test_columns_only_some_versions_have_are_left_out() -> None:
    assert "shipping_number" in ddl_tables("1.7.8.1")["orders"].columns
    assert "id_tax_rules_group" in ddl_tables("1.7.8.1")["carrier"].columns
    assert "shipping_number" not in TABLES.orders.c
    assert "id_tax_rules_group" not in TABLES.carrier.c


def test_types_sizes_defaults_and_primary_keys_are_those_of_the_8_0_ddl() -> None:
    ddl = ddl_tables("8.0")
    for name in TABLE_NAMES:
        table = table_of(name)
        for column in table.columns:
            real = ddl[name].columns[column.name]
            assert declared_kind(column) == ddl_kind(real), f"{name}.{column.name}"
            assert declared_default(column) == real.default, f"{name}.{column.name}"
        assert tuple(table.primary_key.columns.keys()) == ddl[name].primary_key, name
        auto_increment = [column.name for column in ddl[name].columns.values() if column.auto_increment]
        declared = table.autoincrement_column
        assert ([declared.name] if declared is not None else []) == auto_increment, name


def test_lang_and_shop_are_9_1_0_definitions_in_every_fixture() -> None:
    for version in PRESTASHOP_VERSIONS:
        for name in ("lang", "shop"):
            assert ddl_tables(version)[name] == ddl_tables("9.1.0")[name]


def test_money_columns_are_the_decimal_20_6_amounts() -> None:
    for name in TABLE_NAMES:
        for column in table_of(name).columns:
            if isinstance(column.type, Money):
                assert ddl_kind(ddl_tables("8.0")[name].columns[column.name]) == ("decimal", (20, 6))
    assert isinstance(TABLES.orders.c.total_paid_tax_incl.type, Money)
    assert isinstance(TABLES.order_detail.c.unit_price_tax_incl.type, Money)
    assert not isinstance(TABLES.order_detail.c.product_weight.type, Money)


def test_prefix_names_every_table() -> None:
    tables = shop_tables("shop_")
    assert tables.prefix == "shop_"
    for name in TABLE_NAMES:
        assert table_of(name, tables).name == f"shop_{name}"
    assert sorted(tables.metadata.tables) == sorted(f"shop_{name}" for name in TABLE_NAMES)


def test_tables_are_declared_once_per_prefix() -> None:
    assert shop_tables().metadata is shop_tables("ps_").metadata
    assert shop_tables().metadata is not shop_tables("shop_").metadata


def test_empty_prefix_is_allowed_as_prestashop_allows_it() -> None:
    assert shop_tables("").orders.name == "orders"


@pytest.mark.parametrize("prefix", ["ps-", "ps_;DROP", "pré_", " ps_", "ps.x_"])
def test_bad_prefix_is_rejected_naming_shop_table_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="SHOP_TABLE_PREFIX"):
        shop_tables(prefix)


def test_prestashop_ddl_fills_every_placeholder() -> None:
    for version in PRESTASHOP_VERSIONS:
        statements = prestashop_ddl(version, prefix="shop_")
        assert len(statements) == len(TABLE_NAMES)
        for statement in statements:
            assert not re.search(r"PREFIX_|ENGINE_TYPE|\bCOLLATION\b", statement), statement
            assert re.match(r"CREATE TABLE (IF NOT EXISTS )?`shop_\w+`", statement)
            assert "ENGINE=InnoDB" in statement


def test_prestashop_ddl_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match=r"'1\.6'"):
        prestashop_ddl("1.6")


@pytest.fixture
def sqlite_engine() -> Engine:
    return create_engine("sqlite://")


def single_column_table(type_: object) -> Table:
    return Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("value", type_))


def round_trip(engine: Engine, table: Table, value: object) -> object:
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, value=value))
        return connection.scalar(table.select().with_only_columns(table.c.value))


@pytest.mark.parametrize("amount", ["1234567.123456", "99999999999999.999999", "-0.000001", "0.1", "0"])
def test_money_round_trips_decimals_exactly_on_sqlite(sqlite_engine: Engine, amount: str) -> None:
    value = round_trip(sqlite_engine, single_column_table(Money), Decimal(amount))
    assert isinstance(value, Decimal)
    assert value == Decimal(amount)
    assert value.as_tuple().exponent == -6


def test_money_is_stored_as_text_on_sqlite(sqlite_engine: Engine) -> None:
    table = single_column_table(Money)
    round_trip(sqlite_engine, table, Decimal("1234567.123456"))
    with sqlite_engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT value, typeof(value) FROM t").one()
    assert tuple(stored) == ("1234567.123456", "text")


def test_money_rounds_to_six_places_half_up_on_sqlite_as_mysql_does(sqlite_engine: Engine) -> None:
    assert round_trip(sqlite_engine, single_column_table(Money), Decimal("0.0000005")) == Decimal("0.000001")


@pytest.mark.parametrize(
    ("type_", "zero"), [(ShopDateTime, ZERO_DATETIME), (ShopDate, "0000-00-00")], ids=["datetime", "date"]
)
def test_zero_dates_read_back_as_none_on_sqlite(sqlite_engine: Engine, type_: type, zero: str) -> None:
    table = single_column_table(type_)
    table.metadata.create_all(sqlite_engine)
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql(f"INSERT INTO t (id, value) VALUES (1, '{zero}')")
        assert connection.scalar(table.select().with_only_columns(table.c.value)) is None


def test_shop_datetime_keeps_whole_seconds_of_naive_local_time(sqlite_engine: Engine) -> None:
    value = round_trip(
        sqlite_engine, single_column_table(ShopDateTime), datetime(2024, 3, 31, 2, 30, 15, 999)
    )
    assert value == datetime(2024, 3, 31, 2, 30, 15)


def test_shop_datetime_refuses_aware_datetimes(sqlite_engine: Engine) -> None:
    with pytest.raises(StatementError, match="PS_TIMEZONE"):
        round_trip(sqlite_engine, single_column_table(ShopDateTime), datetime(2024, 1, 1, tzinfo=UTC))


def test_create_shop_schema_creates_every_table_on_sqlite(sqlite_engine: Engine) -> None:
    tables = shop_tables("shop_")
    create_shop_schema(sqlite_engine, tables)
    assert sorted(inspect_db(sqlite_engine).get_table_names()) == sorted(tables.metadata.tables)


@pytest.mark.mysql
@pytest.mark.parametrize("version", PRESTASHOP_VERSIONS)
def test_declared_columns_match_the_real_schema_in_mariadb(
    mysql_shop_engine_factory: Callable[..., Engine], version: str
) -> None:
    engine = mysql_shop_engine_factory(version, "ps_")
    inspector = inspect_db(engine)
    for name in TABLE_NAMES:
        real = {column["name"]: column for column in inspector.get_columns(f"ps_{name}")}
        for column in table_of(name).columns:
            assert column.name in real, f"{name}.{column.name} in {version}"
            assert real[column.name]["nullable"] is column.nullable, f"{name}.{column.name} in {version}"

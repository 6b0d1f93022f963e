"""PrestaShop's column types: money as exact Decimal, and dates whose zero value means "not set"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    Date,
    DateTime,
    Numeric,
    String,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

ZERO_DATETIME = "0000-00-00 00:00:00"
"""PrestaShop's "not set" datetime, e.g. `orders.delivery_date` and `invoice_date` of a new order."""


ZERO_DATE = "0000-00-00"
"""PrestaShop's "not set" date, e.g. `customer.birthday` of a buyer who gave none."""


_MONEY_QUANTUM = Decimal("0.000001")


_T = TypeVar("_T", date, datetime)


def _stored_as_text_on_sqlite(dialect: Dialect, impl: TypeEngine[Any], width: int) -> TypeEngine[Any]:
    """The dialect type of a value SQLite keeps as exact text and other databases natively."""
    return dialect.type_descriptor(String(width) if dialect.name == "sqlite" else impl)


class Money(TypeDecorator[Decimal]):
    """PrestaShop money, `decimal(20,6)`: a `Decimal` on every backend, exact (SQLite keeps it as text)."""

    impl = Numeric(20, 6, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """`NUMERIC(20, 6)` on MySQL and PostgreSQL, `VARCHAR(32)` on SQLite, which has no exact decimal."""
        return _stored_as_text_on_sqlite(dialect, Numeric(20, 6, asdecimal=True), 32)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Decimal | str | None:
        """On SQLite, round to 6 places half up, as MySQL's `decimal(20,6)` does, and store the text."""
        if value is None or dialect.name != "sqlite":
            return value
        return str(Decimal(value).quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_UP))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """A `Decimal` with 6 places, as MySQL returns it."""
        return None if value is None else Decimal(value).quantize(_MONEY_QUANTUM)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """Read SQLite's text as above; MySQL's and PostgreSQL's drivers already give the exact `Decimal`.

        Skipping the per-value call there matters: a backfill reads millions of amounts.
        """
        return super().result_processor(dialect, coltype) if dialect.name == "sqlite" else None


def _from_stored(value: Any, zero: str, parse: Callable[[str], _T]) -> _T | None:
    """A stored date or datetime as Python: PrestaShop's zero date is None, text (SQLite) is parsed."""
    if value is None or value == zero:
        return None  # pymysql hands back zero dates as the string itself, not a datetime
    return parse(value) if isinstance(value, str) else value


class ShopDateTime(TypeDecorator[datetime]):
    """A PrestaShop `datetime`: naive shop-local time (PS_TIMEZONE); its zero date reads back as None."""

    impl = DateTime()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """`DATETIME` on MySQL and PostgreSQL, `VARCHAR(19)` text on SQLite, where zero dates survive too."""
        return _stored_as_text_on_sqlite(dialect, DateTime(), 19)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        """Whole seconds, as MySQL keeps them; refuse aware datetimes, which PrestaShop never stores."""
        if value is None:
            return None
        if value.tzinfo is not None:
            raise ValueError(
                f"PrestaShop stores naive shop-local times (PS_TIMEZONE), got the aware datetime {value}; "
                "convert it to the shop's timezone and drop tzinfo"
            )
        value = value.replace(microsecond=0)
        return value.isoformat(" ") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """A naive `datetime`, or None for NULL and for PrestaShop's zero date."""
        return _from_stored(value, ZERO_DATETIME, datetime.fromisoformat)


class ShopDate(TypeDecorator[date]):
    """A PrestaShop `date`; its zero date reads back as None."""

    impl = Date()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """`DATE` on MySQL and PostgreSQL, `VARCHAR(10)` text on SQLite."""
        return _stored_as_text_on_sqlite(dialect, Date(), 10)

    def process_bind_param(self, value: date | None, dialect: Dialect) -> date | str | None:
        """ISO text on SQLite, the date itself elsewhere."""
        return value.isoformat() if value is not None and dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> date | None:
        """A `date`, or None for NULL and for PrestaShop's zero date."""
        return _from_stored(value, ZERO_DATE, date.fromisoformat)

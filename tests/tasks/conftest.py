"""Shops for the stage tests: SQLite for speed, MariaDB on the real PrestaShop 8.0 DDL for fidelity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from schemas.prestashop import shop_tables
from tests.shops import Shop, seeded_shop, sqlite_shop


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    """A fresh SQLite shop."""
    seeded = sqlite_shop(tmp_path / "shop.sqlite")
    yield seeded
    seeded.engine.dispose()


@pytest.fixture
def mysql_shop(mysql_shop_engine_factory: Callable[..., Engine]) -> Shop:
    """A fresh MariaDB shop on the real PrestaShop 8.0 DDL."""
    return seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))

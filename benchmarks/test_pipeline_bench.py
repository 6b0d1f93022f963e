"""Throughput of the extract and build stages on generated shops (SQLite, MariaDB) of 2,000 shipped orders."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from schemas.prestashop import shop_tables
from seeding.vocabulary import Line
from tasks.build import build_reports
from tests.shops import MERCHANT, Shop, seeded_shop, sqlite_shop

ORDERS = 2000
LINES_PER_ORDER = 4


def seed_big_shop(shop: Shop) -> Shop:
    """Fill `shop` with ORDERS shipped orders of LINES_PER_ORDER lines."""
    for number in range(ORDERS):
        lines = [
            Line(f"Producto {number}-{n}", f"SKU-{n}", 1 + n, Decimal("3.33") + Decimal(n))
            for n in range(LINES_PER_ORDER)
        ]
        shop.shipped_order(f"B{number:08d}", lines=lines, tracking_number=f"PK{number}")
    return shop


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mysql)])
def big_shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    if request.param == "sqlite":
        return seed_big_shop(sqlite_shop(Path(tmp_path_factory.mktemp("bench")) / "shop.sqlite"))
    engine = request.getfixturevalue("mysql_shop_engine_factory")("8.0", "ps_")
    return seed_big_shop(seeded_shop(engine, shop_tables("ps_")))


def test_extract_shipped_orders(benchmark, big_shop: Shop) -> None:
    extract = benchmark.pedantic(big_shop.extract, kwargs={"chunk_size": 500}, rounds=3, iterations=1)
    assert len(extract.shipped_orders) == ORDERS
    assert len(extract.order_lines) == ORDERS * LINES_PER_ORDER


def test_build_order_reports(benchmark, big_shop: Shop) -> None:
    extract = big_shop.extract(chunk_size=500)
    result = benchmark.pedantic(build_reports, args=(extract, MERCHANT), rounds=3, iterations=1)
    assert len(result.reports) == ORDERS

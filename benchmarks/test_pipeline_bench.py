"""Throughput of the extract and build stages on a generated shop of a few thousand shipped orders."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from demo.shop import Line
from tasks.build import build_reports
from tests.shops import MERCHANT, Shop, sqlite_shop

ORDERS = 2000
LINES_PER_ORDER = 4


@pytest.fixture(scope="module")
def big_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    shop = sqlite_shop(Path(tmp_path_factory.mktemp("bench")) / "shop.sqlite")
    for number in range(ORDERS):
        lines = [
            Line(f"Producto {number}-{n}", f"SKU-{n}", 1 + n, Decimal("3.33") + Decimal(n))
            for n in range(LINES_PER_ORDER)
        ]
        shop.shipped_order(f"B{number:08d}", lines=lines, tracking_number=f"PK{number}")
    return shop


def test_extract_shipped_orders(benchmark, big_shop: Shop) -> None:
    extract = benchmark.pedantic(big_shop.extract, kwargs={"chunk_size": 500}, rounds=3, iterations=1)
    assert len(extract.shipped_orders) == ORDERS
    assert len(extract.order_lines) == ORDERS * LINES_PER_ORDER


def test_build_order_reports(benchmark, big_shop: Shop) -> None:
    extract = big_shop.extract(chunk_size=500)
    result = benchmark.pedantic(build_reports, args=(extract, MERCHANT), rounds=3, iterations=1)
    assert len(result.reports) == ORDERS

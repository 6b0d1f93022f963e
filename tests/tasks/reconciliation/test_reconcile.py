"""Reconcile at scale: 100,000 corrections on MariaDB, a fixed number of queries per chunk."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from schemas.corrections import ReconcileOutcome, ReconciliationCounts
from schemas.prestashop import shop_tables
from tasks.reconciliation.run import Log, ReconcileSteps, ReconciliationRun
from tasks.resources import RunResources
from tests.runs import settings_for
from tests.shops import Shop, seeded_shop

pytestmark = pytest.mark.mysql
ORDERS = 100_000
FIRST = 1_000_000  # ids of the cloned buyers, addresses and orders start above it
LOG = logging.getLogger(__name__)


def clone_orders(shop: Shop, count: int) -> None:
    """`count` SeQura orders, each with its own buyer and address, cloned from one in a few statements."""
    template = shop.shipped_order("TEMPLATE1")
    t = shop.tables
    clones = {
        t.customer: ("id_customer", {"email": "CONCAT('buyer', seq, '@example.com')"}),
        t.address: (
            "id_address",
            {"id_customer": f"{FIRST} + seq", "postcode": "LPAD(seq MOD 99999, 5, '0')"},
        ),
        t.orders: (
            "id_order",
            {
                "reference": "CONCAT('R', LPAD(seq, 8, '0'))",
                "id_customer": f"{FIRST} + seq",
                "id_address_delivery": f"{FIRST} + seq",
                "id_address_invoice": f"{FIRST} + seq",
            },
        ),
    }
    ids = {t.customer: shop.customer, t.address: shop.address, t.orders: template}
    with shop.engine.begin() as conn:
        for table, (key, values) in clones.items():
            columns = [column.name for column in table.c]
            chosen = [
                f"{FIRST} + seq" if name == key else values.get(name, f"`{table.name}`.`{name}`")
                for name in columns
            ]
            conn.exec_driver_sql(
                f"INSERT INTO `{table.name}` ({', '.join(f'`{c}`' for c in columns)}) "
                f"SELECT {', '.join(chosen)} FROM `{table.name}` JOIN seq_1_to_{count} "
                f"WHERE `{table.name}`.`{key}` = {ids[table]}"
            )


def corrections(path: Path, count: int) -> Path:
    """One correction per cloned order: every 10th corrects the email, every 7th the postcode."""
    with path.open("w", encoding="utf-8") as stream:
        for seq in range(1, count + 1):
            record: dict[str, Any] = {"order_ref_1": f"R{seq:08d}"}
            if seq % 10 == 0:
                record["customer"] = {"email": f"buyer{seq}@example.org"}
            postcode = f"{seq % 99999:05d}"
            record["delivery_address"] = {
                "postal_code": f"{(seq + 1) % 99999:05d}" if seq % 7 == 0 else postcode,
                "city": "MADRID",
            }
            stream.write(json.dumps(record) + "\n")
    return path


@contextmanager
def counting_queries(database: str) -> Iterator[list[str]]:
    """Every statement run on `database` while the block runs."""
    statements: list[str] = []

    def count(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn.engine.url.database == database:
            statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", count)


class CountedChunks(ReconcileSteps):
    """A reconciliation's steps, counting the shop's queries of each chunk."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.queries: list[int] = []

    def chunk(self, number: int, step: Callable[[Log], ReconcileOutcome]) -> ReconcileOutcome:
        with counting_queries(self.database) as statements:
            outcome = step(LOG)
        self.queries.append(
            sum(1 for s in statements if s.lstrip().upper().startswith("SELECT") and "ps_" in s)
        )
        return outcome


def test_100000_corrections_are_reconciled_with_four_queries_per_chunk(
    mysql_shop_engine_factory: Callable[..., Engine], tmp_path: Path
) -> None:
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    clone_orders(shop, ORDERS)
    settings = settings_for(shop.engine, f"sqlite:///{tmp_path / 'state.sqlite'}")
    source = corrections(tmp_path / "corrections.jsonl", ORDERS)
    out = tmp_path / "differences.csv"
    steps = CountedChunks(shop.engine.url.database or "")
    started = time.perf_counter()
    with RunResources.open(settings) as resources:
        total = ReconciliationRun(resources, str(source), out).run(steps).outcome
    seconds = time.perf_counter() - started
    emails, postcodes = ORDERS // 10, ORDERS // 7
    assert len(steps.queries) == ORDERS // settings.chunk_size
    assert total.counts == ReconciliationCounts(
        records=ORDERS,
        matched=ORDERS,
        differences=emails + postcodes,
        orders_with_differences=ORDERS // 10 + ORDERS // 7 - ORDERS // 70,
        repeating=ORDERS // 10 + ORDERS // 7 - ORDERS // 70,
        by_field={"customer.email": emails, "delivery_address.postal_code": postcodes},
        change_lines=emails + postcodes,
        read=ORDERS,
    )
    assert set(steps.queries) == {4}
    assert sum(1 for _ in out_rows(out)) == emails + postcodes
    print(f"\n{ORDERS:,} corrections reconciled in {seconds:.1f} s with {sum(steps.queries)} shop queries")


def out_rows(path: Path) -> Iterator[str]:
    """The data rows of a reconciliation CSV."""
    with open(path, encoding="utf-8") as stream:
        next(stream)
        yield from stream

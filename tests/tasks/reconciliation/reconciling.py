"""Helpers for reconciliation tests: corrections, a chunk compared with a shop, and its fixes applied."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select

from schemas.corrections import AppliedFix, Correction, SkippedFix
from tasks.extract.scope import OrderFilter
from tasks.reconciliation.compare import ChunkReconciliation, reconcile_corrections
from tasks.reconciliation.shop_fixes import FixSession, apply_fixes
from tasks.reconciliation.shop_records import read_shop_records
from tests.shops import Shop

FIXED_AT = datetime(2026, 11, 27, 12, 0, 0, 250_000)  # shop-local, stored to the second


def correction(order_ref: str, line: int = 1, **records: Mapping[str, str]) -> Correction:
    """A checked correction of one order."""
    return Correction(line, order_ref, {name: dict(fields) for name, fields in records.items()})


def compare(
    shop: Shop,
    *corrections: Correction,
    order_ref_field: str = "reference",
    admin_url: str | None = None,
    repeats_in: Mapping[str, str] | None = None,
    module_table: bool = False,
) -> ChunkReconciliation:
    """One chunk of corrections compared with the shop, as a reconciliation run does."""
    with shop.engine.connect() as conn:
        records = read_shop_records(
            conn,
            shop.tables,
            OrderFilter(("sequrapayment",)),
            order_ref_field,
            [c.order_ref_1 for c in corrections],
            module_table=module_table,
        )
    return reconcile_corrections(list(corrections), records, admin_url, repeats_in or {})


class KeptAudit:
    """An audit trail kept in memory: what each order's transaction said it changed, and how it settled."""

    def __init__(self) -> None:
        self.batches: dict[str, list[AppliedFix]] = {}
        self.settled: dict[str, bool] = {}

    def pending(self, batch: str, applied: list[AppliedFix]) -> None:
        self.batches[batch] = applied

    def settle(self, batch: str, *, committed: bool) -> None:
        self.settled[batch] = committed


def apply(
    shop: Shop, found: ChunkReconciliation, audit: KeptAudit | None = None
) -> tuple[list[AppliedFix], list[SkippedFix]]:
    """Write a compared chunk's fixes into the shop."""
    return apply_fixes(shop.engine, shop.tables, found.fixes, FIXED_AT, FixSession(), audit or KeptAudit())


def order_row(shop: Shop, id_order: int) -> Mapping[str, object]:
    """One orders row."""
    o = shop.tables.orders
    with shop.engine.connect() as conn:
        return conn.execute(select(o).where(o.c.id_order == id_order)).mappings().one()


def address_row(shop: Shop, id_address: int) -> Mapping[str, object]:
    """One address row."""
    a = shop.tables.address
    with shop.engine.connect() as conn:
        return conn.execute(select(a).where(a.c.id_address == id_address)).mappings().one()


def customer_row(shop: Shop, id_customer: int) -> Mapping[str, object]:
    """One customer row."""
    c = shop.tables.customer
    with shop.engine.connect() as conn:
        return conn.execute(select(c).where(c.c.id_customer == id_customer)).mappings().one()

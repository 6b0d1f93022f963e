"""Snapshots: the report SeQura last acknowledged of each order, and who sent it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from schemas import state
from schemas.reports import BuiltReport, ClassifiedReport
from schemas.state import shipped_columns
from tasks.rows import in_chunks
from tasks.state.store import StateStore, payload_json, rows_of, upsert

SENT_BY_US = "sequra-etl"


SENT_BY_MODULE = "php-module"


SENT_BY_ADOPTION = "adopted"  # recorded by `sequra-etl adopt` as SeQura's already, without sending


NOT_AT_SEQURA = "not-at-sequra"  # a cancellation before shipment SeQura answered 404: it holds no such order


def last_answers(
    store: StateStore, merchant: str, order_refs: Sequence[str]
) -> tuple[dict[str, str], set[str]]:
    """The fingerprint SeQura last answered for each of `order_refs` with one, and those it holds none of.

    The second holds the orders whose cancellation before shipment SeQura answered 404 (NOT_AT_SEQURA).
    """
    with store.engine.connect() as conn:
        rows = rows_of(
            conn, state.order_snapshots, merchant, "order_ref_1", order_refs, "fingerprint", "sent_by"
        )
    return (
        {row.order_ref_1: row.fingerprint for row in rows},
        {row.order_ref_1 for row in rows if row.sent_by == NOT_AT_SEQURA},
    )


def snapshot_payloads(store: StateStore, merchant: str, order_refs: Sequence[str]) -> dict[str, bytes]:
    """The report last acknowledged by SeQura (or kept as the PHP module's baseline) per order_ref_1."""
    with store.engine.connect() as conn:
        rows = rows_of(conn, state.order_snapshots, merchant, "order_ref_1", order_refs, "payload")
    return {row.order_ref_1: row.payload.encode("utf-8") for row in rows}


def keep_snapshots(
    conn: Connection,
    run_id: str,
    merchant: str,
    reports: Sequence[BuiltReport],
    moment: datetime,
    sent_by: str,
) -> None:
    """Upsert the snapshots of `reports` as SeQura holds them at `moment`."""
    rows = [
        {
            "order_ref_1": built.order_ref_1,
            "reference": built.reference,
            "fingerprint": built.fingerprint,
            "payload": payload_json(built),
            **shipped_columns(built.report),
            "last_sent_at": moment,
            "run_id": run_id,
            "sent_by": sent_by,
            "erased_at": None,  # it holds buyer data (tasks.state.privacy)
        }
        for built in reports
    ]
    upsert(conn, state.order_snapshots, merchant, "order_ref_1", rows, {"first_sent_at": moment})


def adopt_module_reports(
    store: StateStore, run_id: str, merchant: str, classified: Sequence[ClassifiedReport]
) -> None:
    """Keep, as their baseline, the orders the PHP module reported that have no snapshot yet; writes them."""
    adopted = [
        item.built
        for item in classified
        if item.built.reported_by_module and item.previous_fingerprint is None
    ]
    if not adopted:
        return
    moment = store.now()
    with store.engine.begin() as conn:
        keep_snapshots(conn, run_id, merchant, adopted, moment, SENT_BY_MODULE)


def record_adopted(store: StateStore, run_id: str, merchant: str, reports: Sequence[BuiltReport]) -> None:
    """Keep, as their baseline, orders SeQura already has although the store lost them; writes snapshots."""
    if reports:
        with store.engine.begin() as conn:
            keep_snapshots(conn, run_id, merchant, reports, store.now(), SENT_BY_ADOPTION)


def reported_under(store: StateStore, merchants: Sequence[str], order_refs: Sequence[str]) -> dict[str, str]:
    """Which of `order_refs` SeQura has, or may have, under one of `merchants`, and under which one.

    Has: a snapshot; may have: a report sent without an answer (in flight).
    """
    owners: dict[str, str] = {}
    with store.engine.connect() as conn:
        for table in (state.order_snapshots, state.in_flight):
            for batch in in_chunks(list(order_refs), 1000):
                query = select(table.c.order_ref_1, table.c.merchant).where(
                    table.c.merchant.in_(merchants), table.c.order_ref_1.in_(batch)
                )
                owners.update({row.order_ref_1: row.merchant for row in conn.execute(query)})
    return owners

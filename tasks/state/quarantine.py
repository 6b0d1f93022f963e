"""Quarantine: orders that could not be reported, why, and which references every run reads again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection

from schemas import state
from schemas.reports import QuarantinedOrder, Stage
from tasks.rows import in_chunks
from tasks.state.store import KEYS_PER_QUERY, StateStore, existing_keys, upsert


def references_to_retry(store: StateStore, merchant: str) -> list[str]:
    """Shop references to read again whatever the window.

    Quarantined and not resolved (except updates SeQura refused, which wait for the order to change or to
    be released), still in flight, or changed with an update not yet sent.
    """
    q, flight, changes = state.quarantine, state.in_flight, state.order_changes
    with store.engine.connect() as conn:
        quarantined = conn.execute(
            select(q.c.reference).where(
                q.c.merchant == merchant, q.c.resolved_at.is_(None), q.c.stage != str(Stage.UPDATE)
            )
        ).scalars()
        in_flight = conn.execute(select(flight.c.reference).where(flight.c.merchant == merchant)).scalars()
        pending = conn.execute(
            select(changes.c.reference).where(changes.c.merchant == merchant, changes.c.outcome.is_(None))
        ).scalars()
        return sorted({*quarantined, *in_flight, *pending})


def resolve_quarantine(conn: Connection, merchant: str, references: Sequence[str], moment: datetime) -> None:
    """Mark the open quarantine entries of `references` resolved."""
    q = state.quarantine
    for chunk in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
        conn.execute(
            update(q)
            .where(q.c.merchant == merchant, q.c.reference.in_(chunk), q.c.resolved_at.is_(None))
            .values(resolved_at=moment)
        )


def record_quarantine(
    store: StateStore, run_id: str, merchant: str, quarantined: Sequence[QuarantinedOrder]
) -> None:
    """Upsert the quarantined orders with their latest reason; reopens an entry resolved before."""
    with store.engine.begin() as conn:
        quarantine_within(conn, run_id, merchant, quarantined, store.now())


def quarantine_within(
    conn: Connection, run_id: str, merchant: str, quarantined: Sequence[QuarantinedOrder], moment: datetime
) -> None:
    """record_quarantine within a transaction."""
    rows = [
        {
            "reference": entry.reference,
            "order_ref_1": entry.order_ref_1,
            "id_orders": ",".join(map(str, entry.id_orders)),
            "stage": str(entry.stage),
            "reason": entry.reason,
            "last_seen_at": moment,
            "run_id": run_id,
            "resolved_at": None,
            "erased_at": None,  # its reason may quote buyer data (tasks.state.privacy)
        }
        for entry in quarantined
    ]
    q = state.quarantine
    tried_before = existing_keys(conn, q, merchant, "reference", [row["reference"] for row in rows])
    upsert(conn, q, merchant, "reference", rows, {"first_seen_at": moment})
    for batch in in_chunks(sorted(tried_before), 1000):
        conn.execute(
            update(q)
            .where(q.c.merchant == merchant, q.c.reference.in_(batch))
            .values(attempts=q.c.attempts + 1)
        )


@dataclass(frozen=True)
class WaitingOrder:
    """An order still in quarantine: why, since when, and how many runs have tried it again since."""

    order_ref_1: str
    id_orders: str
    stage: Stage
    reason: str
    first_seen_at: datetime
    retried: int


def open_quarantine(store: StateStore, merchant: str, limit: int) -> tuple[list[WaitingOrder], int]:
    """The merchant's orders still in quarantine, oldest first (at most `limit`), and how many there are."""
    q = state.quarantine
    waiting = and_(q.c.merchant == merchant, q.c.resolved_at.is_(None))
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(q).where(waiting)).scalar_one()
        rows = conn.execute(
            select(q).where(waiting).order_by(q.c.first_seen_at, q.c.reference).limit(limit)
        ).all()
    return [
        WaitingOrder(
            row.order_ref_1,
            row.id_orders.replace(",", ", "),
            Stage(row.stage),
            row.reason,
            row.first_seen_at,
            row.attempts - 1,
        )
        for row in rows
    ], total

"""Releases: what a person decides for orders held without a clear answer, or with a refused update."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection

from schemas import state
from tasks.state.errors import StateStoreError
from tasks.state.in_flight import forget_in_flight, in_flight_of_run
from tasks.state.order_changes import release_refused_updates, report_again
from tasks.state.quarantine import resolve_quarantine
from tasks.state.snapshots import SENT_BY_US
from tasks.state.store import StateStore, rows_of, upsert


def release_in_flight(store: StateStore, merchant: str, order_refs: Sequence[str], *, delivered: bool) -> str:
    """Settle orders held as maybe delivered: keep them as sent, or let the next run send them; writes."""
    flight = state.in_flight
    with store.engine.begin() as conn:
        rows = rows_of(
            conn,
            flight,
            merchant,
            "order_ref_1",
            order_refs,
            "reference",
            "fingerprint",
            "payload",
            "sending_at",
            "run_id",
            "erased_at",
        )
        unknown = sorted(set(order_refs) - {row.order_ref_1 for row in rows})
        if unknown or not rows:
            raise StateStoreError(
                f"not held as maybe delivered for merchant {merchant}: "
                f"{', '.join(unknown) or 'no order given'}; nothing was changed"
            )
        if delivered:
            for row in rows:
                snapshot = {
                    "order_ref_1": row.order_ref_1,
                    "reference": row.reference,
                    "fingerprint": row.fingerprint,
                    "payload": row.payload,
                    "last_sent_at": row.sending_at,
                    "run_id": row.run_id,
                    "sent_by": SENT_BY_US,
                    "erased_at": row.erased_at,
                }
                upsert(
                    conn,
                    state.order_snapshots,
                    merchant,
                    "order_ref_1",
                    [snapshot],
                    {"first_sent_at": row.sending_at},
                )
                _confirm_by_update(conn, merchant, row, store.now())
            resolve_quarantine(conn, merchant, [row.reference for row in rows], store.now())
        forget_in_flight(conn, merchant, order_refs)
    settled = ", ".join(sorted(row.order_ref_1 for row in rows))
    if delivered:
        return (
            f"recorded as delivered to SeQura, not to be reported again: {settled}; the next run sends "
            "each as an order update of what the shop shows then, which also catches changes made meanwhile"
        )
    return f"released, the next run sends them: {settled}"


def _confirm_by_update(conn: Connection, merchant: str, held: Any, moment: datetime) -> None:
    """Leave an order held in flight waiting as a change, so the next run sends it as an order update.

    While it was held its changes were not recorded; an update carries the order as the shop shows it
    then, and is harmless if SeQura already holds the same.
    """
    changes = state.order_changes
    conn.execute(
        delete(changes).where(
            changes.c.merchant == merchant,
            changes.c.order_ref_1 == held.order_ref_1,
            changes.c.fingerprint == held.fingerprint,
        )
    )
    conn.execute(
        insert(changes).values(
            merchant=merchant,
            order_ref_1=held.order_ref_1,
            reference=held.reference,
            previous_fingerprint=held.fingerprint,
            fingerprint=held.fingerprint,
            payload=held.payload,
            erased_at=held.erased_at,
            detected_at=moment,
            run_id=held.run_id,
        )
    )


def release_orders(
    store: StateStore,
    merchant: str,
    order_refs: Sequence[str],
    *,
    run_id: str | None = None,
    resend: bool = False,
) -> list[str]:
    """Settle held orders and send refused updates again; what was done, one line each; writes the store.

    Orders held because their report got no answer (given, or all of `run_id`'s) are recorded as SeQura's
    and confirmed by an order update, or with `resend` reported again; refused order updates are sent again.
    """
    lines = []
    if resend:
        updates = report_again(store, merchant, order_refs)
        if updates:
            lines.append(f"released, the next run reports them again as new: {', '.join(updates)}")
    else:
        updates = release_refused_updates(store, merchant, order_refs)
        if updates:
            lines.append(f"released, the next run sends their order updates again: {', '.join(updates)}")
    held = [ref for ref in order_refs if ref not in updates] + (
        in_flight_of_run(store, merchant, run_id) if run_id else []
    )
    if held or not updates:
        lines.append(release_in_flight(store, merchant, held, delivered=not resend))
    return lines

"""Shop corrections: the audit trail of what reconciliations wrote, and what would next tell SeQura."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, update

from schemas import state
from schemas.corrections import AppliedFix
from tasks.state.store import StateStore, rows_of


def reporting_outlook(store: StateStore, merchant: str, order_refs: Sequence[str]) -> dict[str, str]:
    """What would next send each order's shop data to SeQura: its delivery report, or a waiting order update.

    Orders reported with nothing waiting are left out: only a later change in the shop would send them.
    """
    changes = state.order_changes
    with store.engine.connect() as conn:
        reported = {
            row[0] for row in rows_of(conn, state.order_snapshots, merchant, "order_ref_1", order_refs)
        }
        waiting = {
            row.order_ref_1
            for row in rows_of(conn, changes, merchant, "order_ref_1", order_refs, "outcome")
            if row.outcome in (None, "refused", "unknown")
        }
        in_flight = {row[0] for row in rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs)}
    outlook = {ref: "order update" for ref in order_refs if ref in waiting | in_flight}
    return outlook | {ref: "delivery report" for ref in order_refs if ref not in reported | in_flight}


def record_shop_corrections(
    store: StateStore, run_id: str, merchant: str, batch: str, applied: Sequence[AppliedFix]
) -> None:
    """Keep, as pending, what one order's --apply transaction is about to change; writes shop_corrections."""
    if not applied:
        return
    moment = store.now()
    with store.engine.begin() as conn:
        conn.execute(
            insert(state.shop_corrections),
            [
                {
                    "run_id": run_id,
                    "merchant": merchant,
                    "order_ref_1": fix.order_reference,
                    "id_order": fix.id_order,
                    "record": fix.record,
                    "field": fix.field,
                    "shop_table": fix.shop_table,
                    "row_before": fix.row_before,
                    "row_after": fix.row_after,
                    "before_value": fix.before,
                    "after_value": fix.after,
                    "applied_at": moment,
                    "status": "pending",
                    "batch": batch,
                }
                for fix in applied
            ],
        )


def settle_shop_corrections(store: StateStore, batch: str, *, committed: bool) -> None:
    """Mark a batch of shop corrections applied once the shop committed it, or delete it; writes the store."""
    table = state.shop_corrections
    with store.engine.begin() as conn:
        if committed:
            conn.execute(
                update(table).where(table.c.batch == batch).values(status="applied", applied_at=store.now())
            )
        else:
            conn.execute(delete(table).where(table.c.batch == batch))

"""The in-flight ledger: reports noted before they leave, recorded as sent after SeQura's 2xx."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from schemas import state
from schemas.reports import BuiltReport
from tasks.rows import in_chunks
from tasks.state.locks import renew_lock
from tasks.state.quarantine import resolve_quarantine
from tasks.state.snapshots import SENT_BY_US, keep_snapshots
from tasks.state.store import KEYS_PER_QUERY, StateStore, payload_json, rows_of, upsert


def record_sent(
    store: StateStore,
    run_id: str,
    merchant: str,
    sent: Sequence[BuiltReport],
    sent_by: str = SENT_BY_US,
    counted: str = "sent_count",
) -> None:
    """Keep what SeQura answered, in one transaction.

    Upserts the snapshots (`sent_by` who, or NOT_AT_SEQURA for a cancellation SeQura had no order for),
    clears them from in_flight, resolves their quarantine and counts them on the run's `counted` column.
    """
    runs = state.runs
    moment = store.now()
    with store.engine.begin() as conn:
        keep_snapshots(conn, run_id, merchant, sent, moment, sent_by)
        forget_in_flight(conn, merchant, [built.order_ref_1 for built in sent])
        resolve_quarantine(conn, merchant, [built.reference for built in sent], moment)
        if counted:
            conn.execute(
                update(runs).where(runs.c.run_id == run_id).values({counted: runs.c[counted] + len(sent)})
            )


def forget_in_flight(conn: Connection, merchant: str, order_refs: Sequence[str]) -> None:
    """Delete the in_flight rows of `order_refs`."""
    flight = state.in_flight
    for chunk in in_chunks(sorted(set(order_refs)), KEYS_PER_QUERY):
        conn.execute(delete(flight).where(flight.c.merchant == merchant, flight.c.order_ref_1.in_(chunk)))


@dataclass(frozen=True)
class StateLedger:
    """The loader's ledger in the state store: in_flight before a POST, snapshots after its 2xx."""

    store: StateStore
    run_id: str
    merchant: str

    def sending(self, batch: Sequence[BuiltReport]) -> None:
        """Note the batch in in_flight before it is POSTed, so a crash cannot hide that it may have gone.

        Raises RunInProgressError, noting nothing, if the run no longer holds its lock.
        """
        renew_lock(self.store, self.merchant, self.run_id)
        moment = self.store.now()
        rows = [
            {
                "order_ref_1": built.order_ref_1,
                "reference": built.reference,
                "fingerprint": built.fingerprint,
                "payload": payload_json(built),
                "sending_at": moment,
                "run_id": self.run_id,
                "erased_at": None,  # it holds buyer data (tasks.state.privacy)
            }
            for built in batch
        ]
        with self.store.engine.begin() as conn:
            upsert(conn, state.in_flight, self.merchant, "order_ref_1", rows, {})

    def sent(self, batch: Sequence[BuiltReport]) -> None:
        """Record the acknowledged batch (snapshots, in one transaction with the run count)."""
        record_sent(self.store, self.run_id, self.merchant, batch)

    def not_sent(self, batch: Sequence[BuiltReport]) -> None:
        """Forget the batch SeQura answered without accepting."""
        with self.store.engine.begin() as conn:
            forget_in_flight(conn, self.merchant, [built.order_ref_1 for built in batch])


def uncertain_deliveries(store: StateStore, merchant: str, order_refs: Sequence[str]) -> dict[str, str]:
    """Orders an earlier run POSTed without hearing back, each with when and by which run."""
    with store.engine.connect() as conn:
        rows = rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs, "run_id", "sending_at")
    return {
        row.order_ref_1: f"run {row.run_id} sent it at {row.sending_at:%Y-%m-%d %H:%M} UTC" for row in rows
    }


def in_flight_since(store: StateStore, merchant: str, order_refs: Sequence[str]) -> dict[str, datetime]:
    """When each of `order_refs` that is in flight was last sent."""
    with store.engine.connect() as conn:
        rows = rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs, "sending_at")
    return {row.order_ref_1: row.sending_at for row in rows}


def in_flight_of_run(store: StateStore, merchant: str, run_id: str) -> list[str]:
    """The orders a given run left in flight (sent without a clear answer)."""
    flight = state.in_flight
    with store.engine.connect() as conn:
        return sorted(
            conn.execute(
                select(flight.c.order_ref_1).where(flight.c.merchant == merchant, flight.c.run_id == run_id)
            ).scalars()
        )

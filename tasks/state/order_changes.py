"""Owed updates: changes of reported orders, kept until SeQura answers their order update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, or_, update
from sqlalchemy.engine import Connection

from schemas import state
from schemas.reports import BuildResult, BuiltReport, Change, ClassifiedReport, QuarantinedOrder, Stage
from tasks.rows import in_chunks
from tasks.state.quarantine import quarantine_within, record_quarantine, resolve_quarantine
from tasks.state.snapshots import SENT_BY_US, adopt_module_reports, keep_snapshots
from tasks.state.store import KEYS_PER_QUERY, StateStore, payload_json, rows_of

# What became of a change (order_changes.outcome); NULL means its update is still to be sent.
UPDATE_SENT, UPDATE_SUPERSEDED, UPDATE_REFUSED, UPDATE_UNKNOWN = "sent", "superseded", "refused", "unknown"


HELD_OUTCOMES = (UPDATE_REFUSED, UPDATE_UNKNOWN)


def record_changes(
    store: StateStore, run_id: str, merchant: str, changed: Sequence[ClassifiedReport]
) -> set[str]:
    """Keep each change of a reported order as an update to send; returns the orders to hold back.

    A change seen for the first time, or seen again after the order moved on, is pending (outcome NULL)
    until SeQura answers its update. One SeQura refused (409) or did not know (404), from the same
    snapshot, is held back: sending it again would meet the same answer.
    """
    changes = state.order_changes
    moment = store.now()
    with store.engine.begin() as conn:
        rows = rows_of(
            conn,
            changes,
            merchant,
            "order_ref_1",
            [item.built.order_ref_1 for item in changed],
            "fingerprint",
            "previous_fingerprint",
            "outcome",
        )
        known = {(row.order_ref_1, row.fingerprint): row for row in rows}
        held: set[str] = set()
        fresh, again = [], []
        for item in changed:
            row = known.get((item.built.order_ref_1, item.built.fingerprint))
            values = {
                "order_ref_1": item.built.order_ref_1,
                "reference": item.built.reference,
                "previous_fingerprint": item.previous_fingerprint or "",
                "fingerprint": item.built.fingerprint,
                "payload": payload_json(item.built),
                "detected_at": moment,
                "run_id": run_id,
                "outcome": None,
                "answered_at": None,
                "erased_at": None,  # it holds buyer data (tasks.state.privacy)
            }
            if row is None:
                fresh.append({"merchant": merchant, **values})
            elif row.outcome in HELD_OUTCOMES and row.previous_fingerprint == values["previous_fingerprint"]:
                held.add(item.built.order_ref_1)
            elif row.outcome is not None:
                again.append(
                    {**values, "key_ref": values["order_ref_1"], "key_fingerprint": values["fingerprint"]}
                )
        if fresh:
            conn.execute(insert(changes), fresh)
        if again:
            conn.execute(
                update(changes)
                .where(
                    changes.c.merchant == merchant,
                    changes.c.order_ref_1 == bindparam("key_ref"),
                    changes.c.fingerprint == bindparam("key_fingerprint"),
                )
                .values({name: bindparam(name) for name in again[0] if not name.startswith("key_")}),
                again,
            )
    return held


def settle_changes(
    conn: Connection,
    merchant: str,
    references: Sequence[str],
    outcome: str,
    moment: datetime,
    outcomes: Sequence[str | None] = (None,),
) -> None:
    """Give the changes of the orders of `references` that have one of `outcomes` (pending) a new one."""
    changes = state.order_changes
    current = or_(
        *(changes.c.outcome.is_(None) if was is None else changes.c.outcome == was for was in outcomes)
    )
    for chunk in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
        conn.execute(
            update(changes)
            .where(changes.c.merchant == merchant, changes.c.reference.in_(chunk), current)
            .values(outcome=outcome, answered_at=moment)
        )


def record_updated(store: StateStore, run_id: str, merchant: str, updated: Sequence[BuiltReport]) -> None:
    """Keep what SeQura accepted as order updates, in one transaction with the run's count.

    Replaces the snapshots, settles the orders' pending changes as sent and resolves their quarantine.
    """
    runs = state.runs
    moment = store.now()
    with store.engine.begin() as conn:
        keep_snapshots(conn, run_id, merchant, updated, moment, SENT_BY_US)
        settle_changes(conn, merchant, [built.reference for built in updated], UPDATE_SENT, moment)
        resolve_quarantine(conn, merchant, [built.reference for built in updated], moment)
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(updated_count=runs.c.updated_count + len(updated))
        )


def record_update_refused(
    store: StateStore, run_id: str, merchant: str, refused: QuarantinedOrder, outcome: str
) -> None:
    """Keep an update SeQura refused (409) or could not place (404): change held, order quarantined."""
    moment = store.now()
    with store.engine.begin() as conn:
        settle_changes(conn, merchant, [refused.reference], outcome, moment)
        quarantine_within(conn, run_id, merchant, [refused], moment)


def report_again(store: StateStore, merchant: str, order_refs: Sequence[str]) -> list[str]:
    """Forget, for orders SeQura said it does not know (404), that it holds them; writes the store.

    The next run then reports them as new. Returns the orders it applied to.
    """
    changes, q = state.order_changes, state.quarantine
    moment = store.now()
    with store.engine.begin() as conn:
        rows = rows_of(conn, changes, merchant, "order_ref_1", order_refs, "reference", "outcome")
        unknown = {row.order_ref_1: row.reference for row in rows if row.outcome == UPDATE_UNKNOWN}
        for chunk in in_chunks(sorted(unknown), KEYS_PER_QUERY):
            snapshots = state.order_snapshots
            conn.execute(
                delete(snapshots).where(snapshots.c.merchant == merchant, snapshots.c.order_ref_1.in_(chunk))
            )
        settle_changes(
            conn, merchant, sorted(unknown.values()), UPDATE_SUPERSEDED, moment, outcomes=(UPDATE_UNKNOWN,)
        )
        for chunk in in_chunks(sorted(unknown.values()), KEYS_PER_QUERY):
            conn.execute(
                update(q)
                .where(q.c.merchant == merchant, q.c.reference.in_(chunk), q.c.resolved_at.is_(None))
                .values(stage=str(Stage.LOAD), reason="released to be reported again", last_seen_at=moment)
            )
    return sorted(unknown)


def release_refused_updates(store: StateStore, merchant: str, order_refs: Sequence[str]) -> list[str]:
    """Let the next run send again the updates SeQura refused for `order_refs`; returns those released."""
    changes = state.order_changes
    with store.engine.begin() as conn:
        released = sorted(
            {
                row.order_ref_1
                for row in rows_of(conn, changes, merchant, "order_ref_1", order_refs, "outcome")
                if row.outcome in HELD_OUTCOMES
            }
        )
        for chunk in in_chunks(released, KEYS_PER_QUERY):
            conn.execute(
                update(changes)
                .where(
                    changes.c.merchant == merchant,
                    changes.c.order_ref_1.in_(chunk),
                    changes.c.outcome.in_(HELD_OUTCOMES),
                )
                .values(outcome=None, answered_at=None)
            )
    return released


@dataclass(frozen=True)
class Findings:
    """What the state store says of a chunk's changed and unchanged orders before anything is sent."""

    held: set[str]  # order_ref_1 of changed orders whose update SeQura refused as it stands
    repeat: set[str]  # order_ref_1 of unchanged orders whose last update may have reached SeQura unanswered


def record_findings(
    store: StateStore,
    run_id: str,
    merchant: str,
    built: BuildResult,
    classified: Sequence[ClassifiedReport],
    retried: Sequence[str],
) -> Findings:
    """Before sending: keep the build's quarantine and the changes seen, and close what needs no retry.

    A quarantined reference, or one with a change waiting, needs no retry once it builds and is what SeQura
    holds, or once it is no longer a shipped SeQura order of this merchant (it left the extract, or belongs
    to another merchant). An order back to what SeQura last acknowledged closes its quarantine and its
    refused updates; if an update of it is still waiting, that update may have reached SeQura without an
    answer, so the order is sent again as it stands (`repeat`). Orders the PHP module reported get their
    first snapshot, so later changes to them show as CHANGED.
    """
    record_quarantine(store, run_id, merchant, built.quarantined)
    held = record_changes(
        store, run_id, merchant, [item for item in classified if item.change is Change.CHANGED]
    )
    adopt_module_reports(store, run_id, merchant, classified)
    unchanged = {item.built.reference: item.built for item in classified if item.change is Change.UNCHANGED}
    still_open = {entry.reference for entry in built.quarantined} | {
        item.built.reference for item in classified if item.change is not Change.UNCHANGED
    }
    moment = store.now()
    with store.engine.begin() as conn:
        changes = rows_of(conn, state.order_changes, merchant, "reference", list(unchanged), "outcome")
        waiting = {row.reference for row in changes if row.outcome is None}
        unknown = {row.reference for row in changes if row.outcome == UPDATE_UNKNOWN}  # SeQura holds nothing
        refused = sorted({row.reference for row in changes if row.outcome == UPDATE_REFUSED})
        settle_changes(conn, merchant, refused, UPDATE_SUPERSEDED, moment, outcomes=(UPDATE_REFUSED,))
        gone = set(retried) - still_open - set(unchanged)
        settle_changes(conn, merchant, sorted(gone), UPDATE_SUPERSEDED, moment)
        resolve_quarantine(conn, merchant, sorted((gone | set(unchanged)) - waiting - unknown), moment)
    return Findings(held, {unchanged[reference].order_ref_1 for reference in waiting})

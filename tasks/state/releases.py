"""Releases: what a person decides for orders held without a clear answer, or with a refused update."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection

from schemas import state
from schemas.errors import TerminalError
from schemas.reports import Stage
from schemas.shown import shown
from schemas.state import shipped_columns
from tasks.state.in_flight import forget_in_flight, in_flight_of_run
from tasks.state.order_changes import (
    HELD_OUTCOMES,
    UPDATE_UNKNOWN,
    release_refused_updates,
    report_again,
)
from tasks.state.quarantine import resolve_quarantine
from tasks.state.snapshots import SENT_BY_US
from tasks.state.store import StateStore, rows_of, upsert

REASON_SHOWN = 300
"""Characters of a quarantine reason a refused release quotes."""

NAMED_AT_MOST = 5
"""Orders a refused release describes one by one; it counts the others."""


class NotReleasableError(TerminalError):
    """An order given to release is not held: the message says what kind of order it is and what to do."""


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
            raise NotReleasableError(
                f"nothing was released: not held as maybe delivered for merchant {merchant}: "
                f"{', '.join(unknown) or 'no order given'}; give the orders a run left without an answer"
            )
        if delivered:
            for row in rows:
                snapshot = {
                    "order_ref_1": row.order_ref_1,
                    "reference": row.reference,
                    "fingerprint": row.fingerprint,
                    "payload": row.payload,
                    **shipped_columns(orjson.loads(row.payload)),
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
    held_by_run = in_flight_of_run(store, merchant, run_id) if run_id else []
    if not order_refs and not held_by_run:
        raise NotReleasableError(_nothing_given(merchant, run_id))
    check_releasable(store, merchant, order_refs, resend=resend)
    lines = []
    if resend:
        updates = report_again(store, merchant, order_refs)
        if updates:
            lines.append(f"released, the next run reports them again as new: {', '.join(updates)}")
    else:
        updates = release_refused_updates(store, merchant, order_refs)
        if updates:
            lines.append(f"released, the next run sends their order updates again: {', '.join(updates)}")
    held = [ref for ref in order_refs if ref not in updates] + held_by_run
    if held:
        lines.append(release_in_flight(store, merchant, held, delivered=not resend))
    return lines


def _nothing_given(merchant: str, run_id: str | None) -> str:
    """Why a release with no order to settle does nothing, and what to give it instead."""
    if run_id is None:
        return (
            "nothing was released: no order given; name the orders (their order_ref_1) or --run RUN_ID, "
            "the run id a summary shows"
        )
    return (
        f"nothing was released: run {shown(run_id)} left no order of merchant {merchant} without an answer; "
        "check the run id (a run's summary shows it) and the merchant (--merchant)"
    )


def check_releasable(store: StateStore, merchant: str, order_refs: Sequence[str], *, resend: bool) -> None:
    """Refuse, before anything is written, orders that are not held: say what each is and what to do.

    Held are orders in flight (their report got no answer) and orders whose update SeQura refused; with
    `resend`, only those SeQura said it does not know (404), as a refused update (409) means it has them.
    """
    with store.engine.connect() as conn:
        in_flight = {
            row.order_ref_1 for row in rows_of(conn, state.in_flight, merchant, "order_ref_1", order_refs)
        }
        changes = rows_of(conn, state.order_changes, merchant, "order_ref_1", order_refs, "outcome")
        quarantined = _open_quarantine(conn, merchant, order_refs)
        reported = rows_of(conn, state.order_snapshots, merchant, "order_ref_1", order_refs, "last_sent_at")
    outcomes = {row.order_ref_1: row.outcome for row in changes if row.outcome in HELD_OUTCOMES}
    releasable = in_flight | {
        ref for ref, outcome in outcomes.items() if not resend or outcome == UPDATE_UNKNOWN
    }
    waiting = {row.order_ref_1 for row in changes if row.outcome is None}
    sent_at = {row.order_ref_1: row.last_sent_at for row in reported}
    refused = [
        _what_it_is(ref, merchant, outcomes.get(ref), quarantined.get(ref), ref in waiting, sent_at.get(ref))
        for ref in dict.fromkeys(order_refs)
        if ref not in releasable
    ]
    if refused:
        more = len(refused) - NAMED_AT_MOST
        said = "; ".join(refused[:NAMED_AT_MOST]) + (
            f"; and {more} more orders not held either" if more > 0 else ""
        )
        raise NotReleasableError(f"nothing was released: {said}")


def _open_quarantine(conn: Connection, merchant: str, order_refs: Sequence[str]) -> dict[str, Any]:
    """The open quarantine entry of each of `order_refs`, by SeQura's order_ref_1 or the shop's reference."""
    q = state.quarantine
    found: dict[str, Any] = {}
    for key in ("reference", "order_ref_1"):
        for row in rows_of(conn, q, merchant, key, order_refs, "stage", "reason", "resolved_at"):
            if row.resolved_at is None:
                found[getattr(row, key)] = row
    return found


def _what_it_is(
    ref: str, merchant: str, outcome: str | None, quarantined: Any, waiting: bool, sent_at: datetime | None
) -> str:
    """An order that is not held, in words: what kind of order it is and what to do instead."""
    named = shown(ref)
    if outcome is not None:
        return (
            f"SeQura refused the order update of {named} (409), so it has the order: release it without "
            "--resend to send the update again"
        )
    if quarantined is not None and quarantined.stage == str(Stage.BUILD):
        return (
            f"{named} is quarantined for its data, not held: {shown(quarantined.reason, REASON_SHOWN)}; once "
            "that is fixed, the next run sends it by itself"
        )
    if quarantined is not None and quarantined.stage == str(Stage.LOAD):
        return (
            f"{named} is quarantined, not held: {shown(quarantined.reason, REASON_SHOWN)}; correct what "
            "SeQura names in the back office and the next run sends it again by itself"
        )
    if waiting:
        return f"the order update of {named} waits for the next run, which sends it: nothing to release"
    if sent_at is not None:
        return (
            f"SeQura already has {named} (reported {sent_at:%Y-%m-%d %H:%M} UTC): nothing to release; a "
            "change to it goes as an order update"
        )
    return (
        f"{named} is not in the state store of merchant {merchant}: check the order reference (SeQura's "
        "order_ref_1, as a summary shows it), the merchant (--merchant) and STATE_DB_URL"
    )

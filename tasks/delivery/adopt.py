"""Adopt: record what SeQura already has as reported, without sending, for a state store that lost it."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.errors import RunStoppedError
from schemas.masking import masked_url
from schemas.outcomes import ROWS_SHOWN, DeliveryCounts, DeliveryOutcome
from schemas.reports import Change
from tasks.delivery.build import build_reports
from tasks.delivery.chunk import Log, RunContext, chunk_rows
from tasks.delivery.diff import diff_against_last_report, of_kind
from tasks.delivery.run import DeliveryRun
from tasks.resources import RunResources
from tasks.state.errors import StateStoreError
from tasks.state.runs import has_history
from tasks.state.snapshots import record_adopted
from tasks.window import WindowError, resolve_window


def adopt_chunk(context: RunContext, chunk: int, log: Log) -> DeliveryOutcome:
    """Record one chunk's new orders and cancellations as SeQura's already (snapshots), sending nothing.

    Writes the store.
    """
    resources = context.resources
    rows = chunk_rows(context, chunk)
    built = build_reports(rows.extract, context.merchant, resources.settings.order_ref_field)
    classified = diff_against_last_report(resources.store, context.merchant, built.reports)
    new = [item.built for item in of_kind(classified, Change.NEW)]
    record_adopted(resources.store, context.run_id, context.merchant, new)
    cancelled = sum(1 for built in new if built.cancellation)
    counts = DeliveryCounts(
        found=len(rows.references),
        new=len(new) - cancelled,
        cancelled=cancelled,
        quarantined=len(built.quarantined),
    )
    return DeliveryOutcome(counts=counts, quarantined_rows=tuple(built.quarantined[:ROWS_SHOWN]))


def adopt_window(resources: RunResources, since: datetime, until: datetime, *, force: bool = False) -> str:
    """Record the orders shipped in [since, until) as already reported, without sending; says how many.

    For a state store that was lost while SeQura had the orders: each order built from the shop becomes
    the baseline a later change is compared with, as the PHP module's orders are. A store that already
    holds the merchant's history is refused (`force` to go on: it then also adopts orders it was still
    waiting to send). Orders that cannot be built are listed, not recorded. A run like any other (the
    merchant's lock and lease), recorded for the schedule to go on from. Reads the shop; writes the store.
    """
    now = resources.clock.now()
    window = resolve_window(
        since, until, last_until=None, now=now, overlap=timedelta(0), first_run=timedelta(0)
    )
    if window.until > now:
        raise WindowError(
            f"--until ({until:%Y-%m-%dT%H:%MZ}) is in the future; SeQura cannot have those orders yet"
        )
    where = masked_url(resources.settings.state_url())
    if has_history(resources.store, resources.merchant) and not force:
        raise StateStoreError(
            f"the state store {where} already holds runs or orders of merchant {resources.merchant}: adopt "
            "is for a store that lost them; with --force it records the window anyway, including orders it "
            "was still waiting to send"
        )
    try:
        summary = DeliveryRun(resources, window, work=adopt_chunk).run()
    except RunStoppedError as stopped:
        raise stopped.cause from None
    counts, unbuilt = summary.counts, [entry.reference for entry in summary.outcome.quarantined_rows]
    listed = f": {', '.join(unbuilt[:20])}{' …' if counts.quarantined > 20 else ''}" if unbuilt else ""
    return (
        f"Recorded {counts.new:,} orders shipped and {counts.cancelled:,} cancelled before shipment in "
        f"{window.label()} as already reported to SeQura (sent nothing). {counts.quarantined:,} could not "
        f"be built and were not recorded{listed}; check whether SeQura has them. State store: {where}"
    )

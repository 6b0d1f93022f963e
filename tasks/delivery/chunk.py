"""One chunk of a run through every stage: extract, build, diff, send and commit.

A chunk is extracted, built, diffed, sent and committed before the next is read, so memory depends on the
chunk size and not on the window, and a run stopped after chunk 40 of 200 keeps what the first 40 sent.
What every chunk of a run shares (its resources, window, plan, statistics block) is a RunContext, made once
by the run; a chunk opens nothing of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from schemas.outcomes import ROWS_SHOWN, DeliveryCounts, DeliveryOutcome
from schemas.reports import BuiltReport, Change, ClassifiedReport, QuarantinedOrder, SentOrder
from schemas.sequra import Platform, total_shown
from tasks.delivery.cancellations import cancellation_row, send_cancellations
from tasks.delivery.diff import diff_against_last_report, of_kind
from tasks.delivery.dry_run import add_to_dry_run_file
from tasks.delivery.load import LoadResult, send_delivery_reports
from tasks.delivery.order_updates import send_order_updates, updates_to_send
from tasks.delivery.plan import DeliveryPlan
from tasks.delivery.read_ahead import (
    ChunkJob,
    ChunkRows,
    ReadAhead,
    Stopwatch,
    cyclic_collection_paused,
    read_and_build,
    read_and_build_in_worker,
)
from tasks.delivery.settle import settle_unanswered_reports, unknown_to_sequra
from tasks.delivery.statistics import StatisticsBlock
from tasks.resources import RunResources
from tasks.state.order_changes import record_findings
from tasks.state.quarantine import record_quarantine
from tasks.state.runs import chunk_references
from tasks.state.snapshots import reported_under, snapshot_payloads
from tasks.window import Window, shop_minute

Log = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class RunContext:
    """What every chunk of one run shares, made once by the run: nothing in it is opened per chunk."""

    resources: RunResources
    run_id: str
    window: Window
    plan: DeliveryPlan
    platform: Platform
    statistics: StatisticsBlock  # worked out once per run, carried by the first request SeQura accepts
    retried: frozenset[str]  # references quarantined, in flight or owed an update when the run began
    read_ahead: ReadAhead[ChunkRows]
    dry_run_file: Path | None = None  # a dry run writes here what it would send, and sends nothing
    # rows of the sent and updated tables the run still keeps (at most ROWS_SHOWN each): a chunk makes no
    # more, which the run would drop
    sent_rows_wanted: int = ROWS_SHOWN
    update_rows_wanted: int = ROWS_SHOWN

    @property
    def merchant(self) -> str:
        """The merchant the run is for."""
        return self.resources.merchant


ChunkWork = Callable[[RunContext, int, Log], DeliveryOutcome]
"""What a run does with each chunk: deliver it (the default), or adopt it."""


def chunk_job(context: RunContext, chunk: int) -> ChunkJob:
    """What reading and building the chunk takes: its references and the run's shop; reads the store."""
    resources = context.resources
    settings = resources.settings
    return ChunkJob(
        shop_url=resources.shop.url,
        fast_reader=settings.fast_reader,
        table_prefix=resources.tables.prefix,
        order_filter=resources.order_filter,
        config=context.plan.config,
        references=chunk_references(resources.store, context.run_id, chunk),
        merchant=context.merchant,
        order_ref_field=settings.order_ref_field,
    )


def chunk_rows(context: RunContext, chunk: int) -> ChunkRows:
    """The chunk read and built, ahead if it was; starts reading and building the next ones in the background.

    In a run with worker processes (SHOP_BUILD_PROCESSES), it and its next chunks are read and built there,
    one each, so the run's process never holds a build's frames; else the next one is read and built in a
    thread of the run's, and the first in the run's own.
    """
    ahead = context.read_ahead
    shop = context.resources.shop
    first = chunk if ahead.in_processes else chunk + 1  # the run's process builds no chunk of its own
    for following in range(first, min(chunk + 1 + ahead.ahead, context.plan.chunks)):
        if not ahead.reading(following):
            job = chunk_job(context, following)
            ahead.start(
                following,
                partial(read_and_build_in_worker, job)
                if ahead.in_processes
                else partial(read_and_build, shop, job),
            )
    return ahead.take(chunk, lambda: read_and_build(shop, chunk_job(context, chunk)))


def deliver_chunk(context: RunContext, chunk: int, log: Log) -> DeliveryOutcome:
    """Extract, build, diff, send and commit one chunk of references; reads the shop, writes the store.

    New orders go in delivery reports (POST), orders cancelled before they shipped as order updates with
    both carts empty, then orders that changed since SeQura last heard of them as order updates (PUT), so
    a nightly run does all three. In a dry run the new orders are added to the
    dry-run file, the updates are only described, and nothing is recorded.
    """
    with cyclic_collection_paused():
        return _deliver(context, chunk, log)


def _deliver(context: RunContext, chunk: int, log: Log) -> DeliveryOutcome:
    """The stages of deliver_chunk, timed."""
    resources = context.resources
    store, merchant = resources.store, context.merchant
    clock = Stopwatch()
    rows = chunk_rows(context, chunk)
    references, built = rows.references, rows.built
    clock.lap("extract and build")
    classified, elsewhere = left_to_other_merchants(
        resources, diff_against_last_report(store, merchant, built.reports)
    )
    new, cancellations = [], []
    for item in of_kind(classified, Change.NEW):
        (cancellations if item.built.cancellation else new).append(item.built)
    changed = of_kind(classified, Change.CHANGED)
    previous = snapshot_payloads(store, merchant, [item.built.order_ref_1 for item in changed])
    clock.lap("diff")
    outcome = _found(references, built.quarantined, classified, len(new), [*built.other_merchant, *elsewhere])
    timezone = context.plan.config.timezone
    sent_wanted, updates_wanted = context.sent_rows_wanted, context.update_rows_wanted
    if context.dry_run_file is not None:
        add_to_dry_run_file(context.dry_run_file, new)
        update_rows = [cancellation_row(b, "dry run: not sent") for b in cancellations[:updates_wanted]]
        update_rows += updates_to_send(changed[: updates_wanted - len(update_rows)], previous)
        outcome = replace(
            outcome,
            counts=replace(outcome.counts, cancelled=len(cancellations)),
            sent_rows=tuple(sent_row(b, timezone) for b in new[:sent_wanted]),
            update_rows=tuple(update_rows),
        )
    else:
        retried = sorted(context.retried & set(references))
        findings = record_findings(store, context.run_id, merchant, built, classified, retried)
        shipped = ship_new_orders(context, new, log)
        cancelled = send_cancellations(resources, context.run_id, context.platform, cancellations, log)
        repeated = [item for item in classified if item.built.order_ref_1 in findings.repeat]
        updates = send_order_updates(
            resources, context.run_id, context.platform, changed + repeated, previous, findings.held, log
        )
        refused = (*shipped.quarantined, *cancelled.quarantined, *updates.quarantined)
        held_before = sum(1 for item in changed + repeated if item.built.order_ref_1 in findings.held)
        counts = replace(
            outcome.counts,
            quarantined=outcome.counts.quarantined + len(shipped.quarantined),
            sent=len(shipped.sent),
            updated=updates.updated,
            update_failed=len(updates.quarantined) + len(cancelled.quarantined) + held_before,
            unanswered=len(shipped.unanswered) + cancelled.unanswered + updates.unanswered,
            cancelled=cancelled.cancelled,
            not_at_sequra=cancelled.not_at_sequra,
        )
        outcome = replace(
            outcome,
            counts=counts,
            requests=shipped.requests + cancelled.requests + updates.requests,
            quarantined_rows=(*outcome.quarantined_rows, *refused)[:ROWS_SHOWN],
            sent_rows=tuple(sent_row(b, timezone) for b in shipped.sent[:sent_wanted]),
            update_rows=tuple([*cancelled.rows, *updates.rows][:updates_wanted]),
        )
    clock.lap("load")
    return replace(outcome, seconds=clock.seconds)


def left_to_other_merchants(
    resources: RunResources, classified: list[ClassifiedReport]
) -> tuple[list[ClassifiedReport], list[str]]:
    """The diff without the new orders SeQura has under another configured merchant; their references.

    The plan already leaves out the orders another merchant owns (tasks/state/owners.py); this catches one
    another merchant's run reported between this run's plan and its chunk (the two merchants ran at once
    and the order's delivery country changed in between), so that it is never reported twice. Reads the
    store.
    """
    settings = resources.settings
    others = [
        account.merchant_id for account in settings.merchants if account.merchant_id != settings.merchant_id
    ]
    new = [item.built.order_ref_1 for item in of_kind(classified, Change.NEW)]
    owners = reported_under(resources.store, others, new) if others and new else {}
    if not owners:
        return classified, []
    kept = [item for item in classified if item.built.order_ref_1 not in owners]
    left = [
        f"{item.built.reference} (reported under {owners[item.built.order_ref_1]})"
        for item in classified
        if item.built.order_ref_1 in owners
    ]
    return kept, left


def ship_new_orders(context: RunContext, new: Sequence[BuiltReport], log: Log) -> LoadResult:
    """Tell SeQura the new shipments, each once; writes the state store.

    Reports go out (POST, or order updates with SEQURA_SHIPMENT_CHANNEL order_update), the first accepted
    one carrying the run's statistics block; those left without an answer, now or by an earlier run, are
    settled by order updates, and those SeQura then shows it never had are reported again. Returns every
    order sent or settled, every one quarantined (recorded), and in `unanswered` those still in flight,
    waiting for SeQura's answer.
    """
    resources, run_id, platform = context.resources, context.run_id, context.platform
    statistics = context.statistics if new else None
    loaded = send_delivery_reports(resources, run_id, platform, new, statistics, log)
    settled = settle_unanswered_reports(resources, run_id, platform, loaded.unanswered, log)
    loaded.sent += settled.settled
    loaded.quarantined += settled.quarantined
    loaded.requests += settled.requests
    answered = {built.order_ref_1 for built in [*settled.settled, *settled.not_at_sequra]}
    answered |= {entry.order_ref_1 for entry in settled.quarantined}
    loaded.unanswered = [built for built in loaded.unanswered if built.order_ref_1 not in answered]
    if settled.not_at_sequra and resources.settings.shipment_channel == "order_update":
        loaded.quarantined += [unknown_to_sequra(built) for built in settled.not_at_sequra]
    elif settled.not_at_sequra:  # SeQura said it has none of them: reporting them again cannot double
        again = send_delivery_reports(
            resources, run_id, platform, settled.not_at_sequra, None, log, absent=True
        )
        loaded.sent += again.sent
        loaded.quarantined += again.quarantined
        loaded.unanswered += again.unanswered
        loaded.requests += again.requests
    record_quarantine(resources.store, run_id, context.merchant, loaded.quarantined)
    return loaded


def _found(
    references: Sequence[str],
    quarantined: Sequence[QuarantinedOrder],
    classified: Sequence[ClassifiedReport],
    new: int,
    other_merchant: Sequence[str],
) -> DeliveryOutcome:
    """The outcome of a chunk before loading: what was found, and the diff's verdicts (`new` reports)."""
    counts = DeliveryCounts(
        found=len(references),
        new=new,
        changed=len(of_kind(classified, Change.CHANGED)),
        already_reported=len(of_kind(classified, Change.UNCHANGED)),
        quarantined=len(quarantined),
    )
    return DeliveryOutcome(
        counts=counts,
        quarantined_rows=tuple(quarantined[:ROWS_SHOWN]),
        other_merchant=tuple(other_merchant[:ROWS_SHOWN]),
    )


def sent_row(built: BuiltReport, timezone: str) -> SentOrder:
    """The table row of an order sent (or, in a dry run, to be sent), its shipping time in shop time."""
    report = built.report
    return SentOrder(
        reference=built.reference,
        order_ref_1=built.order_ref_1,
        id_orders=built.id_orders,
        state=report["state"],
        shipped_at=shop_minute(report["sent_at"], timezone),
        items=len(report["cart"]["items"]),
        shipped_total=total_shown(report["cart"]),
        remaining_total=total_shown(report["remaining_cart"]),
    )

"""One chunk of a run through every stage: extract, build, diff, send and commit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from schemas.frames import ShopConfig, ShopExtract
from schemas.prestashop import shop_tables
from schemas.reports import BuiltReport, Change, ClassifiedReport, QuarantinedOrder, SentOrder, UpdatedOrder
from schemas.sequra import Platform, Statistics, total_shown
from schemas.settings import Settings
from tasks.delivery.build import build_reports, platform_block
from tasks.delivery.diff import diff_against_last_report, of_kind
from tasks.delivery.dry_run import add_to_dry_run_file
from tasks.delivery.load import LoadResult, send_delivery_reports
from tasks.delivery.order_updates import send_order_updates, updates_to_send
from tasks.delivery.plan import order_filter_of
from tasks.delivery.read_ahead import READ_AHEAD, Stopwatch, cyclic_collection_paused
from tasks.delivery.settle import settle_unanswered_reports, unknown_to_sequra
from tasks.delivery.statistics import build_statistics
from tasks.extract.connection import shop_engine
from tasks.extract.shipped_orders import extract_chunk
from tasks.extract.statistics import STATISTICS_PERIOD, extract_recent_orders
from tasks.state.order_changes import record_findings
from tasks.state.quarantine import record_quarantine, references_to_retry
from tasks.state.runs import chunk_references
from tasks.state.snapshots import reported_under, snapshot_payloads
from tasks.state.store import connect_state_store
from tasks.window import Window, shop_minute

ROWS_SHOWN = 1000  # rows of each table a run's artifacts list; the state store keeps them all


@dataclass(frozen=True)
class ChunkOutcome:
    """What one chunk (or a whole run, added up) came to: counts, and the first rows of each table."""

    found: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    sent: int = 0
    updated: int = 0
    update_failed: int = 0
    requests: int = 0
    statistics_settled: bool = False
    sent_rows: tuple[SentOrder, ...] = ()
    update_rows: tuple[UpdatedOrder, ...] = ()
    quarantined_rows: tuple[QuarantinedOrder, ...] = ()
    other_merchant: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    def __add__(self, later: ChunkOutcome) -> ChunkOutcome:
        """The two outcomes added up, keeping at most ROWS_SHOWN rows of each table."""
        return ChunkOutcome(
            found=self.found + later.found,
            new=self.new + later.new,
            changed=self.changed + later.changed,
            unchanged=self.unchanged + later.unchanged,
            quarantined=self.quarantined + later.quarantined,
            sent=self.sent + later.sent,
            updated=self.updated + later.updated,
            update_failed=self.update_failed + later.update_failed,
            requests=self.requests + later.requests,
            statistics_settled=self.statistics_settled or later.statistics_settled,
            sent_rows=(self.sent_rows + later.sent_rows)[:ROWS_SHOWN],
            update_rows=(self.update_rows + later.update_rows)[:ROWS_SHOWN],
            quarantined_rows=(self.quarantined_rows + later.quarantined_rows)[:ROWS_SHOWN],
            other_merchant=(self.other_merchant + later.other_merchant)[:ROWS_SHOWN],
            seconds={
                stage: self.seconds.get(stage, 0.0) + later.seconds.get(stage, 0.0)
                for stage in {*self.seconds, *later.seconds}
            },
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


def statistics_for(settings: Settings, config: ShopConfig, window: Window) -> Statistics:
    """The statistics block of the run: the orders placed in the 7 days before its end; reads the shop."""
    assert settings.shop_db_url is not None
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        recent = extract_recent_orders(
            engine,
            shop_tables(settings.shop_table_prefix),
            config,
            order_filter_of(settings),
            window.until - STATISTICS_PERIOD,
        )
    finally:
        engine.dispose()
    return build_statistics(recent, config, settings.payment_modules, settings.order_ref_field)


@dataclass(frozen=True)
class ChunkJob:
    """One chunk of a run to deliver: whose, which, and how."""

    run_id: str
    chunk: int
    window: Window
    config: ShopConfig
    dry_run: bool = False
    dry_run_file: str | None = None
    statistics_due: bool = True  # no request of the run has carried (or had refused) the statistics yet
    chunks: int = 0  # how many the run has: the next one is read ahead while this one is built and sent


@dataclass(frozen=True)
class ChunkRows:
    """What one chunk reads: its references (from the state store) and their frames (from the shop)."""

    references: list[str]
    extract: ShopExtract


def read_chunk(settings: Settings, run_id: str, chunk: int, config: ShopConfig) -> ChunkRows:
    """Read one chunk's references and frames, on connections of its own; reads the store and the shop."""
    assert settings.shop_db_url is not None
    store = connect_state_store(settings.state_url())
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        references = chunk_references(store, run_id, chunk)
        tables = shop_tables(settings.shop_table_prefix)
        return ChunkRows(
            references, extract_chunk(engine, tables, order_filter_of(settings), config, references)
        )
    finally:
        engine.dispose()
        store.dispose()


def deliver_chunk(
    settings: Settings, job: ChunkJob, log: logging.Logger | logging.LoggerAdapter
) -> ChunkOutcome:
    """Extract, build, diff, send and commit one chunk of references; reads the shop, writes the store.

    New orders go in delivery reports (POST), then orders that changed since SeQura last heard of them go
    as order updates (PUT), so a nightly run does both. In a dry run the new orders are added to the
    dry-run file, the updates are only described, and nothing is recorded.
    """
    store = connect_state_store(settings.state_url())
    try:
        with cyclic_collection_paused():
            return _deliver(settings, job, store, log)
    finally:
        store.dispose()


def _deliver(
    settings: Settings, job: ChunkJob, store: Engine, log: logging.Logger | logging.LoggerAdapter
) -> ChunkOutcome:
    """The stages of deliver_chunk, timed."""
    merchant = settings.merchant_id or ""
    clock = Stopwatch()
    rows = READ_AHEAD.take(
        (job.run_id, job.chunk), partial(read_chunk, settings, job.run_id, job.chunk, job.config)
    )
    if job.chunk + 1 < job.chunks:
        following = job.chunk + 1
        READ_AHEAD.start(
            (job.run_id, following), partial(read_chunk, settings, job.run_id, following, job.config)
        )
    references, extract = rows.references, rows.extract
    clock.lap("extract")
    built = build_reports(extract, merchant, settings.order_ref_field)
    clock.lap("build")
    classified, elsewhere = left_to_other_merchants(
        settings, store, diff_against_last_report(store, merchant, built.reports)
    )
    new = [item.built for item in of_kind(classified, Change.NEW)]
    changed = of_kind(classified, Change.CHANGED)
    previous = snapshot_payloads(store, merchant, [item.built.order_ref_1 for item in changed])
    clock.lap("diff")
    outcome = _outcome(references, built.quarantined, classified, [*built.other_merchant, *elsewhere])
    if job.dry_run:
        assert job.dry_run_file is not None
        add_to_dry_run_file(Path(job.dry_run_file), new)
        outcome = replace(
            outcome,
            sent_rows=tuple(sent_row(b, job.config.timezone) for b in new[:ROWS_SHOWN]),
            update_rows=tuple(updates_to_send(changed[:ROWS_SHOWN], previous)),
        )
    else:
        retried = sorted(set(references_to_retry(store, merchant)) & set(references))
        findings = record_findings(store, job.run_id, merchant, built, classified, retried)
        statistics = statistics_for(settings, job.config, job.window) if job.statistics_due and new else None
        platform = platform_block(job.config)
        shipped = ship_new_orders(settings, store, job.run_id, platform, new, statistics, log)
        repeated = [item for item in classified if item.built.order_ref_1 in findings.repeat]
        updates = send_order_updates(
            settings, store, job.run_id, platform, changed + repeated, previous, findings.held, log
        )
        refused = tuple(shipped.quarantined) + tuple(updates.quarantined)
        outcome = replace(
            outcome,
            quarantined=outcome.quarantined + len(refused),
            quarantined_rows=(outcome.quarantined_rows + refused)[:ROWS_SHOWN],
            sent=len(shipped.sent),
            updated=updates.updated,
            update_failed=len(updates.quarantined) + updates.unanswered,
            requests=shipped.requests + updates.requests,
            statistics_settled=shipped.statistics_settled,
            sent_rows=tuple(sent_row(b, job.config.timezone) for b in shipped.sent[:ROWS_SHOWN]),
            update_rows=tuple(updates.rows[:ROWS_SHOWN]),
        )
    clock.lap("load")
    return replace(outcome, seconds=clock.seconds)


def left_to_other_merchants(
    settings: Settings, store: Engine, classified: list[ClassifiedReport]
) -> tuple[list[ClassifiedReport], list[str]]:
    """The diff without the new orders SeQura has under another configured merchant; their references.

    An order stays with the merchant it was reported under: one whose delivery country changed, or that an
    earlier merchant split reported, is left to that merchant and never reported twice. Reads the store.
    """
    others = [
        account.merchant_id for account in settings.merchants if account.merchant_id != settings.merchant_id
    ]
    new = [item.built.order_ref_1 for item in of_kind(classified, Change.NEW)]
    owners = reported_under(store, others, new) if others and new else {}
    if not owners:
        return classified, []
    kept = [item for item in classified if item.built.order_ref_1 not in owners]
    left = [
        f"{item.built.reference} (reported under {owners[item.built.order_ref_1]})"
        for item in classified
        if item.built.order_ref_1 in owners
    ]
    return kept, left


def ship_new_orders(
    settings: Settings,
    store: Engine,
    run_id: str,
    platform: Platform,
    new: Sequence[BuiltReport],
    statistics: Statistics | None,
    log: logging.Logger | logging.LoggerAdapter,
) -> LoadResult:
    """Tell SeQura the new shipments, each once; writes the state store.

    Reports go out (POST, or order updates with SEQURA_SHIPMENT_CHANNEL order_update); those left without an
    answer, now or by an earlier run, are settled by order updates, and those SeQura then shows it never
    had are reported again. Returns every order sent or settled, and every one quarantined (recorded).
    """
    merchant = settings.merchant_id or ""
    loaded = send_delivery_reports(settings, store, run_id, platform, new, statistics, log)
    settled = settle_unanswered_reports(settings, store, run_id, platform, loaded.unanswered, log)
    loaded.sent += settled.settled
    loaded.quarantined += settled.quarantined
    loaded.requests += settled.requests
    if settled.not_at_sequra and settings.shipment_channel == "order_update":
        loaded.quarantined += [unknown_to_sequra(built) for built in settled.not_at_sequra]
    elif settled.not_at_sequra:  # SeQura said it has none of them: reporting them again cannot double
        again = send_delivery_reports(
            settings, store, run_id, platform, settled.not_at_sequra, None, log, absent=True
        )
        loaded.sent += again.sent
        loaded.quarantined += again.quarantined
        loaded.requests += again.requests
    record_quarantine(store, run_id, merchant, loaded.quarantined)
    return loaded


def _outcome(
    references: Sequence[str],
    quarantined: Sequence[QuarantinedOrder],
    classified: Sequence[ClassifiedReport],
    other_merchant: Sequence[str],
) -> ChunkOutcome:
    """The counts of a chunk before loading: what was found, and the diff's verdicts."""
    changed = of_kind(classified, Change.CHANGED)
    return ChunkOutcome(
        found=len(references),
        new=len(of_kind(classified, Change.NEW)),
        changed=len(changed),
        unchanged=len(of_kind(classified, Change.UNCHANGED)),
        quarantined=len(quarantined),
        quarantined_rows=tuple(quarantined[:ROWS_SHOWN]),
        other_merchant=tuple(other_merchant[:ROWS_SHOWN]),
    )

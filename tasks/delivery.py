"""Delivery: plan a run's chunks of order references, then take one chunk through every stage.

A chunk is extracted, built, diffed, sent and committed before the next is read, so memory depends on the
chunk size and not on the window, and a run stopped after chunk 40 of 200 keeps what the first 40 sent.
Prefect sees a run id and a chunk number go in and a few counts come out; the references themselves wait in
the state store (`run_chunks`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from schemas.frames import ShopConfig, ShopExtract
from schemas.prestashop import shop_tables
from schemas.reports import (
    BuiltReport,
    Change,
    ClassifiedReport,
    QuarantinedOrder,
    SentOrder,
    UpdatedOrder,
)
from schemas.sequra import Platform, Statistics, total_shown
from schemas.settings import Settings, safe_url
from tasks.build import build_reports, build_statistics, platform_block
from tasks.diff import diff_against_last_report, of_kind
from tasks.extract import (
    STATISTICS_PERIOD,
    CandidateSearch,
    OrderFilter,
    candidate_references,
    extract_chunk,
    extract_recent_orders,
    high_water_marks,
    read_config,
    shop_engine,
    shop_local,
    shop_local_bounds,
)
from tasks.load import (
    LoadResult,
    add_to_dry_run_file,
    finish_dry_run_file,
    send_delivery_reports,
    start_dry_run_file,
)
from tasks.order_updates import (
    send_order_updates,
    settle_unanswered_reports,
    unknown_to_sequra,
    updates_to_send,
)
from tasks.state import (
    RunCounts,
    StateStoreError,
    check_writable,
    chunk_references,
    connect_state_store,
    finish_run,
    forget_chunks,
    has_history,
    last_marks,
    lease_kept,
    open_state_store,
    record_adopted,
    record_findings,
    record_marks,
    record_quarantine,
    references_to_retry,
    reported_under,
    snapshot_payloads,
    start_run,
    store_chunks,
)
from tasks.window import Window, WindowError, resolve_window, shop_minute

ROWS_SHOWN = 1000  # rows of each table a run's artifacts list; the state store keeps them all


@dataclass(frozen=True)
class DeliveryPlan:
    """What a run will read: how many references, in how many chunks, and whether above the last marks."""

    run_id: str
    references: int
    chunks: int
    incremental: bool
    config: ShopConfig
    seconds: float


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


def order_filter_of(settings: Settings) -> OrderFilter:
    """Which orders are the merchant's SeQura orders, from the settings."""
    return OrderFilter(
        settings.payment_modules, settings.shop_id, settings.delivery_countries, settings.claimed_elsewhere
    )


def plan_delivery(
    settings: Settings,
    store: Engine,
    run_id: str,
    window: Window,
    *,
    dry_run: bool,
    retry_quarantined: bool = True,
) -> DeliveryPlan:
    """Find the references the run must read and keep them in chunks; reads the shop, writes run_chunks.

    A scheduled run (its window follows the last successful run) reads the shop's order_history and
    order_slip above that run's high-water marks instead of scanning them by date. A real run that the
    schedule may go on from records its own marks, for the next one.
    """
    started = time.monotonic()
    assert settings.shop_db_url is not None
    merchant = settings.merchant_id or ""
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    tables = shop_tables(settings.shop_table_prefix)
    try:
        config = read_config(engine, tables, settings.shop_id)
        marks = last_marks(store, merchant) if window.follows_last_run else None
        search = CandidateSearch(
            tables,
            order_filter_of(settings),
            config.shipped_states,
            *shop_local_bounds(window.since, window.until, config.timezone),
            marks=marks,
        )
        retried = set(references_to_retry(store, merchant)) if retry_quarantined else set()

        def references() -> Iterator[Sequence[str]]:
            for found in candidate_references(engine, search, settings.chunk_size):
                retried.difference_update(found)
                yield found
            yield sorted(retried)  # quarantined or in flight, and not found again by this search

        chunks, count = store_chunks(store, run_id, references(), settings.chunk_size)
        if not dry_run and window.continues:
            cutoff = shop_local(window.until - timedelta(minutes=settings.overlap_minutes), config.timezone)
            record_marks(store, run_id, high_water_marks(engine, tables, marks, cutoff))
    finally:
        engine.dispose()
    return DeliveryPlan(run_id, count, chunks, marks is not None, config, time.monotonic() - started)


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


def check_ready(settings: Settings) -> None:
    """Open the state store and read the shop's configuration before any run starts; reads both.

    A wrong password, an unreachable server, a missing table, a damaged or read-only state store is one error
    naming the setting to check (ShopReadError, StateStoreError), with no run begun and nothing marked.
    """
    assert settings.shop_db_url is not None
    store = open_state_store(settings.state_url())
    try:
        check_writable(store)
    finally:
        store.dispose()
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        read_config(engine, shop_tables(settings.shop_table_prefix), settings.shop_id)
    finally:
        engine.dispose()


def shop_timezone(settings: Settings) -> str:
    """The shop's time zone, or UTC when SHOP_DB_URL is not set here; reads the shop."""
    if settings.shop_db_url is None:
        return "UTC"
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        return read_config(engine, shop_tables(settings.shop_table_prefix), settings.shop_id).timezone
    finally:
        engine.dispose()


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


ChunkKey = tuple[str, int]


class ReadAhead:
    """Reads a run's next chunk in a background thread while the current one is built and sent.

    A run's chunks go one after the other in one process: while Python builds chunk n, the database and
    the driver, mostly waiting on the network, get chunk n+1 ready. It holds one chunk at most; a chunk
    nobody asked for ahead (the first, or after a crash) is read when it is needed.
    """

    def __init__(self) -> None:
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-read-ahead")
        self._lock = threading.Lock()
        self._next: tuple[ChunkKey, Future[ChunkRows]] | None = None

    def take(self, key: ChunkKey, read: Callable[[], ChunkRows]) -> ChunkRows:
        """The chunk `key`: read ahead if it was, else now."""
        with self._lock:
            ahead, self._next = self._next, None
        if ahead is not None and ahead[0] == key:
            return ahead[1].result()
        return read()

    def start(self, key: ChunkKey, read: Callable[[], ChunkRows]) -> None:
        """Begin reading the chunk `key` in the background, in place of any other chunk read ahead."""
        with self._lock:
            self._next = (key, self._reader.submit(read))


READ_AHEAD = ReadAhead()


@contextmanager
def cyclic_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a chunk's work; it runs again afterwards.

    A chunk allocates hundreds of thousands of short-lived, acyclic objects (rows, reports); the collector's
    passes over them cost a third of the build's time and find nothing that reference counting misses.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Stopwatch:
    """Seconds spent in each stage of a chunk."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.monotonic()

    def lap(self, stage: str) -> None:
        """Put the time since the last lap on `stage`."""
        now = time.monotonic()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._since
        self._since = now


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


@task(name="plan-delivery-report", cache_policy=NO_CACHE)
def plan_delivery_task(
    settings: Settings, run_id: str, window: Window, dry_run: bool, retry_quarantined: bool = True
) -> DeliveryPlan:
    """Find the run's references and keep them in chunks in the state store; reads the shop."""
    store = connect_state_store(settings.state_url())
    try:
        plan = plan_delivery(
            settings, store, run_id, window, dry_run=dry_run, retry_quarantined=retry_quarantined
        )
    finally:
        store.dispose()
    get_run_logger().info(
        "%d order references to read in %d chunks (%s) in %.1f s",
        plan.references,
        plan.chunks,
        "new rows above the last run's marks" if plan.incremental else "by date",
        plan.seconds,
    )
    return plan


@task(name="deliver-chunk", task_run_name="deliver-chunk-{job.chunk}", cache_policy=NO_CACHE)
def deliver_chunk_task(settings: Settings, job: ChunkJob) -> ChunkOutcome:
    """One chunk through extract, build, diff, send and commit; reads the shop, writes the state store."""
    logger = get_run_logger()
    outcome = deliver_chunk(settings, job, logger)
    logger.info(
        "chunk %d: %d references, %d new, %d changed, %d unchanged, %d quarantined, %d sent and %d "
        "updated in %d requests",
        job.chunk + 1,
        outcome.found,
        outcome.new,
        outcome.changed,
        outcome.unchanged,
        outcome.quarantined,
        outcome.sent,
        outcome.updated,
        outcome.requests,
    )
    return outcome


@task(name="start-dry-run-file", cache_policy=NO_CACHE)
def start_dry_run_task(path: str, merchant_id: str) -> None:
    """Begin the report a dry run writes; creates the file."""
    start_dry_run_file(Path(path), merchant_id)


@task(name="finish-dry-run-file", cache_policy=NO_CACHE)
def finish_dry_run_task(settings: Settings, path: str, config: ShopConfig, window: Window) -> str:
    """Close the report a dry run wrote with the statistics and platform blocks; reads the shop."""
    return str(
        finish_dry_run_file(Path(path), statistics_for(settings, config, window), platform_block(config))
    )


def adopt_window(settings: Settings, since: datetime, until: datetime, *, force: bool = False) -> str:
    """Record the orders shipped in [since, until) as already reported, without sending; says how many.

    For a state store that was lost while SeQura had the orders: each order built from the shop becomes
    the baseline a later change is compared with, as the PHP module's orders are. A store that already
    holds the merchant's history is refused (`force` to go on: it then also adopts orders it was still
    waiting to send). Orders that cannot be built are listed, not recorded. Takes the merchant's run lock
    and keeps it alive, and records a run the schedule goes on from. Reads the shop; writes the state store.
    """
    merchant = settings.merchant_id or ""
    now = datetime.now(UTC)
    window = resolve_window(
        since, until, last_until=None, now=now, overlap=timedelta(0), first_run=timedelta(0)
    )
    if window.until > now:
        raise WindowError(
            f"--until ({until:%Y-%m-%dT%H:%MZ}) is in the future; SeQura cannot have those orders yet"
        )
    store = open_state_store(settings.state_url())
    if has_history(store, merchant) and not force:
        store.dispose()
        raise StateStoreError(
            f"the state store {safe_url(settings.state_url())} already holds runs or orders of merchant "
            f"{merchant}: adopt is for a store that lost them; with --force it records the window anyway, "
            "including orders it was still waiting to send"
        )
    run_id = str(uuid.uuid4())
    start_run(store, run_id, merchant, window, dry_run=False, flow_run_id=None, lease=settings.run_lease())
    adopted, unbuilt = 0, []
    finished = False
    try:
        with lease_kept(settings.state_url(), merchant, run_id, settings.run_lease()):
            plan = plan_delivery(settings, store, run_id, window, dry_run=False)
            for chunk in range(plan.chunks):
                extract = read_chunk(settings, run_id, chunk, plan.config).extract
                built = build_reports(extract, merchant, settings.order_ref_field)
                classified = diff_against_last_report(store, merchant, built.reports)
                new = [item.built for item in of_kind(classified, Change.NEW)]
                record_adopted(store, run_id, merchant, new)
                adopted += len(new)
                unbuilt += [entry.reference for entry in built.quarantined]
        finish_run(store, run_id, "succeeded", RunCounts(new=adopted))
        finished = True
    finally:
        if not finished:
            finish_run(store, run_id, "failed", message="adopt stopped before its end")
        forget_chunks(store, run_id)
        store.dispose()
    listed = f": {', '.join(unbuilt[:20])}{' …' if len(unbuilt) > 20 else ''}" if unbuilt else ""
    return (
        f"Recorded {adopted:,} orders shipped in {window.label()} as already reported to SeQura (sent "
        f"nothing). {len(unbuilt):,} could not be built and were not recorded{listed}; check whether "
        f"SeQura has them. State store: {safe_url(settings.state_url())}"
    )

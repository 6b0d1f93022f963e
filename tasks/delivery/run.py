"""A delivery run: its Prefect steps, the checks before it, and adopt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from schemas.frames import ShopConfig
from schemas.prestashop import shop_tables
from schemas.reports import Change
from schemas.settings import Settings, safe_url
from tasks.delivery.build import build_reports, platform_block
from tasks.delivery.chunk import ChunkJob, ChunkOutcome, deliver_chunk, read_chunk, statistics_for
from tasks.delivery.diff import diff_against_last_report, of_kind
from tasks.delivery.dry_run import finish_dry_run_file, start_dry_run_file
from tasks.delivery.plan import DeliveryPlan, plan_delivery
from tasks.extract.configuration import read_config
from tasks.extract.connection import shop_engine
from tasks.state.errors import StateStoreError
from tasks.state.locks import lease_kept
from tasks.state.runs import RunCounts, finish_run, forget_chunks, has_history, start_run
from tasks.state.snapshots import record_adopted
from tasks.state.store import check_writable, connect_state_store, open_state_store
from tasks.window import Window, WindowError, resolve_window


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

"""A reconciliation run: one chunk of SeQura's corrections through compare, output and the shop fix.

Prefect sees a staging folder and a chunk number go in and a few counts (and the first rows of each table)
come out; the differences themselves go to the reconciliation's CSV as each chunk is compared.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from schemas.corrections import DIFFERENCE_COLUMNS, AppliedFix, Difference, ReconciliationCounts, SkippedFix
from schemas.frames import ShopConfig
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from tasks.delivery.plan import order_filter_of
from tasks.extract.configuration import read_config, shop_local
from tasks.extract.connection import reading_the_shop, shop_engine
from tasks.reconciliation.compare import reconcile_corrections
from tasks.reconciliation.corrections import StagedCorrections, stage_corrections, staged_chunk
from tasks.reconciliation.shop_fixes import FixSession, applied_changes, apply_fixes, planned_changes
from tasks.reconciliation.shop_records import read_shop_records
from tasks.reconciliation.shop_rules import check_write_grants
from tasks.state.shop_corrections import record_shop_corrections, reporting_outlook, settle_shop_corrections
from tasks.state.store import open_state_store

ROWS_SHOWN = 1000  # rows of each table a reconciliation's artifacts list; the CSV holds them all


@dataclass(frozen=True)
class ReconcileJob:
    """One chunk of a reconciliation: whose, where its corrections wait, where its differences go."""

    run_id: str
    folder: str
    chunk: int
    out: str  # the CSV of differences
    changes_out: str  # the changes --apply made or would make, one line each
    apply: bool
    timezone: str  # the shop's PS_TIMEZONE, for the date_upd of what --apply writes
    module_table: bool  # the PHP module's ps_sequra_order exists


@dataclass
class ReconcileOutcome:
    """What chunks found and did, added up; each list keeps at most ROWS_SHOWN rows."""

    counts: ReconciliationCounts = field(default_factory=ReconciliationCounts)
    differences: list[Difference] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)  # the changes --apply makes (or would make)
    applied_values: int = 0
    skipped: list[SkippedFix] = field(default_factory=list)

    def add(self, later: ReconcileOutcome) -> None:
        """Add a later chunk's outcome to this one."""
        self.counts.add(later.counts)
        self.differences = (self.differences + later.differences)[:ROWS_SHOWN]
        self.unknown = (self.unknown + later.unknown)[:ROWS_SHOWN]
        self.planned = (self.planned + later.planned)[:ROWS_SHOWN]
        self.applied_values += later.applied_values
        self.skipped = (self.skipped + later.skipped)[:ROWS_SHOWN]


def start_output(path: str) -> str:
    """Create the reconciliation's CSV with its header; writes (and replaces) the file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as stream:
        csv.DictWriter(stream, DIFFERENCE_COLUMNS).writeheader()
    return str(target)


def add_to_output(path: str, differences: list[Difference]) -> None:
    """Append differences to the reconciliation's CSV, one row each; writes the file."""
    with Path(path).open("a", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, DIFFERENCE_COLUMNS)
        writer.writerows(difference.csv_row() for difference in differences)


def start_changes(output: str) -> str:
    """Create the empty file of changes next to the CSV (differences.changes.txt); writes it."""
    path = Path(output).with_suffix(".changes.txt")
    path.write_text("", encoding="utf-8")
    return str(path)


def add_changes(path: str, lines: list[str]) -> None:
    """Append lines to the file of changes; writes the file."""
    with Path(path).open("a", encoding="utf-8") as stream:
        stream.writelines(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class StoredAudit:
    """The audit trail of --apply in the state store's shop_corrections."""

    store: Engine
    run_id: str
    merchant: str

    def pending(self, batch: str, applied: list[AppliedFix]) -> None:
        """Keep what one order's transaction is about to commit; writes the store."""
        record_shop_corrections(self.store, self.run_id, self.merchant, batch, applied)

    def settle(self, batch: str, *, committed: bool) -> None:
        """Mark the batch applied, or forget it; writes the store."""
        settle_shop_corrections(self.store, batch, committed=committed)


def reconcile_chunk(
    settings: Settings, job: ReconcileJob, logger: logging.Logger | logging.LoggerAdapter
) -> ReconcileOutcome:
    """Compare one chunk with the shop, write its differences to the CSV and, with `apply`, fix the shop.

    Reads the shop (four queries) and the state store; writes the CSV; with `apply`, writes the shop's
    customer, address and orders tables and the state store's audit trail.
    """
    assert settings.shop_db_url is not None
    merchant = settings.merchant_id or ""
    corrections = staged_chunk(job.folder, job.chunk)
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    tables = shop_tables(settings.shop_table_prefix)
    store = open_state_store(settings.state_url())
    try:
        order_refs = [correction.order_ref_1 for correction in corrections]
        with reading_the_shop(tables), engine.connect() as conn:
            shop = read_shop_records(
                conn,
                tables,
                order_filter_of(settings),
                settings.order_ref_field,
                order_refs,
                module_table=job.module_table,
            )
        outlook = reporting_outlook(store, merchant, list(shop.order_ref_1s.values()))
        found = reconcile_corrections(corrections, shop, settings.shop_admin_url, outlook)
        add_to_output(job.out, found.differences)
        outcome = ReconcileOutcome(
            counts=found.counts,
            differences=found.differences[:ROWS_SHOWN],
            unknown=found.unknown[:ROWS_SHOWN],
        )
        changes = [line for fix in found.fixes for line in planned_changes(fix)]
        if job.apply and found.fixes:
            moment = shop_local(datetime.now(UTC), job.timezone)
            audit = StoredAudit(store, job.run_id, merchant)
            applied, skipped = apply_fixes(engine, tables, found.fixes, moment, FixSession(), audit)
            changes = applied_changes(applied)
            outcome.applied_values = len(applied)
            outcome.skipped = skipped[:ROWS_SHOWN]
            outcome.counts.fixed_orders = len(found.fixes) - len(skipped)
            outcome.counts.skipped_orders = len(skipped)
        add_changes(job.changes_out, changes)
        outcome.planned = changes[:ROWS_SHOWN]
        outcome.counts.change_lines = len(changes)
    finally:
        engine.dispose()
        store.dispose()
    logger.info(
        "chunk %d: %d corrections, %d orders matched, %d differences%s",
        job.chunk + 1,
        outcome.counts.records,
        outcome.counts.matched,
        outcome.counts.differences,
        f", {outcome.counts.fixed_orders} orders fixed, {outcome.counts.skipped_orders} skipped"
        if job.apply
        else "",
    )
    return outcome


@task(name="stage-corrections", cache_policy=NO_CACHE)
def stage_corrections_task(source: str, settings: Settings, folder: str) -> StagedCorrections:
    """Fetch and check the corrections into chunk files (a task: a download is a step worth seeing)."""
    return stage_corrections(source, settings, Path(folder), settings.chunk_size)


@task(name="read-shop-config", cache_policy=NO_CACHE)
def read_shop_config_task(settings: Settings) -> ShopConfig:
    """The shop's configuration: its time zone, and whether the PHP module's table exists."""
    assert settings.shop_db_url is not None
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        return read_config(engine, shop_tables(settings.shop_table_prefix), settings.shop_id)
    finally:
        engine.dispose()


@task(name="check-write-grants", cache_policy=NO_CACHE)
def check_write_grants_task(settings: Settings) -> None:
    """Refuse --apply before anything is compared when the shop user cannot write what it needs."""
    assert settings.shop_db_url is not None
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    try:
        check_write_grants(engine, shop_tables(settings.shop_table_prefix))
    finally:
        engine.dispose()


@task(name="reconcile-chunk", cache_policy=NO_CACHE, task_run_name="reconcile-chunk-{job.chunk}")
def reconcile_chunk_task(settings: Settings, job: ReconcileJob) -> ReconcileOutcome:
    """reconcile_chunk as a Prefect task: one per chunk."""
    return reconcile_chunk(settings, job, get_run_logger())

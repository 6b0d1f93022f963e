"""A reconciliation from start to end: stage the corrections, compare each chunk, write the differences.

The one owner of a reconciliation, free of Prefect, as DeliveryRun is of a delivery report: it works with
the run's resources (one state store, one shop engine) and hands them to the stages. Each chunk of SeQura's
corrections is compared with the shop, its differences go to the CSV, and, with `apply`, the shop is fixed;
what a chunk returns is a few counts and the first rows of each table.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from schemas.corrections import AppliedFix, ReconcileOutcome
from schemas.errors import RunStoppedError
from schemas.frames import ShopConfig
from schemas.outcomes import ROWS_SHOWN
from tasks.extract.configuration import shop_local
from tasks.extract.connection import reading_the_shop
from tasks.reconciliation.changes import applied_changes, planned_changes
from tasks.reconciliation.compare import reconcile_corrections
from tasks.reconciliation.corrections import (
    StagedCorrections,
    remove_staged,
    stage_corrections,
    staged_chunk,
    staged_malformed,
)
from tasks.reconciliation.output import add_changes, add_to_output, start_changes, start_output
from tasks.reconciliation.shop_fixes import FixSession, apply_fixes
from tasks.reconciliation.shop_records import read_shop_records
from tasks.reconciliation.shop_rules import check_write_grants
from tasks.reconciliation.source import source_label
from tasks.reconciliation.summary import ReconciliationSummary
from tasks.resources import RunResources
from tasks.state.shop_corrections import record_shop_corrections, reporting_outlook, settle_shop_corrections

LOG = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class StoredAudit:
    """The audit trail of --apply in the state store's shop_corrections."""

    resources: RunResources
    run_id: str

    def pending(self, batch: str, applied: list[AppliedFix]) -> None:
        """Keep what one order's transaction is about to commit; writes the store."""
        record_shop_corrections(self.resources.store, self.run_id, self.resources.merchant, batch, applied)

    def settle(self, batch: str, *, committed: bool) -> None:
        """Mark the batch applied, or forget it; writes the store."""
        settle_shop_corrections(self.resources.store, batch, committed=committed)


@dataclass(frozen=True)
class ReconcileContext:
    """What every chunk of one reconciliation shares, made once by the run: nothing in it is per chunk."""

    resources: RunResources
    run_id: str
    folder: str  # where the staged corrections wait, in chunk files
    out: str  # the CSV of differences
    changes_out: str  # the changes --apply made or would make, one line each
    apply: bool
    config: ShopConfig  # the shop's time zone (for what --apply writes) and whether ps_sequra_order exists


def reconcile_chunk(context: ReconcileContext, chunk: int, log: Log) -> ReconcileOutcome:
    """Compare one chunk with the shop, write its differences to the CSV and, with `apply`, fix the shop.

    Reads the shop (four queries) and the state store; writes the CSV; with `apply`, writes the shop's
    customer, address and orders tables and the state store's audit trail.
    """
    resources = context.resources
    settings, tables = resources.settings, resources.tables
    corrections = staged_chunk(context.folder, chunk)
    order_refs = [correction.order_ref_1 for correction in corrections]
    with reading_the_shop(tables), resources.shop.connect() as conn:
        shop = read_shop_records(
            conn,
            tables,
            resources.order_filter,
            settings.order_ref_field,
            order_refs,
            module_table=context.config.module_table,
        )
    outlook = reporting_outlook(resources.store, resources.merchant, list(shop.order_ref_1s.values()))
    found = reconcile_corrections(corrections, shop, settings.shop_admin_url, outlook)
    add_to_output(context.out, found.differences)
    outcome = ReconcileOutcome(
        counts=found.counts, differences=found.differences[:ROWS_SHOWN], unknown=found.unknown[:ROWS_SHOWN]
    )
    changes = [line for fix in found.fixes for line in planned_changes(fix)]
    if context.apply and found.fixes:
        moment = shop_local(resources.clock.now(), context.config.timezone)
        audit = StoredAudit(resources, context.run_id)
        applied, skipped = apply_fixes(resources.shop, tables, found.fixes, moment, FixSession(), audit)
        changes = applied_changes(applied)
        outcome.applied_values = len(applied)
        outcome.skipped = skipped[:ROWS_SHOWN]
        outcome.counts.fixed_orders = len(found.fixes) - len(skipped)
        outcome.counts.skipped_orders = len(skipped)
    add_changes(context.changes_out, changes)
    outcome.planned = changes[:ROWS_SHOWN]
    outcome.counts.change_lines = len(changes)
    log.info(
        "chunk %d: %d corrections, %d orders matched, %d differences%s",
        chunk + 1,
        outcome.counts.records,
        outcome.counts.matched,
        outcome.counts.differences,
        f", {outcome.counts.fixed_orders} orders fixed, {outcome.counts.skipped_orders} skipped"
        if context.apply
        else "",
    )
    return outcome


class ReconcileSteps:
    """How a reconciliation's steps are carried out: here, one after the other. The flow makes them tasks."""

    def stage(self, step: Callable[[], StagedCorrections]) -> StagedCorrections:
        """Carry out the staging of the corrections (a download is a step worth seeing)."""
        return step()

    def chunk(self, number: int, step: Callable[[Log], ReconcileOutcome]) -> ReconcileOutcome:
        """Carry out one chunk's step, giving it a logger."""
        return step(LOG)


@dataclass
class ReconciliationRun:
    """One reconciliation of SeQura's corrections (`source`: a file or a URL) against the merchant's shop.

    Writes every difference to `out` (a CSV) and the changes --apply makes (or would make) beside it; with
    `apply`, writes the corrections into the shop as PrestaShop does.
    """

    resources: RunResources
    source: str
    out: Path
    apply: bool = False

    def __post_init__(self) -> None:
        self.run_id = str(uuid.uuid4())

    def run(self, steps: ReconcileSteps | None = None) -> ReconciliationSummary:
        """Stage, compare every chunk, and fix the shop if asked; what it read, found and did.

        Raises RunStoppedError, with what it did before, when it stops after it began.
        """
        steps = steps or ReconcileSteps()
        resources = self.resources
        folder = tempfile.mkdtemp(prefix="sequra-etl-corrections-")
        total = ReconcileOutcome()
        try:
            config = resources.shop_config()
            if self.apply:
                check_write_grants(resources.shop, resources.tables)
            settings = resources.settings
            staged = steps.stage(
                partial(stage_corrections, self.source, settings, Path(folder), settings.chunk_size)
            )
            output = start_output(str(self.out))
            changes = start_changes(output)
            resources.log.info(
                "%d records in %s, %d malformed, in %d chunks",
                staged.records,
                source_label(self.source),
                staged.malformed,
                staged.chunks,
            )
            context = ReconcileContext(resources, self.run_id, folder, output, changes, self.apply, config)
            for chunk in range(staged.chunks):
                total.add(steps.chunk(chunk, partial(reconcile_chunk, context, chunk)))
            total.counts.read, total.counts.malformed = staged.records, staged.malformed
            return ReconciliationSummary(
                run_id=self.run_id,
                source=source_label(self.source),
                merchant=resources.merchant,
                apply=self.apply,
                out=str(Path(output).resolve()),
                changes=str(Path(changes).resolve()),
                outcome=total,
                malformed=staged_malformed(folder, ROWS_SHOWN),
            )
        except Exception as error:
            raise RunStoppedError(error, total) from error
        finally:
            remove_staged(folder)

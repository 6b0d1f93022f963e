"""The reconciliation flow: list every shop value that differs from SeQura's corrected buyer data; fix it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.history import rename_run
from flows.parameters import check_deployment_out, check_parameters, run_started_at
from schemas.corrections import ReconcileOutcome
from schemas.errors import RunStoppedError
from schemas.masking import masked_url
from schemas.outcomes import ROWS_SHOWN
from schemas.settings import OUTPUT_DIR, Settings
from tasks.delivery.summary import artifact_key
from tasks.reconciliation.corrections import StagedCorrections
from tasks.reconciliation.output import changes_path
from tasks.reconciliation.run import Log, ReconcileSteps, ReconciliationRun
from tasks.reconciliation.source import source_label
from tasks.reconciliation.summary import (
    ReconciliationSummary,
    changes_markdown,
    difference_rows,
    not_reconciled_rows,
    reconciliation_markdown,
    stopped_markdown,
)
from tasks.resources import RunResources
from tasks.window import shop_minute


def run_label() -> str:
    """The source and the run's start, as a run's name and its default CSV name say them."""
    source = source_label(str(runtime.flow_run.parameters.get("corrections", "")))
    stamp = run_started_at().strftime("%Y-%m-%dT%H-%M")
    return f"{source.split('://', 1)[-1].replace('/', '_')}-{stamp}"


def run_name() -> str:
    """reconciliation-{source}-{start} until the shop's time zone is known (then renamed in shop time)."""
    return f"reconciliation-{run_label()}"


def shop_time_name(timezone: str) -> str:
    """The run's name in shop time: reconciliation corrections.jsonl 2026-11-27 11:00 Europe/Madrid."""
    source = source_label(str(runtime.flow_run.parameters.get("corrections", "")))
    return f"reconciliation {source} {shop_minute(run_started_at(), timezone)} {timezone}"


@flow(name="reconciliation", flow_run_name=run_name, validate_parameters=False)
def reconciliation(
    corrections: str,
    out: str | None = None,
    apply: bool = False,
    merchant: str | None = None,
) -> ReconciliationSummary:
    """List every shop value that differs from SeQura's corrections, field by field, and fix them if asked.

    Args:
        corrections: a file (JSON Lines, a JSON array or CSV) or an http(s) URL of SeQura's corrections.
        out: the CSV of every difference; default .sequra-etl/reconciliation-{source}-{start}.csv. A run
            started from a deployment writes only new files inside .sequra-etl/.
        apply: write the corrections into the shop as PrestaShop does; without it nothing is written.
        merchant: SeQura merchant id; default SEQURA_MERCHANT_ID.
    """
    logger = get_run_logger()
    check_parameters(corrections=corrections, out=out, apply=apply, merchant=merchant)
    out_file = Path(out or OUTPUT_DIR / f"reconciliation-{run_label()}.csv")
    check_deployment_out(out, changes_path)
    settings = Settings.from_env(merchant_id=merchant)
    settings.require("shop_db_url", "merchant_id")
    logger.info("Merchant %s; state store %s", settings.merchant_id, masked_url(settings.state_url()))
    with RunResources.open(settings, log=logger) as resources:
        try:
            summary = ReconciliationRun(resources, corrections, out_file, apply).run(PrefectSteps(resources))
        except RunStoppedError as stopped:
            create_markdown_artifact(
                stopped_markdown(source_label(corrections), stopped.done, _said(stopped.cause)),
                key=artifact_key("reconciliation-summary", resources.merchant),
                description="Why the reconciliation stopped, and what it did before",
            )
            raise stopped.cause from None
        summary = replace(summary, started_at=run_started_at(), timezone=resources.shop_timezone())
    publish(summary)
    counts = summary.outcome.counts
    logger.info(
        "%d records read, %d orders matched, %d unknown, %d malformed: %d differences in %d orders%s",
        counts.read,
        counts.matched,
        counts.unknown,
        counts.malformed,
        counts.differences,
        counts.orders_with_differences,
        f"; {counts.fixed_orders} fixed, {counts.skipped_orders} skipped" if apply else "",
    )
    return summary


@task(name="stage-corrections", cache_policy=NO_CACHE)
def stage_task(step: Callable[[], StagedCorrections]) -> StagedCorrections:
    """Fetch and check the corrections into chunk files (a task: a download is a step worth seeing)."""
    return step()


@task(name="reconcile-chunk", task_run_name="reconcile-chunk-{number}", cache_policy=NO_CACHE)
def chunk_task(number: int, step: Callable[[Log], ReconcileOutcome]) -> ReconcileOutcome:
    """One chunk of corrections compared with the shop (and fixed, with --apply)."""
    return step(get_run_logger())


class PrefectSteps(ReconcileSteps):
    """A reconciliation's steps as Prefect tasks: the staging, and one task per chunk."""

    def __init__(self, resources: RunResources) -> None:
        self.resources = resources

    def stage(self, step: Callable[[], StagedCorrections]) -> StagedCorrections:
        """Name the run in shop time (the shop's configuration is read by now), then stage, as a task."""
        rename_run(shop_time_name(self.resources.shop_timezone()))
        return stage_task(step)

    def chunk(self, number: int, step: Callable[[Log], ReconcileOutcome]) -> ReconcileOutcome:
        """A chunk as a task of its own, reconcile-chunk-N."""
        return chunk_task(number, step)


def publish(summary: ReconciliationSummary) -> None:
    """Show the reconciliation in the Prefect UI: its summary, its differences and what was not reconciled."""
    create_markdown_artifact(
        reconciliation_markdown(summary),
        key=artifact_key("reconciliation-summary", summary.merchant),
        description="Records read, orders matched, differences by field, and what was fixed",
    )
    create_markdown_artifact(
        changes_markdown(summary),
        key=artifact_key("reconciliation-changes", summary.merchant),
        description="What --apply changed in the shop, or would change",
    )
    create_table_artifact(
        difference_rows(summary.outcome.differences),
        key=artifact_key("reconciliation-differences", summary.merchant),
        description=f"Shop values that differ from SeQura's corrections (the first {ROWS_SHOWN:,}), and "
        "where to fix them",
    )
    not_reconciled = not_reconciled_rows(summary.outcome.unknown, summary.malformed)
    if not_reconciled:
        create_table_artifact(
            not_reconciled,
            key=artifact_key("reconciliation-not-reconciled", summary.merchant),
            description="Unknown references and malformed records",
        )


def _said(error: Exception) -> str:
    """An error as a summary says it."""
    return f"{type(error).__name__}: {error}"


if __name__ == "__main__":
    reconciliation(corrections="corrections.jsonl")

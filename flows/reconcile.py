"""The reconciliation flow: list every shop value that differs from SeQura's corrected buyer data; fix it."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.delivery_report import run_started_at
from schemas.settings import OUTPUT_DIR, Settings, safe_url
from tasks.delivery.summary import artifact_key
from tasks.reconciliation.corrections import remove_staged, staged_malformed
from tasks.reconciliation.run import (
    ROWS_SHOWN,
    ReconcileJob,
    ReconcileOutcome,
    check_write_grants_task,
    read_shop_config_task,
    reconcile_chunk_task,
    stage_corrections_task,
    start_changes,
    start_output,
)
from tasks.reconciliation.source import source_label
from tasks.reconciliation.summary import (
    ReconciliationSummary,
    changes_markdown,
    difference_rows,
    reconciliation_markdown,
    stopped_markdown,
)


def run_label() -> str:
    """The source and the run's start, as a run's name and its default CSV name say them."""
    source = source_label(str(runtime.flow_run.parameters.get("corrections", "")))
    stamp = run_started_at().strftime("%Y-%m-%dT%H-%M")
    return f"{source.split('://', 1)[-1].replace('/', '_')}-{stamp}"


def run_name() -> str:
    """reconciliation-{source}-{start}, e.g. reconciliation-corrections.jsonl-2026-11-27T10-00."""
    return f"reconciliation-{run_label()}"


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
        out: the CSV of every difference; default .sequra-etl/reconciliation-{source}-{start}.csv.
        apply: write the corrections into the shop as PrestaShop does; without it nothing is written.
        merchant: SeQura merchant id; default SEQURA_MERCHANT_ID.
    """
    logger = get_run_logger()
    settings = Settings.from_env(merchant_id=merchant)
    settings.require("shop_db_url", "merchant_id")
    run_id = str(uuid.uuid4())
    logger.info("Merchant %s; state store %s", settings.merchant_id, safe_url(settings.state_url()))
    folder = tempfile.mkdtemp(prefix="sequra-etl-corrections-")
    total = ReconcileOutcome()
    try:
        config = read_shop_config_task(settings)
        if apply:
            check_write_grants_task(settings)
        staged = stage_corrections_task(corrections, settings, folder)
        output = start_output(out or str(OUTPUT_DIR / f"reconciliation-{run_label()}.csv"))
        changes = start_changes(output)
        logger.info(
            "%d records in %s, %d malformed, in %d chunks",
            staged.records,
            source_label(corrections),
            staged.malformed,
            staged.chunks,
        )
        for chunk in range(staged.chunks):
            job = ReconcileJob(
                run_id, folder, chunk, output, changes, apply, config.timezone, config.module_table
            )
            total.add(reconcile_chunk_task(settings, job))
        total.counts.read, total.counts.malformed = staged.records, staged.malformed
        summary = ReconciliationSummary(
            run_id=run_id,
            source=source_label(corrections),
            merchant=settings.merchant_id or "",
            apply=apply,
            out=str(Path(output).resolve()),
            changes=str(Path(changes).resolve()),
            outcome=total,
            malformed=staged_malformed(folder, ROWS_SHOWN),
        )
    except Exception as error:
        create_markdown_artifact(
            stopped_markdown(source_label(corrections), total, f"{type(error).__name__}: {error}"),
            key=artifact_key("reconciliation-summary", settings.merchant_id or ""),
            description="Why the reconciliation stopped, and what it did before",
        )
        raise
    finally:
        remove_staged(folder)
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
    not_reconciled = [
        {"line": line, "order_ref_1": ref, "problem": "no SeQura order of the shop has this reference"}
        for line, ref in summary.outcome.unknown
    ] + [
        {"line": m.line, "order_ref_1": m.order_ref_1 or "", "problem": f"{m.field}: {m.problem}"}
        for m in summary.malformed
    ]
    if not_reconciled:
        create_table_artifact(
            not_reconciled[:ROWS_SHOWN],
            key=artifact_key("reconciliation-not-reconciled", summary.merchant),
            description="Unknown references and malformed records",
        )


if __name__ == "__main__":
    reconciliation(corrections="corrections.jsonl")

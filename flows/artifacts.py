"""What a delivery report shows in the Prefect UI: its summary, counts and tables, and the open quarantine.

Every key carries the merchant (delivery-report-sent-shop-es), so each merchant's artifacts keep a history
of their own; no artifact shows a database URL; every value from the shop, SeQura or an error is escaped
(tasks/inert.py), in the markdown, the tables' text cells and the descriptions, which the UI renders as
markdown.
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from schemas.outcomes import ROWS_SHOWN
from tasks.delivery.summary import (
    DeliverySummary,
    artifact_key,
    open_quarantine_rows,
    quarantine_rows,
    sent_rows,
    summary_markdown,
    update_rows,
)
from tasks.inert import markdown_text
from tasks.state.quarantine import open_quarantine
from tasks.state.store import StateStore


def publish_summary(summary: DeliverySummary) -> None:
    """Publish a run's summary, its counts as one row, and the tables of sent, updated, quarantined orders."""
    merchant, outcome = summary.merchant, summary.outcome
    create_markdown_artifact(
        summary_markdown(summary),
        key=artifact_key("delivery-report-summary", merchant),
        description="Window, merchant and counts of this delivery report run",
    )
    create_table_artifact(
        [summary.counts.row()],
        key=artifact_key("delivery-report-counts", merchant),
        description="This run's counts, one row (a backfill's table adds them up per window)",
    )
    create_table_artifact(
        sent_rows(outcome.sent_rows),
        key=artifact_key("delivery-report-sent", merchant),
        description=("Orders to send (dry run)" if summary.dry_run else "Orders sent to SeQura")
        + f"; shipping times in shop time ({markdown_text(summary.timezone)})",
    )
    create_table_artifact(
        quarantine_rows(outcome.quarantined_rows),
        key=artifact_key("delivery-report-quarantine", merchant),
        description="Orders that could not be reported, and what to fix",
    )
    if outcome.update_rows:
        create_table_artifact(
            update_rows(outcome.update_rows),
            key=artifact_key("delivery-report-updates", merchant),
            description="Order updates to send (dry run)"
            if summary.dry_run
            else "Order updates: what changed after the report, and SeQura's answer",
        )


def publish_not_begun(why: str, merchant: str) -> None:
    """Say in the run's summary why it stopped before it began (a setting, the window, the lock)."""
    create_markdown_artifact(
        f"# Delivery report\n\n**The run stopped before it began:** {markdown_text(why)}.",
        key=artifact_key("delivery-report-summary", merchant),
        description="Why this run stopped",
    )


def publish_open_quarantine(store: StateStore, merchant: str, timezone: str) -> None:
    """Publish the standing open-quarantine artifact: every order of the merchant SeQura has not confirmed.

    Quarantined, with an update held, or with no answer yet; reads the state store.
    """
    waiting, total = open_quarantine(store, merchant, ROWS_SHOWN)
    key = artifact_key("open-quarantine", merchant)
    if not waiting:
        create_markdown_artifact(
            f"# Open quarantine of {markdown_text(merchant)}\n\n"
            "No order is waiting: every shipped order has been reported.",
            key=key,
            description="Orders SeQura has not confirmed yet",
        )
        return
    shown = f"the oldest {len(waiting):,} of {total:,}" if total > len(waiting) else f"{total:,}"
    create_table_artifact(
        open_quarantine_rows(waiting, store.now(), timezone),
        key=key,
        description=f"Orders SeQura has not confirmed yet ({shown}), oldest first: quarantined, with an "
        f"update held, or with no answer yet; times in shop time ({markdown_text(timezone)})",
    )

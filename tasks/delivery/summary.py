"""Summary: what a delivery report run did, as markdown and tables for the Prefect UI and the terminal."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.reports import QuarantinedOrder, SentOrder, Stage, UpdatedOrder
from tasks.delivery.chunk import ROWS_SHOWN, ChunkOutcome
from tasks.state.quarantine import WaitingOrder
from tasks.state.runs import RunCounts
from tasks.window import Window, shop_minute


@dataclass(frozen=True)
class DeliverySummary:
    """The outcome of one delivery report run; its tables list at most ROWS_SHOWN rows each."""

    run_id: str
    merchant: str
    window: Window
    dry_run: bool
    counts: RunCounts
    found: int = 0
    chunks: int = 0
    incremental: bool = False
    sent: list[SentOrder] = field(default_factory=list)  # in a dry run: what would have been sent
    updates: list[UpdatedOrder] = field(default_factory=list)  # in a dry run: what would have been sent
    update_failed: int = 0
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    other_merchant: list[str] = field(default_factory=list)
    requests: int = 0
    dry_run_file: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    stopped: str | None = None  # why the run stopped before its end, if it did
    timezone: str = "UTC"  # the shop's, in which the artifacts show times


def summarize(
    run_id: str,
    merchant: str,
    window: Window,
    outcome: ChunkOutcome,
    *,
    dry_run: bool,
    chunks: int,
    incremental: bool,
    dry_run_file: str | None = None,
    stopped: str | None = None,
    timezone: str = "UTC",
) -> DeliverySummary:
    """The run's outcome from its chunks' outcomes, added up."""
    return DeliverySummary(
        run_id=run_id,
        merchant=merchant,
        window=window,
        dry_run=dry_run,
        counts=RunCounts(
            new=outcome.new,
            changed=outcome.changed,
            unchanged=outcome.unchanged,
            quarantined=outcome.quarantined,
            sent=outcome.sent,
            updated=outcome.updated,
        ),
        found=outcome.found,
        chunks=chunks,
        incremental=incremental,
        sent=list(outcome.sent_rows),
        updates=list(outcome.update_rows),
        update_failed=outcome.update_failed,
        quarantined=list(outcome.quarantined_rows),
        other_merchant=list(outcome.other_merchant),
        requests=outcome.requests,
        dry_run_file=dry_run_file,
        seconds=dict(outcome.seconds),
        stopped=stopped,
        timezone=timezone,
    )


def artifact_key(kind: str, merchant: str) -> str:
    """The key of one of a merchant's artifacts, e.g. delivery-report-sent-shop-es (lowercase, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", merchant.lower()).strip("-")
    return f"{kind}-{slug}" if slug else kind


COUNT_COLUMNS = ("found", "new", "updated", "already_reported", "quarantined", "sent")


def counts_row(summary: DeliverySummary) -> dict[str, int]:
    """The run's counts as one row: found, new, updated, already reported, quarantined, sent."""
    counts = summary.counts
    values = (summary.found, counts.new, counts.updated, counts.unchanged, counts.quarantined, counts.sent)
    return dict(zip(COUNT_COLUMNS, values, strict=True))


def sent_rows(sent: Sequence[SentOrder]) -> list[dict[str, str | int]]:
    """One table row per order sent (or, in a dry run, to be sent)."""
    return [
        {
            "order_ref_1": order.order_ref_1,
            "id_orders": ", ".join(map(str, order.id_orders)),
            "state": order.state,
            "shipped_at": order.shipped_at,
            "items": order.items,
            "shipped_total": order.shipped_total,
            "remaining_total": order.remaining_total,
        }
        for order in sent
    ]


NEXT_STEP = {
    Stage.BUILD: "correct the order in the back office; every run tries it again",
    Stage.LOAD: "correct what SeQura names in the back office; every run tries it again",
    Stage.UPDATE: "correct what SeQura names; the update goes again when the order changes, or after "
    "`sequra-etl release ORDER_REF_1`",
}


def what_is_wrong_and_what_to_do(reason: str, stage: Stage) -> tuple[str, str]:
    """A quarantine reason cut in two: the problem, and the step after its last '; ' (outside brackets).

    SeQura's own refusal of a report names no step of ours: the stage's usual step is added.
    """
    depth, cut = 0, -1
    for at, character in enumerate(reason):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0 and reason.startswith("; ", at):
            cut = at
    if cut < 0 or reason.startswith("SeQura refused it ("):
        return reason, NEXT_STEP[stage]
    return reason[:cut], reason[cut + 2 :]


def quarantine_rows(quarantined: Sequence[QuarantinedOrder]) -> list[dict[str, str]]:
    """One table row per quarantined order: what is wrong with it, and what to do."""
    rows = []
    for entry in quarantined:
        wrong, to_do = what_is_wrong_and_what_to_do(entry.reason, entry.stage)
        rows.append(
            {
                "order_ref_1": entry.order_ref_1,
                "id_orders": ", ".join(map(str, entry.id_orders)),
                "what_is_wrong": wrong,
                "what_to_do": to_do,
            }
        )
    return rows


def age_in_words(age: timedelta) -> str:
    """How long an order has waited: 3 days, 5 hours, under an hour."""
    if age >= timedelta(days=2):
        return f"{age.days} days"
    hours = int(age.total_seconds() // 3600)
    return f"{hours} hours" if hours >= 2 else "1 hour" if hours == 1 else "under an hour"


def open_quarantine_rows(
    waiting: Sequence[WaitingOrder], now: datetime, timezone: str
) -> list[dict[str, str | int]]:
    """One table row per order still waiting: what is wrong, what to do, since when, runs that retried it."""
    rows: list[dict[str, str | int]] = []
    for order in waiting:
        wrong, to_do = what_is_wrong_and_what_to_do(order.reason, order.stage)
        rows.append(
            {
                "order_ref_1": order.order_ref_1,
                "id_orders": order.id_orders,
                "what_is_wrong": wrong,
                "what_to_do": to_do,
                "waiting_since": shop_minute(order.first_seen_at, timezone),
                "age": age_in_words(now - order.first_seen_at),
                "runs_retried": order.retried,
            }
        )
    return rows


def update_rows(updates: Sequence[UpdatedOrder]) -> list[dict[str, str]]:
    """One table row per order update: the order, what changed, and SeQura's answer."""
    return [
        {
            "order_ref_1": order.order_ref_1,
            "id_orders": ", ".join(map(str, order.id_orders)),
            "what_changed": order.changes,
            "result": order.result,
        }
        for order in updates
    ]


def _listed(names: Sequence[str], total: int) -> str:
    """Names joined by commas, with how many more there are beyond those shown."""
    more = total - len(names)
    return ", ".join(names) + (f" and {more:,} more" if more > 0 else "")


def summary_markdown(summary: DeliverySummary) -> str:
    """The run summary: window, merchant, counts, and where the details are."""
    counts = summary.counts
    mode = "dry run: nothing was sent" if summary.dry_run else "sent to SeQura"
    read = "new rows since the last run" if summary.incremental else "the window's dates"
    since, until = (
        shop_minute(moment, summary.timezone) for moment in (summary.window.since, summary.window.until)
    )
    lines = [
        f"# Delivery report {summary.window.label()}",
        "",
        f"Merchant **{summary.merchant}**: orders shipped from {since} to {until} ({summary.timezone}), "
        f"{mode}.",
        "",
        "| new | changed | unchanged | quarantined | sent | updated | update failures |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {counts.new} | {counts.changed} | {counts.unchanged} | {counts.quarantined} | {counts.sent} "
        f"| {counts.updated} | {summary.update_failed} |",
        "",
        f"{summary.found:,} order references read in {summary.chunks} chunks (found by {read}); "
        f"SeQura requests: {summary.requests}.",
    ]
    if summary.stopped:
        lines.append(
            f"**The run stopped before its end:** {summary.stopped}. What it lists was done before it "
            "stopped; the next run goes on from there."
        )
    if summary.dry_run_file:
        lines.append(f"The report that would have been sent: `{summary.dry_run_file}`.")
    if summary.updates:
        lines.append(
            ("Would be sent as order updates: " if summary.dry_run else "Changed after they were reported: ")
            + _listed([order.order_ref_1 for order in summary.updates], counts.changed)
            + "; see the table of order updates."
        )
    if summary.other_merchant:
        lines.append(
            "Left to another SeQura merchant (named in ps_sequra_order, or that reported it first): "
            + ", ".join(summary.other_merchant)
            + "."
        )
    if summary.quarantined:
        lines.append("Quarantined orders are retried by every run until they can be reported; see the table.")
    if counts.sent > len(summary.sent) or counts.new > len(summary.sent):
        lines.append(
            f"The tables list the first {ROWS_SHOWN:,} orders of each kind; the state store has them all."
        )
    return "\n".join(lines) + "\n"

"""Summary: what a delivery report run did, as markdown and tables for the Prefect UI and the terminal.

Every value from the shop, SeQura or an error is escaped (tasks/inert.py): it shows as text, in the markdown
and in the tables' text cells, which the UI also renders as markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.outcomes import COUNT_HEADINGS, ROWS_SHOWN, DeliveryCounts, DeliveryOutcome
from schemas.reports import QuarantinedOrder, SentOrder, Stage, UpdatedOrder
from tasks.inert import markdown_cell, markdown_cell_lines, markdown_text
from tasks.state.quarantine import WaitingOrder
from tasks.window import Window, shop_minute


@dataclass(frozen=True)
class DeliverySummary:
    """One delivery report run: what it covered, and what it came to (its tables at most ROWS_SHOWN rows)."""

    run_id: str
    merchant: str
    window: Window
    dry_run: bool
    outcome: DeliveryOutcome
    chunks: int = 0
    incremental: bool = False
    dry_run_file: str | None = None
    stopped: str | None = None  # why the run stopped before its end, if it did
    timezone: str = "UTC"  # the shop's, in which the artifacts show times
    statistics: str | None = None  # what became of the statistics block, in words

    @property
    def counts(self) -> DeliveryCounts:
        """The run's counts."""
        return self.outcome.counts


ORDER, ORDER_IDS, WHAT_IS_WRONG, WHAT_TO_DO = "Order", "Order IDs", "What is wrong", "What to do"
"""Column headings the tables share: the order as SeQura knows it, its ids in the shop, the quarantine's."""
STATUS, WAITING_SINCE, WHAT_CHANGED, ANSWER = "Status", "Waiting since", "What changed", "SeQura's answer"
LINE_WIDTHS = {ORDER: 20, ORDER_IDS: 12, WHAT_IS_WRONG: 34, WHAT_TO_DO: 28, WHAT_CHANGED: 34, ANSWER: 28}
"""Characters per line of the cells that can be long: the Vue UI never wraps a cell, and a table wider than
the artifact's view (846 px in a 1400-px browser) has its last columns cut."""


def table_row(cells: Mapping[str, object]) -> dict[str, object]:
    """A table artifact's row: every text cell inert, the long ones in lines (LINE_WIDTHS)."""
    return {
        heading: _in_lines(str(value), LINE_WIDTHS[heading])
        if heading in LINE_WIDTHS
        else markdown_cell(value)
        if isinstance(value, str)
        else value
        for heading, value in cells.items()
    }


def _in_lines(text: str, width: int) -> str:
    """A cell in lines of `width` characters, or of its longest word: a word (a URL) is never cut."""
    return markdown_cell_lines(text, max([width, *map(len, text.split())]))


def artifact_key(kind: str, merchant: str) -> str:
    """The key of one of a merchant's artifacts, e.g. delivery-report-sent-shop-es (lowercase, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", merchant.lower()).strip("-")
    return f"{kind}-{slug}" if slug else kind


def sent_rows(sent: Sequence[SentOrder]) -> list[dict[str, object]]:
    """One table row per order sent (or, in a dry run, to be sent)."""
    return [
        table_row(
            {
                ORDER: order.order_ref_1,
                ORDER_IDS: ", ".join(map(str, order.id_orders)),
                "State": order.state,
                "Shipped at": order.shipped_at,
                "Items": order.items,
                "Shipped total": order.shipped_total,
                "Still to ship": order.remaining_total,
            }
        )
        for order in sent
    ]


NEXT_STEP = {
    Stage.BUILD: "correct the order in the back office; every run tries it again",
    Stage.LOAD: "correct what SeQura names in the back office; every run tries it again",
    Stage.UPDATE: "correct what SeQura names; the update goes again when the order changes, or after "
    "sequra-etl release ORDER_REF_1",
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


def quarantine_rows(quarantined: Sequence[QuarantinedOrder]) -> list[dict[str, object]]:
    """One table row per quarantined order: what is wrong with it, and what to do."""
    rows = []
    for entry in quarantined:
        wrong, to_do = what_is_wrong_and_what_to_do(entry.reason, entry.stage)
        rows.append(
            table_row(
                {
                    ORDER: entry.order_ref_1,
                    ORDER_IDS: ", ".join(map(str, entry.id_orders)),
                    WHAT_IS_WRONG: wrong,
                    WHAT_TO_DO: to_do,
                }
            )
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
) -> list[dict[str, object]]:
    """One table row per order SeQura has not confirmed: what it waits for, since when, why, what next."""
    rows = []
    for order in waiting:
        wrong, to_do = what_is_wrong_and_what_to_do(order.reason, order.stage)
        cells = table_row(
            {ORDER: order.order_ref_1, STATUS: order.status, WHAT_IS_WRONG: wrong, WHAT_TO_DO: to_do}
        )
        rows.append(
            {ORDER: cells[ORDER], STATUS: cells[STATUS], WAITING_SINCE: waited(order, now, timezone)} | cells
        )
    return rows


def waited(order: WaitingOrder, now: datetime, timezone: str) -> str:
    """Since when an order waits, how long, and how many runs retried it: a line each, in a narrow cell."""
    lines = [shop_minute(order.first_seen_at, timezone), f"({age_in_words(now - order.first_seen_at)})"]
    if order.retried:
        lines.append(f"retried by {order.retried} run" + ("s" if order.retried > 1 else ""))
    return "  \n".join(map(markdown_cell, lines))


def update_rows(updates: Sequence[UpdatedOrder]) -> list[dict[str, object]]:
    """One table row per order update: the order, what changed, and SeQura's answer."""
    return [
        table_row(
            {
                ORDER: order.order_ref_1,
                ORDER_IDS: ", ".join(map(str, order.id_orders)),
                WHAT_CHANGED: order.changes,
                ANSWER: order.result,
            }
        )
        for order in updates
    ]


def _listed(names: Sequence[str], total: int) -> str:
    """Names joined by commas, each escaped, with how many more there are beyond those shown."""
    more = total - len(names)
    return ", ".join(map(markdown_text, names)) + (f" and {more:,} more" if more > 0 else "")


# The counts the diff gives, then those SeQura's answers give: two tables narrow enough for the UI.
FOUND_COUNTS = ("new", "changed", "already_reported", "quarantined")
ANSWER_COUNTS = tuple(name for name in COUNT_HEADINGS if name not in ("found", *FOUND_COUNTS))


def counts_table(counts: DeliveryCounts) -> list[str]:
    """The counts as two one-row markdown tables, under the headings the counts artifact gives them."""
    row = counts.row()
    lines: list[str] = []
    for names in (FOUND_COUNTS, ANSWER_COUNTS):
        shown = [COUNT_HEADINGS[name] for name in names]
        lines += [
            "| " + " | ".join(shown) + " |",
            "|" + "---:|" * len(shown),
            "| " + " | ".join(str(row[heading]) for heading in shown) + " |",
            "",
        ]
    return lines[:-1]


def summary_markdown(summary: DeliverySummary) -> str:
    """The run summary: window, merchant, counts, and where the details are."""
    counts = summary.counts
    mode = "dry run: nothing was sent" if summary.dry_run else "sent to SeQura"
    read = "new rows since the last run" if summary.incremental else "the window's dates"
    since, until = (
        shop_minute(moment, summary.timezone) for moment in (summary.window.since, summary.window.until)
    )
    lines = [
        f"# Delivery report {summary.window.in_shop_time(summary.timezone)}",
        "",
        f"Merchant **{markdown_text(summary.merchant)}**: orders shipped from {since} to {until} "
        f"({markdown_text(summary.timezone)}), {mode}.",
        "",
        *counts_table(counts),
        "",
        f"{counts.found:,} order references read in {summary.chunks} chunks (found by {read}); "
        f"SeQura requests: {summary.outcome.requests}.",
    ]
    if summary.statistics:
        lines.append(f"Statistics: {markdown_text(summary.statistics)}.")
    if summary.stopped:
        lines.append(
            f"**The run stopped before its end:** {markdown_text(summary.stopped)}. What it lists was done "
            "before it stopped; the next run goes on from there."
        )
    if summary.dry_run_file:
        lines.append(f"The report that would have been sent: {markdown_text(summary.dry_run_file)}.")
    outcome = summary.outcome
    if outcome.update_rows:
        lines.append(
            ("Would be sent as order updates: " if summary.dry_run else "Changed after they were reported: ")
            + _listed([order.order_ref_1 for order in outcome.update_rows], counts.changed)
            + "; see the table of order updates."
        )
    if outcome.other_merchant:
        lines.append(
            "Left to another SeQura merchant (named in ps_sequra_order, or that reported it first): "
            + _listed(outcome.other_merchant, len(outcome.other_merchant))
            + "."
        )
    if outcome.quarantined_rows:
        lines.append("Quarantined orders are retried by every run until they can be reported; see the table.")
    if counts.unanswered and not summary.dry_run:
        lines.append(
            f"SeQura has not answered {counts.unanswered:,} of the reports or order updates sent: they stay "
            "in flight and the next run asks SeQura again; the open-quarantine artifact lists them."
        )
    if counts.sent > len(outcome.sent_rows) or counts.new > len(outcome.sent_rows):
        lines.append(
            f"The tables list the first {ROWS_SHOWN:,} orders of each kind; the state store has them all."
        )
    return "\n".join(lines) + "\n"

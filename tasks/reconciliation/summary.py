"""What a reconciliation read, found and did, as markdown and tables for the Prefect UI and the terminal.

Every value from the shop, the corrections or an error is escaped (tasks/inert.py): it shows as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.corrections import Difference, MalformedRecord, ReconcileOutcome
from schemas.outcomes import ROWS_SHOWN
from tasks.inert import markdown_cell_lines, markdown_link, markdown_text
from tasks.window import shop_minute

# Characters per line of each text column of the differences table: the five fit the 846 px the Prefect UI
# gives a table at 1400 px, which never wraps a cell by itself.
ORDER_WIDTH, FIELD_WIDTH, VALUE_WIDTH, WHERE_WIDTH = 10, 17, 20, 22
PROBLEM_WIDTH = 60
OPEN_PAGE = "back-office page"


@dataclass(frozen=True)
class ReconciliationSummary:
    """What one reconciliation read, found and did; its lists hold at most ROWS_SHOWN rows each."""

    run_id: str
    source: str
    merchant: str
    apply: bool
    out: str
    changes: str
    outcome: ReconcileOutcome
    malformed: list[MalformedRecord]
    started_at: datetime | None = None
    timezone: str = "UTC"  # the shop's, in which the summary says when the run started


def field_in_words(name: str) -> str:
    """A corrections field in words: delivery_address.postal_code -> delivery address: postal code."""
    record, _, field = name.partition(".")
    return f"{record}: {field}".replace("_", " ") if field else name.replace("_", " ")


def where_to_fix(difference: Difference) -> str:
    """Where to fix a difference, the back-office page's link, and what would send the old value again."""
    lines = [markdown_cell_lines(difference.fix_in, WHERE_WIDTH)]
    link = markdown_link(OPEN_PAGE, difference.link) if difference.link else OPEN_PAGE
    if link != OPEN_PAGE:  # an http(s) page: anything else is no link, and no line
        lines.append(link)
    if difference.repeats_in:
        lines.append(
            markdown_cell_lines(f"before the next {difference.repeats_in} sends it again", WHERE_WIDTH)
        )
    return "  \n".join(lines)


def difference_rows(differences: list[Difference]) -> list[dict[str, object]]:
    """The differences as the rows of the Prefect table artifact, in words, in lines no wider than the view.

    The CSV keeps its own columns (DIFFERENCE_COLUMNS); this table is what a person reads in the UI.
    """
    return [
        {
            "Order": markdown_cell_lines(d.order_reference, ORDER_WIDTH),
            "Field": markdown_cell_lines(field_in_words(f"{d.record}.{d.field}"), FIELD_WIDTH),
            "In the shop": markdown_cell_lines(d.shop_value or "", VALUE_WIDTH),
            "SeQura's value": markdown_cell_lines(d.sequra_value, VALUE_WIDTH),
            "Where to fix it": where_to_fix(d),
        }
        for d in differences
    ]


def not_reconciled_rows(
    unknown: list[tuple[int, str]], malformed: list[MalformedRecord]
) -> list[dict[str, object]]:
    """The records not reconciled, one row each: the line, the order reference, and what is wrong."""
    rows: list[tuple[int, str, str]] = [
        (line, ref, "no SeQura order of the shop has this reference") for line, ref in unknown
    ] + [(m.line, m.order_ref_1 or "", f"{m.field}: {m.problem}") for m in malformed]
    return [
        {
            "Line": line,
            "Order": markdown_cell_lines(ref, ORDER_WIDTH),
            "Problem": markdown_cell_lines(problem, PROBLEM_WIDTH),
        }
        for line, ref, problem in rows[:ROWS_SHOWN]
    ]


def _listed(title: str, lines: list[str], total: int) -> list[str]:
    """A markdown section listing `lines` (at most 20 of `total`), each escaped."""
    if not total:
        return []
    shown = [f"- {markdown_text(line)}" for line in lines[:20]]
    more = [f"- … and {total - len(shown):,} more (the run's table artifacts list {ROWS_SHOWN:,})"]
    return ["", f"**{title}** ({total:,})", *shown, *(more if total > len(shown) else [])]


def reconciliation_markdown(summary: ReconciliationSummary) -> str:
    """The reconciliation's summary: what was read, matched and found, by field, and what was fixed."""
    counts = summary.outcome.counts
    lines = [
        f"# Reconciliation of {markdown_text(summary.source)}",
        "",
        f"Merchant {markdown_text(summary.merchant)}{_started(summary)}; "
        + ("corrections written to the shop." if summary.apply else "read only: nothing was written."),
        "",
        "| What was read and found | |",
        "|---|---:|",
        f"| records read | {counts.read:,} |",
        f"| malformed records | {counts.malformed:,} |",
        f"| orders matched | {counts.matched:,} |",
        f"| unknown references | {counts.unknown:,} |",
        f"| orders with differences | {counts.orders_with_differences:,} |",
        f"| differences | {counts.differences:,} |",
        f"| already fixed in a new address (--apply points the order to it) | {counts.already_fixed:,} |",
        f"| next report or update would repeat the error | {counts.repeating:,} |",
    ]
    if summary.apply:
        lines += [
            f"| orders fixed | {counts.fixed_orders:,} |",
            f"| values changed | {summary.outcome.applied_values:,} |",
            f"| orders skipped | {counts.skipped_orders:,} |",
        ]
    if counts.by_field:
        lines += ["", "**Differences by field**", "", "| Field | Differences |", "|---|---:|"]
        lines += [
            f"| {markdown_text(field_in_words(key))} | {count:,} |"
            for key, count in sorted(counts.by_field.items())
        ]
    lines += _listed(
        "Unknown references: no SeQura order of the shop has them",
        [f"line {line}: {ref}" for line, ref in summary.outcome.unknown],
        counts.unknown,
    )
    lines += _listed(
        "Malformed records, not reconciled", [str(m) for m in summary.malformed], counts.malformed
    )
    lines += _listed(
        "Skipped, nothing written" if summary.apply else "",
        [f"{s.order_reference} (order {s.id_order}): {s.reason}" for s in summary.outcome.skipped],
        counts.skipped_orders,
    )
    lines += ["", f"Every difference: {markdown_text(summary.out)}."]
    return "\n".join(lines)


def _started(summary: ReconciliationSummary) -> str:
    """When the run started, in the shop's time with its zone's name, as the summary says it."""
    if summary.started_at is None:
        return ""
    return f", started {shop_minute(summary.started_at, summary.timezone)} {markdown_text(summary.timezone)}"


def stopped_markdown(source: str, outcome: ReconcileOutcome, why: str) -> str:
    """The summary of a reconciliation that stopped: why, and what it had done."""
    counts = outcome.counts
    return "\n".join(
        [
            f"# Reconciliation of {markdown_text(source)}",
            "",
            f"**The reconciliation stopped before its end:** {markdown_text(why)}.",
            "",
            f"Before it stopped: {counts.matched:,} orders matched, {counts.differences:,} differences "
            f"found, {counts.fixed_orders:,} orders fixed, {counts.skipped_orders:,} skipped.",
        ]
    )


def changes_markdown(summary: ReconciliationSummary, lines: list[str] | None = None) -> str:
    """The changes --apply made to the shop (or would make), one line per shop row.

    `lines` are all of them (the CLI reads them from the changes file); else the first ROWS_SHOWN.
    """
    title = (
        "Changes made to the shop" if summary.apply else "Changes --apply would make (nothing was written)"
    )
    shown = summary.outcome.planned if lines is None else lines
    total = summary.outcome.counts.change_lines
    more = [f"- … and {total - len(shown):,} more, all in {markdown_text(summary.changes)}"]
    listed = [f"- {markdown_text(line)}" for line in shown or ["none"]]
    return "\n".join([f"**{title}**", "", *listed, *(more if total > len(shown) else [])])

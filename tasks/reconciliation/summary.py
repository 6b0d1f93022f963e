"""What a reconciliation read, found and did, as markdown and tables for the Prefect UI and the terminal.

Every value from the shop, the corrections or an error is escaped (tasks/inert.py): it shows as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.corrections import Difference, MalformedRecord, ReconcileOutcome
from schemas.outcomes import ROWS_SHOWN
from tasks.inert import markdown_cell, markdown_cells, markdown_link, markdown_text


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


def difference_rows(differences: list[Difference]) -> list[dict[str, object]]:
    """The differences as the rows of the Prefect table artifact, with a link to the back-office page."""
    return [
        markdown_cells(
            {
                "order_reference": d.order_reference,
                "id_order": d.id_order,
                "record": d.record,
                "field": d.field,
                "shop_value": d.shop_value or "",
                "sequra_value": d.sequra_value,
                "fix_in": d.fix_in,
                "repeats_in": d.repeats_in or "",
            }
        )
        | {"fix_in": markdown_link(d.fix_in, d.link) if d.link else markdown_cell(d.fix_in)}
        for d in differences
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
        f"Merchant {markdown_text(summary.merchant)}; "
        + ("corrections written to the shop." if summary.apply else "read only: nothing was written."),
        "",
        "| | |",
        "|---|---|",
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
        lines += ["", "**Differences by field**", "", "| field | differences |", "|---|---|"]
        lines += [f"| {markdown_text(key)} | {count:,} |" for key, count in sorted(counts.by_field.items())]
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

"""Summary: what a delivery report run did, as markdown and tables for the Prefect UI and the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.reports import BuildResult, BuiltReport, Change, ClassifiedReport, QuarantinedOrder
from tasks.load import LoadResult
from tasks.state import RunCounts
from tasks.window import Window


@dataclass(frozen=True)
class DeliverySummary:
    """The outcome of one delivery report run."""

    run_id: str
    merchant: str
    window: Window
    dry_run: bool
    counts: RunCounts
    state_store: str
    sent: list[BuiltReport] = field(default_factory=list)  # in a dry run: what would have been sent
    changed: list[ClassifiedReport] = field(default_factory=list)
    quarantined: list[QuarantinedOrder] = field(default_factory=list)
    other_merchant: list[str] = field(default_factory=list)
    requests: int = 0
    dry_run_file: str | None = None


def summarize(
    run_id: str,
    merchant: str,
    window: Window,
    state_store: str,
    built: BuildResult,
    classified: Sequence[ClassifiedReport],
    loaded: LoadResult | None,
    dry_run_file: str | None = None,
) -> DeliverySummary:
    """The run's outcome; without `loaded` it is a dry run, whose "sent" lists what would have been sent."""
    new = [item.built for item in classified if item.change is Change.NEW]
    changed = [item for item in classified if item.change is Change.CHANGED]
    quarantined = built.quarantined + (loaded.quarantined if loaded else [])
    sent = loaded.sent if loaded else []
    counts = RunCounts(
        new=len(new),
        changed=len(changed),
        unchanged=sum(item.change is Change.UNCHANGED for item in classified),
        quarantined=len(quarantined),
        sent=len(sent),
    )
    return DeliverySummary(
        run_id=run_id,
        merchant=merchant,
        window=window,
        dry_run=loaded is None,
        counts=counts,
        state_store=state_store,
        sent=sent if loaded else new,
        changed=changed,
        quarantined=quarantined,
        other_merchant=built.other_merchant,
        requests=loaded.requests if loaded else 0,
        dry_run_file=dry_run_file,
    )


def _money(cents: int, currency: str) -> str:
    """Integer cents as a readable amount, e.g. 1234 EUR -> 12.34 EUR."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d} {currency}"


def sent_rows(sent: Sequence[BuiltReport]) -> list[dict[str, str | int]]:
    """One table row per order sent (or, in a dry run, to be sent)."""
    return [
        {
            "order_ref_1": built.order_ref_1,
            "id_orders": ", ".join(map(str, built.id_orders)),
            "state": built.report.state,
            "sent_at": built.report.sent_at,
            "items": len(built.report.cart.items),
            "shipped_total": _money(built.report.cart.order_total_with_tax, built.report.cart.currency),
            "remaining_total": _money(
                built.report.remaining_cart.order_total_with_tax, built.report.remaining_cart.currency
            ),
        }
        for built in sent
    ]


def quarantine_rows(quarantined: Sequence[QuarantinedOrder]) -> list[dict[str, str]]:
    """One table row per quarantined order, with the reason to act on."""
    return [
        {
            "reference": entry.reference,
            "id_orders": ", ".join(map(str, entry.id_orders)),
            "stage": str(entry.stage),
            "reason": entry.reason,
        }
        for entry in quarantined
    ]


def changed_rows(changed: Sequence[ClassifiedReport]) -> list[dict[str, str]]:
    """One table row per order that changed after it was reported."""
    return [
        {
            "order_ref_1": item.built.order_ref_1,
            "id_orders": ", ".join(map(str, item.built.id_orders)),
            "previous_fingerprint": (item.previous_fingerprint or "")[:12],
            "fingerprint": item.built.fingerprint[:12],
        }
        for item in changed
    ]


def summary_markdown(summary: DeliverySummary) -> str:
    """The run summary: window, merchant, counts, and where the details are."""
    counts = summary.counts
    mode = "dry run: nothing was sent" if summary.dry_run else "sent to SeQura"
    lines = [
        f"# Delivery report {summary.window.label()}",
        "",
        f"Merchant **{summary.merchant}**, window `[{summary.window.since.isoformat()}, "
        f"{summary.window.until.isoformat()})` UTC, {mode}.",
        "",
        "| new | changed | unchanged | quarantined | sent |",
        "|---:|---:|---:|---:|---:|",
        f"| {counts.new} | {counts.changed} | {counts.unchanged} | {counts.quarantined} | {counts.sent} |",
        "",
        f"State store: `{summary.state_store}`; SeQura requests: {summary.requests}.",
    ]
    if summary.dry_run_file:
        lines.append(f"The report that would have been sent: `{summary.dry_run_file}`.")
    if summary.changed:
        lines.append(
            "Changed after they were reported (recorded for the order update): "
            + ", ".join(item.built.order_ref_1 for item in summary.changed)
            + "."
        )
    if summary.other_merchant:
        lines.append(
            "Left to another SeQura merchant (ps_sequra_order): " + ", ".join(summary.other_merchant) + "."
        )
    if summary.quarantined:
        lines.append("Quarantined orders are retried by every run until they can be reported; see the table.")
    return "\n".join(lines) + "\n"

"""The delivery-report flow: tell SeQura which orders the shop shipped, once each."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from prefect import flow, get_client, get_run_logger, runtime
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.states import Completed, Crashed

from flows.alerts import QUARANTINED
from flows.history import check_not_lost, run_tags, tag_run
from schemas.settings import OUTPUT_DIR, SettingError, Settings, safe_url
from tasks.delivery.chunk import ROWS_SHOWN, ChunkJob, ChunkOutcome
from tasks.delivery.run import deliver_chunk_task, finish_dry_run_task, plan_delivery_task, start_dry_run_task
from tasks.delivery.summary import (
    DeliverySummary,
    artifact_key,
    counts_row,
    open_quarantine_rows,
    quarantine_rows,
    sent_rows,
    summarize,
    summary_markdown,
    update_rows,
)
from tasks.state.locks import lease_kept
from tasks.state.quarantine import open_quarantine
from tasks.state.runs import finish_run, forget_chunks, last_successful_until, start_run
from tasks.state.store import open_state_store
from tasks.window import Window, resolve_window

Moment = datetime | date | str | None


def run_started_at() -> datetime:
    """The flow run's scheduled start (now outside a run): the one 'now' its name and its window share."""
    scheduled = runtime.flow_run.scheduled_start_time
    return (
        datetime.fromisoformat(str(scheduled))
        if runtime.flow_run.id and scheduled
        else datetime.now().astimezone()
    )


def window_for(settings: Settings, since: Moment, until: Moment) -> Window:
    """The run's window: its parameters, or from the last successful run (less overlap) to the run's start.

    Opens (and creates, on first use) the state store to read where the last successful run ended.
    """
    store = open_state_store(settings.state_url())
    try:
        last = last_successful_until(store, settings.merchant_id or "")
    finally:
        store.dispose()
    return resolve_window(
        since,
        until,
        last_until=last,
        now=run_started_at(),
        overlap=timedelta(minutes=settings.overlap_minutes),
        first_run=timedelta(days=settings.first_run_days),
    )


def run_name() -> str:
    """delivery-report-{since}-{until}, resolved as the run will resolve its window; reads the state store.

    Never raises: with parameters or settings it cannot read, the run is named after what it was given,
    and fails in its first step with a message naming the parameter or setting, instead of crashing here.
    """
    parameters = runtime.flow_run.parameters
    since, until = parameters.get("since"), parameters.get("until")
    try:
        settings = Settings.from_env(merchant_id=parameters.get("merchant"))
        merchant = f"{settings.merchant_id}-" if settings.merchants else ""
        return f"delivery-report-{merchant}{window_for(settings, since, until).label()}"
    except Exception:
        return f"delivery-report-{since or 'last-run'}-{until or 'now'}"


@flow(name="delivery-report", flow_run_name=run_name, validate_parameters=False)
def delivery_report(
    since: Moment = None,
    until: Moment = None,
    dry_run: bool = False,
    merchant: str | None = None,
    out: str | None = None,
    retry_quarantined: bool = True,
) -> DeliverySummary:
    """Send SeQura the SeQura orders shipped in [since, until), each once, and record what was sent.

    Args:
        since: window start (ISO 8601, UTC when no offset); default: the last successful run's until
            minus DELIVERY_OVERLAP_MINUTES (or DELIVERY_FIRST_RUN_DAYS back on the first run).
        until: window end, exclusive; default: the run's start.
        dry_run: build and diff only; write the report that would be sent to `out`; send and record nothing.
        merchant: SeQura merchant id; default SEQURA_MERCHANT_ID.
        out: where a dry run writes its report; default .sequra-etl/dry-run-{window}.json.
        retry_quarantined: also try again the merchant's orders waiting in quarantine (or without an answer)
            that the window does not find; a backfill does it in its last window only.
    """
    logger = get_run_logger()
    check_parameters(
        since=since,
        until=until,
        dry_run=dry_run,
        merchant=merchant,
        out=out,
        retry_quarantined=retry_quarantined,
    )
    try:
        summary = deliver_window(
            since, until, bool(dry_run), merchant, out, retry_quarantined=retry_quarantined
        )
    except RunStoppedError as stopped:
        raise stopped.cause from None
    except Exception as error:
        publish_not_begun(f"{type(error).__name__}: {error}", merchant)
        raise
    counts = summary.counts
    logger.info(
        "%s: %d new, %d changed, %d unchanged, %d quarantined; %d sent, %d updated, %d update failures",
        summary.window.label(),
        counts.new,
        counts.changed,
        counts.unchanged,
        counts.quarantined,
        counts.sent,
        counts.updated,
        summary.update_failed,
    )
    if not dry_run and (counts.quarantined or summary.update_failed):
        return Completed(
            name=QUARANTINED,
            message=f"{counts.quarantined} orders in quarantine and {summary.update_failed} order updates "
            "held; see the run's quarantine table",
            data=summary,
        )
    return summary


def publish_not_begun(why: str, merchant: str | None) -> None:
    """Say in the run's summary why it stopped before it began (a setting, the window, the lock)."""
    quietly(
        "publish why the run stopped",
        lambda: create_markdown_artifact(
            f"# Delivery report\n\n**The run stopped before it began:** {why}.",
            key=artifact_key("delivery-report-summary", merchant or ""),
            description="Why this run stopped",
        ),
    )


class RunStoppedError(Exception):
    """A run stopped after it began; its summary, saying what it did and why, is already published."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "since": (str, datetime, date, type(None)),
    "until": (str, datetime, date, type(None)),
    "dry_run": (bool,),
    "merchant": (str, type(None)),
    "out": (str, type(None)),
    "retry_quarantined": (bool,),
    "window": (str,),
}


def check_parameters(**parameters: object) -> None:
    """Raise a SettingError naming the first parameter of the wrong type (a deployment passes any JSON)."""
    for name, value in parameters.items():
        if not isinstance(value, PARAMETER_TYPES[name]):
            raise SettingError(name, f"{json.dumps(value, default=str)[:40]} is not {PARAMETER_HELP[name]}")


PARAMETER_HELP = {
    "since": "an ISO 8601 date or datetime, like 2026-11-05 or 2026-11-05T00:00:00Z",
    "until": "an ISO 8601 date or datetime, like 2026-11-06 or 2026-11-06T00:00:00Z",
    "dry_run": "true or false",
    "merchant": "a SeQura merchant id in quotes",
    "out": "a file path in quotes",
    "retry_quarantined": "true or false",
    "window": "a window width in quotes, like 1d, 12h or 30m",
}


def quietly(what: str, step: Callable[[], object]) -> None:
    """Run a step of a failing run's cleanup; its own error is logged, never raised over the run's."""
    try:
        step()
    except Exception as error:
        get_run_logger().warning("could not %s: %s: %s", what, type(error).__name__, error)


def deliver_window(
    since: Moment,
    until: Moment,
    dry_run: bool,
    merchant: str | None,
    out: str | None,
    *,
    retry_quarantined: bool = True,
) -> DeliverySummary:
    """The run itself: resolve the window, take the lock, deliver every chunk, record and publish the outcome.

    Raises RunStoppedError, wrapping the error, once the run has begun: its summary is then published already.
    """
    logger = get_run_logger()
    settings = Settings.from_env(merchant_id=merchant)
    settings.require("shop_db_url", "merchant_id")
    merchant_id = settings.merchant_id or ""
    window = window_for(settings, since, until)
    tag_run(run_tags(settings, dry_run))
    store = open_state_store(settings.state_url())
    run_id = str(uuid.uuid4())
    logger.info(
        "Window %s for merchant %s; state store %s",
        window.label(),
        merchant_id,
        safe_url(settings.state_url()),
    )
    dead: str | None = None  # the Prefect flow run of a run found dead, whose lock this one took over
    if not dry_run:
        try:
            check_not_lost(store, settings, run_tags(settings, dry_run=False))
            dead = start_run(
                store,
                run_id,
                merchant_id,
                window,
                dry_run=False,
                flow_run_id=str(runtime.flow_run.id),
                lease=settings.run_lease(),
                wait=settings.lock_wait(),
                waiting=logger.info,
            )
        except Exception:
            store.dispose()
            raise
    dry_run_file = str(Path(out or OUTPUT_DIR / f"dry-run-{window.label()}.json")) if dry_run else None
    lease = (
        nullcontext()
        if dry_run
        else lease_kept(settings.state_url(), merchant_id, run_id, settings.run_lease())
    )
    done: list[ChunkOutcome] = []  # each chunk's outcome as it finishes, for a run that fails half-way
    timezone = "UTC"  # the shop's, once the plan has read it
    try:
        if dead and dead != str(runtime.flow_run.id):  # not this flow run's own earlier attempt
            mark_crashed(dead, f"it stopped renewing its run lease; run {run_id} took over")
        with lease:
            plan = plan_delivery_task(settings, run_id, window, dry_run, retry_quarantined)
            timezone = plan.config.timezone
            if dry_run_file:
                start_dry_run_task(dry_run_file, merchant_id)
            first = ChunkJob(run_id, 0, window, plan.config, dry_run, dry_run_file, chunks=plan.chunks)
            total = deliver_chunks(settings, first, plan.chunks, done) + ChunkOutcome(
                seconds={"plan": plan.seconds}
            )
        if dry_run_file:
            finish_dry_run_task(settings, dry_run_file, plan.config, window)
        summary = summarize(
            run_id,
            merchant_id,
            window,
            total,
            dry_run=dry_run,
            chunks=plan.chunks,
            incremental=plan.incremental,
            dry_run_file=dry_run_file,
            timezone=timezone,
        )
        if not dry_run:
            finish_run(store, run_id, "succeeded", summary.counts)
    except Exception as error:
        why = f"{type(error).__name__}: {error}"
        if not dry_run:
            quietly("record the run as failed", lambda: finish_run(store, run_id, "failed", message=why))
        partial = sum(done, ChunkOutcome())
        stopped = summarize(
            run_id,
            merchant_id,
            window,
            partial,
            dry_run=dry_run,
            chunks=len(done),
            incremental=False,
            dry_run_file=dry_run_file,
            stopped=why,
            timezone=timezone,
        )
        quietly("publish what the run did", lambda: publish(stopped))
        raise RunStoppedError(error) from error
    finally:
        quietly("forget the run's chunks", lambda: forget_chunks(store, run_id))
        store.dispose()
    publish(summary)
    if not dry_run:
        quietly("publish the orders still in quarantine", lambda: publish_open_quarantine(settings, timezone))
    return summary


def publish_open_quarantine(settings: Settings, timezone: str) -> None:
    """Publish the standing open-quarantine artifact: every order still waiting; reads the state store."""
    merchant = settings.merchant_id or ""
    store = open_state_store(settings.state_url())
    try:
        waiting, total = open_quarantine(store, merchant, ROWS_SHOWN)
    finally:
        store.dispose()
    key = artifact_key("open-quarantine", merchant)
    if not waiting:
        create_markdown_artifact(
            f"# Open quarantine of {merchant}\n\nNo order is waiting: every shipped order has been reported.",
            key=key,
            description="Orders still waiting to be reported",
        )
        return
    shown = f"the oldest {len(waiting):,} of {total:,}" if total > len(waiting) else f"{total:,}"
    create_table_artifact(
        open_quarantine_rows(waiting, datetime.now(UTC), timezone),
        key=key,
        description=f"Orders still waiting to be reported ({shown}), oldest first; times in shop time "
        f"({timezone}); every run tries them again",
    )


def mark_crashed(flow_run_id: str, why: str) -> None:
    """Show a run that died without a word (killed) as Crashed in Prefect, not Running for ever."""
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(uuid.UUID(flow_run_id))
            if run.state is not None and run.state.is_running():
                client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    except Exception as error:  # best effort: the store already says crashed; never let this stop the run
        get_run_logger().info("could not mark flow run %s crashed in Prefect: %s", flow_run_id, error)


def deliver_chunks(
    settings: Settings, first: ChunkJob, chunks: int, done: list[ChunkOutcome]
) -> ChunkOutcome:
    """Deliver the run's chunks one after the other, showing progress when there is more than one.

    Each chunk's outcome is added to `done` as it finishes, so that a run that fails says what it did.
    """
    total = ChunkOutcome()
    progress = (
        create_progress_artifact(
            0.0,
            key=artifact_key("delivery-report-progress", settings.merchant_id or ""),
            description="Chunks delivered",
        )
        if chunks > 1
        else None
    )
    for number in range(chunks):
        job = replace(first, chunk=number, statistics_due=not total.statistics_settled)
        outcome = deliver_chunk_task(settings, job)
        done.append(outcome)
        total = total + outcome
        if progress is not None:
            update_progress_artifact(progress, 100.0 * (number + 1) / chunks)
    return total


def publish(summary: DeliverySummary) -> None:
    """Show the run in the Prefect UI: a summary, its counts, and tables of sent, updated, quarantined orders.

    Every key carries the merchant (delivery-report-sent-shop-es), so each merchant's artifacts keep a
    history of their own.
    """
    merchant = summary.merchant
    create_markdown_artifact(
        summary_markdown(summary),
        key=artifact_key("delivery-report-summary", merchant),
        description="Window, merchant and counts of this delivery report run",
    )
    create_table_artifact(
        [counts_row(summary)],
        key=artifact_key("delivery-report-counts", merchant),
        description="This run's counts, one row (a backfill's table adds them up per window)",
    )
    create_table_artifact(
        sent_rows(summary.sent),
        key=artifact_key("delivery-report-sent", merchant),
        description=("Orders to send (dry run)" if summary.dry_run else "Orders sent to SeQura")
        + f"; shipping times in shop time ({summary.timezone})",
    )
    create_table_artifact(
        quarantine_rows(summary.quarantined),
        key=artifact_key("delivery-report-quarantine", merchant),
        description="Orders that could not be reported, and what to fix",
    )
    if summary.updates:
        create_table_artifact(
            update_rows(summary.updates),
            key=artifact_key("delivery-report-updates", merchant),
            description="Order updates to send (dry run)"
            if summary.dry_run
            else "Order updates: what changed after the report, and SeQura's answer",
        )


if __name__ == "__main__":
    delivery_report()

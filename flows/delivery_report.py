"""The delivery-report flow: tell SeQura which orders the shop shipped, once each."""

from __future__ import annotations

import hashlib
import uuid
from contextlib import nullcontext
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

from prefect import flow, get_client, get_run_logger, runtime
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Completed, Crashed
from sqlalchemy import Engine

from flows.alerts import QUARANTINED
from schemas.settings import OUTPUT_DIR, Settings
from tasks.delivery import (
    ChunkJob,
    ChunkOutcome,
    deliver_chunk_task,
    finish_dry_run_task,
    plan_delivery_task,
    start_dry_run_task,
)
from tasks.state import (
    LostStateStoreError,
    StateStoreError,
    finish_run,
    forget_chunks,
    has_history,
    last_successful_until,
    lease_kept,
    open_state_store,
    start_run,
)
from tasks.summary import (
    DeliverySummary,
    quarantine_rows,
    sent_rows,
    summarize,
    summary_markdown,
    update_rows,
)
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
        return f"delivery-report-{window_for(settings, since, until).label()}"
    except Exception:
        return f"delivery-report-{since or 'last-run'}-{until or 'now'}"


def shop_tag(settings: Settings) -> str:
    """A tag naming the shop without its address or password: shop:{12 hex digits}."""
    url = settings.shop_db_url
    identity = f"{url.get_backend_name()}://{url.host}:{url.port}/{url.database}" if url else ""
    return "shop:" + hashlib.sha256(f"{identity}/{settings.shop_table_prefix}".encode()).hexdigest()[:12]


def run_tags(settings: Settings, dry_run: bool) -> list[str]:
    """The tags a run carries in Prefect: its merchant and shop, and dry-run."""
    return [f"merchant:{settings.merchant_id}", shop_tag(settings), *(["dry-run"] if dry_run else [])]


def tag_run(tags: list[str]) -> None:
    """Add tags to this flow run, to find it (and the runs of the same merchant and shop) later."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(runtime.flow_run.id)
        client.update_flow_run(run.id, tags=sorted({*run.tags, *tags}))


def earlier_deliveries(tags: list[str]) -> list[FlowRun]:
    """Completed delivery-report runs, other than this one, that sent for the same merchant and shop."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["delivery-report"])),
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=[runtime.flow_run.id]),
                tags=FlowRunFilterTags(all_=tags),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])),
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=20,
        )
    return [run for run in runs if "dry-run" not in run.tags]


def check_not_lost(store: Engine, settings: Settings, tags: list[str]) -> None:
    """Refuse to send from a state store that knows nothing of a merchant Prefect saw runs deliver for.

    Raises LostStateStoreError naming STATE_DB_URL: a lost (or newly pointed) store would send every order
    of the window again. `sequra-etl adopt` records what SeQura has, after which runs go on.
    """
    merchant = settings.merchant_id or ""
    if has_history(store, merchant):
        return
    earlier = earlier_deliveries(tags)
    if not earlier:
        return
    last = earlier[0]
    raise LostStateStoreError(
        f"the state store {store.url} holds no run of merchant {merchant}, but Prefect shows {len(earlier)} "
        f"completed delivery-report runs of this merchant and shop (the last: {last.name}, "
        f"{last.start_time:%Y-%m-%d %H:%M} UTC); sending now could report their orders again. Point "
        "STATE_DB_URL at the store they used; if it is really lost, record what SeQura has with "
        "`sequra-etl adopt --since ... --until ...` first"
    )


@flow(name="delivery-report", flow_run_name=run_name, validate_parameters=False)
def delivery_report(
    since: Moment = None,
    until: Moment = None,
    dry_run: bool = False,
    merchant: str | None = None,
    out: str | None = None,
) -> DeliverySummary:
    """Send SeQura the SeQura orders shipped in [since, until), each once, and record what was sent.

    Args:
        since: window start (ISO 8601, UTC when no offset); default: the last successful run's until
            minus DELIVERY_OVERLAP_MINUTES (or DELIVERY_FIRST_RUN_DAYS back on the first run).
        until: window end, exclusive; default: the run's start.
        dry_run: build and diff only; write the report that would be sent to `out`; send and record nothing.
        merchant: SeQura merchant id; default SEQURA_MERCHANT_ID.
        out: where a dry run writes its report; default .sequra-etl/dry-run-{window}.json.
    """
    logger = get_run_logger()
    settings = Settings.from_env(merchant_id=merchant)
    settings.require("shop_db_url", "merchant_id")
    merchant_id = settings.merchant_id or ""
    window = window_for(settings, since, until)
    tags = run_tags(settings, bool(dry_run))
    tag_run(tags)
    store = open_state_store(settings.state_url())
    run_id = str(uuid.uuid4())
    logger.info("Window %s for merchant %s; state store %s", window.label(), merchant_id, store.url)
    dead: str | None = None  # the Prefect flow run of a run found dead, whose lock this one took over
    if not dry_run:
        try:
            check_not_lost(store, settings, tags[:2])
            dead = start_run(
                store,
                run_id,
                merchant_id,
                window,
                dry_run=False,
                flow_run_id=str(runtime.flow_run.id),
                lease=settings.run_lease(),
            )
        except StateStoreError:
            store.dispose()
            raise
    dry_run_file = str(Path(out or OUTPUT_DIR / f"dry-run-{window.label()}.json")) if dry_run else None
    lease = (
        nullcontext()
        if dry_run
        else lease_kept(settings.state_url(), merchant_id, run_id, settings.run_lease())
    )
    done: list[ChunkOutcome] = []  # each chunk's outcome as it finishes, for a run that fails half-way
    try:
        if dead:
            mark_crashed(dead, f"it stopped renewing its run lease; run {run_id} took over")
        with lease:
            plan = plan_delivery_task(settings, run_id, window, dry_run)
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
            str(store.url),
            total,
            dry_run=dry_run,
            chunks=plan.chunks,
            incremental=plan.incremental,
            dry_run_file=dry_run_file,
        )
        if not dry_run:
            finish_run(store, run_id, "succeeded", summary.counts)
    except Exception as error:
        if not dry_run:
            finish_run(store, run_id, "failed", message=f"{type(error).__name__}: {error}")
        partial = sum(done, ChunkOutcome())
        publish(
            summarize(
                run_id,
                merchant_id,
                window,
                str(store.url),
                partial,
                dry_run=dry_run,
                chunks=len(done),
                incremental=False,
                dry_run_file=dry_run_file,
                stopped=f"{type(error).__name__}: {error}",
            )
        )
        raise
    finally:
        forget_chunks(store, run_id)
        store.dispose()
    publish(summary)
    counts = summary.counts
    logger.info(
        "%s: %d new, %d changed, %d unchanged, %d quarantined; %d sent, %d updated, %d update failures",
        window.label(),
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
        create_progress_artifact(0.0, key="delivery-report-progress", description="Chunks delivered")
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
    """Show the run in the Prefect UI: a summary, and tables of sent, updated and quarantined orders."""
    create_markdown_artifact(
        summary_markdown(summary),
        key="delivery-report-summary",
        description="Window, merchant and counts of this delivery report run",
    )
    create_table_artifact(
        sent_rows(summary.sent),
        key="delivery-report-sent",
        description="Orders to send (dry run)" if summary.dry_run else "Orders sent to SeQura",
    )
    create_table_artifact(
        quarantine_rows(summary.quarantined),
        key="delivery-report-quarantine",
        description="Orders that could not be reported, and what to fix",
    )
    if summary.updates:
        create_table_artifact(
            update_rows(summary.updates),
            key="delivery-report-updates",
            description="Order updates to send (dry run)"
            if summary.dry_run
            else "Order updates: what changed after the report, and SeQura's answer",
        )


if __name__ == "__main__":
    delivery_report()

"""The delivery-report flow: tell SeQura which orders the shop shipped, once each.

Prefect's part of a delivery report: its parameters, name and tags, a task per step, the artifacts and the
final state. The run itself (window, lock and lease, plan, chunks, finish) is DeliveryRun's, which the
flow hands the run's resources and the Prefect steps below.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from prefect import flow, get_client, get_run_logger, runtime, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Crashed, State

from flows.alerts import AWAITING_SEQURA, QUARANTINED, announce_outcome
from flows.artifacts import publish_not_begun, publish_open_quarantine, publish_summary
from flows.history import check_not_lost, rename_run, run_tags, tag_run
from flows.parameters import Moment, check_deployment_out, check_parameters, run_started_at
from schemas.errors import RunStoppedError
from schemas.masking import masked_url
from schemas.outcomes import DeliveryCounts, DeliveryOutcome
from schemas.settings import OUTPUT_DIR, Settings
from tasks.delivery.plan import DeliveryPlan
from tasks.delivery.run import DeliveryRun, Log, Steps, quietly, run_window
from tasks.delivery.summary import DeliverySummary, artifact_key
from tasks.resources import RunResources
from tasks.state.store import open_state_store
from tasks.window import Window


def run_name() -> str:
    """delivery-report-{since}-{until}, resolved as the run will resolve its window; reads the state store.

    Never raises: with parameters or settings it cannot read, the run is named after what it was given,
    and fails in its first step with a message naming the parameter or setting, instead of crashing here.
    Once the run has read the shop's time zone, it is renamed in shop time (shop_time_name).
    """
    parameters = runtime.flow_run.parameters
    since, until = parameters.get("since"), parameters.get("until")
    try:
        settings = Settings.from_env(merchant_id=parameters.get("merchant"))
        merchant = f"{settings.merchant_id}-" if settings.merchants else ""
        store = open_state_store(settings.state_url())
        try:
            window = run_window(store, settings, since, until, run_started_at())
        finally:
            store.dispose()
        return f"delivery-report-{merchant}{window.label()}"
    except Exception:
        return f"delivery-report-{since or 'last-run'}-{until or 'now'}"


def shop_time_name(settings: Settings, window: Window, timezone: str) -> str:
    """The run's name in the shop's time zone, named: delivery-report 2026-11-20 01:00 → ... Europe/Madrid."""
    merchant = f" {settings.merchant_id}" if settings.merchants else ""
    return f"delivery-report{merchant} {window.in_shop_time(timezone)}"


def name_in_shop_time(resources: RunResources, window: Window) -> None:
    """Rename this flow run after its window in shop time; writes the Prefect server, reads the shop.

    Best effort: a shop or a server that does not answer leaves the run its first name, said in its logs.
    """
    try:
        timezone = resources.shop_timezone()
    except Exception as error:  # the name is a courtesy: never stop a run for it
        get_run_logger().info("the run keeps its first name: %s: %s", type(error).__name__, error)
        return
    rename_run(shop_time_name(resources.settings, window, timezone))


@task(name="plan-delivery-report", cache_policy=NO_CACHE)
def plan_task(step: Callable[[], DeliveryPlan]) -> DeliveryPlan:
    """Find the run's references and keep them in chunks in the state store; reads the shop."""
    plan = step()
    get_run_logger().info(
        "%d order references to read in %d chunks (%s) in %.1f s",
        plan.references,
        plan.chunks,
        "new rows above the last run's marks" if plan.incremental else "by date",
        plan.seconds,
    )
    return plan


@task(name="deliver-chunk", task_run_name="deliver-chunk-{number}", cache_policy=NO_CACHE)
def chunk_task(number: int, step: Callable[[Log], DeliveryOutcome]) -> DeliveryOutcome:
    """One chunk through extract, build, diff, send and commit; reads the shop, writes the state store."""
    logger = get_run_logger()
    outcome = step(logger)
    logger.info("chunk %d: %s; %d requests", number + 1, outcome.counts.in_words(), outcome.requests)
    return outcome


# The progress bar moves at most this often, and at the last chunk. Each move is a call to Prefect on the
# run's path: measured, 52 ms each in a year of 100,000 with the build processes busy on both cores, which
# made 192 moves ~10 s of a run of 1,000,000.
PROGRESS_SECONDS = 5.0


class PrefectSteps(Steps):
    """A run's steps as Prefect tasks: the plan and one task per chunk, a progress bar, dead runs Crashed."""

    def __init__(self, merchant: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.merchant = merchant
        self.progress: uuid.UUID | None = None
        self.clock = clock
        self.moved = 0.0  # when the progress bar last moved, by `clock`

    def plan(self, step: Callable[[], DeliveryPlan]) -> DeliveryPlan:
        """The plan as a task."""
        return plan_task(step)

    def chunk(self, number: int, step: Callable[[Log], DeliveryOutcome]) -> DeliveryOutcome:
        """A chunk as a task of its own, deliver-chunk-N."""
        return chunk_task(number, step)

    def chunk_done(self, done: int, chunks: int) -> None:
        """Move the run's progress bar, if it has one (more than one chunk); writes Prefect.

        It moves at the last chunk, and at most every PROGRESS_SECONDS before it.
        """
        if chunks < 2:
            return
        now = self.clock()
        if self.progress is not None and done < chunks and now - self.moved < PROGRESS_SECONDS:
            return
        if self.progress is None:
            self.progress = create_progress_artifact(
                0.0,
                key=artifact_key("delivery-report-progress", self.merchant),
                description="Chunks delivered",
            )
        update_progress_artifact(self.progress, 100.0 * done / chunks)
        self.moved = now

    def waiting(self, message: str) -> None:
        """Log, in the run's logs, which run this one waits for."""
        get_run_logger().info(message)

    def holder_ended(self, flow_run_id: str) -> bool:
        """Whether Prefect holds the lock holder's flow run in a final state (Crashed, Failed); reads it."""
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(uuid.UUID(flow_run_id)).state
        except Exception as error:  # a server that does not answer proves nothing: wait for the lease
            get_run_logger().info("could not read flow run %s in Prefect: %s", flow_run_id, error)
            return False
        return state is not None and state.is_final()

    def took_over(self, flow_run_id: str, why: str) -> None:
        """Show the run that died without a word (killed) as Crashed in Prefect, not Running for ever."""
        try:
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(uuid.UUID(flow_run_id))
                if run.state is not None and run.state.is_running():
                    client.set_flow_run_state(run.id, Crashed(message=why), force=True)
        except Exception as error:  # best effort: the store already says crashed; never stop the run for it
            get_run_logger().info("could not mark flow run %s crashed in Prefect: %s", flow_run_id, error)


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
        out: where a dry run writes its report; default .sequra-etl/dry-run-{window}.json. A run started
            from a deployment writes only new files inside .sequra-etl/.
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
    check_deployment_out(out)
    try:
        settings = Settings.from_env(merchant_id=merchant)
        settings.require("shop_db_url", "merchant_id")
        resources = RunResources.open(settings, log=logger)
    except Exception as error:
        quietly("publish why the run stopped", partial(publish_not_begun, _said(error), merchant or ""))
        raise
    with resources:
        summary = deliver(resources, since, until, bool(dry_run), out, retry_quarantined=retry_quarantined)
    logger.info("%s: %s", summary.window.label(), summary.counts.in_words())
    announce_outcome(summary, settings)
    return final_state(summary)


def final_state(summary: DeliverySummary) -> DeliverySummary | State:
    """How the run ends: plain Completed only when SeQura answered all the run found (or in a dry run).

    Quarantined when orders are quarantined or updates held, AwaitingSeQura when orders wait only for
    SeQura's answer; both Completed states, with the counts in words and the summary as their result.
    """
    counts = summary.counts
    waiting = _waiting_in_words(counts)
    if summary.dry_run or not waiting:
        return summary
    return Completed(
        name=QUARANTINED if counts.quarantined or counts.update_failed else AWAITING_SEQURA,
        message=f"{waiting}; the open-quarantine artifact says what happens next to each",
        data=summary,
    )


def _waiting_in_words(counts: DeliveryCounts) -> str:
    """What SeQura has not confirmed, in words: `1 order in quarantine and 5 orders sent ... answer`."""
    parts = [
        f"{count:,} {noun if count == 1 else plural} {what}"
        for count, noun, plural, what in (
            (counts.quarantined, "order", "orders", "in quarantine"),
            (counts.update_failed, "order update", "order updates", "held"),
            (counts.unanswered, "order", "orders", "sent to SeQura waiting for its answer"),
        )
        if count
    ]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def deliver(
    resources: RunResources,
    since: Moment,
    until: Moment,
    dry_run: bool,
    out: str | None,
    *,
    retry_quarantined: bool,
) -> DeliverySummary:
    """Run the delivery report with Prefect's parts: tags, the lost-store check, the steps, the artifacts.

    A run that stopped publishes what it did, and its cause is raised; one that did not begin says why.
    """
    settings, merchant = resources.settings, resources.merchant
    try:
        window = run_window(resources.store, settings, since, until, run_started_at())
        tag_run(run_tags(settings, dry_run))
        name_in_shop_time(resources, window)
        get_run_logger().info(
            "Window %s for merchant %s; state store %s",
            window.label(),
            merchant,
            masked_url(settings.state_url()),
        )
        if not dry_run:
            check_not_lost(resources.store, settings, run_tags(settings, dry_run=False))
        run = DeliveryRun(
            resources,
            window,
            dry_run_file=Path(out or OUTPUT_DIR / f"dry-run-{window.label()}.json") if dry_run else None,
            retry_quarantined=retry_quarantined,
            flow_run_id=str(runtime.flow_run.id),
        )
        summary = run.run(PrefectSteps(merchant))
    except RunStoppedError as stopped:
        quietly("publish what the run did", partial(publish_summary, stopped.done))
        raise stopped.cause from None
    except Exception as error:
        quietly("publish why the run stopped", partial(publish_not_begun, _said(error), merchant))
        raise
    publish_summary(summary)
    if not dry_run:
        quietly(
            "publish the orders still in quarantine",
            lambda: publish_open_quarantine(resources.store, merchant, summary.timezone),
        )
    return summary


def _said(error: Exception) -> str:
    """An error as a summary says it."""
    return f"{type(error).__name__}: {error}"


if __name__ == "__main__":
    delivery_report()

"""Fan-out: one delivery-report child run per merchant and window, on the Prefect workers or here.

With a Prefect server that has the delivery-report deployment, each child is a run of that deployment
created with an idempotency key, so a repeated fan-out finds the same runs instead of creating them again.
A parent that runs in a process of its own on a worker (a backfill, as the command starts it) runs those
child runs in that process, due for no worker, one process start for all its windows; another parent hands
them to the work pool, where any worker may take them; a child run that another process has (Pending or
Running: another parent of the same windows) is never run a second time at once: its end is waited for.
Without the deployment, the children run here, one after the other, as subflows.
A merchant's windows go one at a time, oldest first (they would only queue on the merchant's lock); merchants
go side by side. A child whose run died, or failed in a way running again can fix, runs again (the same flow
run, on the workers and here); one that failed for good stops its merchant's later windows. A progress
artifact moves as children finish, a table says what each one did, and the parent ends as its worst child.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import SetStateStatus
from prefect.client.schemas.sorting import ArtifactSort
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings
from prefect.states import Crashed, Pending, Scheduled

from flows.children import (
    ChildOutcome,
    ChildRun,
    failed_outcome,
    named,
    not_run,
)
from flows.delivery_report import delivery_report
from schemas.errors import SettingError, TerminalError
from schemas.merchants import uncovered_shops
from schemas.outcomes import DeliveryCounts
from schemas.settings import Settings
from tasks.delivery.summary import DeliverySummary, artifact_key
from tasks.resources import read_shop_timezone
from tasks.state.runs import lapsed_run
from tasks.state.store import StateStore, open_state_store

DELIVERY_DEPLOYMENT = "delivery-report/delivery-report"
BACKFILL_DEPLOYMENT = "backfill/backfill"
POLL_SECONDS = 2.0
PARENT_POLL_SECONDS = 1.0  # how often the command looks whether the parent run it handed a worker ended
START_WAIT = timedelta(minutes=10)  # how long children may wait for a worker before the fan-out gives up
RETRIES = 2  # new attempts at a child whose run died or met a failure running again can fix
RETRY_PAUSE = timedelta(seconds=10)  # between a child's failed attempt and the next
# When a child run made to run in its parent's process is due for the workers: never. Claimed Pending at once.
NOT_FOR_WORKERS = datetime(9999, 1, 1, tzinfo=UTC)


class ChildRunsError(TerminalError):
    """Some child runs failed, or no worker took them; the message names them and what to do."""

    def __init__(self, message: str, outcomes: Sequence[ChildOutcome] = ()) -> None:
        super().__init__(message)
        self.outcomes = list(outcomes)  # what every child that finished did, failed or not


@dataclass(frozen=True)
class FanOut:
    """What one parent's children share: its kind, their idempotency keys' scope, the mode, the time zone.

    `kind` (backfill, every-merchant) tags the children and prefixes the progress and table artifacts;
    `scope` makes each child's idempotency key, with its merchant, window and mode; `timezone` is the shop's,
    in which the windows show. `in_process`: a parent run on a worker runs its children's deployment runs in
    its own process (one process for all the windows) instead of handing them to the work pool.
    """

    kind: str
    scope: str
    dry_run: bool
    timezone: str = "UTC"
    in_process: bool = False  # when the parent is itself a deployment's run, run the children's runs in it


def run_children(children: Sequence[ChildRun], fan: FanOut) -> list[ChildOutcome]:
    """Run every child, on the workers when the server has the deployment, else here; publish what they did.

    Raises ChildRunsError, after publishing, when any child failed, naming them.
    """
    logger = get_run_logger()
    progress = create_progress_artifact(
        0.0, key=f"{fan.kind}-progress", description="Delivery reports finished"
    )
    outcomes: list[ChildOutcome] = []

    def finished(outcome: ChildOutcome) -> None:
        outcomes.append(outcome)
        logger.info("%d/%d %s: %s", len(outcomes), len(children), outcome.said(), outcome.result)
        update_progress_artifact(progress, 100.0 * len(outcomes) / len(children))

    uncovered = uncovered_shops(Settings.from_env().merchants)
    if uncovered:
        logger.warning(
            "SEQURA_MERCHANTS: no merchant takes the orders of %s delivered to other countries; they are "
            "reported by none (leave out `countries` on one merchant of the shop to give it the rest)",
            "; ".join(uncovered),
        )
    why_here = not_on_workers()
    try:
        run_all(children, fan, why_here, finished)
    except ChildRunsError as error:
        raise ChildRunsError(str(error), outcomes) from None
    finally:
        create_table_artifact(
            [outcome.cells() for outcome in outcomes],
            key=f"{fan.kind}-runs",
            description=f"What each delivery report run did, per merchant and window ({fan.timezone})",
        )
        create_table_artifact(
            [outcome.row() for outcome in outcomes],
            key=f"{fan.kind}-counts",
            description=f"Each delivery report run's counts, a column each, as the command prints them "
            f"({fan.timezone})",
        )
    failed = [outcome for outcome in outcomes if outcome.failed]
    if failed:
        raise ChildRunsError(
            f"{len(failed)} of {len(children)} delivery reports did not finish: {named(failed)}. Each says "
            "why in its run; start the same command again to run them again.",
            outcomes,
        )
    return outcomes


def run_all(
    children: Sequence[ChildRun], fan: FanOut, why_here: str | None, finished: Callable[[ChildOutcome], None]
) -> None:
    """Run the children on the work pool, or here (`why_here` says why), telling `finished` each outcome.

    A merchant's later windows are not run after one failed in a way running again cannot fix.
    """
    logger = get_run_logger()
    if why_here is None and fan.in_process and on_a_worker():
        logger.info(
            "%d delivery reports, runs of %s run in this run's process on the worker, a merchant's windows "
            "one after the other, merchants side by side",
            len(children),
            DELIVERY_DEPLOYMENT,
        )
        run_in_process(children, fan, finished)
        return
    if why_here is None:
        logger.info(
            "%d delivery reports, run by the work pool's workers (%s) with the workers' settings",
            len(children),
            DELIVERY_DEPLOYMENT,
        )
        run_on_workers(children, fan, finished)
        return
    logger.info("%d delivery reports, run here one after the other: %s", len(children), why_here)
    stopped: set[str] = set()  # merchants with a window that failed for good: their later ones are not run
    for child in children:
        outcome = not_run(child, fan.timezone) if child.merchant in stopped else run_here_tried(child, fan)
        finished(outcome)
        if outcome.failed and not outcome.retryable:
            stopped.add(child.merchant)


def on_a_worker() -> bool:
    """Whether this flow run is a deployment's run (started by a worker with the workers' settings)."""
    context = FlowRunContext.get()
    return context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None


def run_in_process(
    children: Sequence[ChildRun], fan: FanOut, finished: Callable[[ChildOutcome], None]
) -> None:
    """Run the children's deployment runs in this process: a thread per merchant, its windows in order.

    Each child is the run of the delivery-report deployment its idempotency key names (created, or found
    from before), made once the window before it ended, and run here; tried again like one run here.
    `finished` goes one call at a time on a thread of its own, for every merchant.
    """
    merchants: dict[str, list[ChildRun]] = {}
    for child in children:
        merchants.setdefault(child.merchant, []).append(child)
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookkeeping") as bookkeeping,
        ThreadPoolExecutor(max_workers=len(merchants), thread_name_prefix="merchant") as pool,
    ):

        def told(outcome: ChildOutcome) -> None:
            bookkeeping.submit(contextvars.copy_context().run, finished, outcome).result()

        merchant_runs = [
            pool.submit(contextvars.copy_context().run, run_windows_in_process, windows, fan, told)
            for windows in merchants.values()
        ]
        for merchant_run in merchant_runs:
            merchant_run.result()


def run_windows_in_process(
    windows: Sequence[ChildRun], fan: FanOut, finished: Callable[[ChildOutcome], None]
) -> None:
    """Run one merchant's windows in order here, each one's run made once the one before it ended.

    One Prefect call at a time: made while a window runs, the next one's run met the window's own writes
    in the server's SQLite database, which refused one of them, and Prefect's client waited 2 s to try
    again (7 to 15 times in a backfill of 30 windows). After a window that failed for good the later ones
    are not run, and no run is made for them. A window whose run another process has is not run here
    (`ran_elsewhere`).
    """
    stopped = False
    for child in windows:
        if stopped:
            finished(not_run(child, fan.timezone))
            continue
        claim = claimed(child, fan)
        if claim.ours:
            outcome = run_here_tried(child, fan, claim.run)
        else:
            outcome = ran_elsewhere(child, fan, claim.run)
        finished(outcome)
        stopped = outcome.failed and not outcome.retryable


def pending_run(run_id: uuid.UUID) -> FlowRun:
    """The flow run `run_id` made Pending, for this process to run it (no worker takes it); writes Prefect."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Pending(message="run by its parent"), force=True)
        return client.read_flow_run(run_id)


@dataclass(frozen=True)
class Claimed:
    """A child's deployment run, and whether this process has it to run (else another process has it)."""

    run: FlowRun
    ours: bool


def claimed(child: ChildRun, fan: FanOut) -> Claimed:
    """The child's deployment run, created or found by its idempotency key, claimed for this process."""
    return claim(deployment_run(child, fan, NOT_FOR_WORKERS).id, START_WAIT)


def claim(run_id: uuid.UUID, wait: timedelta) -> Claimed:
    """The flow run `run_id` made Pending for this process, when it is Scheduled or has ended; writes Prefect.

    A run another process has (Pending or Running: another parent of the same windows, a worker) is never
    taken over: two processes would run it at once, and its merchant's lock, which knows the run by its id,
    would let both send. It is waited for, up to `wait`, and handed back as it is then, not ours. A Scheduled
    run is claimed by asking the server, not forcing it: the server refuses Pending to all but the first.
    """
    given_up = time.monotonic() + wait.total_seconds()
    busy = False  # it was found in another process's hands: once it ends, its outcome is the window's
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            state = run.state
            if state is None or state.is_scheduled():
                asked = Pending(message="run by its parent")
                asked.state_details.scheduled_time = datetime.now(UTC)  # else it waits for NOT_FOR_WORKERS
                taken = client.set_flow_run_state(run_id, asked)
                if taken.status == SetStateStatus.ACCEPT:
                    return Claimed(client.read_flow_run(run_id), ours=True)
                busy = True
            elif state.is_final() and not busy:
                client.set_flow_run_state(run_id, Pending(message="run again by its parent"), force=True)
                return Claimed(client.read_flow_run(run_id), ours=True)
            elif state.is_final() or time.monotonic() > given_up:
                return Claimed(run, ours=False)
            else:
                busy = True
            time.sleep(POLL_SECONDS)


def ran_elsewhere(child: ChildRun, fan: FanOut, run: FlowRun) -> ChildOutcome:
    """What a window whose run another process had did: its outcome if it ended, else not run here."""
    if run.state is not None and run.state.is_final():
        with get_client(sync_client=True) as client:
            return replace(outcome_of(client, child, run, fan.timezone), run_id=run.id)
    return ChildOutcome(
        child.merchant,
        child.window(fan.timezone),
        run.name,
        "Not run",
        problem=f"its run was still {run.state.name if run.state else 'starting'} in another process after "
        f"{START_WAIT.total_seconds() / 60:g} minutes (another backfill of these windows?), so it was not "
        f"run here; run the same command again once that run ended (if its process died, mark run {run.id} "
        "Crashed in the Prefect UI first)",
    )


def not_on_workers() -> str | None:
    """Why the children cannot go to the work pool (no server, no deployment), or None when they can.

    Raises SettingError naming PREFECT_API_URL when the server it names does not answer.
    """
    api = get_current_settings().api.url
    if not api:
        return "no Prefect server is configured (PREFECT_API_URL)"
    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(DELIVERY_DEPLOYMENT)
    except ObjectNotFound:
        return (
            f"the Prefect server has no deployment {DELIVERY_DEPLOYMENT} (`prefect deploy --all` creates it)"
        )
    except httpx.HTTPError as error:
        raise SettingError(
            "PREFECT_API_URL", f"the Prefect server at {api} does not answer ({error}); start it, or unset it"
        ) from None
    return None


def run_here_tried(child: ChildRun, fan: FanOut, pending: FlowRun | None = None) -> ChildOutcome:
    """Run one child here, and again RETRY_PAUSE later (RETRIES times at most) while that can fix it.

    It runs its `pending` flow run, else a new subflow. Each new attempt runs the child's own flow run again,
    as on the workers: never a twin of it.
    """
    outcome = run_here(child, fan, pending=pending)
    while outcome.retryable and outcome.tries <= RETRIES and outcome.run_id is not None:
        trying_again(outcome)
        time.sleep(RETRY_PAUSE.total_seconds())
        outcome = replace(run_here(child, fan, again=outcome.run_id), tries=outcome.tries + 1)
    return outcome


def trying_again(outcome: ChildOutcome) -> None:
    """Log that a child is tried again, and why."""
    get_run_logger().warning(
        "%s; trying again in %g s (try %d of %d)",
        outcome.said(),
        RETRY_PAUSE.total_seconds(),
        outcome.tries + 1,
        RETRIES + 1,
    )


def run_here(
    child: ChildRun, fan: FanOut, again: uuid.UUID | None = None, pending: FlowRun | None = None
) -> ChildOutcome:
    """Run one child as a subflow (or its flow run `again`, or its `pending` one) and say what it did.

    Writes Prefect.

    It lives in this process, so it sends no heartbeat of its own: this run's stands for it (and Prefect
    would spend up to a second at the child's end joining the thread that sends it).
    """
    parameters = child.parameters(fan.dry_run)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        if again is None and pending is None:
            state = delivery_report(**parameters, return_state=True)  # type: ignore[call-overload]
        else:
            flow_run = pending if again is None else pending_run(again)
            state = run_flow(delivery_report, flow_run=flow_run, parameters=parameters, return_type="state")
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id).name
    if not state.is_completed():
        return replace(failed_outcome(child, fan.timezone, run, state), run_id=run_id)
    summary: DeliverySummary = state.result()
    window = summary.window.in_shop_time(fan.timezone)
    return ChildOutcome(child.merchant, window, run, str(state.name), summary.counts, run_id=run_id)


def idempotency_key(scope: str, child: ChildRun, dry_run: bool) -> str:
    """The key that makes a repeated fan-out find the child it created before."""
    mode = "dry-run" if dry_run else "send"
    retry = "retry" if child.retry_quarantined else "no-retry"
    return f"{scope}:{child.merchant}:{child.since}:{child.until}:{mode}:{retry}"


def deployment_run(child: ChildRun, fan: FanOut, scheduled_time: datetime | None = None) -> FlowRun:
    """The child's run of the delivery-report deployment, created, or found by its idempotency key."""
    return run_deployment(  # type: ignore[return-value]
        DELIVERY_DEPLOYMENT,
        parameters=child.parameters(fan.dry_run),
        idempotency_key=idempotency_key(fan.scope, child, fan.dry_run),
        tags=[fan.kind],
        timeout=0,
        scheduled_time=scheduled_time,
    )


def submit(client: SyncPrefectClient, child: ChildRun, fan: FanOut) -> uuid.UUID:
    """Create the child's run of the deployment, or find the one made before (run again if it ended)."""
    run = deployment_run(child, fan)
    latest = client.read_flow_run(run.id).state  # another fan-out may have started it again meanwhile
    if latest is not None and latest.is_final():
        client.set_flow_run_state(run.id, Scheduled(message="run again by a repeated fan-out"), force=True)
    return run.id


def run_again(client: SyncPrefectClient, run_id: uuid.UUID) -> None:
    """Schedule a child's own run again RETRY_PAUSE from now: the same run, never a twin; writes Prefect."""
    client.set_flow_run_state(
        run_id,
        Scheduled(scheduled_time=datetime.now(UTC) + RETRY_PAUSE, message="tried again by its parent"),
        force=True,
    )


def run_on_workers(
    children: Sequence[ChildRun], fan: FanOut, finished: Callable[[ChildOutcome], None]
) -> None:
    """Hand the children to the work pool, a merchant's windows one at a time, and wait for every one.

    A child whose run stopped renewing its lease in the deployment's state store (its machine died) is
    marked Crashed, like a failed one. A child that failed in a way running again can fix runs again, the
    same flow run, at most RETRIES times. Raises ChildRunsError when no child has started for START_WAIT: no
    worker is taking the pool's runs.
    """
    waiting: dict[str, deque[ChildRun]] = {}
    for child in children:
        waiting.setdefault(child.merchant, deque()).append(child)
    tries: dict[uuid.UUID, int] = {}
    with get_client(sync_client=True) as client:
        settings = deployment_settings(client)
        liveness = Liveness(
            open_state_store(settings.state_url()),
            settings.run_lease(),
            None if fan.dry_run else settings.lock_wait() + 2 * settings.run_lease(),
        )
        try:
            active = {submit(client, queue[0], fan): queue.popleft() for queue in waiting.values()}
            moved = time.monotonic()
            while active:
                time.sleep(POLL_SECONDS)
                for run_id, child in list(active.items()):
                    run = liveness.ended(client, client.read_flow_run(run_id))
                    if run.state is None or not run.state.is_final():
                        if (
                            run.state is not None
                            and not run.state.is_scheduled()
                            and not run.state.is_pending()
                        ):
                            moved = time.monotonic()
                        continue
                    moved = time.monotonic()
                    outcome = replace(
                        outcome_of(client, child, run, fan.timezone), tries=tries.get(run_id, 1)
                    )
                    if outcome.retryable and outcome.tries <= RETRIES:
                        trying_again(outcome)
                        run_again(client, run_id)
                        tries[run_id] = outcome.tries + 1
                        continue
                    del active[run_id]
                    finished(outcome)
                    while outcome.failed and not outcome.retryable and waiting[child.merchant]:
                        finished(not_run(waiting[child.merchant].popleft(), fan.timezone))
                    if waiting[child.merchant]:
                        following = waiting[child.merchant].popleft()
                        active[submit(client, following, fan)] = following
                if active and time.monotonic() - moved > START_WAIT.total_seconds():
                    raise no_worker_error(len(active), next(iter(active)))
        finally:
            liveness.store.dispose()


def run_parent_on_workers(
    deployment: str, parameters: dict[str, object], kind: str
) -> list[ChildOutcome] | None:
    """Hand the parent to the work pool as a run of `deployment`, wait for it, and say what its children did.

    None when the server has no such deployment. Raises ChildRunsError when the parent did not end Completed
    (naming why, with the children's outcomes it published), or no worker took it for START_WAIT.
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            return None
        run: FlowRun = run_deployment(  # type: ignore[assignment]
            deployment, parameters=parameters, timeout=0, as_subflow=False
        )
        handed = time.monotonic()
        while run.state is None or not run.state.is_final():
            if run.start_time is None and time.monotonic() - handed > START_WAIT.total_seconds():
                raise no_worker_error(1, run.id)
            time.sleep(PARENT_POLL_SECONDS)
            run = client.read_flow_run(run.id)
        outcomes = published_outcomes(client, run, kind)
    if not run.state.is_completed():
        raise ChildRunsError(f"{run.name} ended {run.state.name}: {run.state.message}", outcomes)
    return outcomes


def published_outcomes(client: SyncPrefectClient, run: FlowRun, kind: str) -> list[ChildOutcome]:
    """The children's outcomes a parent run published in its counts table, in its children's order."""
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]), key=ArtifactFilterKey(any_=[f"{kind}-counts"])
        ),
        sort=ArtifactSort.CREATED_DESC,
        limit=1,
    )
    rows = json.loads(str(artifacts[0].data)) if artifacts else []
    return [ChildOutcome.from_row(row) for row in rows]


def deployment_settings(client: SyncPrefectClient) -> Settings:
    """The settings here, with the STATE_DB_URL the delivery-report deployment gives its runs, if any."""
    deployment = client.read_deployment_by_name(DELIVERY_DEPLOYMENT)
    given = (deployment.job_variables or {}).get("env", {}).get("STATE_DB_URL")
    environ = {**os.environ, "STATE_DB_URL": given} if given else None
    return Settings.from_env(environ)


@dataclass(frozen=True)
class Liveness:
    """How the fan-out tells a Running child is dead: the state store its runs write, and how long to wait."""

    store: StateStore
    lease: timedelta
    patience: timedelta | None  # how long a child may run without taking its merchant's lock (None: for ever)

    def ended(self, client: SyncPrefectClient, run: FlowRun) -> FlowRun:
        """The child run, marked Crashed in Prefect first if it is Running but dead; reads the store."""
        if run.state is None or not run.state.is_running():
            return run
        running_for = self.store.now() - (run.start_time or run.state.timestamp)
        dead = lapsed_run(self.store, str(run.id), self.lease, running_for, self.patience)
        if dead is None:
            return run
        client.set_flow_run_state(run.id, Crashed(message=dead), force=True)
        return client.read_flow_run(run.id)


def no_worker_error(waiting: int, example: uuid.UUID) -> ChildRunsError:
    """The error of a fan-out whose children no worker takes."""
    return ChildRunsError(
        f"no worker has taken a delivery report run in {START_WAIT.total_seconds() / 60:g} minutes "
        f"({waiting} waiting, like {example}); start one with `prefect worker start --pool local-process` "
        "(a backfill run takes a place of its own: give a worker a --limit of 2 or more): the runs stay "
        "queued, and the same command finds them again"
    )


def outcome_of(client: SyncPrefectClient, child: ChildRun, run: FlowRun, timezone: str) -> ChildOutcome:
    """What a finished child run did: its counts, from the table artifact it published, or why it failed."""
    assert run.state is not None
    if not run.state.is_completed():
        return failed_outcome(child, timezone, run.name, run.state)
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
            key=ArtifactFilterKey(any_=[artifact_key("delivery-report-counts", child.merchant)]),
        ),
        sort=ArtifactSort.CREATED_DESC,
        limit=1,
    )
    window, result = child.window(timezone), run.state.name
    if not artifacts:
        return ChildOutcome(child.merchant, window, run.name, result, problem="published no counts")
    counts = DeliveryCounts.from_row(json.loads(str(artifacts[0].data))[0])
    return ChildOutcome(child.merchant, window, run.name, result, counts)


def shop_timezone(merchant: str | None) -> str:
    """The shop's time zone (PS_TIMEZONE) in `merchant`'s settings, else UTC, logged; reads the shop."""
    try:
        return read_shop_timezone(Settings.from_env(merchant_id=merchant))
    except Exception as error:  # the windows still show, in UTC; each child says what is wrong with the shop
        get_run_logger().warning("windows shown in UTC: the shop's time zone could not be read (%s)", error)
        return "UTC"

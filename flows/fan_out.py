"""Fan-out: one delivery-report child run per merchant and window, on the Prefect workers or here.

With a Prefect server that has the delivery-report deployment, each child is a run of that deployment
created with an idempotency key, so any worker of the pool may take it and a repeated fan-out finds the same
runs instead of creating them again. Without one, the children run here, one after the other, as subflows.
A merchant's windows go one at a time, oldest first (they would only queue on the merchant's lock); merchants
go side by side. A progress artifact moves as children finish, and a table says what each one did.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import ArtifactSort
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.states import Crashed, Scheduled

from flows.delivery_report import delivery_report
from schemas.errors import SettingError, TerminalError
from schemas.merchants import uncovered_shops
from schemas.outcomes import COUNT_COLUMNS, DeliveryCounts
from schemas.settings import Settings
from tasks.delivery.summary import DeliverySummary, artifact_key
from tasks.inert import markdown_cells
from tasks.state.runs import lapsed_run
from tasks.state.store import StateStore, open_state_store
from tasks.window import Window, parse_moment

DELIVERY_DEPLOYMENT = "delivery-report/delivery-report"
POLL_SECONDS = 2.0
START_WAIT = timedelta(minutes=10)  # how long children may wait for a worker before the fan-out gives up


class ChildRunsError(TerminalError):
    """Some child runs failed, or no worker took them; the message names them and what to do."""

    def __init__(self, message: str, outcomes: Sequence[ChildOutcome] = ()) -> None:
        super().__init__(message)
        self.outcomes = list(outcomes)  # what every child that finished did, failed or not


@dataclass(frozen=True)
class ChildRun:
    """One delivery report to run: a merchant and a window (None: from the merchant's last run to now)."""

    merchant: str
    since: str | None = None
    until: str | None = None
    retry_quarantined: bool = True  # a backfill's last window of the merchant tries its quarantine again

    def window(self) -> str:
        """The window as run names show it, e.g. 2026-11-05T00:00Z-2026-11-06T00:00Z."""
        if self.since is None or self.until is None:
            return "since the last run"
        return Window(parse_moment("since", self.since), parse_moment("until", self.until)).label()

    def parameters(self, dry_run: bool) -> dict[str, object]:
        """The delivery-report flow's parameters for this child."""
        return {
            "since": self.since,
            "until": self.until,
            "dry_run": dry_run,
            "merchant": self.merchant,
            "retry_quarantined": self.retry_quarantined,
        }


@dataclass(frozen=True)
class ChildOutcome:
    """What one child run did: its counts, or why it did not finish."""

    merchant: str
    window: str
    run: str
    result: str
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    problem: str = ""

    @property
    def failed(self) -> bool:
        """Whether the child ended without doing its work."""
        return self.result not in ("Completed", "Quarantined")

    def row(self) -> dict[str, object]:
        """The child as one row of the backfill's table: merchant, window, run, result, counts, problem."""
        return {
            "merchant": self.merchant,
            "window": self.window,
            "run": self.run,
            "result": self.result,
            **self.counts.row(),
            "problem": self.problem,
        }


def run_children(children: Sequence[ChildRun], *, dry_run: bool, kind: str, scope: str) -> list[ChildOutcome]:
    """Run every child, on the workers when the server has the deployment, else here; publish what they did.

    `kind` (backfill, every-merchant) tags the children and prefixes the progress and table artifacts;
    `scope` makes each child's idempotency key, with its merchant, window and mode. Raises ChildRunsError,
    after publishing, when any child failed.
    """
    logger = get_run_logger()
    progress = create_progress_artifact(0.0, key=f"{kind}-progress", description="Delivery reports finished")
    outcomes: list[ChildOutcome] = []

    def finished(outcome: ChildOutcome) -> None:
        outcomes.append(outcome)
        logger.info(
            "%d/%d %s %s: %s; %s",
            len(outcomes),
            len(children),
            outcome.merchant,
            outcome.window,
            outcome.result,
            outcome.problem or outcome.counts.in_words(),
        )
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
        run_all(children, dry_run, kind, scope, why_here, finished)
    except ChildRunsError as error:
        raise ChildRunsError(str(error), outcomes) from None
    finally:
        create_table_artifact(
            [markdown_cells(outcome.row()) for outcome in outcomes],
            key=f"{kind}-runs",
            description="What each delivery report run did: per merchant and window",
        )
    failed = [outcome for outcome in outcomes if outcome.failed]
    if failed:
        raise ChildRunsError(
            f"{len(failed)} of {len(children)} delivery reports did not finish: "
            + "; ".join(f"{o.merchant} {o.window} ({o.run}): {o.problem or o.result}" for o in failed[:5])
            + ". Each says why in its run; start the same command again to run them again.",
            outcomes,
        )
    return outcomes


def run_all(
    children: Sequence[ChildRun],
    dry_run: bool,
    kind: str,
    scope: str,
    why_here: str | None,
    finished: Callable[[ChildOutcome], None],
) -> None:
    """Run the children on the work pool, or here (`why_here` says why), telling `finished` each outcome."""
    logger = get_run_logger()
    if why_here is None:
        logger.info(
            "%d delivery reports, run by the work pool's workers (%s) with the workers' settings",
            len(children),
            DELIVERY_DEPLOYMENT,
        )
        run_on_workers(children, dry_run, kind, scope, finished)
        return
    logger.info("%d delivery reports, run here one after the other: %s", len(children), why_here)
    stopped: set[str] = set()  # merchants with a failed window: their later windows are not run
    for child in children:
        outcome = not_run(child) if child.merchant in stopped else run_here(child, dry_run)
        finished(outcome)
        if outcome.failed:
            stopped.add(child.merchant)


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


def run_here(child: ChildRun, dry_run: bool) -> ChildOutcome:
    """Run one child as a subflow of this run and say what it did."""
    state = delivery_report(**child.parameters(dry_run), return_state=True)  # type: ignore[call-overload]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id).name
    if state.is_completed():
        summary: DeliverySummary = state.result()
        return ChildOutcome(child.merchant, child.window(), run, str(state.name), summary.counts)
    return ChildOutcome(
        child.merchant, child.window(), run, str(state.name), problem=str(state.message or "")
    )


def not_run(child: ChildRun) -> ChildOutcome:
    """The outcome of a window left alone because an earlier window of its merchant failed."""
    return ChildOutcome(
        child.merchant,
        child.window(),
        "",
        "Not run",
        problem="an earlier window of this merchant failed; the same command runs it after that one",
    )


def idempotency_key(scope: str, child: ChildRun, dry_run: bool) -> str:
    """The key that makes a repeated fan-out find the child it created before."""
    mode = "dry-run" if dry_run else "send"
    retry = "retry" if child.retry_quarantined else "no-retry"
    return f"{scope}:{child.merchant}:{child.since}:{child.until}:{mode}:{retry}"


def submit(client: SyncPrefectClient, child: ChildRun, dry_run: bool, kind: str, scope: str) -> uuid.UUID:
    """Create the child's run of the deployment, or find the one made before (run again if it ended)."""
    run: FlowRun = run_deployment(  # type: ignore[assignment]
        DELIVERY_DEPLOYMENT,
        parameters=child.parameters(dry_run),
        idempotency_key=idempotency_key(scope, child, dry_run),
        tags=[kind],
        timeout=0,
    )
    latest = client.read_flow_run(run.id).state  # another fan-out may have started it again meanwhile
    if latest is not None and latest.is_final():
        client.set_flow_run_state(run.id, Scheduled(message="run again by a repeated fan-out"), force=True)
    return run.id


def run_on_workers(
    children: Sequence[ChildRun],
    dry_run: bool,
    kind: str,
    scope: str,
    finished: Callable[[ChildOutcome], None],
) -> None:
    """Hand the children to the work pool, a merchant's windows one at a time, and wait for every one.

    A child whose run stopped renewing its lease in the deployment's state store (its machine died) is
    marked Crashed, like a failed one. Raises ChildRunsError when no child has started for START_WAIT: no
    worker is taking the pool's runs.
    """
    waiting: dict[str, deque[ChildRun]] = {}
    for child in children:
        waiting.setdefault(child.merchant, deque()).append(child)
    with get_client(sync_client=True) as client:
        settings = deployment_settings(client)
        liveness = Liveness(
            open_state_store(settings.state_url()),
            settings.run_lease(),
            None if dry_run else settings.lock_wait() + 2 * settings.run_lease(),
        )
        try:
            active = {
                submit(client, queue[0], dry_run, kind, scope): queue.popleft() for queue in waiting.values()
            }
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
                    del active[run_id]
                    outcome = outcome_of(client, child, run)
                    finished(outcome)
                    while outcome.failed and waiting[child.merchant]:
                        finished(not_run(waiting[child.merchant].popleft()))
                    if waiting[child.merchant]:
                        following = waiting[child.merchant].popleft()
                        active[submit(client, following, dry_run, kind, scope)] = following
                if active and time.monotonic() - moved > START_WAIT.total_seconds():
                    raise no_worker_error(len(active), next(iter(active)))
        finally:
            liveness.store.dispose()


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


def outcome_of(client: SyncPrefectClient, child: ChildRun, run: FlowRun) -> ChildOutcome:
    """What a finished child run did: its counts, from the table artifact it published, or why it failed."""
    assert run.state is not None
    result = run.state.name
    if not run.state.is_completed():
        return ChildOutcome(child.merchant, child.window(), run.name, result, problem=run.state.message or "")
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
            key=ArtifactFilterKey(any_=[artifact_key("delivery-report-counts", child.merchant)]),
        ),
        sort=ArtifactSort.CREATED_DESC,
        limit=1,
    )
    if not artifacts:
        return ChildOutcome(child.merchant, child.window(), run.name, result, problem="published no counts")
    counts = DeliveryCounts.from_row(json.loads(str(artifacts[0].data))[0])
    return ChildOutcome(child.merchant, child.window(), run.name, result, counts)


def outcomes_markdown(outcomes: Sequence[ChildOutcome]) -> str:
    """The children's outcomes as a markdown table, with a total line, for the terminal."""
    columns = ("merchant", "window", "result", *COUNT_COLUMNS)
    lines = [
        "| " + " | ".join(column.replace("_", " ") for column in columns) + " |",
        "|" + "---|" * 3 + "---:|" * len(COUNT_COLUMNS),
    ]
    lines += ["| " + " | ".join(str(o.row()[column]) for column in columns) + " |" for o in outcomes]
    total = sum((o.counts for o in outcomes), DeliveryCounts()).row()
    totals = [str(total[column]) for column in COUNT_COLUMNS]
    lines.append(f"| **{len(outcomes)} runs** | | | " + " | ".join(totals) + " |")
    return "\n".join(lines)

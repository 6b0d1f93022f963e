"""Fan-out: one delivery-report child run per merchant and window, on the Prefect workers or here.

With a Prefect server that has the delivery-report deployment, each child is a run of that deployment
created with an idempotency key, so any worker of the pool may take it and a repeated fan-out finds the same
runs instead of creating them again. Without one, the children run here, one after the other, as subflows.
A merchant's windows go one at a time, oldest first (they would only queue on the merchant's lock); merchants
go side by side. A progress artifact moves as children finish, and a table says what each one did.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import ArtifactSort
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from prefect.states import Scheduled

from flows.delivery_report import delivery_report
from tasks.summary import COUNT_COLUMNS, artifact_key, counts_row
from tasks.window import Window, parse_moment

DELIVERY_DEPLOYMENT = "delivery-report/delivery-report"
POLL_SECONDS = 2.0
START_WAIT = timedelta(minutes=10)  # how long children may wait for a worker before the fan-out gives up


class ChildRunsError(RuntimeError):
    """Some child runs failed, or no worker took them; the message names them and what to do."""


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
    found: int = 0
    new: int = 0
    updated: int = 0
    already_reported: int = 0
    quarantined: int = 0
    sent: int = 0
    problem: str = ""

    @property
    def failed(self) -> bool:
        """Whether the child ended without doing its work."""
        return self.result not in ("Completed", "Quarantined")


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
            outcome.problem
            or ", ".join(f"{c.replace('_', ' ')} {getattr(outcome, c)}" for c in COUNT_COLUMNS),
        )
        update_progress_artifact(progress, 100.0 * len(outcomes) / len(children))

    try:
        if on_workers():
            logger.info(
                "%d delivery reports, run by the work pool's workers (%s)", len(children), DELIVERY_DEPLOYMENT
            )
            run_on_workers(children, dry_run, kind, scope, finished)
        else:
            logger.info("%d delivery reports, run here one after the other", len(children))
            for child in children:
                finished(run_here(child, dry_run))
    finally:
        create_table_artifact(
            [asdict(outcome) for outcome in outcomes],
            key=f"{kind}-runs",
            description="What each delivery report run did: per merchant and window",
        )
    failed = [outcome for outcome in outcomes if outcome.failed]
    if failed:
        raise ChildRunsError(
            f"{len(failed)} of {len(children)} delivery reports did not finish: "
            + "; ".join(f"{o.merchant} {o.window} ({o.run}): {o.problem or o.result}" for o in failed[:5])
            + ". Each says why in its run; start the same command again to run them again."
        )
    return outcomes


def on_workers() -> bool:
    """Whether a Prefect server is configured and has the delivery-report deployment."""
    if not get_current_settings().api.url:
        return False
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DELIVERY_DEPLOYMENT)
        except ObjectNotFound:
            get_run_logger().info(
                "the Prefect server has no deployment %s (`prefect deploy --all` creates it): the delivery "
                "reports run here",
                DELIVERY_DEPLOYMENT,
            )
            return False
    return True


def run_here(child: ChildRun, dry_run: bool) -> ChildOutcome:
    """Run one child as a subflow of this run and say what it did."""
    state = delivery_report(**child.parameters(dry_run), return_state=True)  # type: ignore[call-overload]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id).name
    if state.is_completed():
        return ChildOutcome(
            child.merchant, child.window(), run, str(state.name), **counts_row(state.result())
        )
    return ChildOutcome(
        child.merchant, child.window(), run, str(state.name), problem=str(state.message or "")
    )


def idempotency_key(scope: str, child: ChildRun, dry_run: bool) -> str:
    """The key that makes a repeated fan-out find the child it created before."""
    return f"{scope}:{child.merchant}:{child.since}:{child.until}:{'dry-run' if dry_run else 'send'}"


def submit(client: SyncPrefectClient, child: ChildRun, dry_run: bool, kind: str, scope: str) -> uuid.UUID:
    """Create the child's run of the deployment, or find the one made before (run again if it ended)."""
    run: FlowRun = run_deployment(  # type: ignore[assignment]
        DELIVERY_DEPLOYMENT,
        parameters=child.parameters(dry_run),
        idempotency_key=idempotency_key(scope, child, dry_run),
        tags=[kind],
        timeout=0,
    )
    if run.state is not None and run.state.is_final():
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

    Raises ChildRunsError when no child has started for START_WAIT: no worker is taking the pool's runs.
    """
    waiting: dict[str, deque[ChildRun]] = {}
    for child in children:
        waiting.setdefault(child.merchant, deque()).append(child)
    with get_client(sync_client=True) as client:
        active: dict[uuid.UUID, ChildRun] = {}
        for queue in waiting.values():
            first = queue.popleft()
            active[submit(client, first, dry_run, kind, scope)] = first
        moved = time.monotonic()
        while active:
            time.sleep(POLL_SECONDS)
            for run_id, child in list(active.items()):
                run = client.read_flow_run(run_id)
                if run.state is None or not run.state.is_final():
                    if run.state is not None and not run.state.is_scheduled() and not run.state.is_pending():
                        moved = time.monotonic()
                    continue
                moved = time.monotonic()
                del active[run_id]
                finished(outcome_of(client, child, run))
                if waiting[child.merchant]:
                    following = waiting[child.merchant].popleft()
                    active[submit(client, following, dry_run, kind, scope)] = following
            if active and time.monotonic() - moved > START_WAIT.total_seconds():
                raise ChildRunsError(
                    f"no worker has taken a delivery report run in {START_WAIT.total_seconds() / 60:g} "
                    f"minutes ({len(active)} waiting, like {next(iter(active))}); start one with `prefect "
                    "worker start --pool local-process`: the runs stay queued, and the same command finds "
                    "them again"
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
    counts = json.loads(str(artifacts[0].data))[0]
    return ChildOutcome(
        child.merchant, child.window(), run.name, result, **{c: int(counts[c]) for c in COUNT_COLUMNS}
    )


def outcomes_markdown(outcomes: Sequence[ChildOutcome]) -> str:
    """The children's outcomes as a markdown table, with a total line, for the terminal."""
    columns = ("merchant", "window", "result", *COUNT_COLUMNS)
    lines = [
        "| " + " | ".join(column.replace("_", " ") for column in columns) + " |",
        "|" + "---|" * 3 + "---:|" * len(COUNT_COLUMNS),
    ]
    lines += ["| " + " | ".join(str(getattr(o, column)) for column in columns) + " |" for o in outcomes]
    totals = [str(sum(getattr(o, column) for o in outcomes)) for column in COUNT_COLUMNS]
    lines.append(f"| **{len(outcomes)} runs** | | | " + " | ".join(totals) + " |")
    return "\n".join(lines)

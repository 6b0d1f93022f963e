"""A delivery run from start to end: window, the merchant's lock and lease, plan, chunks, finish.

The one owner of a run's lifecycle, free of Prefect: the delivery-report flow, `sequra-etl adopt` and the
tests all run through DeliveryRun. It works with the run's resources (one state store, one shop engine, one
SeQura client) and hands them to the stages. What Prefect adds (a task per step, a progress bar, marking a
dead run Crashed) reaches it only through Steps.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path

from schemas.errors import RunStoppedError
from schemas.outcomes import ROWS_SHOWN, DeliveryOutcome
from schemas.settings import Settings
from schemas.state import RunStatus
from tasks.delivery.build import platform_block
from tasks.delivery.chunk import ChunkRows, ChunkWork, RunContext, deliver_chunk
from tasks.delivery.dry_run import finish_dry_run_file, start_dry_run_file
from tasks.delivery.load import send_statistics_alone
from tasks.delivery.plan import DeliveryPlan, plan_delivery
from tasks.delivery.read_ahead import ReadAhead, worker_processes
from tasks.delivery.statistics import StatisticsBlock, statistics_of_run, why_not_due
from tasks.delivery.summary import DeliverySummary
from tasks.resources import RunResources
from tasks.state.locks import TakenOver, lease_kept
from tasks.state.privacy import erase_expired
from tasks.state.quarantine import references_to_retry
from tasks.state.runs import (
    finish_run,
    forget_chunks,
    last_successful_until,
    record_statistics_sent,
    start_run,
)
from tasks.state.store import StateStore
from tasks.window import Window, resolve_window

LOG = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter
Moment = datetime | date | str | None


class Steps:
    """How a run's steps are carried out: here, one after the other. The flow makes each a Prefect task."""

    def plan(self, step: Callable[[], DeliveryPlan]) -> DeliveryPlan:
        """Carry out the plan step."""
        return step()

    def chunk(self, number: int, step: Callable[[Log], DeliveryOutcome]) -> DeliveryOutcome:
        """Carry out one chunk's step, giving it a logger."""
        return step(LOG)

    def chunk_done(self, done: int, chunks: int) -> None:
        """Say that `done` of the run's `chunks` are done."""

    def waiting(self, message: str) -> None:
        """Say that the run waits for its merchant's lock, and for which run."""
        LOG.info(message)

    def took_over(self, flow_run_id: str, why: str) -> None:
        """Say that the run took the lock of a dead run, whose flow run this was."""

    def holder_ended(self, flow_run_id: str) -> bool:
        """Whether the flow run that holds the merchant's lock is known to have ended (here: never known)."""
        return False


def run_window(store: StateStore, settings: Settings, since: Moment, until: Moment, now: datetime) -> Window:
    """The run's window: its bounds, or the last successful run's end less the overlap to `now`; reads."""
    return resolve_window(
        since,
        until,
        last_until=last_successful_until(store, settings.merchant_id or ""),
        now=now,
        overlap=timedelta(minutes=settings.overlap_minutes),
        first_run=timedelta(days=settings.first_run_days),
    )


@dataclass
class DeliveryRun:
    """One run over one window for one merchant: lock, plan, chunks and finish, with the run's resources.

    `dry_run_file` makes it a dry run (built and diffed, written there, nothing sent or recorded); `work` is
    what it does with each chunk (deliver it, or adopt it). `retry_quarantined` also reads the merchant's
    orders waiting in quarantine, in flight or owed an update that the window does not find.
    """

    resources: RunResources
    window: Window
    dry_run_file: Path | None = None
    retry_quarantined: bool = True
    flow_run_id: str | None = None
    work: ChunkWork = deliver_chunk

    def __post_init__(self) -> None:
        self.run_id = str(uuid.uuid4())
        self._retried: frozenset[str] = frozenset()  # read by the plan, once
        self._statistics: StatisticsBlock | None = None  # made with the run's context

    @property
    def dry_run(self) -> bool:
        """Whether the run only builds and diffs."""
        return self.dry_run_file is not None

    @property
    def sends(self) -> bool:
        """Whether the run sends to SeQura: a real run that delivers (not a dry run, not an adoption)."""
        return not self.dry_run and self.work is deliver_chunk

    def run(self, steps: Steps | None = None) -> DeliverySummary:
        """Take the merchant's lock, plan, deliver every chunk, and record the run; what it did.

        Writes the state store (a dry run only its chunks of references, forgotten at the end). An error
        before the run began (the lock held past SEQURA_LOCK_WAIT_SECONDS) is raised as it is; one after is
        raised as RunStoppedError, with the summary of what the run did before it stopped.
        """
        steps = steps or Steps()
        resources = self.resources
        dead = self._begin(steps)
        plan: DeliveryPlan | None = None
        done, chunks_done = DeliveryOutcome(), 0
        try:
            if dead and dead.flow_run_id and dead.flow_run_id != self.flow_run_id:  # not its own attempt
                steps.took_over(dead.flow_run_id, f"{dead.why}; run {self.run_id} took over")
            with self._lease():
                self._erase_expired()
                plan = steps.plan(self._plan)
                context = self._context(plan)
                try:
                    for number in range(plan.chunks):
                        wanted = rows_wanted(context, done)
                        done += steps.chunk(number, partial(self.work, wanted, number))
                        chunks_done += 1
                        steps.chunk_done(chunks_done, plan.chunks)
                finally:
                    context.read_ahead.close()
                done += self._statistics_alone(context)
            if self.dry_run_file is not None:
                finish_dry_run_file(self.dry_run_file, context.statistics.block(), context.platform)
                context.statistics.written()
            summary = self._summary(done, plan, plan.chunks)
            if not self.dry_run:
                finish_run(resources.store, self.run_id, RunStatus.SUCCEEDED, done.counts)
            return summary
        except Exception as error:
            why = f"{type(error).__name__}: {error}"
            if not self.dry_run:
                quietly(
                    "record the run as failed",
                    lambda: finish_run(resources.store, self.run_id, RunStatus.FAILED, message=why),
                )
            raise RunStoppedError(error, self._summary(done, plan, chunks_done, stopped=why)) from error
        finally:
            quietly("forget the run's chunks", lambda: forget_chunks(resources.store, self.run_id))

    def _begin(self, steps: Steps) -> TakenOver | None:
        """Take the lock and record the start of a real run; returns the dead run it took over, if any."""
        if self.dry_run:
            return None
        settings = self.resources.settings
        return start_run(
            self.resources.store,
            self.run_id,
            self.resources.merchant,
            self.window,
            dry_run=False,
            flow_run_id=self.flow_run_id,
            lease=settings.run_lease(),
            wait=settings.lock_wait(),
            waiting=steps.waiting,
            holder_ended=steps.holder_ended,
        )

    def _lease(self) -> AbstractContextManager[None]:
        """Keep the run's lease alive while the block runs (a real run)."""
        if self.dry_run:
            return nullcontext()
        return lease_kept(
            self.resources.store, self.resources.merchant, self.run_id, self.resources.settings.run_lease()
        )

    def _erase_expired(self) -> None:
        """A real run first erases its merchant's buyer data older than STATE_RETENTION_DAYS; logs how much.

        Done while the run holds its merchant's lock, so no run of the merchant writes those rows meanwhile,
        and before anything can stop the run, so an outage of SeQura or the shop does not delay it.
        """
        if self.dry_run:
            return
        resources = self.resources
        days = resources.settings.retention_days
        erased = erase_expired(resources.store, resources.merchant, days)
        resources.log.info(
            "buyer data older than %d days (STATE_RETENTION_DAYS) erased from the state store: %s",
            days,
            erased.in_words(),
        )

    def _plan(self) -> DeliveryPlan:
        """Read what to retry, find the window's references and keep them in chunks; reads both databases."""
        resources = self.resources
        self._retried = frozenset(references_to_retry(resources.store, resources.merchant))
        return plan_delivery(
            resources,
            self.run_id,
            self.window,
            dry_run=self.dry_run,
            retried=self._retried if self.retry_quarantined else (),
        )

    def _context(self, plan: DeliveryPlan) -> RunContext:
        """What every chunk of the run shares; begins the dry-run file."""
        resources = self.resources
        if self.dry_run_file is not None:
            start_dry_run_file(self.dry_run_file, resources.merchant)
        return RunContext(
            resources=resources,
            run_id=self.run_id,
            window=self.window,
            plan=plan,
            platform=platform_block(plan.config),
            statistics=self._statistics_block(plan),
            retried=self._retried,
            read_ahead=ReadAhead[ChunkRows](
                worker_processes(resources.settings.build_processes, plan.chunks)
            ),
            dry_run_file=self.dry_run_file,
        )

    def _statistics_block(self, plan: DeliveryPlan) -> StatisticsBlock:
        """The run's statistics block, due or not (a real run reads the store); read when first due."""
        resources = self.resources
        if self.sends:
            not_due = why_not_due(resources, self.window, plan.config.timezone)
        else:
            not_due = None if self.dry_run else "not sent: an adoption sends nothing"
        self._statistics = StatisticsBlock(
            partial(statistics_of_run, resources, plan.config, self.window),
            not_due,
            accepted=partial(record_statistics_sent, resources.store, self.run_id),
        )
        return self._statistics

    def _statistics_alone(self, context: RunContext) -> DeliveryOutcome:
        """A real run sends the due statistics block alone if no request took it; logs what became of it.

        After the chunks, before the run is recorded as succeeded.
        """
        if not self.sends:
            return DeliveryOutcome()
        block = context.statistics
        requests = send_statistics_alone(self.resources, context.platform, block, self.resources.log)
        self.resources.log.info("statistics: %s", block.said)
        return DeliveryOutcome(requests=requests)

    def _summary(
        self, done: DeliveryOutcome, plan: DeliveryPlan | None, chunks: int, stopped: str | None = None
    ) -> DeliverySummary:
        """What the run did."""
        return DeliverySummary(
            run_id=self.run_id,
            merchant=self.resources.merchant,
            window=self.window,
            dry_run=self.dry_run,
            outcome=done if plan is None else done + DeliveryOutcome(seconds={"plan": plan.seconds}),
            chunks=chunks,
            incremental=plan is not None and plan.incremental and stopped is None,
            dry_run_file=str(self.dry_run_file) if self.dry_run_file is not None else None,
            stopped=stopped,
            timezone=plan.config.timezone if plan is not None else "UTC",
            statistics=self._statistics_in_words(stopped),
        )

    def _statistics_in_words(self, stopped: str | None) -> str | None:
        """What became of the run's statistics block, in words; None before the run had one."""
        block = self._statistics
        if block is None:
            return None
        if block.said is None and stopped:
            return "not sent: the run stopped first; the next run today sends them"
        return block.said


def rows_wanted(context: RunContext, done: DeliveryOutcome) -> RunContext:
    """The run's context for its next chunk: the rows its tables still keep, after what is `done`."""
    return replace(
        context,
        sent_rows_wanted=ROWS_SHOWN - len(done.sent_rows),
        update_rows_wanted=ROWS_SHOWN - len(done.update_rows),
    )


def quietly(what: str, step: Callable[[], object]) -> None:
    """Run a step of a failing run's cleanup; its own error is logged, never raised over the run's."""
    try:
        step()
    except Exception as error:
        LOG.warning("could not %s: %s: %s", what, type(error).__name__, error)

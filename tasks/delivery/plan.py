"""The plan of a run: the order references it reads, kept in chunks in the state store."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from schemas.frames import ShopConfig
from tasks.extract.candidates import CandidateSearch, candidate_references, high_water_marks
from tasks.extract.configuration import shop_local, shop_local_bounds
from tasks.resources import RunResources
from tasks.state.runs import last_marks, record_marks, store_chunks
from tasks.window import Window


@dataclass(frozen=True)
class DeliveryPlan:
    """What a run will read: how many references, in how many chunks, and whether above the last marks."""

    run_id: str
    references: int
    chunks: int
    incremental: bool
    config: ShopConfig
    seconds: float


def plan_delivery(
    resources: RunResources,
    run_id: str,
    window: Window,
    *,
    dry_run: bool,
    retried: Collection[str] = (),
) -> DeliveryPlan:
    """Find the references the run must read and keep them in chunks; reads the shop, writes run_chunks.

    A scheduled run (its window follows the last successful run) reads the shop's order_history and
    order_slip above that run's high-water marks instead of scanning them by date. `retried` (quarantined,
    in flight, owed an update) are read too when the search does not find them. A real run that the
    schedule may go on from records its own marks, for the next one.
    """
    started = time.monotonic()
    settings, store = resources.settings, resources.store
    config = resources.shop_config()
    marks = last_marks(store, resources.merchant) if window.follows_last_run else None
    search = CandidateSearch(
        resources.tables,
        resources.order_filter,
        config.reporting_states,
        *shop_local_bounds(window.since, window.until, config.timezone),
        marks=marks,
    )
    left = set(retried)

    def references() -> Iterator[Sequence[str]]:
        for found in candidate_references(resources.shop, search, settings.chunk_size):
            left.difference_update(found)
            yield found
        yield sorted(left)  # quarantined or in flight, and not found again by this search

    chunks, count = store_chunks(store, run_id, references(), settings.chunk_size)
    if not dry_run and window.continues:
        cutoff = shop_local(window.until - timedelta(minutes=settings.overlap_minutes), config.timezone)
        record_marks(store, run_id, high_water_marks(resources.shop, resources.tables, marks, cutoff))
    return DeliveryPlan(run_id, count, chunks, marks is not None, config, time.monotonic() - started)

"""The plan of a run: the order references it reads, kept in chunks in the state store."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from schemas.frames import ShopConfig
from schemas.shown import shown
from tasks.extract.candidates import (
    Candidate,
    CandidateSearch,
    candidates_among,
    found_candidates,
    high_water_marks,
    in_scope_now,
)
from tasks.extract.configuration import shop_local, shop_local_bounds
from tasks.resources import RunResources
from tasks.state.owners import owners_of
from tasks.state.quarantine import resolve_quarantine
from tasks.state.runs import last_marks, record_marks, store_chunks
from tasks.window import Window

ORPHANS_NAMED = 20  # orders a warning names, of those whose merchant is gone

Keep = Callable[[Sequence[Candidate]], list[str]]
"""Which of a batch of candidates a run reads: the merchant's orders."""


@dataclass(frozen=True)
class DeliveryPlan:
    """What a run will read: how many references, in how many chunks, and whether above the last marks."""

    run_id: str
    references: int
    chunks: int
    incremental: bool
    config: ShopConfig
    seconds: float


def merchants_orders(resources: RunResources, found: Sequence[Candidate]) -> list[str]:
    """The references of `found` that are the run's merchant's; reads the store, a batch a query.

    An order belongs to the merchant that reported it (or adopted it, or sent it without an answer yet),
    wherever it is delivered now and however the merchants are split now; an order no merchant has
    belongs to the merchant whose countries it is delivered to now. Logs a warning naming the orders whose
    merchants are all gone from SEQURA_MERCHANTS: their changes reach SeQura under no merchant.
    """
    merchant = resources.merchant
    owners = owners_of(resources.store, [candidate.reference for candidate in found])
    configured = {account.merchant_id for account in resources.settings.merchants} | {merchant}
    orphans = sorted(reference for reference, who in owners.items() if not who & configured)
    if orphans:
        gone = sorted({who for reference in orphans for who in owners[reference]})
        resources.log.warning(
            "%d orders changed whose merchant is no longer in SEQURA_MERCHANTS (%s), so no run sends their "
            "changes: %s; add the merchant back to SEQURA_MERCHANTS to send them",
            len(orphans),
            ", ".join(map(shown, gone)),
            ", ".join(map(shown, orphans[:ORPHANS_NAMED])) + (" …" if len(orphans) > ORPHANS_NAMED else ""),
        )
    return [
        candidate.reference
        for candidate in found
        if merchant in owners.get(candidate.reference, ())
        or (candidate.in_scope and candidate.reference not in owners)
    ]


def _no_longer_the_merchants(
    resources: RunResources, search: CandidateSearch, keep: Keep, retried: Collection[str], *, dry_run: bool
) -> set[str]:
    """Which of `retried` are SeQura orders no longer the merchant's; closes their quarantine, reads the shop.

    Such an order was quarantined before it reached SeQura, and is now delivered to another merchant's
    countries or reported by another merchant: that merchant reports it. A dry run closes nothing.
    """
    among = candidates_among(resources.shop, search, sorted(retried))
    others = {candidate.reference for candidate in among} - set(keep(among))
    if others and not dry_run:
        store = resources.store
        with store.engine.begin() as conn:
            resolve_quarantine(conn, resources.merchant, sorted(others), store.now())
    return others


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
    in flight, owed an update) are read too when the search does not find them. Where merchants are told
    by delivery country, the run reads the orders that are its merchant's (see `merchants_orders`); a
    quarantined order that is no longer the merchant's is resolved (unless `dry_run`). A real run that the
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
    by_country = resources.order_filter.by_country
    keep: Keep = partial(merchants_orders, resources) if by_country else in_scope_now
    left = set(retried)

    def references() -> Iterator[Sequence[str]]:
        for found in found_candidates(resources.shop, search, settings.chunk_size):
            kept = keep(found)
            left.difference_update(kept)
            yield kept
        if by_country and left:
            left.difference_update(_no_longer_the_merchants(resources, search, keep, left, dry_run=dry_run))
        yield sorted(left)  # quarantined or in flight, and not found again by this search

    chunks, count = store_chunks(store, run_id, references(), settings.chunk_size)
    if not dry_run and window.continues:
        cutoff = shop_local(window.until - timedelta(minutes=settings.overlap_minutes), config.timezone)
        record_marks(store, run_id, high_water_marks(resources.shop, resources.tables, marks, cutoff))
    return DeliveryPlan(run_id, count, chunks, marks is not None, config, time.monotonic() - started)

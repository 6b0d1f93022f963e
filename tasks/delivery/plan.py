"""The plan of a run: the order references it reads, kept in chunks in the state store."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from schemas.frames import ShopConfig
from schemas.prestashop import shop_tables
from schemas.settings import Settings
from tasks.extract.candidates import CandidateSearch, candidate_references, high_water_marks
from tasks.extract.configuration import read_config, shop_local, shop_local_bounds
from tasks.extract.connection import shop_engine
from tasks.extract.scope import OrderFilter
from tasks.state.quarantine import references_to_retry
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


def order_filter_of(settings: Settings) -> OrderFilter:
    """Which orders are the merchant's SeQura orders, from the settings."""
    return OrderFilter(
        settings.payment_modules, settings.shop_id, settings.delivery_countries, settings.claimed_elsewhere
    )


def plan_delivery(
    settings: Settings,
    store: Engine,
    run_id: str,
    window: Window,
    *,
    dry_run: bool,
    retry_quarantined: bool = True,
) -> DeliveryPlan:
    """Find the references the run must read and keep them in chunks; reads the shop, writes run_chunks.

    A scheduled run (its window follows the last successful run) reads the shop's order_history and
    order_slip above that run's high-water marks instead of scanning them by date. A real run that the
    schedule may go on from records its own marks, for the next one.
    """
    started = time.monotonic()
    assert settings.shop_db_url is not None
    merchant = settings.merchant_id or ""
    engine = shop_engine(settings.shop_db_url, fast=settings.fast_reader)
    tables = shop_tables(settings.shop_table_prefix)
    try:
        config = read_config(engine, tables, settings.shop_id)
        marks = last_marks(store, merchant) if window.follows_last_run else None
        search = CandidateSearch(
            tables,
            order_filter_of(settings),
            config.shipped_states,
            *shop_local_bounds(window.since, window.until, config.timezone),
            marks=marks,
        )
        retried = set(references_to_retry(store, merchant)) if retry_quarantined else set()

        def references() -> Iterator[Sequence[str]]:
            for found in candidate_references(engine, search, settings.chunk_size):
                retried.difference_update(found)
                yield found
            yield sorted(retried)  # quarantined or in flight, and not found again by this search

        chunks, count = store_chunks(store, run_id, references(), settings.chunk_size)
        if not dry_run and window.continues:
            cutoff = shop_local(window.until - timedelta(minutes=settings.overlap_minutes), config.timezone)
            record_marks(store, run_id, high_water_marks(engine, tables, marks, cutoff))
    finally:
        engine.dispose()
    return DeliveryPlan(run_id, count, chunks, marks is not None, config, time.monotonic() - started)

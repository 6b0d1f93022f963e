"""Owners: the merchants an order belongs to, those SeQura has it (or may have it) under."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import CompoundSelect, select, union

from schemas import state
from tasks.rows import in_chunks
from tasks.state.store import KEYS_PER_QUERY, StateStore


def owners_query(references: Sequence[str]) -> CompoundSelect:
    """(reference, merchant) of every snapshot and every report in flight of `references`, by their index."""
    return union(
        *(
            select(table.c.reference, table.c.merchant).where(table.c.reference.in_(references))
            for table in (state.order_snapshots, state.in_flight)
        )
    )


def owners_of(store: StateStore, references: Sequence[str]) -> Mapping[str, frozenset[str]]:
    """Per shop reference, the merchants it belongs to; reads the store, one query per KEYS_PER_QUERY.

    A merchant owns an order it reported (a snapshot, adopted ones too) or sent without an answer yet (in
    flight). References no merchant owns are left out.
    """
    owners: dict[str, set[str]] = {}
    with store.engine.connect() as conn:
        for part in in_chunks(sorted(set(references)), KEYS_PER_QUERY):
            for reference, merchant in conn.execute(owners_query(part)):
                owners.setdefault(reference, set()).add(merchant)
    return {reference: frozenset(merchants) for reference, merchants in owners.items()}

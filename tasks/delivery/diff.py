"""Diff: compare each built order report with what SeQura last acknowledged for it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import Engine

from schemas.reports import BuiltReport, Change, ClassifiedReport
from tasks.state.snapshots import last_answers


def classify(
    reports: Sequence[BuiltReport], sent_fingerprints: Mapping[str, str], not_at_sequra: Collection[str] = ()
) -> list[ClassifiedReport]:
    """NEW (never reported), CHANGED (reported, different now) or UNCHANGED, by fingerprint.

    An order the PHP module marked as sent (ps_sequra_order) and that this project never sent counts as
    already reported, so it is UNCHANGED rather than NEW. One of `not_at_sequra` (SeQura answered 404 to its
    cancellation: it holds no such order) is NEW again once it is more than that cancellation.
    """
    classified = []
    for built in reports:
        previous = sent_fingerprints.get(built.order_ref_1)
        if built.order_ref_1 in not_at_sequra and previous != built.fingerprint:
            previous = None
        if previous is None:
            change = Change.UNCHANGED if built.reported_by_module else Change.NEW
        else:
            change = Change.UNCHANGED if previous == built.fingerprint else Change.CHANGED
        classified.append(ClassifiedReport(built, change, previous))
    return classified


def of_kind(classified: Sequence[ClassifiedReport], change: Change) -> list[ClassifiedReport]:
    """The classified reports with one verdict."""
    return [item for item in classified if item.change is change]


def diff_against_last_report(
    store: Engine, merchant: str, reports: Sequence[BuiltReport]
) -> list[ClassifiedReport]:
    """Classify each report against the snapshot SeQura last acknowledged; reads the state store."""
    order_refs = [built.order_ref_1 for built in reports]
    sent, unknown = last_answers(store, merchant, order_refs)
    return classify(reports, sent, unknown)

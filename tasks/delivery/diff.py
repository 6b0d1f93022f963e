"""Diff: compare each built order report with what SeQura last acknowledged for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Engine

from schemas.reports import BuiltReport, Change, ClassifiedReport
from tasks.state.snapshots import sent_fingerprints


def classify(reports: Sequence[BuiltReport], sent_fingerprints: Mapping[str, str]) -> list[ClassifiedReport]:
    """NEW (never reported), CHANGED (reported, different now) or UNCHANGED, by fingerprint.

    An order the PHP module marked as sent (ps_sequra_order) and that this project never sent counts as
    already reported, so it is UNCHANGED rather than NEW.
    """
    classified = []
    for built in reports:
        previous = sent_fingerprints.get(built.order_ref_1)
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
    return classify(reports, sent_fingerprints(store, merchant, [built.order_ref_1 for built in reports]))

"""Reading SeQura's disbursements: each one it lists that the store has not read is fetched once and kept."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.resources import RunResources
from tasks.state.disbursements import disbursements_read, record_disbursement


@dataclass(frozen=True)
class DisbursementsRead:
    """What one reading found: disbursements SeQura lists, those read now, and their order lines."""

    listed: int
    new: int
    lines: int


def read_new_disbursements(resources: RunResources) -> DisbursementsRead:
    """Fetch and keep the detail of every listed disbursement not read before; reads SeQura, writes the store.

    Oldest period first, each is kept in its own transaction, with its lines and raw detail, as soon as it is
    read: a reading stopped half way keeps what it read, and the next one fetches only the rest.
    """
    client = resources.sequra()
    store, merchant = resources.store, resources.merchant
    listed = client.disbursements()
    known = disbursements_read(store, merchant)
    unique = {disbursement.reference: disbursement for disbursement in listed}.values()  # listed twice: once
    new = sorted(
        (disbursement for disbursement in unique if disbursement.reference not in known),
        key=lambda disbursement: (disbursement.to_date, disbursement.reference),
    )
    lines = 0
    for disbursement in new:
        detail = client.disbursement_lines(disbursement)
        record_disbursement(store, merchant, disbursement, detail.lines, detail.raw)
        lines += len(detail.lines)
    return DisbursementsRead(listed=len(unique), new=len(new), lines=lines)

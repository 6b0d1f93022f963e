"""Disbursements: what SeQura paid the merchant, each disbursement read once and kept with its lines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from schemas import state
from schemas.payouts import Disbursement, DisbursementLine
from tasks.state.store import StateStore, existing_keys


def disbursements_read(store: StateStore, merchant: str) -> set[str]:
    """The references of the merchant's disbursements already read; reads the store."""
    table = state.disbursements
    with store.engine.connect() as conn:
        return set(conn.execute(select(table.c.reference).where(table.c.merchant == merchant)).scalars())


def record_disbursement(
    store: StateStore,
    merchant: str,
    disbursement: Disbursement,
    lines: Sequence[DisbursementLine],
    detail: str,
) -> None:
    """Keep one disbursement, its raw detail, its lines and each order's new sum, in one transaction.

    Writes disbursements, disbursement_lines and order_payouts. A disbursement already kept is left as it was
    (SeQura's transfers do not change once made), also when another check kept it meanwhile.
    """
    try:
        _keep(store, merchant, disbursement, lines, detail)
    except IntegrityError:  # another check of the merchant kept it first: the same transfer, kept once
        if disbursement.reference not in disbursements_read(store, merchant):
            raise


def _keep(
    store: StateStore,
    merchant: str,
    disbursement: Disbursement,
    lines: Sequence[DisbursementLine],
    detail: str,
) -> None:
    """Insert the disbursement, its order sums and its lines unless kept already (one transaction)."""
    table = state.disbursements
    with store.engine.begin() as conn:
        kept = select(table.c.reference).where(
            table.c.merchant == merchant, table.c.reference == disbursement.reference
        )
        if conn.execute(kept).first() is not None:
            return
        conn.execute(
            insert(table).values(
                merchant=merchant,
                reference=disbursement.reference,
                issue_date=disbursement.issue_date,
                to_date=disbursement.to_date,
                currency=disbursement.currency,
                disbursed_amount=disbursement.disbursed_amount,
                adjustments_with_tax=disbursement.adjustments_with_tax,
                path=disbursement.path,
                detail=detail,
                read_at=store.now(),
            )
        )
        if lines:
            add_to_order_payouts(conn, merchant, disbursement.currency, lines)
            conn.execute(
                insert(state.disbursement_lines),
                [
                    {
                        "merchant": merchant,
                        "disbursement": disbursement.reference,
                        "order_ref_1": line.order_ref_1,
                        "amount_with_tax": line.amount_with_tax,
                        "maximum_amount_with_tax": line.maximum_amount_with_tax,
                    }
                    for line in lines
                ],
            )


def add_to_order_payouts(
    conn: Connection, merchant: str, currency: str, lines: Sequence[DisbursementLine]
) -> None:
    """Add one disbursement's lines to each order's sum in order_payouts; writes the store.

    An order already paid gets its lines added in the database (disbursed = disbursed + amount), so a sum is
    never read and written back over another check's addition.
    """
    table = state.order_payouts
    sums: dict[str, int] = defaultdict(int)
    for line in lines:
        sums[line.order_ref_1] += line.amount_with_tax
    paid_before = existing_keys(conn, table, merchant, "order_ref_1", list(sums))
    added = [{"paid_order": ref, "amount": amount} for ref, amount in sums.items() if ref in paid_before]
    if added:
        conn.execute(
            update(table)
            .where(table.c.merchant == merchant, table.c.order_ref_1 == bindparam("paid_order"))
            .values(disbursed=table.c.disbursed + bindparam("amount"), currency=currency),
            added,
        )
    first = [
        {"merchant": merchant, "order_ref_1": ref, "disbursed": amount, "currency": currency}
        for ref, amount in sums.items()
        if ref not in paid_before
    ]
    if first:
        conn.execute(insert(table), first)

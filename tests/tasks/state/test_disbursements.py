"""Disbursements in the state store: each read once, kept with its lines and its raw detail."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from schemas import state
from schemas.payouts import Disbursement, DisbursementLine
from tasks.state import disbursements
from tasks.state.disbursements import disbursements_read, record_disbursement
from tasks.state.store import open_state_store

MERCHANT = "demo_merchant"
PAID = Disbursement(
    reference="0000008mlHWOC",
    issue_date=date(2014, 12, 2),
    to_date=date(2014, 11, 16),
    currency="EUR",
    disbursed_amount=34234,
    adjustments_with_tax=0,
    path="/merchants/demo_merchant/disbursements/c6105f92-5718-4355-9f5b-56b24fe19baa",
)
LINES = (DisbursementLine("N12", 1300, 1800), DisbursementLine("N13", -1000, None))


def test_a_disbursement_is_kept_once_with_its_lines_and_raw_detail(state_url: str) -> None:
    store = open_state_store(state_url)
    detail = '{"disbursement": {"orders": []}}'

    record_disbursement(store, MERCHANT, PAID, LINES, detail)
    record_disbursement(store, MERCHANT, PAID, LINES, detail)  # read again: nothing added

    assert disbursements_read(store, MERCHANT) == {"0000008mlHWOC"}
    assert disbursements_read(store, "another_merchant") == set()
    with store.engine.connect() as conn:
        kept = conn.execute(select(state.disbursements)).one()
        lines = conn.execute(
            select(
                state.disbursement_lines.c.order_ref_1,
                state.disbursement_lines.c.amount_with_tax,
                state.disbursement_lines.c.maximum_amount_with_tax,
            ).order_by(state.disbursement_lines.c.order_ref_1)
        ).all()
    assert (kept.to_date, kept.disbursed_amount, kept.detail) == (date(2014, 11, 16), 34234, detail)
    assert [tuple(line) for line in lines] == [("N12", 1300, 1800), ("N13", -1000, None)]
    store.dispose()


def test_a_disbursement_another_check_kept_first_is_kept_once_and_any_other_error_is_raised(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_state_store(state_url)
    keep = disbursements._keep

    def kept_meanwhile(*arguments: object) -> None:
        keep(*arguments)  # the other check's transaction, committed first
        raise IntegrityError("INSERT INTO disbursements", {}, Exception("Duplicate entry"))

    monkeypatch.setattr(disbursements, "_keep", kept_meanwhile)
    record_disbursement(store, MERCHANT, PAID, LINES, "{}")  # no error: the same transfer, kept once
    assert disbursements_read(store, MERCHANT) == {"0000008mlHWOC"}

    def refused(*arguments: object) -> None:
        raise IntegrityError("INSERT INTO disbursement_lines", {}, Exception("cannot be null"))

    monkeypatch.setattr(disbursements, "_keep", refused)
    with pytest.raises(IntegrityError):
        record_disbursement(store, MERCHANT, replace(PAID, reference="0000008OTHER"), LINES, "{}")
    store.dispose()

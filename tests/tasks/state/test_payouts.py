"""The payout check in the state store: snapshots against disbursement lines, on every backend."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from schemas.payouts import Disbursement, DisbursementLine, Finding
from tasks.state.disbursements import record_disbursement
from tasks.state.in_flight import StateLedger, record_sent
from tasks.state.payouts import (
    CurrencyTotals,
    paid_periods,
    payout_findings,
    payout_totals,
    unpaid_past_grace,
)
from tasks.state.runs import finish_run, start_run
from tasks.state.snapshots import NOT_AT_SEQURA, SENT_BY_MODULE, keep_snapshots
from tasks.state.store import StateStore, open_state_store
from tasks.window import Window
from tests.cases import built_report

MERCHANT = "demo_merchant"
SHIPPED = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)  # tests.cases' sent_at
DUE_BEFORE = datetime.now(UTC) + timedelta(
    days=1
)  # after the shipments, and the store's clock reporting them


def paid(
    store: StateStore, reference: str, to_date: date, *lines: tuple[str, int], merchant: str = MERCHANT
) -> None:
    """Keep one disbursement of `merchant` paying `lines` (order_ref_1, cents)."""
    disbursement = Disbursement(
        reference, to_date + timedelta(days=7), to_date, "EUR", sum(c for _, c in lines), 0, f"/x/{reference}"
    )
    record_disbursement(
        store, merchant, disbursement, [DisbursementLine(ref, cents, None) for ref, cents in lines], "{}"
    )


def reported(store: StateStore, *orders: tuple[str, int]) -> None:
    """Let SeQura acknowledge reports of `orders` (order_ref_1, shipped total in cents), as a run does."""
    run_id = str(uuid.uuid4())
    start_run(
        store, run_id, MERCHANT, Window(SHIPPED, SHIPPED + timedelta(days=1)), dry_run=False, flow_run_id=None
    )
    record_sent(store, run_id, MERCHANT, [built_report(ref, total) for ref, total in orders])
    finish_run(store, run_id, "succeeded")


def sending(store: StateStore, order_ref_1: str, total: int = 2495) -> None:
    """Note a report of `order_ref_1` as sent, whose answer never came (in flight)."""
    run_id = str(uuid.uuid4())
    window = Window(SHIPPED, SHIPPED + timedelta(days=1))
    start_run(store, run_id, MERCHANT, window, dry_run=False, flow_run_id=None)
    StateLedger(store, run_id, MERCHANT).sending([built_report(order_ref_1, total)])


def test_each_finding_comes_from_the_store_and_orders_paid_as_reported_do_not(state_url: str) -> None:
    store = open_state_store(state_url)
    reported(store, ("PAIDRIGHT", 2495), ("PAIDTWICE", 2495), ("RETURNED1", 1000), ("LESSPAID1", 2495))
    reported(store, ("NEVERPAID", 2495))
    paid(store, "D1", date(2026, 11, 22), ("PAIDRIGHT", 2495), ("PAIDTWICE", 1000), ("RETURNED1", 2495))
    paid(store, "D1B", date(2026, 11, 22), ("LESSPAID1", 2000))
    paid(store, "D2", date(2026, 11, 29), ("PAIDTWICE", 1495), ("RETURNED1", -1495), ("STRANGER1", 500))
    paid(store, "D3", date(2026, 12, 6), ("WASHED001", 700), ("WASHED001", -700))  # paid and taken back

    found = list(payout_findings(store, MERCHANT, DUE_BEFORE))

    assert [
        (f.order_ref_1, f.finding, f.reported, f.disbursed, f.difference, f.disbursements) for f in found
    ] == [
        ("LESSPAID1", Finding.PAID_DIFFERS, 2495, 2000, -495, ("D1B",)),
        ("NEVERPAID", Finding.NOT_PAID, 2495, None, None, ()),
        ("STRANGER1", Finding.PAID_NOT_REPORTED, None, 500, None, ("D2",)),
    ]
    assert found[1].shipped_at == SHIPPED and found[1].currency == "EUR"
    assert paid_periods(store, MERCHANT).latest_to_date == date(2026, 12, 6)
    assert payout_totals(store, MERCHANT, DUE_BEFORE) == [
        CurrencyTotals("EUR", transferred=5990 + 2000 + 500 + 0, paid=8490, expected=2495 * 4 + 1000)
    ]
    store.dispose()


def test_an_order_is_due_only_once_shipped_and_reported_before_the_grace_ends(state_url: str) -> None:
    store = open_state_store(state_url)
    before = store.now()  # the store's clock: SeQura acknowledged the report between these two moments
    reported(store, ("LATEREPORT", 2495))
    after = store.now()

    assert list(payout_findings(store, MERCHANT, SHIPPED)) == []  # shipped at the moment: not before it
    assert list(payout_findings(store, MERCHANT, None)) == []  # no disbursement read: nothing is due
    assert list(payout_findings(store, MERCHANT, before - timedelta(seconds=1))) == []
    [late] = payout_findings(store, MERCHANT, after + timedelta(seconds=1))
    assert (late.order_ref_1, late.finding) == ("LATEREPORT", Finding.NOT_PAID)
    store.dispose()


def test_a_cancellation_sequra_still_paid_differs_and_one_it_never_held_counts_as_never_reported(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    reported(store, ("CANCELLED", 0), ("NOTATSEQ1", 0))
    with store.engine.begin() as conn:
        keep_snapshots(conn, "run-1", MERCHANT, [built_report("NOTATSEQ1", 0)], store.now(), NOT_AT_SEQURA)
    paid(store, "D1", date(2026, 11, 22), ("CANCELLED", 2495), ("NOTATSEQ1", 2495))

    found = {f.order_ref_1: f for f in payout_findings(store, MERCHANT, DUE_BEFORE)}

    assert {ref: (f.finding, f.reported) for ref, f in found.items()} == {
        "CANCELLED": (Finding.PAID_DIFFERS, 0),
        "NOTATSEQ1": (Finding.PAID_NOT_REPORTED, None),
    }
    assert found["CANCELLED"].what_to_do().startswith("SeQura paid an order it was told was cancelled")
    store.dispose()


def test_each_merchant_sees_only_its_own_disbursements_and_orders(state_url: str) -> None:
    store = open_state_store(state_url)
    reported(store, ("SPAINONE1", 2495))
    paid(store, "PT1", date(2026, 11, 22), ("SPAINONE1", 2495), merchant="demo_merchant_pt")
    paid(store, "ES1", date(2026, 11, 22), ("PORTUGAL1", 900), merchant=MERCHANT)

    mine = [(f.order_ref_1, f.finding) for f in payout_findings(store, MERCHANT, DUE_BEFORE)]
    theirs = [(f.order_ref_1, f.finding) for f in payout_findings(store, "demo_merchant_pt", DUE_BEFORE)]

    assert mine == [("SPAINONE1", Finding.NOT_PAID), ("PORTUGAL1", Finding.PAID_NOT_REPORTED)]
    assert theirs == [("SPAINONE1", Finding.PAID_NOT_REPORTED)]
    store.dispose()


def test_an_order_sent_without_an_answer_yet_and_paid_is_not_called_never_reported(state_url: str) -> None:
    store = open_state_store(state_url)
    sending(store, "INFLIGHT1")  # SeQura's answer was lost
    paid(store, "D1", date(2026, 11, 22), ("INFLIGHT1", 2495), ("STRANGER1", 500))

    found = [(f.order_ref_1, f.finding) for f in payout_findings(store, MERCHANT, DUE_BEFORE)]

    assert found == [("STRANGER1", Finding.PAID_NOT_REPORTED)]
    store.dispose()


def test_an_update_waiting_for_sequras_answer_is_no_payout_that_differs(state_url: str) -> None:
    store = open_state_store(state_url)
    reported(store, ("RETURNED1", 2495), ("LESSPAID1", 2495))
    paid(store, "D1", date(2026, 11, 22), ("RETURNED1", 2495), ("LESSPAID1", 2000))
    run_id = str(uuid.uuid4())
    start_run(
        store, run_id, MERCHANT, Window(SHIPPED, SHIPPED + timedelta(days=1)), dry_run=False, flow_run_id=None
    )
    StateLedger(store, run_id, MERCHANT).sending([built_report("RETURNED1", 1495)])  # a return, answer lost

    found = [(f.order_ref_1, f.finding) for f in payout_findings(store, MERCHANT, DUE_BEFORE)]

    assert found == [("LESSPAID1", Finding.PAID_DIFFERS)]
    store.dispose()


def test_a_module_baseline_paid_otherwise_says_the_baseline_was_built_here(state_url: str) -> None:
    store = open_state_store(state_url)
    with store.engine.begin() as conn:
        keep_snapshots(
            conn, "run-0", MERCHANT, [built_report("MODULE001", 2495)], store.now(), SENT_BY_MODULE
        )
    paid(store, "D1", date(2026, 11, 22), ("MODULE001", 2995))

    [found] = payout_findings(store, MERCHANT, DUE_BEFORE)

    assert (found.finding, found.baseline, found.difference) == (Finding.PAID_DIFFERS, True, 500)
    assert "the PrestaShop module reported before the switch" in found.what_to_do()
    store.dispose()


def test_orders_past_the_grace_that_no_disbursement_listed_can_call_unpaid_are_counted(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    reported(store, ("OVERDUE01", 2495), ("OVERDUE02", 2495), ("PAIDRIGHT", 2495))
    paid(store, "D1", date(2026, 11, 22), ("PAIDRIGHT", 2495))
    listed_end = datetime(2026, 11, 1, tzinfo=UTC)  # the latest period listed ended long before they shipped

    assert unpaid_past_grace(store, MERCHANT, DUE_BEFORE, listed_end) == 2
    assert unpaid_past_grace(store, MERCHANT, DUE_BEFORE, None) == 2  # no disbursement listed at all
    assert unpaid_past_grace(store, MERCHANT, DUE_BEFORE, DUE_BEFORE) == 0  # those are not_paid findings
    assert unpaid_past_grace(store, MERCHANT, SHIPPED, None) == 0  # not past the grace yet
    store.dispose()

"""The open quarantine: every order of a merchant SeQura has not confirmed, each once, oldest first."""

from __future__ import annotations

from schemas.reports import Change, ClassifiedReport, QuarantinedOrder, Stage
from tasks.state.in_flight import StateLedger
from tasks.state.order_changes import record_changes
from tasks.state.quarantine import open_quarantine, record_quarantine
from tasks.state.runs import start_run
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.cases import built_report
from tests.shops import SINCE, UNTIL

MERCHANT = "demo_merchant"


def test_the_open_quarantine_lists_quarantined_held_unanswered_and_owed_orders_each_once(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    record_quarantine(
        store, "run-1", MERCHANT, [QuarantinedOrder("BROKEN", "BROKEN", (7,), Stage.BUILD, "x; fix")]
    )
    ledger = StateLedger(store, "run-1", MERCHANT)
    ledger.sending([built_report("INFLIGHT"), built_report("REFUSED")])  # no answer to either report
    settle_refused = QuarantinedOrder(
        "REFUSED", "REFUSED", (8,), Stage.LOAD, "its settling update was refused; check"
    )
    record_quarantine(store, "run-1", MERCHANT, [settle_refused])  # still in flight, and quarantined
    held = QuarantinedOrder(
        "HELD", "HELD", (9,), Stage.UPDATE, "SeQura refused the update (409): no; release"
    )
    record_quarantine(store, "run-1", MERCHANT, [held])
    owed = ClassifiedReport(
        built_report("OWED", total=3000), Change.CHANGED, built_report("OWED").fingerprint
    )
    record_changes(store, "run-1", MERCHANT, [owed])  # its update not sent yet

    waiting, total = open_quarantine(store, MERCHANT, 10)
    first, shown = open_quarantine(store, MERCHANT, 2)
    store.dispose()

    assert sorted((order.order_ref_1, order.status) for order in waiting) == [
        ("BROKEN", "Quarantined"),
        ("HELD", "Update held"),
        ("INFLIGHT", "No answer yet"),
        ("OWED", "Update to send"),
        ("REFUSED", "Quarantined"),
    ]
    assert total == shown == 5
    assert [order.order_ref_1 for order in first] == [order.order_ref_1 for order in waiting[:2]]
    assert all("the next run" in order.reason for order in waiting if order.retried is None)

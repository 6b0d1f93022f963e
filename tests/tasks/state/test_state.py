from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, inspect, select, text, update

from schemas import state
from schemas.outcomes import DeliveryCounts
from schemas.payouts import Disbursement, DisbursementLine
from schemas.reports import BuildResult, Change, ClassifiedReport, QuarantinedOrder, Stage
from tasks.state import migrations
from tasks.state.disbursements import record_disbursement
from tasks.state.errors import RunInProgressError, StateStoreError
from tasks.state.in_flight import StateLedger, in_flight_of_run, record_sent, uncertain_deliveries
from tasks.state.locks import RUN_LEASE, free_lock, lease_kept
from tasks.state.order_changes import (
    record_changes,
    record_findings,
    record_update_refused,
    record_updated,
    release_refused_updates,
)
from tasks.state.quarantine import record_quarantine, references_to_retry
from tasks.state.releases import NotReleasableError, release_in_flight
from tasks.state.runs import (
    finish_run,
    lapsed_run,
    last_marks,
    last_successful_until,
    record_marks,
    start_run,
)
from tasks.state.snapshots import last_answers
from tasks.state.store import StateStore, open_state_store, state_tables
from tasks.window import Window
from tests.cases import built_report

MERCHANT = "demo_merchant"
SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 21, tzinfo=UTC)


def test_store_is_created_and_versioned_on_first_use(state_url: str) -> None:
    store = open_state_store(state_url)
    assert {"runs", "order_snapshots", "quarantine", "order_changes", "schema_version"} <= set(
        state_tables(store)
    )
    with store.engine.connect() as conn:
        assert conn.execute(select(state.schema_version.c.version)).scalars().all() == list(
            range(1, state.STATE_SCHEMA_VERSION + 1)
        )
    store.dispose()
    open_state_store(state_url).dispose()  # opening again migrates nothing twice


def test_a_version_1_store_gets_run_marks_chunks_and_update_outcomes(state_url: str) -> None:
    store = open_state_store(state_url)
    with store.engine.begin() as conn:  # back to version 1, as stores written before version 2 are
        for index in state.order_changes.indexes:
            index.drop(conn)
        for table, column in [
            ("runs", "marks"),
            ("runs", "updated_count"),
            ("order_changes", "outcome"),
            ("order_changes", "answered_at"),
        ]:
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("DROP TABLE run_chunks"))
        conn.execute(delete(state.schema_version).where(state.schema_version.c.version >= 2))
        conn.execute(  # a change a version 1 store recorded, which nothing ever sent
            text(
                "INSERT INTO order_changes (merchant, order_ref_1, reference, previous_fingerprint, "
                "fingerprint, payload, detected_at, run_id) VALUES (:merchant, 'OLD', 'OLD', 'a', 'b', '{}', "
                ":moment, 'run-0')"
            ),
            {"merchant": MERCHANT, "moment": datetime(2026, 1, 1)},
        )
    store.dispose()
    store = open_state_store(state_url)
    assert references_to_retry(store, MERCHANT) == ["OLD"]  # the first run after the upgrade sends it
    assert "run_chunks" in state_tables(store)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    record_marks(store, "run-1", {"order_history": 41, "order_slip": 2})
    finish_run(store, "run-1", "succeeded")
    assert last_marks(store, MERCHANT) == {"order_history": 41, "order_slip": 2}
    with store.engine.connect() as conn:
        assert conn.execute(select(state.runs.c.updated_count)).scalars().all() == [0]
        assert conn.execute(select(state.order_changes.c.outcome)).all() == [(None,)]
    assert {index["name"] for index in inspect(store.engine).get_indexes("order_changes")} >= {
        "ix_order_changes_reference",
        "ix_order_changes_outcome",
    }
    store.dispose()


def test_a_version_9_store_gets_what_each_snapshot_shipped_and_each_order_was_paid(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    record_sent(
        store, "run-1", MERCHANT, [built_report(f"R{number:04d}", 1000 + number) for number in range(5)]
    )
    paid = Disbursement("D1", date(2026, 12, 6), date(2026, 11, 29), "EUR", 1500, 0, "/x/D1")
    lines = [DisbursementLine("R0001", 1001, None), DisbursementLine("R0002", 500, None)]
    record_disbursement(store, MERCHANT, paid, lines, "{}")
    returned = [DisbursementLine("R0002", -500, None)]
    record_disbursement(store, MERCHANT, replace(paid, reference="D2"), returned, "{}")
    with store.engine.begin() as conn:  # back to version 9, as stores written before version 10 are
        for column in ("shipped_total", "currency", "shipped_at"):
            conn.execute(text(f"ALTER TABLE order_snapshots DROP COLUMN {column}"))
        conn.execute(text("DROP TABLE order_payouts"))
        conn.execute(delete(state.schema_version).where(state.schema_version.c.version >= 10))
    store.dispose()
    migrations.BACKFILL_BATCH, batch = 2, migrations.BACKFILL_BATCH  # three batches, the last one short
    try:
        store = open_state_store(state_url)
    finally:
        migrations.BACKFILL_BATCH = batch
    snapshots = state.order_snapshots
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                snapshots.c.order_ref_1,
                snapshots.c.shipped_total,
                snapshots.c.currency,
                snapshots.c.shipped_at,
            ).order_by(snapshots.c.order_ref_1)
        ).all()
    assert [tuple(row) for row in rows] == [
        (f"R{number:04d}", 1000 + number, "EUR", datetime(2026, 11, 20, 9, 15, tzinfo=UTC))
        for number in range(5)
    ]
    with store.engine.connect() as conn:
        payouts = conn.execute(
            select(state.order_payouts.c.order_ref_1, state.order_payouts.c.disbursed).order_by("order_ref_1")
        ).all()
    assert [tuple(row) for row in payouts] == [("R0001", 1001), ("R0002", 0)]
    store.dispose()


def test_a_store_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = open_state_store(url)
    with store.engine.begin() as conn:
        conn.execute(insert(state.schema_version).values(version=99, applied_at=datetime.now(UTC)))
    with pytest.raises(StateStoreError, match="newer than this code"):
        open_state_store(url)


def test_a_sqlite_store_commits_through_a_write_ahead_log_and_stays_durable(tmp_path: Path) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: a commit survives a crash
    store.dispose()


def test_snapshots_of_acknowledged_orders_are_upserted_with_the_run_count(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    record_sent(store, "run-1", MERCHANT, [built_report("AAA"), built_report("BBB")])
    changed = built_report("AAA", total=3000)
    record_sent(store, "run-1", MERCHANT, [changed])
    assert last_answers(store, MERCHANT, ["AAA", "BBB", "CCC"])[0] == {
        "AAA": changed.fingerprint,
        "BBB": built_report("BBB").fingerprint,
    }
    assert last_answers(store, "another_merchant", ["AAA"])[0] == {}
    with store.engine.connect() as conn:
        assert conn.execute(select(state.runs.c.sent_count)).scalar_one() == 3
    store.dispose()


def test_last_successful_until_ignores_failed_and_dry_runs(state_url: str) -> None:
    store = open_state_store(state_url)
    assert last_successful_until(store, MERCHANT) is None
    start_run(store, "ok", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    finish_run(store, "ok", "succeeded", DeliveryCounts())
    later = UNTIL + timedelta(days=1)
    start_run(store, "failed", MERCHANT, Window(UNTIL, later), dry_run=False, flow_run_id=None)
    finish_run(store, "failed", "failed", DeliveryCounts(), message="SeQura down")
    assert last_successful_until(store, MERCHANT) == UNTIL
    assert last_successful_until(store, "another_merchant") is None
    store.dispose()


def test_a_backfill_that_leaves_a_gap_does_not_move_where_scheduled_runs_go_on(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "scheduled", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    finish_run(store, "scheduled", "succeeded")
    gap = Window(UNTIL + timedelta(days=1), UNTIL + timedelta(days=2), continues=False)
    start_run(store, "backfill", MERCHANT, gap, dry_run=False, flow_run_id=None)
    finish_run(store, "backfill", "succeeded")
    assert last_successful_until(store, MERCHANT) == UNTIL
    store.dispose()


def test_a_second_run_for_the_same_merchant_is_refused_while_the_first_runs(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "first", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    with pytest.raises(RunInProgressError, match="run first for merchant demo_merchant"):
        start_run(store, "second", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    start_run(store, "other", "another_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    finish_run(store, "first", "succeeded")
    start_run(store, "third", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    store.dispose()


def test_a_crashed_run_stops_blocking_after_its_lease(state_url: str) -> None:
    store = open_state_store(state_url)
    with store.engine.begin() as conn:
        conn.execute(
            insert(state.run_locks).values(
                merchant=MERCHANT,
                run_id="crashed",
                renewed_at=datetime.now(UTC) - RUN_LEASE - timedelta(minutes=1),
            )
        )
    start_run(store, "next", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    with pytest.raises(RunInProgressError, match="run next for merchant"):
        start_run(store, "after", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    store.dispose()


def test_two_runs_starting_at_once_get_one_lock(state_url: str) -> None:
    store = open_state_store(state_url)
    outcomes: list[str] = []

    def start(run_id: str) -> None:
        try:
            start_run(store, run_id, MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
            outcomes.append("started")
        except RunInProgressError:
            outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(f"run-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "started"]
    store.dispose()


def test_quarantine_is_kept_until_the_order_is_sent(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    entry = QuarantinedOrder("BROKEN", "BROKEN", (7,), Stage.BUILD, "totals do not add up: items 1, order 2")
    record_quarantine(
        store, "run-1", MERCHANT, [entry, QuarantinedOrder("OTHER", "OTHER", (8,), Stage.LOAD, "x")]
    )
    record_quarantine(store, "run-1", MERCHANT, [entry])
    assert references_to_retry(store, MERCHANT) == ["BROKEN", "OTHER"]
    record_sent(store, "run-1", MERCHANT, [built_report("BROKEN")])
    record_findings(store, "run-1", MERCHANT, BuildResult(), [], retried=["OTHER"])  # it left the extract
    assert references_to_retry(store, MERCHANT) == []
    record_quarantine(store, "run-1", MERCHANT, [entry])
    assert references_to_retry(store, MERCHANT) == ["BROKEN"]
    store.dispose()


def _outcomes(store: StateStore) -> list[tuple[str, str | None]]:
    """(fingerprint prefix, outcome) of every change kept, in the order they were seen."""
    changes = state.order_changes
    with store.engine.connect() as conn:
        rows = conn.execute(select(changes.c.fingerprint, changes.c.outcome).order_by(changes.c.id)).all()
    return [(fingerprint[:8], outcome) for fingerprint, outcome in rows]


def test_each_distinct_change_is_kept_once_and_waits_to_be_sent(state_url: str) -> None:
    store = open_state_store(state_url)
    change = ClassifiedReport(
        built_report("AAA", total=3000), Change.CHANGED, built_report("AAA").fingerprint
    )

    assert record_changes(store, "run-1", MERCHANT, [change]) == set()
    assert record_changes(store, "run-2", MERCHANT, [change]) == set()

    with store.engine.connect() as conn:
        payload = conn.execute(select(state.order_changes.c.payload)).scalar_one()
    assert '"order_total_with_tax":3000' in payload
    assert _outcomes(store) == [(change.built.fingerprint[:8], None)]
    assert references_to_retry(store, MERCHANT) == ["AAA"]
    store.dispose()


def test_an_accepted_update_replaces_the_snapshot_and_settles_the_change(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    record_sent(store, "run-1", MERCHANT, [built_report("AAA")])
    changed = built_report("AAA", total=3000)
    record_changes(store, "run-1", MERCHANT, [ClassifiedReport(changed, Change.CHANGED, "old")])

    record_updated(store, "run-1", MERCHANT, [changed])

    assert last_answers(store, MERCHANT, ["AAA"])[0] == {"AAA": changed.fingerprint}
    assert _outcomes(store) == [(changed.fingerprint[:8], "sent")]
    assert references_to_retry(store, MERCHANT) == []
    with store.engine.connect() as conn:
        assert conn.execute(select(state.runs.c.updated_count)).scalar_one() == 1
    store.dispose()


def test_a_refused_update_is_held_until_the_order_changes_again_or_is_released(state_url: str) -> None:
    store = open_state_store(state_url)
    refused = ClassifiedReport(built_report("AAA", total=3000), Change.CHANGED, "snapshot")
    record_changes(store, "run-1", MERCHANT, [refused])
    entry = QuarantinedOrder("AAA", "AAA", (1,), Stage.UPDATE, "SeQura refused the update (409)")

    record_update_refused(store, "run-1", MERCHANT, entry, "refused")

    assert references_to_retry(store, MERCHANT) == []  # not read again every night
    assert record_changes(store, "run-2", MERCHANT, [refused]) == {"AAA"}
    again = ClassifiedReport(built_report("AAA", total=2000), Change.CHANGED, "snapshot")
    assert record_changes(store, "run-3", MERCHANT, [again]) == set()
    assert release_refused_updates(store, MERCHANT, ["AAA"]) == ["AAA"]
    assert record_changes(store, "run-4", MERCHANT, [refused]) == set()
    store.dispose()


def test_a_batch_noted_as_sending_stays_uncertain_until_settled(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    ledger = StateLedger(store, "run-1", MERCHANT)
    ledger.sending([built_report("AAA"), built_report("BBB"), built_report("CCC")])
    ledger.sent([built_report("AAA")])
    ledger.not_sent([built_report("BBB")])
    uncertain = uncertain_deliveries(store, MERCHANT, ["AAA", "BBB", "CCC"])
    assert list(uncertain) == ["CCC"]
    assert uncertain["CCC"].startswith("run run-1 sent it at ")
    store.dispose()


def test_orders_still_in_flight_are_read_again_whatever_the_window(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", MERCHANT).sending([built_report("INFLIGHT")])
    assert references_to_retry(store, MERCHANT) == ["INFLIGHT"]
    assert references_to_retry(store, "another_merchant") == []
    store.dispose()


def test_an_order_released_as_delivered_is_kept_as_sent_and_confirmed_by_an_update(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", MERCHANT).sending([built_report("AAA")])
    message = release_in_flight(store, MERCHANT, ["AAA"], delivered=True)
    assert message.startswith("recorded as delivered to SeQura, not to be reported again: AAA; the next run")
    assert last_answers(store, MERCHANT, ["AAA"])[0] == {"AAA": built_report("AAA").fingerprint}
    assert uncertain_deliveries(store, MERCHANT, ["AAA"]) == {}
    assert references_to_retry(store, MERCHANT) == ["AAA"]  # read again, and sent as an update
    back = ClassifiedReport(built_report("AAA"), Change.UNCHANGED, built_report("AAA").fingerprint)
    assert record_findings(store, "run-2", MERCHANT, BuildResult(), [back], retried=["AAA"]).repeat == {"AAA"}
    store.dispose()


def test_an_order_released_for_sending_is_left_to_the_next_run(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", MERCHANT).sending([built_report("AAA"), built_report("BBB")])
    assert in_flight_of_run(store, MERCHANT, "run-1") == ["AAA", "BBB"]
    with pytest.raises(NotReleasableError, match="maybe delivered for merchant demo_merchant: ZZZ"):
        release_in_flight(store, MERCHANT, ["AAA", "ZZZ"], delivered=False)
    assert release_in_flight(store, MERCHANT, ["AAA", "BBB"], delivered=False).endswith("AAA, BBB")
    assert last_answers(store, MERCHANT, ["AAA"])[0] == {}
    assert uncertain_deliveries(store, MERCHANT, ["AAA", "BBB"]) == {}
    store.dispose()


def test_a_waiting_change_of_an_order_gone_is_settled_and_of_one_changed_back_is_sent_again(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    record_sent(store, "run-1", MERCHANT, [built_report("AAA"), built_report("BBB")])
    for ref in ("AAA", "BBB"):
        record_changes(
            store, "run-1", MERCHANT, [ClassifiedReport(built_report(ref, 3000), Change.CHANGED, "x")]
        )
    assert references_to_retry(store, MERCHANT) == ["AAA", "BBB"]
    back = ClassifiedReport(built_report("AAA"), Change.UNCHANGED, built_report("AAA").fingerprint)

    findings = record_findings(store, "run-2", MERCHANT, BuildResult(), [back], retried=["AAA", "BBB"])

    assert findings.repeat == {"AAA"}  # its update may have reached SeQura unanswered: say it again
    assert references_to_retry(store, MERCHANT) == ["AAA"]
    record_updated(store, "run-2", MERCHANT, [back.built])
    assert references_to_retry(store, MERCHANT) == []
    assert sorted(outcome for _, outcome in _outcomes(store)) == ["sent", "superseded"]
    store.dispose()


def test_unlock_frees_the_lock_of_a_run_that_died_and_says_which(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)

    freed = free_lock(store, MERCHANT)

    assert freed.startswith(f"freed the lock of merchant {MERCHANT} held by run run-1 (last seen ")
    start_run(store, "run-2", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    assert free_lock(store, "another_merchant").startswith(
        "no run holds the lock of merchant another_merchant"
    )
    store.dispose()


def renewed_at(store: StateStore) -> datetime:
    """When the merchant's lock was last renewed."""
    with store.engine.connect() as conn:
        return conn.execute(select(state.run_locks.c.renewed_at)).scalar_one()


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether `condition` holds within `seconds`, asked every 50 ms."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_run_keeps_its_lease_while_it_works_and_a_dead_one_lapses_in_minutes(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    locks = state.run_locks
    with store.engine.begin() as conn:
        conn.execute(update(locks).values(renewed_at=datetime.now(UTC) - RUN_LEASE - timedelta(seconds=1)))

    with lease_kept(store, MERCHANT, "run-1", timedelta(milliseconds=500)):  # lapsed, then renewed
        assert eventually(lambda: renewed_at(store) > datetime.now(UTC) - RUN_LEASE), "never renewed"
        with pytest.raises(RunInProgressError, match="`sequra-etl unlock` frees it at once"):
            start_run(store, "run-2", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)

    assert timedelta(minutes=10) >= RUN_LEASE
    store.dispose()


def test_a_run_that_takes_over_a_lapsed_lease_marks_the_dead_run_crashed(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "dead-run", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id="flow-1")
    with store.engine.begin() as conn:
        conn.execute(update(state.run_locks).values(renewed_at=datetime.now(UTC) - timedelta(minutes=11)))

    dead = start_run(store, "next-run", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id="flow-2")

    assert dead is not None and (dead.run_id, dead.flow_run_id) == ("dead-run", "flow-1")
    with store.engine.connect() as conn:
        status, message = conn.execute(
            select(state.runs.c.status, state.runs.c.message).where(state.runs.c.run_id == "dead-run")
        ).one()
    assert (status, message.endswith("run next-run took over")) == ("crashed", True)
    store.dispose()


def test_a_run_that_lost_its_lock_notes_nothing_and_stops_before_sending(state_url: str) -> None:
    store = open_state_store(state_url)
    start_run(store, "run-1", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    free_lock(store, MERCHANT)

    with pytest.raises(RunInProgressError, match="run run-1 no longer holds the lock"):
        StateLedger(store, "run-1", MERCHANT).sending([built_report("AAA")])

    assert uncertain_deliveries(store, MERCHANT, ["AAA"]) == {}
    store.dispose()


def test_a_run_whose_lease_lapsed_is_dead_and_one_renewing_it_or_not_started_may_be_alive(
    state_url: str,
) -> None:
    store = open_state_store(state_url)
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    start_run(store, "alive", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id="flow-run-alive")
    assert lapsed_run(store, "flow-run-alive", RUN_LEASE, minute, hour) is None
    assert lapsed_run(store, "flow-run-not-started", RUN_LEASE, minute, hour) is None
    assert "ran 120 minutes without taking" in str(
        lapsed_run(store, "flow-run-not-started", RUN_LEASE, 2 * hour, hour)
    )
    assert lapsed_run(store, "flow-run-not-started", RUN_LEASE, 2 * hour, None) is None
    with store.engine.begin() as conn:
        conn.execute(update(state.run_locks).values(renewed_at=datetime.now(UTC) - RUN_LEASE - minute))
    assert "stopped renewing its run lease (last seen" in str(
        lapsed_run(store, "flow-run-alive", RUN_LEASE, minute, hour)
    )
    finish_run(store, "alive", "succeeded", DeliveryCounts())
    assert lapsed_run(store, "flow-run-alive", RUN_LEASE, minute, hour) is None
    store.dispose()


def test_a_flow_run_run_again_is_judged_by_its_newest_attempt(state_url: str) -> None:
    store = open_state_store(state_url)
    window = Window(SINCE, UNTIL)
    start_run(store, "first", MERCHANT, window, dry_run=False, flow_run_id="flow-run")
    with store.engine.begin() as conn:
        conn.execute(
            update(state.run_locks).values(renewed_at=datetime.now(UTC) - RUN_LEASE - timedelta(minutes=1))
        )
    start_run(
        store, "again", MERCHANT, window, dry_run=False, flow_run_id="flow-run"
    )  # takes the lapsed lock over
    assert lapsed_run(store, "flow-run", RUN_LEASE, timedelta(minutes=1), None) is None
    store.dispose()


def test_a_run_waits_for_the_lock_until_the_other_run_ends(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tasks.state.locks.LOCK_POLL_SECONDS", 0.05)
    store = open_state_store(state_url)
    start_run(store, "first", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    told: list[str] = []
    ending = threading.Timer(0.3, lambda: finish_run(store, "first", "succeeded", DeliveryCounts()))
    ending.start()
    start_run(
        store, "second", MERCHANT, Window(SINCE, UNTIL), dry_run=False, flow_run_id=None,
        wait=timedelta(seconds=10), waiting=told.append,
    )  # fmt: skip
    ending.join()
    assert told == [told[0]] and "run first for merchant" in told[0] and "waiting up to 10 s" in told[0]
    store.dispose()

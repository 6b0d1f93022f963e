"""Parents (backfill, every-merchant) carry their children's worst state; a backfill finishes its windows."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.states import Cancelled, Completed, Crashed, Failed
from sqlalchemy import create_engine, delete

from flows import children, fan_out
from flows.alerts import AWAITING_SEQURA, QUARANTINED
from flows.backfill import backfill
from flows.children import ChildOutcome, named, parent_state, retryable_failure
from flows.cli.main import main
from flows.every_merchant import every_merchant
from schemas.outcomes import DeliveryCounts
from schemas.state import run_locks
from tests.flows.conftest import Pipeline
from tests.flows.test_backfill import MADRID_DAYS, SPAN, artifact_data, hold_the_lock, said, ship_one_a_day
from tests.shops import SINCE


def failed_with(error: str, what: str = "it went wrong") -> Failed:
    """A Failed state as Prefect writes it for a flow run that raised `error`."""
    return Failed(message=f"Flow run encountered an exception: {error}: {what}")


def child(result: str, **counts: int) -> ChildOutcome:
    """A child of demo_merchant on the first day with `result` and `counts`."""
    return ChildOutcome(
        "demo_merchant", MADRID_DAYS[0], "delivery-report-one", result, DeliveryCounts(**counts)
    )


def test_a_parent_ends_as_its_worst_finished_child_and_names_it_with_its_counts() -> None:
    done, waiting = child("Completed", found=2, sent=2), child(AWAITING_SEQURA, found=3, sent=1)
    held = child(QUARANTINED, found=4, quarantined=1)
    assert not waiting.failed and not held.failed
    assert parent_state([done, done]).name == "Completed"
    awaiting = parent_state([done, waiting])
    assert awaiting.name == AWAITING_SEQURA and awaiting.is_completed()
    assert awaiting.message == (
        f"1 of 2 delivery reports sent orders SeQura has not answered yet: demo_merchant {MADRID_DAYS[0]} "
        "(delivery-report-one): 3 found, 1 sent; the next run asks SeQura again"
    )
    quarantined = parent_state([waiting, held, done])
    assert quarantined.name == QUARANTINED and quarantined.is_completed()
    assert quarantined.message.startswith(
        "1 of 3 delivery reports left orders in quarantine or order updates held: demo_merchant"
    )
    assert "4 found, 1 quarantined" in quarantined.message
    assert quarantined.result() == [waiting, held, done]


def test_a_parents_message_cuts_each_childs_problem_and_counts_the_children_it_does_not_name() -> None:
    failed = [replace(child("Failed"), problem="SequraAuthError: " + "x" * 500, tries=1)] * 7
    message = named(failed)
    assert message.count("demo_merchant") == 5 and message.endswith("; and 2 more")
    assert message.count("x" * (children.MESSAGE_SHOWN - len("SequraAuthError: ")) + "…") == 5
    assert "x" * children.MESSAGE_SHOWN not in message


def test_only_a_run_that_died_or_failed_in_a_way_running_again_fixes_is_tried_again() -> None:
    assert retryable_failure(Crashed(message="the process was killed"))
    assert retryable_failure(failed_with("RunInProgressError", "run 1 holds the lock of demo_merchant"))
    assert retryable_failure(failed_with("SequraUnavailableError", "SeQura answered 503"))
    assert not retryable_failure(failed_with("SequraAuthError", "SeQura answered 401: check the password"))
    assert not retryable_failure(failed_with("SettingError", "SHOP_DB_URL: is not set"))
    assert not retryable_failure(failed_with("ValueError", "RunInProgressError: a quoted message"))
    assert not retryable_failure(Failed(name="TimedOut", message="Flow run exceeded timeout of 60 second(s)"))
    assert not retryable_failure(Cancelled(message="a person cancelled it"))
    assert not retryable_failure(Completed())


def free_the_lock_once_a_window_failed(state_url: str, freed: list[str]) -> threading.Thread:
    """A thread that, once a delivery report ends Failed, frees demo_merchant's lock (its holder ended)."""

    since = datetime.now(UTC)

    def watch() -> None:
        deadline = time.monotonic() + 120
        failed = FlowRunFilter(state={"type": {"any_": ["FAILED"]}}, start_time={"after_": since})
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(flow_run_filter=failed)
                if runs:
                    engine = create_engine(state_url)
                    with engine.begin() as conn:
                        conn.execute(delete(run_locks))
                    engine.dispose()
                    freed.append(runs[0].name)
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_window_that_found_its_merchants_lock_held_is_tried_again_and_the_later_windows_go_on(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC")
    hold_the_lock(pipeline, "the-nightly-run")
    monkeypatch.setenv("SEQURA_LOCK_WAIT_SECONDS", "0.2")
    monkeypatch.setattr("tasks.state.locks.LOCK_POLL_SECONDS", 0.05)
    monkeypatch.setattr(fan_out, "RETRY_PAUSE", timedelta(seconds=2))
    freed: list[str] = []
    watcher = free_the_lock_once_a_window_failed(pipeline.state_url, freed)
    state = backfill(**SPAN, window="1d", return_state=True)
    watcher.join()
    assert freed, "no window failed on the held lock"
    assert state.name == "Completed", state.message
    outcomes = state.result()
    assert [(o.window, o.result, o.tries, o.counts.sent) for o in outcomes] == [
        (MADRID_DAYS[0], "Completed", 2, 1),
        (MADRID_DAYS[1], "Completed", 1, 1),
        (MADRID_DAYS[2], "Completed", 1, 1),
    ]
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [state.state_details.flow_run_id]})
        )
    assert sorted(run.run_count for run in children) == [1, 1, 2]  # the same child run again, no twin
    assert freed == [outcomes[0].run]
    assert sorted(pipeline.accepted()) == ["AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC"]


def test_a_backfill_ends_quarantined_naming_its_windows_and_shows_them_in_shop_time(
    pipeline: Pipeline,
) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("99.00"))
    state = backfill(**SPAN, window="1d", return_state=True)
    assert state.name == QUARANTINED and state.is_completed()
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(state.state_details.flow_run_id)
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [parent.id]})
        )
    assert parent.name == "backfill 2026-11-20 01:00 → 2026-11-23 01:00 Europe/Madrid"
    assert parent.state.name == QUARANTINED
    first = min(run.name for run in children if run.state.name == QUARANTINED)
    assert state.message.startswith(
        "2 of 3 delivery reports left orders in quarantine or order updates held: "
        f"demo_merchant {MADRID_DAYS[0]} ({first}): 1 found, 1 quarantined; demo_merchant {MADRID_DAYS[2]} ("
    )
    table = json.loads(artifact_data("backfill-runs"))
    assert [
        (row["Merchant"], said(row["Window"]), row["Result"], said(row["What happened"])) for row in table
    ] == [
        ("demo_merchant", MADRID_DAYS[0], QUARANTINED, "1 found 1 quarantined"),
        ("demo_merchant", MADRID_DAYS[1], "Completed", "nothing found"),
        ("demo_merchant", MADRID_DAYS[2], QUARANTINED, "1 found 1 quarantined"),
    ]


def test_a_window_sequra_refused_stops_its_merchants_later_windows_at_once_and_the_backfill_fails(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB")
    monkeypatch.setenv("SEQURA_PASSWORD", "not-the-password")
    since = datetime.now(UTC)
    assert main(["backfill", "--since", SPAN["since"], "--until", SPAN["until"]]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("| Failed |") == 1 and captured.out.count("| Not run |") == 2
    assert f"3 of 3 delivery reports did not finish: demo_merchant {MADRID_DAYS[0]} (delivery-report" in (
        captured.err
    )
    assert "SequraAuthError" in captured.err and "tries" not in captured.err
    with get_client(sync_client=True) as client:
        [parent] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name={"like_": "backfill"}, start_time={"after_": since})
        )
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [parent.id]})
        )
    assert parent.state.type.value == "FAILED"
    assert len(children) == 1  # tried once: a refusal is not tried again
    assert pipeline.accepted() == []


def test_the_nightly_run_ends_awaiting_sequra_when_a_merchants_report_got_no_answer(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.setenv("DELIVERY_FIRST_RUN_DAYS", str((datetime.now(UTC) - SINCE).days + 2))
    monkeypatch.setenv("SEQURA_TIMEOUT_SECONDS", "0.25")
    pipeline.faults(drop_next=1)  # the report never reaches SeQura: the run cannot know, and says so
    state = every_merchant(return_state=True)
    assert state.name == AWAITING_SEQURA and state.is_completed()
    [outcome] = state.result()
    assert outcome.result == AWAITING_SEQURA and outcome.window.endswith(" Europe/Madrid")
    assert state.message.startswith(
        f"1 of 1 delivery reports sent orders SeQura has not answered yet: demo_merchant {outcome.window} "
        f"({outcome.run}): 1 found, 1 new, 1 no answer yet"
    )
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(state.state_details.flow_run_id)
    assert re.fullmatch(r"every-merchant \d{4}-\d\d-\d\d \d\d:\d\d Europe/Madrid", parent.name)

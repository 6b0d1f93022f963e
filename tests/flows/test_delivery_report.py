from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from sqlalchemy import create_engine, func, select

import flows.delivery_report
from flows.cli.main import main
from flows.delivery_report import delivery_report
from schemas.state import run_chunks, runs
from seeding.vocabulary import Line
from tasks import clock as clocks
from tasks.inert import plain_text
from tasks.sequra_client import SequraAuthError, SequraNotSequraError
from tests.clocks import MovedClock
from tests.flows.conftest import Pipeline
from tests.flows.test_artifacts import as_shown
from tests.not_sequra import LOGIN_PAGE, REDIRECT, not_sequra
from tests.shops import MORNING, SINCE, UNTIL

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


@pytest.mark.parametrize(
    "pipeline", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)
def test_first_run_sends_every_shipped_order_once(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.shipped_order("BBBBBBBBB")
    pipeline.shop.order("NOTSHIPPD")
    summary = delivery_report(**WINDOW)
    assert (summary.counts.new, summary.counts.sent, summary.counts.quarantined) == (2, 2, 0)
    assert sorted(pipeline.accepted()) == ["AAAAAAAAA", "BBBBBBBBB"]
    (report,) = requests.get(pipeline.sandbox.url + "_sandbox/delivery_reports", timeout=5).json()
    assert "statistics" not in report["body"]["delivery_report"]  # a window of the past carries none


def test_a_second_run_over_the_same_window_sends_nothing_again(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    delivery_report(**WINDOW)
    again = delivery_report(**WINDOW)
    assert (again.counts.new, again.counts.already_reported, again.counts.sent) == (0, 1, 0)
    assert pipeline.accepted() == ["AAAAAAAAA"]


@pytest.mark.parametrize(
    "pipeline", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)
def test_an_order_changed_after_it_was_reported_goes_out_as_an_order_update(pipeline: Pipeline) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    delivery_report(**WINDOW)
    later = MORNING.replace(hour=15)
    moved = pipeline.shop.writer.edit_address(pipeline.shop.address, at=later, address1="Calle Nueva 2")
    pipeline.shop.writer.repoint_order_address(id_order, "delivery", moved, at=later)
    summary = delivery_report(**WINDOW)
    [update] = summary.outcome.update_rows
    assert (update.order_ref_1, update.changes, update.result) == (
        "AAAAAAAAA",
        "delivery address",
        "accepted (200)",
    )
    assert (summary.counts.sent, summary.counts.updated) == (0, 1)
    assert pipeline.accepted() == ["AAAAAAAAA"]
    assert pipeline.held("AAAAAAAAA")["delivery_address"]["address_line_1"] == "Calle Nueva 2"
    assert delivery_report(**WINDOW).counts.updated == 0


def test_a_dry_run_writes_the_report_and_sends_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    out = tmp_path / "report.json"
    summary = delivery_report(**WINDOW, dry_run=True, out=str(out))
    body = json.loads(out.read_text(encoding="utf-8"))
    assert [o["merchant_reference"]["order_ref_1"] for o in body["delivery_report"]["orders"]] == [
        "AAAAAAAAA"
    ]
    assert summary.counts.sent == 0
    assert pipeline.accepted() == []
    assert delivery_report(**WINDOW).counts.sent == 1


def test_wrong_credentials_fail_the_run_and_mark_nothing(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.setenv("SEQURA_PASSWORD", "wrong")
    with pytest.raises(SequraAuthError, match="SEQURA_PASSWORD"):
        delivery_report(**WINDOW)
    monkeypatch.setenv("SEQURA_PASSWORD", "demo-secret")
    assert delivery_report(**WINDOW).counts.sent == 1


def test_one_order_refused_by_sequra_does_not_block_the_others(pipeline: Pipeline) -> None:
    for reference in ("AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC"):
        pipeline.shop.shipped_order(reference)
    pipeline.faults(reject_refs=["BBBBBBBBB"], name_rejected_orders=False)
    summary = delivery_report(**WINDOW)
    assert [q.reference for q in summary.outcome.quarantined_rows] == ["BBBBBBBBB"]
    assert sorted(pipeline.accepted()) == ["AAAAAAAAA", "CCCCCCCCC"]


def test_a_quarantined_order_is_retried_by_the_next_run_and_sent_once_fixed(pipeline: Pipeline) -> None:
    id_order = pipeline.shop.shipped_order("BROKENSUM")
    pipeline.shop.set_order(id_order, total_paid_tax_incl="99.000000")
    first = delivery_report(**WINDOW)
    assert [q.reference for q in first.outcome.quarantined_rows] == ["BROKENSUM"]
    pipeline.shop.set_order(id_order, total_paid_tax_incl="17.450000")
    later = delivery_report(since="2026-11-25", until="2026-11-26")
    assert [b.reference for b in later.outcome.sent_rows] == ["BROKENSUM"]
    assert pipeline.accepted() == ["BROKENSUM"]


def test_server_errors_and_rate_limits_are_retried_within_the_run(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.faults(fail_next=1, rate_limit_next=1, retry_after=0)
    assert delivery_report(**WINDOW).counts.sent == 1
    assert pipeline.accepted() == ["AAAAAAAAA"]


def test_the_run_is_named_after_its_window_and_publishes_its_artifacts(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    state = delivery_report(**WINDOW, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert run.name == "delivery-report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid"
    keys = {artifact.key for artifact in artifacts}
    assert {
        "delivery-report-summary-demo-merchant",
        "delivery-report-sent-demo-merchant",
        "delivery-report-quarantine-demo-merchant",
    } <= keys
    summary = next(a for a in artifacts if a.key == "delivery-report-summary-demo-merchant")
    assert "| 1 | 0 | 0 | 0 |" in summary.data and "| 1 | 0 | 0 | 0 | 0 | 0 |" in summary.data  # new, sent


def test_order_updates_are_counted_and_listed_with_what_changed_and_the_answer(pipeline: Pipeline) -> None:
    id_order = pipeline.shop.shipped_order(
        "AAAAAAAAA", lines=[Line("Camiseta", "TSHIRT-1", 2, Decimal("12.50"))]
    )
    delivery_report(**WINDOW)
    pipeline.shop.writer.refund(
        id_order, product_reference="TSHIRT-1", quantity=1, at=MORNING.replace(hour=15)
    )
    state = delivery_report(**WINDOW, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    summary = next(a for a in artifacts if a.key == "delivery-report-summary-demo-merchant")
    assert "| 0 | 1 | 0 | 0 |" in summary.data and "| 0 | 1 | 0 | 0 | 0 | 0 |" in summary.data  # updated
    [row] = json.loads(next(a for a in artifacts if a.key == "delivery-report-updates-demo-merchant").data)
    assert row == {
        "Order": "AAAAAAAAA",
        "Order IDs": str(id_order),
        "What changed": "shipped 29.95 → 17.45 EUR",
        "SeQura's answer": "accepted (200)",
    }


def first_run_id(pipeline: Pipeline) -> str:
    """The run_id of the oldest run in the pipeline's state store."""
    engine = create_engine(pipeline.state_url)
    with engine.connect() as conn:
        run_id = conn.execute(select(runs.c.run_id).order_by(runs.c.started_at).limit(1)).scalar_one()
    engine.dispose()
    return run_id


@pytest.mark.parametrize("fault", ["lose_answer_next", "slow_answer_next"])
def test_a_report_processed_but_unanswered_is_settled_by_an_order_update_in_the_same_run(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.faults(**{fault: 1, "slow_answer_seconds": 1.0})
    monkeypatch.setenv("SEQURA_TIMEOUT_SECONDS", "0.3")

    summary = delivery_report(**WINDOW)

    assert (summary.counts.sent, summary.counts.quarantined) == (1, 0)
    assert pipeline.accepted() == ["AAAAAAAAA"]  # one report, never two
    assert pipeline.held("AAAAAAAAA")["order_updates"] == 1
    assert delivery_report(**WINDOW).counts.sent == 0


def test_a_report_dropped_before_sequra_had_it_is_reported_again_once_it_is_clearly_not_coming(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.setenv("SEQURA_TIMEOUT_SECONDS", "0.25")  # a report is clearly not coming after 1 s
    pipeline.faults(drop_next=1)

    first = delivery_report(**WINDOW)  # the settling update gets 404 at once: SeQura may still be busy
    monkeypatch.setattr(clocks, "RUN_CLOCK", MovedClock(ahead=timedelta(seconds=1)))  # four timeouts on
    later = delivery_report(since="2026-11-25", until="2026-11-26")

    assert (first.counts.sent, later.counts.sent) == (0, 1)
    assert pipeline.accepted() == ["AAAAAAAAA"]
    assert pipeline.held("AAAAAAAAA")["order_updates"] == 0  # both settling updates were answered 404


def test_an_order_the_php_module_reported_is_not_resent_but_its_later_changes_are_updated(
    pipeline: Pipeline,
) -> None:
    id_order = pipeline.shop.shipped_order("MODULESNT")
    pipeline.shop.writer.mark_sent_by_module(id_order, merchant_id="demo_merchant", sent=True)
    pipeline.reported_by_module("MODULESNT")
    first = delivery_report(**WINDOW)
    assert (first.counts.new, first.counts.already_reported, first.counts.sent) == (0, 1, 0)
    later = MORNING.replace(hour=15)
    moved = pipeline.shop.writer.edit_address(pipeline.shop.address, at=later, address1="Calle Nueva 2")
    pipeline.shop.writer.repoint_order_address(id_order, "delivery", moved, at=later)
    second = delivery_report(**WINDOW)
    assert [(order.order_ref_1, order.result) for order in second.outcome.update_rows] == [
        ("MODULESNT", "accepted (200)")
    ]
    assert pipeline.accepted() == ["MODULESNT"]  # the module's own report, never a second one
    assert pipeline.held("MODULESNT")["delivery_address"]["address_line_1"] == "Calle Nueva 2"


def shop_time(hours_ago: float) -> datetime:
    """The shop's local time (Europe/Madrid) some hours ago, as PrestaShop stores it."""
    return (datetime.now(ZoneInfo("Europe/Madrid")) - timedelta(hours=hours_ago)).replace(
        tzinfo=None, microsecond=0
    )


def test_a_scheduled_run_after_a_successful_one_reads_only_the_rows_added_since(pipeline: Pipeline) -> None:
    pipeline.shop.shipped_order("SCHEDULE1", at=shop_time(24))
    first = delivery_report()
    assert (first.incremental, first.counts.sent) == (False, 1)
    pipeline.shop.shipped_order("SCHEDULE2", at=shop_time(1))
    second = delivery_report()
    assert (second.incremental, second.counts.found, second.counts.sent) == (True, 1, 1)
    assert pipeline.accepted() == ["SCHEDULE1", "SCHEDULE2"]


def test_a_run_goes_one_task_per_chunk_and_leaves_no_chunk_behind(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(7):
        pipeline.shop.shipped_order(f"CHUNKED{number:02d}")
    monkeypatch.setenv("SHOP_CHUNK_SIZE", "3")
    state = delivery_report(**WINDOW, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    chunk_tasks = sorted(task.name for task in tasks if task.name.startswith("deliver-chunk"))
    assert chunk_tasks == ["deliver-chunk-0", "deliver-chunk-1", "deliver-chunk-2"]
    shown = {artifact.key: artifact.data for artifact in artifacts}
    assert shown["delivery-report-progress-demo-merchant"] == 100.0  # moved at the last chunk, however soon
    assert sorted(pipeline.accepted()) == [f"CHUNKED{number:02d}" for number in range(7)]
    engine = create_engine(pipeline.state_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(run_chunks)).scalar_one() == 0
    engine.dispose()


def test_the_progress_bar_moves_at_most_every_few_seconds_and_at_the_last_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moved: list[float] = []
    now = [1000.0]
    monkeypatch.setattr(flows.delivery_report, "create_progress_artifact", lambda *_, **__: uuid.uuid4())
    monkeypatch.setattr(flows.delivery_report, "update_progress_artifact", lambda _, done: moved.append(done))
    steps = flows.delivery_report.PrefectSteps("demo_merchant", clock=lambda: now[0])
    for done in range(1, 11):  # ten chunks, a second each
        steps.chunk_done(done, 10)
        now[0] += 1.0
    steps.chunk_done(1, 1)  # a run of one chunk has no bar

    assert moved == [10.0, 60.0, 100.0]


@pytest.mark.parametrize("answer", [LOGIN_PAGE, REDIRECT], ids=["login page", "redirect"])
def test_an_answer_that_is_not_sequras_fails_the_run_safely_and_a_later_run_delivers(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, answer: tuple[str, str, bytes]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    with not_sequra(*answer) as url:
        monkeypatch.setenv("SEQURA_API_URL", url)
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL"):
            delivery_report(**WINDOW)
    monkeypatch.setenv("SEQURA_API_URL", pipeline.sandbox.url)

    later = delivery_report(**WINDOW)

    assert later.counts.sent == 1
    assert pipeline.accepted() == ["AAAAAAAAA"]


def flow_run_of(state: Any) -> Any:
    """The flow run a returned state belongs to, as the Prefect server has it."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    """The artifacts of a flow run, by key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def test_a_bad_parameter_fails_the_run_with_one_line_naming_it_never_crashes_it(pipeline: Pipeline) -> None:
    state = delivery_report(since="yesterday", return_state=True)
    run = flow_run_of(state)
    assert run.state.type.value == "FAILED"
    assert "since: 'yesterday' is not an ISO 8601 date or datetime" in run.state.message
    assert run.name == "delivery-report-yesterday-now"


def test_a_failed_run_still_publishes_what_it_did_and_why_it_stopped(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.setenv("SEQURA_PASSWORD", "wrong")
    state = delivery_report(**WINDOW, return_state=True)
    assert flow_run_of(state).state.type.value == "FAILED"
    artifacts = artifacts_of(state.state_details.flow_run_id)
    summary = plain_text(artifacts["delivery-report-summary-demo-merchant"].data)  # as a person reads it
    assert "The run stopped before its end:** SequraAuthError" in summary
    assert "SEQURA_USERNAME" in summary
    assert "wrong" not in summary
    assert "delivery-report-quarantine-demo-merchant" in artifacts


def test_a_run_that_quarantined_orders_ends_in_a_state_an_automation_matches(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("99.00"))
    pipeline.shop.shipped_order("BBBBBBBBB")
    dry = delivery_report(**WINDOW, dry_run=True, out=str(tmp_path / "dry.json"), return_state=True)
    assert flow_run_of(dry).state.name == "Completed"  # a dry run sends nothing, so it waits for nothing
    state = delivery_report(**WINDOW, return_state=True)
    run = flow_run_of(state)
    assert (run.state.type.value, run.state.name) == ("COMPLETED", "Quarantined")
    assert run.state.message.startswith("1 order in quarantine;")
    assert state.result().counts.sent == 1


def test_a_run_is_tagged_with_its_merchant_and_shop(pipeline: Pipeline, tmp_path: Path) -> None:
    state = delivery_report(**WINDOW, dry_run=True, out=str(tmp_path / "dry.json"), return_state=True)
    tags = flow_run_of(state).tags
    assert "merchant:demo_merchant" in tags
    assert "dry-run" in tags
    assert any(tag.startswith("shop:") and len(tag) == 17 for tag in tags)


def test_an_empty_state_store_where_prefect_saw_deliveries_stops_before_sending_until_adopted(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    assert delivery_report(**WINDOW).counts.sent == 1
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///{tmp_path / 'another.sqlite'}")

    state = delivery_report(**WINDOW, return_state=True)
    run = flow_run_of(state)
    assert run.state.type.value == "FAILED"
    assert (
        "holds no run of merchant demo_merchant, but Prefect shows delivery-report runs" in run.state.message
    )
    assert "STATE_DB_URL" in run.state.message
    assert delivery_report(**WINDOW, dry_run=True, out=str(tmp_path / "dry.json")).counts.new == 1
    assert pipeline.accepted() == ["AAAAAAAAA"]

    assert main(["adopt", "--since", WINDOW["since"], "--until", WINDOW["until"]]) == 0
    assert (
        "Recorded 1 orders shipped and 0 cancelled before shipment in 2026-11-20T00:00Z-2026-11-21T00:00Z"
        in (capsys.readouterr().out)
    )
    again = delivery_report(**WINDOW)
    assert (again.counts.sent, again.counts.already_reported) == (0, 1)
    assert pipeline.accepted() == ["AAAAAAAAA"]
    assert main(["adopt", "--since", WINDOW["since"], "--until", WINDOW["until"]]) == 1
    assert "already holds runs or orders of merchant demo_merchant" in capsys.readouterr().err


def test_a_run_refused_the_lock_of_a_new_store_is_no_sign_that_the_store_was_lost(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schemas.settings import Settings
    from schemas.state import RunStatus
    from tasks.state.runs import finish_run, start_run
    from tasks.state.store import open_state_store
    from tasks.window import Window

    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.setenv("SEQURA_LOCK_WAIT_SECONDS", "0.1")
    store = open_state_store(Settings.from_env().state_url())
    window = Window(SINCE, UNTIL)
    start_run(store, "holder", "demo_merchant", window, dry_run=False, flow_run_id=None)
    refused = delivery_report(**WINDOW, return_state=True)
    assert flow_run_of(refused).state.type.value == "FAILED"
    assert "still running" in flow_run_of(refused).state.message
    finish_run(store, "holder", RunStatus.FAILED, message="stopped by the test")  # frees the lock
    store.dispose()

    assert delivery_report(**WINDOW).counts.sent == 1
    assert pipeline.accepted() == ["AAAAAAAAA"]


def test_a_store_an_older_version_left_in_the_working_folder_is_not_silently_replaced(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.delenv("STATE_DB_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".sequra-etl").mkdir()
    (tmp_path / ".sequra-etl" / "state.sqlite").write_bytes(b"")
    state = delivery_report(**WINDOW, return_state=True)
    message = flow_run_of(state).state.message
    assert "the state store an older version kept here: set STATE_DB_URL=sqlite:///" in message
    assert pipeline.accepted() == []


def test_a_parameter_of_the_wrong_type_fails_the_run_naming_it(pipeline: Pipeline) -> None:
    state = delivery_report(since=12345, return_state=True)
    run = flow_run_of(state)
    assert run.state.type.value == "FAILED"
    assert "SettingError: since: 12345 is not an ISO 8601 date or datetime" in run.state.message


def open_quarantine_of(state: Any) -> Any:
    """The open-quarantine artifact a run published: its rows as a person reads them, or its markdown."""
    data = artifacts_of(state.state_details.flow_run_id)["open-quarantine-demo-merchant"].data
    if not data.startswith("["):
        return data
    return [{heading: as_shown(cell) for heading, cell in row.items()} for row in json.loads(data)]


def test_a_run_whose_reports_got_no_answer_ends_awaiting_sequra_and_lists_them_until_settled(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    references = [f"UNANSWER{number}" for number in range(5)]
    for reference in references:
        pipeline.shop.shipped_order(reference)
    monkeypatch.setenv("SEQURA_TIMEOUT_SECONDS", "0.25")  # a report is clearly not coming after 1 s
    pipeline.faults(drop_next=1)

    first = delivery_report(**WINDOW, return_state=True)  # the settling updates get 404: too soon to tell

    run = flow_run_of(first)
    assert (run.state.type.value, run.state.name) == ("COMPLETED", "AwaitingSeQura")
    assert run.state.message.startswith("5 orders sent to SeQura waiting for its answer;")
    assert (first.result().counts.new, first.result().counts.unanswered) == (5, 5)
    waiting = open_quarantine_of(first)
    assert [row["Order"] for row in waiting] == references
    assert {row["Status"] for row in waiting} == {"No answer yet"}
    assert "the next run asks SeQura again" in waiting[0]["What to do"]

    monkeypatch.setattr(clocks, "RUN_CLOCK", MovedClock(ahead=timedelta(seconds=1)))  # four timeouts on
    later = delivery_report(since="2026-11-25", until="2026-11-26", return_state=True)

    assert (flow_run_of(later).state.name, later.result().counts.sent) == ("Completed", 5)
    assert "every shipped order has been reported" in open_quarantine_of(later)
    assert sorted(pipeline.accepted()) == references


def test_a_run_that_leaves_orders_quarantined_held_and_unanswered_ends_quarantined_listing_each_and_what_next(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    id_order = pipeline.shop.shipped_order(
        "UPDATEREF", lines=[Line("Camiseta", "TSHIRT-1", 2, Decimal("12.50"))]
    )
    delivery_report(**WINDOW)
    pipeline.shop.writer.refund(
        id_order, product_reference="TSHIRT-1", quantity=1, at=MORNING.replace(hour=15)
    )
    broken = pipeline.shop.shipped_order("BROKENSUM")
    pipeline.shop.set_order(broken, total_paid_tax_incl=Decimal("99.00"))
    pipeline.shop.shipped_order("DROPPED01")
    monkeypatch.setenv("SEQURA_TIMEOUT_SECONDS", "0.25")
    pipeline.faults(drop_next=1, reject_refs=["UPDATEREF"])

    state = delivery_report(**WINDOW, return_state=True)

    run = flow_run_of(state)
    assert (run.state.type.value, run.state.name) == ("COMPLETED", "Quarantined")
    assert run.state.message.startswith(
        "1 order in quarantine, 1 order update held and 1 order sent to SeQura waiting for its answer"
    )
    counts = state.result().counts
    assert (counts.quarantined, counts.update_failed, counts.unanswered) == (1, 1, 1)
    rows = {row["Order"]: row for row in open_quarantine_of(state)}
    assert {order: row["Status"] for order, row in rows.items()} == {
        "BROKENSUM": "Quarantined",
        "UPDATEREF": "Update held",
        "DROPPED01": "No answer yet",
    }
    assert rows["BROKENSUM"]["What to do"] == "correct the order lines or totals in the back office"
    assert "sequra-etl release UPDATEREF" in rows["UPDATEREF"]["What to do"]
    assert "the next run asks SeQura again" in rows["DROPPED01"]["What to do"]
    assert all(row["Waiting since"] for row in rows.values())

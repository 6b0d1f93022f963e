from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.sorting import ArtifactSort
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Completed, Crashed, Failed, Pending, Running, Scheduled, State
from sqlalchemy import create_engine, select, update

from flows import fan_out
from flows.backfill import backfill
from flows.children import ChildOutcome, ChildRun
from flows.cli.main import main
from flows.delivery_report import delivery_report
from flows.every_merchant import every_merchant
from flows.fan_out import ChildRunsError, Liveness, not_on_workers
from schemas.errors import SettingError
from schemas.state import run_locks, runs
from seeding.vocabulary import FRANCE, PORTUGAL
from tasks.state.runs import start_run
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.flows.conftest import Pipeline
from tests.rendered import IMG, artifact_markdown, live_parts
from tests.shops import MORNING, SINCE

SPAN = {"since": SINCE.isoformat(), "until": (SINCE + timedelta(days=3)).isoformat()}
MADRID_DAYS = [f"2026-11-{day} 01:00 → 2026-11-{day + 1} 01:00 Europe/Madrid" for day in (20, 21, 22)]
"""SPAN's windows as the backfill shows them: in the test shop's time zone."""
ON_MARIADB = pytest.mark.parametrize(
    "pipeline", [pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)


def ship_one_a_day(pipeline: Pipeline, *references: str) -> None:
    """Ship the orders one a day from the first day of SPAN, in the morning (shop time)."""
    for day, reference in enumerate(references):
        pipeline.shop.shipped_order(reference, at=MORNING + timedelta(days=day))


def sent_per_window(outcomes: list[Any]) -> list[tuple[str, int, int]]:
    """(window, sent, already reported) of each child, in window order."""
    return sorted((o.window, o.counts.sent, o.counts.already_reported) for o in outcomes)


def hold_the_lock(pipeline: Pipeline, run_id: str, flow_run_id: str | None = None) -> None:
    """Let a run `run_id` (of the Prefect flow run `flow_run_id`, if any) hold demo_merchant's lock."""
    store = open_state_store(pipeline.state_url)
    window = Window(SINCE, SINCE + timedelta(days=1))
    start_run(store, run_id, "demo_merchant", window, dry_run=False, flow_run_id=flow_run_id)
    store.dispose()


def said(cell: str) -> str:
    """A table cell written in lines (markdown hard breaks) as one line."""
    return cell.replace("  \n", " ")


def artifact_data(key: str) -> Any:
    """The newest version of a keyed artifact."""
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return artifact.data


@ON_MARIADB
def test_the_same_backfill_twice_sends_nothing_the_second_time(pipeline: Pipeline) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC")
    first = backfill(**SPAN, window="1d")
    assert sent_per_window(first) == [(MADRID_DAYS[0], 1, 0), (MADRID_DAYS[1], 1, 0), (MADRID_DAYS[2], 1, 0)]
    again = backfill(**SPAN, window="1d")
    assert [(o.counts.found, o.counts.new, o.counts.sent, o.counts.already_reported) for o in again] == [
        (1, 0, 0, 1)
    ] * 3
    assert sorted(pipeline.accepted()) == ["AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC"]


@ON_MARIADB
def test_each_window_is_a_child_run_named_after_it_and_the_backfill_tables_them(pipeline: Pipeline) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB")
    parent = backfill(**SPAN, window="1d", return_state=True).state_details.flow_run_id
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [parent]}))
        assert (
            client.read_flow_run(parent).name == "backfill 2026-11-20 01:00 → 2026-11-23 01:00 Europe/Madrid"
        )
    assert sorted(run.name for run in children) == [
        "delivery-report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid",
        "delivery-report 2026-11-21 01:00 → 2026-11-22 01:00 Europe/Madrid",
        "delivery-report 2026-11-22 01:00 → 2026-11-23 01:00 Europe/Madrid",
    ]
    table = json.loads(artifact_data("backfill-runs"))
    assert [(said(row["Window"]), row["Result"], said(row["What happened"])) for row in table] == [
        (MADRID_DAYS[0], "Completed", "1 found 1 new 1 sent"),
        (MADRID_DAYS[1], "Completed", "1 found 1 new 1 sent"),
        (MADRID_DAYS[2], "Completed", "nothing found"),
    ]
    assert list(table[0]) == ["Merchant", "Window", "Run", "Result", "What happened"]


@ON_MARIADB
def test_a_backfill_and_a_nightly_run_at_once_send_each_order_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC")
    monkeypatch.setenv("DELIVERY_FIRST_RUN_DAYS", str((datetime.now() - SINCE.replace(tzinfo=None)).days + 2))
    monkeypatch.setattr("tasks.state.locks.LOCK_POLL_SECONDS", 0.2)
    pipeline.faults(delay_seconds=1.0)  # every request takes a second: the two runs overlap
    results: dict[str, Any] = {}

    def run(name: str, flow: Any, **parameters: Any) -> None:
        results[name] = flow(**parameters, return_state=True)

    both = [
        threading.Thread(target=run, args=("backfill", backfill), kwargs={**SPAN, "window": "1d"}),
        threading.Thread(target=run, args=("nightly", delivery_report)),
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(timeout=300)
    assert all(state.is_completed() for state in results.values()), results
    assert sorted(pipeline.accepted()) == ["AAAAAAAAA", "BBBBBBBBB", "CCCCCCCCC"]
    engine = create_engine(pipeline.state_url)
    with engine.connect() as conn:
        started = conn.execute(
            select(runs.c.started_at, runs.c.finished_at).order_by(runs.c.started_at)
        ).all()
    engine.dispose()
    assert len(started) == 4
    assert all(later.started_at >= earlier.finished_at for earlier, later in itertools.pairwise(started))


def test_a_run_that_waited_its_bound_for_the_lock_stops_saying_so(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    hold_the_lock(pipeline, "the-nightly-run")
    monkeypatch.setenv("SEQURA_LOCK_WAIT_SECONDS", "0.5")
    monkeypatch.setattr("tasks.state.locks.LOCK_POLL_SECONDS", 0.1)
    monkeypatch.setattr(fan_out, "RETRY_PAUSE", timedelta(0))
    with pytest.raises(ChildRunsError, match="1 of 1 delivery reports did not finish") as stopped:
        backfill(since=SPAN["since"], until=(SINCE + timedelta(days=1)).isoformat())
    assert "3 tries; RunInProgressError: this run waited 0.5 s (SEQURA_LOCK_WAIT_SECONDS)" in str(
        stopped.value
    )
    assert "the-nightly-run" in str(stopped.value)
    assert pipeline.accepted() == []


@ON_MARIADB
def test_two_merchants_of_one_shop_each_get_their_own_orders(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("SPAINONEA")
    lisbon = pipeline.shop.new_address(city="Lisboa", postcode="1100-148", id_country=PORTUGAL)
    pipeline.shop.shipped_order("PORTUGALA", id_address_delivery=lisbon)
    paris = pipeline.shop.new_address(city="Paris", postcode="75001", id_country=FRANCE)
    pipeline.shop.shipped_order("FRANCEONE", id_address_delivery=paris)
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    monkeypatch.setenv(  # demo_merchant lists no country: it takes every one demo_merchant_pt does not
        "SEQURA_MERCHANTS", json.dumps({"demo_merchant": {}, "demo_merchant_pt": {"countries": ["PT"]}})
    )
    outcomes = backfill(since=SPAN["since"], until=(SINCE + timedelta(days=1)).isoformat())
    assert sorted((o.merchant, o.counts.sent) for o in outcomes) == [
        ("demo_merchant", 2),
        ("demo_merchant_pt", 1),
    ]
    orders = requests.get(pipeline.sandbox.url + "_sandbox/orders", timeout=5).json()
    assert sorted((o["merchant"], o["order_ref_1"]) for o in orders) == [
        ("demo_merchant", "FRANCEONE"),
        ("demo_merchant", "SPAINONEA"),
        ("demo_merchant_pt", "PORTUGALA"),
    ]
    sent_to_portugal = json.loads(artifact_data("delivery-report-sent-demo-merchant-pt"))
    assert [row["Order"] for row in sent_to_portugal] == ["PORTUGALA"]
    with get_client(sync_client=True) as client:
        named = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(like_="delivery-report demo_merchant_pt 2026-11-20 01:00 → ")
            )
        )
    assert named


def test_the_nightly_flow_runs_every_merchant_from_its_own_last_run(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("SPAINONEA")
    lisbon = pipeline.shop.new_address(city="Lisboa", postcode="1100-148", id_country=PORTUGAL)
    pipeline.shop.shipped_order("PORTUGALA", id_address_delivery=lisbon)
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    monkeypatch.setenv("DELIVERY_FIRST_RUN_DAYS", str((datetime.now() - SINCE.replace(tzinfo=None)).days + 2))
    monkeypatch.setenv(
        "SEQURA_MERCHANTS",
        json.dumps({"demo_merchant": {"countries": ["ES"]}, "demo_merchant_pt": {"countries": ["PT"]}}),
    )
    outcomes = every_merchant()
    assert sorted((o.merchant, o.counts.sent) for o in outcomes) == [
        ("demo_merchant", 1),
        ("demo_merchant_pt", 1),
    ]
    assert all(" → " in o.window and o.window.endswith(" Europe/Madrid") for o in outcomes)
    assert [o.counts.sent for o in every_merchant()] == [0, 0]
    assert sorted(pipeline.accepted()) == ["PORTUGALA", "SPAINONEA"]


def test_the_backfill_command_prints_each_window_and_the_totals(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB")
    assert main(["backfill", "--since", SPAN["since"], "--until", SPAN["until"], "--window", "1d"]) == 0
    printed = capsys.readouterr().out
    assert f"| demo_merchant | {MADRID_DAYS[1]} | Completed | 1 | 1 | 0 | 0 | 0 | 1 |" in printed
    assert "| **3 runs** | | | 2 | 2 | 0 | 0 | 0 | 2 |" in printed


def test_the_backfill_command_refuses_a_window_width_it_cannot_read(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--since", SPAN["since"], "--until", SPAN["until"], "--window", "daily"]) == 2
    assert "window: 'daily' is not a window width like 1d, 12h or 30m" in capsys.readouterr().err


def test_a_backfill_tries_the_quarantine_again_in_its_last_window_only(pipeline: Pipeline) -> None:
    id_order = pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.set_order(id_order, total_paid_tax_incl=Decimal("99.00"))
    outcomes = backfill(**SPAN, window="1d")
    assert [(o.window[:10], o.counts.quarantined) for o in outcomes] == [
        ("2026-11-20", 1),
        ("2026-11-21", 0),
        ("2026-11-22", 1),
    ]


def test_a_window_whose_lock_stays_held_fails_after_its_tries_and_the_later_windows_still_run(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB")
    delivery_report(since=(SINCE - timedelta(days=1)).isoformat(), until=SPAN["since"])  # reported before
    hold_the_lock(pipeline, IMG)  # the holder's name comes back in the children's failure messages
    monkeypatch.setenv("SEQURA_LOCK_WAIT_SECONDS", "0.2")
    monkeypatch.setattr("tasks.state.locks.LOCK_POLL_SECONDS", 0.05)
    monkeypatch.setattr(fan_out, "RETRY_PAUSE", timedelta(0))
    assert main(["backfill", "--since", SPAN["since"], "--until", SPAN["until"]]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("| demo_merchant |") == 3 and captured.out.count("| Failed |") == 3
    assert "3 of 3 delivery reports did not finish" in captured.err
    rows = json.loads(artifact_data("backfill-runs"))
    problems = [said(row["What happened"]) for row in rows]  # RunInProgressError, cut to fit a line
    assert all(problem.startswith("3 tries; RunInProg") and problem.endswith("…") for problem in problems)
    assert [part for cell in artifact_markdown("table", rows) for part in live_parts(cell)] == []


def test_a_childs_problem_shows_in_the_parents_table_as_text() -> None:
    failed = ChildOutcome("demo_merchant", MADRID_DAYS[0], "delivery-report-one", "Failed", problem=IMG)
    [cell] = [cell for cell in artifact_markdown("table", [failed.cells()]) if "img" in cell]
    assert "img src=x" in cell and live_parts(cell) == []


def test_an_unreachable_prefect_server_is_named_before_any_window_runs() -> None:
    with (
        temporary_settings(
            updates={PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_CLIENT_MAX_RETRIES: 0}
        ),
        pytest.raises(
            SettingError, match=r"PREFECT_API_URL: the Prefect server at http://127.0.0.1:9/api does not"
        ),
    ):
        not_on_workers()


def test_an_order_reported_under_one_merchant_is_never_reported_again_under_another(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    lisbon = pipeline.shop.new_address(city="Lisboa", postcode="1100-148", id_country=PORTUGAL)
    id_order = pipeline.shop.shipped_order("PORTUGALA", id_address_delivery=lisbon)
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    monkeypatch.setenv(
        "SEQURA_MERCHANTS", json.dumps({"demo_merchant": {}, "demo_merchant_pt": {"countries": ["PT"]}})
    )
    day = {"since": SPAN["since"], "until": (SINCE + timedelta(days=1)).isoformat()}
    assert sorted((o.merchant, o.counts.sent) for o in backfill(**day)) == [
        ("demo_merchant", 0),
        ("demo_merchant_pt", 1),
    ]
    pipeline.shop.set_order(id_order, id_address_delivery=pipeline.shop.address)  # now delivered to Spain
    again = delivery_report(**day, merchant="demo_merchant")
    assert (again.counts.found, again.counts.new, again.counts.sent) == (0, 0, 0)  # demo_merchant_pt's order
    orders = requests.get(pipeline.sandbox.url + "_sandbox/orders", timeout=5).json()
    assert [(o["merchant"], o["order_ref_1"]) for o in orders] == [("demo_merchant_pt", "PORTUGALA")]


def test_a_running_child_whose_lease_lapsed_is_marked_crashed_and_a_live_one_is_left_running(
    pipeline: Pipeline,
) -> None:
    with get_client(sync_client=True) as client:
        child = client.create_flow_run(
            delivery_report, parameters={"merchant": "demo_merchant"}, state=Running()
        )
        hold_the_lock(pipeline, "child-run", flow_run_id=str(child.id))
        store = open_state_store(pipeline.state_url)
        liveness = Liveness(store, timedelta(minutes=10), None)
        assert liveness.ended(client, client.read_flow_run(child.id)).state.type.value == "RUNNING"
        with store.engine.begin() as conn:
            conn.execute(update(run_locks).values(renewed_at=datetime.now(UTC) - timedelta(minutes=11)))
        ended = liveness.ended(client, client.read_flow_run(child.id))
        store.dispose()
    assert ended.state.type.value == "CRASHED"
    assert "stopped renewing its run lease" in ended.state.message


@pytest.fixture
def deployed() -> Iterator[None]:
    """The delivery-report and backfill deployments on the test server while the test runs."""
    with get_client(sync_client=True) as client:
        made = [
            client.create_deployment(flow_id=client.create_flow(flow), name=flow.name, entrypoint=entrypoint)
            for flow, entrypoint in (
                (delivery_report, "flows/delivery_report.py:delivery_report"),
                (backfill, "flows/backfill.py:backfill"),
            )
        ]
    yield
    with get_client(sync_client=True) as client:
        for deployment in made:
            client.delete_deployment(deployment)


def backfill_as_a_worker_runs_it(span: dict[str, str] = SPAN) -> State:
    """Run the backfill of `span` as a worker runs a run of the backfill deployment: in this process."""
    parameters = {**span, "window": "1d"}
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("backfill/backfill")
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    return run_flow(backfill, flow_run=flow_run, parameters=parameters, return_type="state")


def test_a_backfill_run_on_a_worker_runs_each_window_as_a_deployment_run_in_its_own_process(
    pipeline: Pipeline, deployed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        fan_out, "START_WAIT", timedelta(seconds=5)
    )  # no worker runs here: none is waited for
    ship_one_a_day(pipeline, "AAAAAAAAA", "BBBBBBBBB")
    first = backfill_as_a_worker_runs_it()
    assert first.is_completed(), first.message
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("delivery-report/delivery-report")
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id={"any_": [deployment.id]})
        )
        parent = first.state_details.flow_run_id
        under_parent = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [parent]})
        )
    assert sorted(run.name for run in children) == [f"delivery-report {day}" for day in MADRID_DAYS]
    assert sorted(run.id for run in under_parent) == sorted(run.id for run in children)
    assert [said(row["Result"]) for row in json.loads(artifact_data("backfill-runs"))] == ["Completed"] * 3
    again = backfill_as_a_worker_runs_it()
    assert again.is_completed(), again.message
    with get_client(sync_client=True) as client:
        rerun = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id={"any_": [deployment.id]}))
    assert sorted((run.id, run.run_count) for run in rerun) == sorted((run.id, 2) for run in children)
    assert [row["Sent"] for row in json.loads(artifact_data("backfill-counts"))] == [0, 0, 0]
    assert sorted(pipeline.accepted()) == ["AAAAAAAAA", "BBBBBBBBB"]


def test_a_window_refused_on_a_worker_stops_its_merchants_later_windows_and_makes_no_run_for_them(
    pipeline: Pipeline, deployed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA", at=MORNING + timedelta(days=3))
    monkeypatch.setenv("SEQURA_PASSWORD", "not-the-password")
    later = {  # days of their own: a window's run is found again by its key, whichever test made it
        "since": (SINCE + timedelta(days=3)).isoformat(),
        "until": (SINCE + timedelta(days=6)).isoformat(),
    }
    ended = backfill_as_a_worker_runs_it(later)
    assert ended.is_failed()
    assert [row["Result"] for row in json.loads(artifact_data("backfill-counts"))] == [
        "Failed",
        "Not run",
        "Not run",
    ]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("delivery-report/delivery-report")
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id={"any_": [deployment.id]})
        )
    assert sorted((str(run.parameters["since"])[:10], run.state.name) for run in children) == [
        ("2026-11-23", "Failed"),  # the later windows' runs are made once the one before ends: never
    ]
    assert pipeline.accepted() == []


def a_child_run(state: State) -> uuid.UUID:
    """A delivery-report flow run in `state`, as a window's run is found by its idempotency key.

    Tagged with a merchant of its own: an untagged delivery-report run that completed counts, for every
    later run on the server, as one that may have sent without a state store (flows/history.py).
    """
    with get_client(sync_client=True) as client:
        return client.create_flow_run(
            delivery_report,
            parameters={"merchant": "demo_merchant"},
            state=state,
            tags=["merchant:another-process"],
        ).id


def state_of(run_id: uuid.UUID) -> str:
    """The name of the flow run's state type now, e.g. RUNNING."""
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state.type.value


@pytest.mark.flow
def test_a_window_running_in_another_process_is_not_run_again_here() -> None:
    running = a_child_run(Running())
    claim = fan_out.claim(running, timedelta(0))
    assert not claim.ours
    assert state_of(running) == "RUNNING"
    pending = a_child_run(Pending())  # another parent claimed it, and is about to run it
    assert not fan_out.claim(pending, timedelta(0)).ours
    assert state_of(pending) == "PENDING"


@pytest.mark.flow
def test_a_window_not_yet_run_or_ended_is_claimed_to_run_here() -> None:
    for state in (Scheduled(scheduled_time=fan_out.NOT_FOR_WORKERS), Completed(), Failed(), Crashed()):
        run_id = a_child_run(state)
        assert fan_out.claim(run_id, timedelta(0)).ours, state.name
        assert state_of(run_id) == "PENDING"


@pytest.mark.flow
def test_a_window_another_process_was_running_is_waited_for_and_its_outcome_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fan_out, "POLL_SECONDS", 0.1)
    running = a_child_run(Running())

    def other_process_ends_it() -> None:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(running, Completed(), force=True)

    threading.Timer(0.5, other_process_ends_it).start()
    claim = fan_out.claim(running, timedelta(seconds=30))
    assert not claim.ours and claim.run.state.is_completed()  # ended there: not run a second time here
    outcome = fan_out.ran_elsewhere(
        ChildRun("demo_merchant"), fan_out.FanOut("backfill", "test", False), claim.run
    )
    assert (outcome.result, outcome.problem) == ("Completed", "published no counts")
    still = fan_out.ran_elsewhere(
        ChildRun("demo_merchant"),
        fan_out.FanOut("backfill", "test", False),
        fan_out.claim(a_child_run(Running()), timedelta(0)).run,
    )
    assert still.failed and "still Running in another process" in still.problem


@pytest.mark.flow
def test_a_window_that_raises_makes_no_run_for_the_next_window(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[uuid.UUID] = []

    def claimed(child: ChildRun, fan: fan_out.FanOut) -> fan_out.Claimed:
        made.append(a_child_run(Scheduled(scheduled_time=fan_out.NOT_FOR_WORKERS)))
        return fan_out.claim(made[-1], timedelta(0))

    def run_here_tried(*args: object) -> ChildOutcome:
        raise RuntimeError("the window's run broke")

    monkeypatch.setattr(fan_out, "claimed", claimed)
    monkeypatch.setattr(fan_out, "run_here_tried", run_here_tried)
    windows = [
        ChildRun("demo_merchant", "2026-11-20", "2026-11-21"),
        ChildRun("demo_merchant", "2026-11-21", "2026-11-22"),
    ]
    told: list[ChildOutcome] = []
    with pytest.raises(RuntimeError, match="broke"):
        fan_out.run_windows_in_process(windows, fan_out.FanOut("backfill", "test", False), told.append)
    assert len(made) == 1 and told == []  # the second window never got a run

"""A run goes chunk by chunk: the same reports in any chunk size, each chunk committed as it is sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from sandbox.server import SandboxServer
from schemas.errors import SettingError
from schemas.outcomes import ROWS_SHOWN, DeliveryCounts, DeliveryOutcome
from schemas.prestashop import create_shop_schema, shop_tables
from schemas.reports import BuildResult, BuiltReport, SentOrder
from seeding.demo_shop import DemoShop, seed_demo_shop
from tasks.delivery import chunk, read_ahead, run
from tasks.delivery.chunk import ChunkRows
from tasks.delivery.read_ahead import ChunkBuildError, ChunkJob, ReadAhead
from tasks.delivery.run import Steps
from tasks.extract.connection import ShopReadError
from tasks.extract.scope import OrderFilter
from tasks.state.errors import RunInProgressError
from tasks.state.runs import last_marks
from tasks.state.snapshots import last_answers
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.clocks import MovedClock
from tests.runs import dry_run, run_once, settings_for
from tests.shops import MERCHANT, MORNING, SINCE, UNTIL, Shop, build_window

FIXTURES = Path(__file__).parents[2] / "fixtures"
DEMO_NOW = datetime(2026, 11, 24, 12, 0)  # shop-local; the golden files were made from this demo shop
DEMO_WINDOW = Window(datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), continues=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, DemoShop]]:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'shop.sqlite'}")
    create_shop_schema(engine, shop_tables())
    yield engine, seed_demo_shop(engine, shop_tables(), now=DEMO_NOW)
    engine.dispose()


def golden_orders() -> list[bytes]:
    """The demo shop's order reports as the code before streaming sent them, one a line, by order_ref_1."""
    return (FIXTURES / "demo_shop_reports.jsonl").read_bytes().splitlines()


def golden_outcome() -> dict:
    """The demo shop's fingerprints, quarantine reasons and statistics block before streaming."""
    return json.loads((FIXTURES / "demo_shop_outcome.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 7, 1000])
def test_reports_are_byte_identical_to_the_golden_demo_shop_in_any_chunk_size(
    demo: tuple[Engine, DemoShop], chunk_size: int
) -> None:
    result = build_window(demo[0], shop_tables(), DEMO_WINDOW.since, DEMO_WINDOW.until, chunk_size=chunk_size)
    reports = sorted((b for b in result.reports if not b.cancellation), key=lambda built: built.order_ref_1)
    assert [built.order_ref_1 for built in result.reports if built.cancellation] == ["IZIQUQOKI"]
    assert [built.payload for built in reports] == golden_orders()
    assert {built.order_ref_1: built.fingerprint for built in reports} == golden_outcome()["fingerprints"]
    assert {q.reference: q.reason for q in result.quarantined} == golden_outcome()["quarantined"]


def order_ref_1(line: bytes) -> str:
    """order_ref_1 of one order line of a dry-run file."""
    return json.loads(line.rstrip(b","))["merchant_reference"]["order_ref_1"]


def test_a_dry_run_writes_the_golden_orders_and_statistics_chunk_by_chunk(
    demo: tuple[Engine, DemoShop], tmp_path: Path
) -> None:
    engine, shop = demo
    settings = settings_for(engine, f"sqlite:///{tmp_path / 'state.sqlite'}", SHOP_CHUNK_SIZE="4")
    out = tmp_path / "dry-run.json"
    summary = dry_run(settings, DEMO_WINDOW, out)
    report = json.loads(out.read_bytes())["delivery_report"]
    orders = sorted(out.read_bytes().splitlines()[1:-1], key=order_ref_1)
    assert summary.chunks == 9  # 35 references in chunks of four
    new = [line for line in golden_orders() if order_ref_1(line) not in shop.module_sent_refs]
    assert [line.rstrip(b",") for line in orders] == new
    assert report["statistics"] == golden_outcome()["statistics"]
    counts = summary.counts
    assert (counts.new, counts.already_reported, counts.quarantined) == (31, 1, 3)


def test_a_run_makes_only_the_table_rows_it_keeps_and_keeps_the_first_ones(
    demo: tuple[Engine, DemoShop], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = demo
    made: list[str] = []

    def sent_row(built: BuiltReport, timezone: str) -> SentOrder:
        made.append(built.order_ref_1)
        return real_sent_row(built, timezone)

    real_sent_row = chunk.sent_row
    monkeypatch.setattr(chunk, "sent_row", sent_row)
    for module in (chunk, run):
        monkeypatch.setattr(module, "ROWS_SHOWN", 5)
    settings = settings_for(engine, f"sqlite:///{tmp_path / 'state.sqlite'}", SHOP_CHUNK_SIZE="4")
    summary = dry_run(settings, DEMO_WINDOW, tmp_path / "dry-run.json")

    assert summary.counts.new == 31 and summary.chunks == 9
    assert [row.order_ref_1 for row in summary.outcome.sent_rows] == made  # the first five, each made once
    assert len(made) == 5


def test_a_split_order_is_never_cut_by_a_chunk_boundary(shop: Shop, tmp_path: Path) -> None:
    shop.shipped_order("SPLITWIDE")
    for number in range(3):
        shop.shipped_order(f"BETWEEN{number:02d}")  # placed between the split order's two parts
    second = shop.order("SPLITWIDE")
    shop.writer.set_state(second, 4, at=MORNING + timedelta(hours=1))
    shop.order("SPLITWIDE")  # a third part, not shipped: it goes in remaining_cart
    whole = {
        b.order_ref_1: b.payload
        for b in build_window(shop.engine, shop.tables, SINCE, UNTIL, chunk_size=100).reports
    }
    for size in (1, 2, 3):
        chunked = build_window(shop.engine, shop.tables, SINCE, UNTIL, chunk_size=size).reports
        assert {b.order_ref_1: b.payload for b in chunked} == whole
    split = json.loads(whole["SPLITWIDE"])
    assert len(split["cart"]["items"]) == 4 and len(split["remaining_cart"]["items"]) == 2


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    return sandbox_server


class Killed(BaseException):
    """The process running a run is killed: nothing of the run's own cleanup runs after it."""


class DiesAfterFirstChunk(Steps):
    """A run's steps, in a process that is killed once the run's first chunk is committed."""

    def chunk_done(self, done: int, chunks: int) -> None:
        raise Killed


def test_chunks_sent_before_a_crash_are_kept_and_the_next_run_sends_only_the_rest(
    shop: Shop, tmp_path: Path, sandbox: SandboxServer
) -> None:
    for number in range(5):
        shop.shipped_order(f"CRASH{number:04d}")
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    settings = settings_for(shop.engine, state_url, SHOP_CHUNK_SIZE="2", SEQURA_API_URL=sandbox.url)
    window = Window(SINCE, UNTIL, continues=False)
    with pytest.raises(Killed):
        run_once(settings, window, steps=DiesAfterFirstChunk())
    store = open_state_store(state_url)
    sent = last_answers(store, MERCHANT, [f"CRASH{n:04d}" for n in range(5)])[0]
    store.dispose()
    assert set(sent) == {"CRASH0000", "CRASH0001"}  # the first of three chunks, committed
    with pytest.raises(RunInProgressError):  # the dead run's lock holds until its lease lapses
        run_once(settings.with_overrides(lock_wait_seconds=1.0), window, clock=MovedClock())
    lapsed = MovedClock(ahead=settings.run_lease() + timedelta(seconds=1))
    again = run_once(settings, window, clock=lapsed).counts
    assert (again.new, again.already_reported, again.sent) == (3, 2, 3)
    accepted = [o["order_ref_1"] for o in requests.get(sandbox.url + "_sandbox/orders", timeout=5).json()]
    assert sorted(accepted) == [f"CRASH{n:04d}" for n in range(5)]


def test_outcomes_add_up_their_counts_and_keep_at_most_a_thousand_rows_of_each_table() -> None:
    first = DeliveryOutcome(counts=DeliveryCounts(found=1, new=1), requests=1)
    outcome = first + DeliveryOutcome(counts=DeliveryCounts(found=2, changed=2), requests=2)
    assert (outcome.counts.found, outcome.counts.new, outcome.counts.changed, outcome.requests) == (
        3,
        1,
        2,
        3,
    )
    many = DeliveryOutcome(other_merchant=tuple(f"R{n}" for n in range(ROWS_SHOWN)))
    assert len((many + many).other_merchant) == ROWS_SHOWN


def test_the_run_scheduled_runs_go_on_from_leaves_marks_the_next_one_reads_above(
    shop: Shop, tmp_path: Path, sandbox: SandboxServer
) -> None:
    shop.shipped_order("FIRSTRUN1")
    settings = settings_for(shop.engine, f"sqlite:///{tmp_path / 'state.sqlite'}", SEQURA_API_URL=sandbox.url)
    assert run_once(settings, Window(SINCE, UNTIL)).counts.sent == 1
    store = open_state_store(settings.state_url())
    assert last_marks(store, MERCHANT) == {"order_history": 2, "order_slip": 0}
    store.dispose()
    shop.shipped_order("NEXTSHIPS", at=datetime(2026, 11, 21, 8, 0))
    scheduled = Window(UNTIL - timedelta(hours=6), UNTIL + timedelta(days=1), follows_last_run=True)
    out = tmp_path / "scheduled.json"
    summary = dry_run(settings, scheduled, out)
    assert (summary.incremental, summary.counts.found, summary.counts.new) == (True, 1, 1)
    assert [order_ref_1(line) for line in out.read_bytes().splitlines()[1:-1]] == ["NEXTSHIPS"]


def rows_of(name: str, reads: list[str]) -> Callable[[], ChunkRows]:
    """A chunk read that notes it happened and hands back `name` as its only reference."""

    def read() -> ChunkRows:
        reads.append(name)
        return ChunkRows([name], built=BuildResult())

    return read


def test_read_ahead_hands_over_the_chunk_it_read_and_reads_any_other_when_asked() -> None:
    ahead, reads = ReadAhead[ChunkRows](), []
    ahead.start(1, rows_of("chunk 1", reads))
    assert ahead.take(1, rows_of("chunk 1 again", reads)).references == ["chunk 1"]
    assert ahead.take(2, rows_of("chunk 2", reads)).references == ["chunk 2"]
    ahead.start(3, rows_of("chunk 3", reads))
    assert ahead.take(4, rows_of("chunk 4", reads)).references == ["chunk 4"]
    ahead.close()
    assert "chunk 1 again" not in reads


def test_a_read_ahead_that_failed_fails_the_chunk_that_takes_it() -> None:
    ahead = ReadAhead[ChunkRows]()

    def broken() -> ChunkRows:
        raise ShopReadError("could not read the PrestaShop tables")

    ahead.start(1, broken)
    with pytest.raises(ShopReadError):
        ahead.take(1, rows_of("never read", []))
    ahead.close()


def test_an_error_a_worker_process_cannot_send_back_as_it_is_reaches_the_run_in_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(shop: Engine, job: ChunkJob) -> ChunkRows:
        raise SettingError("SHOP_DB_URL", "the shop refused the chunk's read")

    monkeypatch.setattr(read_ahead, "read_and_build", refused)
    job = ChunkJob(
        make_url("sqlite://"), False, "ps_", OrderFilter(("sequrapayment",)), None, [], MERCHANT, "reference"
    )  # type: ignore[arg-type]

    with pytest.raises(
        ChunkBuildError, match=r"SettingError: .*SHOP_DB_URL.*the shop refused the chunk's read"
    ):
        read_ahead.read_and_build_in_worker(job)

"""The crash harness: a delivery-report run killed (SIGKILL) at a random moment loses and doubles nothing.

Each trial ships its own orders, starts `sequra-etl deliver` as a process of its own against the session's
Prefect server and the sandbox (a few requests slowed, answered late or lost after processing, so that a
kill often lands while a report is out), kills it at a random moment (half of the kills after the moment
a run takes its lock, so that many land on a run holding it), and lets a clean run follow at once,
the clock not moved: no lease lapses, so the clean run takes a killed run's lock over only because its
process is gone. Then SeQura must hold every shipped order of the trial, each reported once, and the state
store none held back. A kill that lands after SeQura accepted a report and before the store recorded it is
counted: the order was noted in flight before it left, so it is settled by an order update, never reported
again; one the killed run had out less than four timeouts before the clean run asked may still be on its
way, so the clean run leaves it in flight and a run after it settles it (the clock moved for that run only;
such trials are counted). Per killed trial it measures the time from the SIGKILL to the clean run's first
request reaching the sandbox (to its lock being taken when it sends nothing) and prints the median and the
longest. `make test` runs 10 trials; `make reliability` runs CRASH_TRIALS=50.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from prefect import get_client
from prefect.settings import PREFECT_API_URL
from sqlalchemy import create_engine, func, select

from flows.delivery_report import delivery_report
from sandbox.server import SandboxServer
from schemas.prestashop import shop_tables
from schemas.state import runs
from seeding.vocabulary import Line
from tasks import clock as clocks
from tasks.state.in_flight import uncertain_deliveries
from tasks.state.quarantine import references_to_retry
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.clocks import MovedClock
from tests.shops import MERCHANT, Shop, seeded_shop

pytestmark = [pytest.mark.mysql, pytest.mark.flow]

TRIALS = int(os.environ.get("CRASH_TRIALS", "10"))
ORDERS = 30
LEASE_SECONDS = 600.0  # as deployed: no lease lapses in a trial, a dead run is seen by its process alone
FAULTS = {
    "delay_seconds": 0.05,
    "error_share": 0.2,
    "error_kinds": ["lose_answer", "slow_answer", "fail"],
    "slow_answer_seconds": 0.6,
}
SEQURA = {
    "SEQURA_USERNAME": "demo",
    "SEQURA_PASSWORD": "demo-secret",
    "SEQURA_MERCHANT_ID": MERCHANT,
    "SEQURA_BATCH_SIZE": "3",
    "SEQURA_TIMEOUT_SECONDS": "0.4",
    "SEQURA_BACKOFF_SECONDS": "0.01",
    "SEQURA_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
    "SEQURA_LOCK_WAIT_SECONDS": "30",  # a takeover that fails stops the clean run instead of hanging it
    "SHOP_CHUNK_SIZE": "10",
}
# a 404 to the update settling an unanswered report proves the report never arrived only after four
# timeouts (tasks/delivery/settle.py): a clean run sooner leaves the order in flight for the next run
SETTLING_PATIENCE = timedelta(seconds=4 * float(SEQURA["SEQURA_TIMEOUT_SECONDS"]) + 0.5)


def ship_trial_orders(shop: Shop, trial: int, day: datetime) -> list[str]:
    """The trial's orders, shipped on `day` (shop-local); their references."""
    references = [f"K{trial:03d}{n:05d}" for n in range(ORDERS)]
    for n, reference in enumerate(references):
        line = Line("Camiseta", f"TSHIRT-{n}", 1 + n % 2, Decimal(1200 + n) / 100)
        shop.shipped_order(
            reference, lines=[line], at=day + timedelta(minutes=n), placed_at=day - timedelta(days=1)
        )
    return references


def held_at_sequra(sandbox: SandboxServer, references: list[str]) -> dict[str, int]:
    """How many delivery reports SeQura got for each order (0: it does not have it)."""
    counts = {}
    for reference in references:
        answer = requests.get(f"{sandbox.url}_sandbox/orders/{reference}", timeout=5)
        counts[reference] = answer.json()["delivery_reports"] if answer.ok else 0
    return counts


def kill_at_random(
    command: list[str], env: dict[str, str], rng: random.Random, earliest: float, longest: float
) -> tuple[str, datetime | None]:
    """Run `command`, SIGKILL it at random `earliest` to `longest` seconds in; how it ended, and when."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=rng.uniform(earliest, longest))
        return "finished before the kill", None
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        process.wait()
        return "killed", killed_at


def newest_run_started(state_url: str) -> datetime:
    """When the newest run the state store recorded took its merchant's lock (its runs row's started_at)."""
    engine = create_engine(state_url)
    with engine.connect() as conn:
        started = conn.execute(select(func.max(runs.c.started_at))).scalar_one()
    engine.dispose()
    return started.replace(tzinfo=UTC)


def first_request_from(sandbox: SandboxServer, moment: datetime) -> datetime | None:
    """When the sandbox logged the first API request at or after `moment`, if it logged any."""
    log = requests.get(sandbox.url + "_sandbox/requests", timeout=5).json()
    return min(
        (at for at in (datetime.fromisoformat(r["received_at"]) for r in log) if at >= moment), default=None
    )


def kill_to_send(sandbox: SandboxServer, state_url: str, killed_at: datetime) -> tuple[str, float]:
    """Seconds from the SIGKILL to the clean run's first request at the sandbox ("sent"), or to its lock.

    When the clean run sent nothing, the time to its lock being taken ("locked"). The clean run sends only
    once it holds the lock, so its first request is the first one logged after that; a request the killed
    run had out is logged at most a slow answer (0.6 s) after the kill.
    """
    locked_at = newest_run_started(state_url)
    sent_at = first_request_from(sandbox, locked_at)
    if sent_at is None:
        return "locked", (locked_at - killed_at).total_seconds()
    return "sent", (sent_at - killed_at).total_seconds()


def waiting_orders(state_url: str) -> list[str]:
    """The orders the state store holds back: quarantined, in flight, or owed an update."""
    store = open_state_store(state_url)
    waiting = references_to_retry(store, MERCHANT)
    store.dispose()
    return waiting


def in_words(seconds: list[float]) -> str:
    """`median 1.23 s, longest 2.34 s (n=10)`, or `none`."""
    if not seconds:
        return "none"
    return f"median {statistics.median(seconds):.2f} s, longest {max(seconds):.2f} s (n={len(seconds)})"


def trial_env(shop: Shop, state_url: str, sandbox: SandboxServer) -> dict[str, str]:
    """The environment of a trial's `sequra-etl deliver`: its shop and store, the sandbox, the test server."""
    return {
        **os.environ,
        **SEQURA,
        "SHOP_DB_URL": shop.engine.url.render_as_string(hide_password=False),
        "STATE_DB_URL": state_url,
        "SEQURA_API_URL": sandbox.url,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }


def deliver_command(window: Window) -> list[str]:
    """`sequra-etl deliver` over `window`."""
    executable = str(Path(sys.executable).parent / "sequra-etl")
    return [executable, "deliver", "--since", window.since.isoformat(), "--until", window.until.isoformat()]


def trial_window(day: datetime) -> Window:
    """A day's window around the trial's shipments (shop-local `day`, an hour ahead of UTC in winter)."""
    since = (day - timedelta(hours=2)).replace(tzinfo=UTC)
    return Window(since, since + timedelta(days=1), continues=False)


def runs_left(state_url: str) -> list[tuple[str, str | None, str | None]]:
    """(status, flow_run_id, message) of every run the state store recorded."""
    engine = create_engine(state_url)
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.status, runs.c.flow_run_id, runs.c.message)).all()
    engine.dispose()
    return [(row.status, row.flow_run_id, row.message) for row in rows]


def prefect_state(flow_run_id: str) -> str:
    """The state type of a flow run on the session's Prefect server."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(uuid.UUID(flow_run_id)).state
    return state.type.value if state is not None else "NONE"


def test_a_run_killed_at_any_moment_loses_and_doubles_nothing(
    mysql_shop_engine_factory: Any,
    sandbox_server: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = seeded_shop(mysql_shop_engine_factory("8.0", "ps_"), shop_tables("ps_"))
    rng = random.Random(7 if "CRASH_TRIALS" not in os.environ else None)
    tally: Counter[str] = Counter()
    warm_up = datetime(2025, 12, 31, 10, 0)
    ship_trial_orders(shop, 999, warm_up)
    state_url = f"sqlite:///{tmp_path / 'state.sqlite'}"  # one shop, one store, as in production
    began, started = datetime.now(UTC), time.monotonic()
    subprocess.run(
        deliver_command(trial_window(warm_up)),
        env=trial_env(shop, state_url, sandbox_server),
        check=True,
        capture_output=True,
    )
    longest = time.monotonic() - started  # a whole run: the kills fall anywhere in it
    locked = (newest_run_started(state_url) - began).total_seconds()  # half the kills fall after the lock
    taken_over: set[str | None] = set()  # the killed runs a clean run has taken over so far
    delays: list[tuple[str, float, bool]] = []  # per killed trial: sent or locked, seconds, took over
    checks: list[float] = []  # kill to the clean run's start: the harness's own checks in between
    for trial in range(TRIALS):
        requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
        day = datetime(2026, 1, 1, 10, 0) + timedelta(days=trial)
        references = ship_trial_orders(shop, trial, day)
        window = trial_window(day)
        requests.post(sandbox_server.url + "_sandbox/faults", json={**FAULTS, "seed": trial}, timeout=5)
        env = trial_env(shop, state_url, sandbox_server)
        earliest = rng.choice((0.5, locked))
        ended, killed_at = kill_at_random(deliver_command(window), env, rng, earliest, longest)
        tally[ended] += 1
        requests.post(sandbox_server.url + "_sandbox/faults", json={}, timeout=5).raise_for_status()
        store = open_state_store(state_url)
        in_flight = uncertain_deliveries(store, MERCHANT, references)
        store.dispose()
        at_sequra = held_at_sequra(sandbox_server, references)
        tally["orders SeQura had that the store had not recorded at the kill"] += sum(
            1 for ref in in_flight if at_sequra[ref]
        )
        for name, value in env.items():
            if name in SEQURA or name in ("SHOP_DB_URL", "STATE_DB_URL", "SEQURA_API_URL"):
                monkeypatch.setenv(name, value)
        if killed_at is not None:
            checks.append((datetime.now(UTC) - killed_at).total_seconds())
        delivery_report(since=window.since, until=window.until)  # the clean run, at once, the clock not moved
        measured = kill_to_send(sandbox_server, state_url, killed_at) if killed_at is not None else None
        left = runs_left(state_url)
        dead = [(run, why) for status, run, why in left if status == "crashed" and run not in taken_over]
        taken_over.update(run for run, _ in dead)
        assert "running" not in [status for status, _, _ in left]
        tally["killed runs taken over because their process was gone"] += sum(
            bool(re.match(r"its process \d+ on host .* (is gone|has ended)", str(why))) for _, why in dead
        )
        dead = [run for run, _ in dead]
        if measured is not None:
            delays.append((*measured, bool(dead)))
        tally["killed runs shown Crashed in Prefect"] += sum(prefect_state(run) == "CRASHED" for run in dead)
        tally["killed runs taken over"] += len(dead)

        if waiting_orders(state_url):  # reports the killed run had out too recently for a 404 to settle
            tally["trials whose clean run left reports out too recently to settle, for the next run"] += 1
            real = clocks.RUN_CLOCK
            monkeypatch.setattr(clocks, "RUN_CLOCK", MovedClock(ahead=SETTLING_PATIENCE))
            delivery_report(since=window.since, until=window.until)  # the next run, once a 404 proves it
            monkeypatch.setattr(clocks, "RUN_CLOCK", real)

        after = held_at_sequra(sandbox_server, references)
        waiting = waiting_orders(state_url)
        tally["lost"] += sum(1 for count in after.values() if count == 0)
        tally["doubled"] += sum(1 for count in after.values() if count > 1)
        tally["held"] += len(waiting)
    print(f"crash trials: {dict(tally)}")
    print(
        "from the SIGKILL to the clean run's first request at the sandbox (to its lock taken when it sent "
        f"nothing: {sum(kind == 'locked' for kind, _, _ in delays)} trials): every killed trial "
        f"{in_words([seconds for _, seconds, _ in delays])}; trials where it took a killed run's lock over "
        f"{in_words([seconds for _, seconds, took in delays if took])}; of which the harness's own checks "
        f"before the clean run starts {in_words(checks)}"
    )
    assert (tally["lost"], tally["doubled"], tally["held"]) == (0, 0, 0), dict(tally)
    assert tally["killed"] >= TRIALS // 2, dict(tally)  # most trials were really cut short
    assert tally["killed runs shown Crashed in Prefect"] == tally["killed runs taken over"], dict(tally)
    assert tally["killed runs taken over because their process was gone"] == tally["killed runs taken over"]
    shop.engine.dispose()

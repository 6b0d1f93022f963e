"""The crash harness: a delivery-report run killed (SIGKILL) at a random moment loses and doubles nothing.

Each trial ships its own orders, starts `sequra-etl deliver` as a process of its own against the session's
Prefect server and the sandbox (a few requests slowed, answered late or lost after processing, so that a
kill often lands while a report is out), kills it at a random moment, moves the clock one run lease on,
and lets a clean run follow. Then SeQura must hold every shipped order of the trial, each reported once, and
the state store none held back. A kill that lands after SeQura accepted a report and before the store
recorded it is counted: the order was noted in flight before it left, so it is settled by an order update,
never reported again. `make test` runs 10 trials; `make reliability` runs CRASH_TRIALS=50.
"""

from __future__ import annotations

import os
import random
import signal
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
from sqlalchemy import create_engine, select

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
LEASE_SECONDS = 2.0
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
    "SHOP_CHUNK_SIZE": "10",
}


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


def kill_at_random(command: list[str], env: dict[str, str], rng: random.Random, longest: float) -> str:
    """Run `command`, SIGKILL it after a random time up to `longest` seconds; how it ended."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=rng.uniform(0.5, longest))
        return "finished before the kill"
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return "killed"


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


def runs_left(state_url: str) -> list[tuple[str, str | None]]:
    """(status, flow_run_id) of every run the state store recorded."""
    engine = create_engine(state_url)
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.status, runs.c.flow_run_id)).all()
    engine.dispose()
    return [(row.status, row.flow_run_id) for row in rows]


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
    started = time.monotonic()
    subprocess.run(
        deliver_command(trial_window(warm_up)),
        env=trial_env(shop, state_url, sandbox_server),
        check=True,
        capture_output=True,
    )
    longest = time.monotonic() - started  # a whole run: the kills fall anywhere in it
    taken_over: set[str | None] = set()  # the killed runs a clean run has taken over so far
    for trial in range(TRIALS):
        requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
        day = datetime(2026, 1, 1, 10, 0) + timedelta(days=trial)
        references = ship_trial_orders(shop, trial, day)
        window = trial_window(day)
        requests.post(sandbox_server.url + "_sandbox/faults", json={**FAULTS, "seed": trial}, timeout=5)
        env = trial_env(shop, state_url, sandbox_server)
        tally[kill_at_random(deliver_command(window), env, rng, longest)] += 1
        requests.post(sandbox_server.url + "_sandbox/faults", json={}, timeout=5).raise_for_status()
        store = open_state_store(state_url)
        in_flight = uncertain_deliveries(store, MERCHANT, references)
        store.dispose()
        at_sequra = held_at_sequra(sandbox_server, references)
        tally["orders SeQura had that the store had not recorded at the kill"] += sum(
            1 for ref in in_flight if at_sequra[ref]
        )
        lapsed = MovedClock(ahead=timedelta(seconds=LEASE_SECONDS + 0.5))  # the killed run's lease lapsed
        monkeypatch.setattr(clocks, "RUN_CLOCK", lapsed)
        for name, value in env.items():
            if name in SEQURA or name in ("SHOP_DB_URL", "STATE_DB_URL", "SEQURA_API_URL"):
                monkeypatch.setenv(name, value)
        delivery_report(since=window.since, until=window.until)  # the clean run that follows
        dead = [run for status, run in runs_left(state_url) if status == "crashed" and run not in taken_over]
        taken_over.update(dead)
        assert "running" not in [status for status, _ in runs_left(state_url)]
        tally["killed runs shown Crashed in Prefect"] += sum(prefect_state(run) == "CRASHED" for run in dead)
        tally["killed runs taken over"] += len(dead)

        after = held_at_sequra(sandbox_server, references)
        store = open_state_store(state_url)
        waiting = references_to_retry(store, MERCHANT)
        store.dispose()
        tally["lost"] += sum(1 for count in after.values() if count == 0)
        tally["doubled"] += sum(1 for count in after.values() if count > 1)
        tally["held"] += len(waiting)
    print(f"crash trials: {dict(tally)}")
    assert (tally["lost"], tally["doubled"], tally["held"]) == (0, 0, 0), dict(tally)
    assert tally["killed"] >= TRIALS // 2, dict(tally)  # most trials were really cut short
    assert tally["killed runs shown Crashed in Prefect"] == tally["killed runs taken over"], dict(tally)
    shop.engine.dispose()

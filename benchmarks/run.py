"""`make bench`: the pipeline against its floor on generated MariaDB shops; writes benchmarks/RESULTS.md.

For each N (shipped SeQura orders) it seeds a shop with `sequra-etl seed`, then measures, each in a
process of its own so that its peak memory is its own:

- the floor: every row and column the pipeline needs, fetched set-based, per driver (benchmarks/floor.py);
- a backfill dry run over the whole year (extract, build, diff), per driver;
- a real backfill to the sandbox, SEQURA_BATCH_SIZE orders a request (this fills the state store);
- a nightly run: 10,000 orders shipped in the last day among the N already reported, read above the marks;
- a 15-minute run: 100 orders shipped in the 15 minutes since the backfill, sent for real, once with each
  shipment channel (order updates of orders SeQura knows from checkout, and the delivery report);
- the per-order baseline on a sample, scaled to N (benchmarks/per_order.py);
- where the time goes: a py-spy profile of the first backfill dry run, and EXPLAIN of every query.

One Prefect server and one sandbox, started here, serve every run. Results accumulate in
benchmarks/results.json (a later run at another N adds to it), from which RESULTS.md and results.png are
written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from benchmarks.explain import explain_queries
from benchmarks.profile import profile_summary
from benchmarks.report import write_report
from schemas.prestashop import shop_tables

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"
BIN = Path(sys.executable).parent
SERVER = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
NIGHTLY_ORDERS = 10_000
SAME_DAY_ORDERS = 100
SAME_DAY_INTERVAL = timedelta(minutes=15)  # the same-day schedule of README "Same-day reporting"
SAMPLE = 1000
COMMAND_ORDERS = 100_000  # the shop the command is timed on as a user runs it
YEAR_START = "2025-11-20"  # the seeded shops ship over the year before SHOP_NOW
SHOP_NOW = datetime(2026, 11, 20, 12, 0)  # shop-local end of the seeded year; the nightly day follows it
BACKFILL_UNTIL = (SHOP_NOW - timedelta(hours=1)).isoformat()  # shop-local ~ UTC+1: inside the seeded year
# Tables the nightly orders are added to, with their primary keys, to take them out again afterwards.
APPENDED = {
    "orders": "id_order",
    "order_detail": "id_order_detail",
    "order_history": "id_order_history",
    "order_carrier": "id_order_carrier",
    "order_cart_rule": "id_order_cart_rule",
    "order_slip": "id_order_slip",
    "customer": "id_customer",
    "address": "id_address",
    "sequra_order": "order_id",
}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measured(command: list[str], env: dict[str, str], profile: Path | None = None) -> dict[str, Any]:
    """Run a command to its end; the JSON of its last stdout line, with its wall seconds added.

    The benchmark's own commands report their peak memory in that JSON. With `profile`, py-spy samples
    the command into that file (raw stacks).
    """
    if profile is not None:
        command = [
            str(BIN / "py-spy"),
            "record",
            "--subprocesses",  # the build processes too
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(profile),
            "--",
            *command,
        ]
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if finished.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stderr[-3000:]}")
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result["wall_seconds"] = wall
    return result


@contextmanager
def background(command: list[str], env: dict[str, str], ready: str, timeout: float = 120) -> Iterator[None]:
    """Run a server for the length of the block, once `ready` answers on HTTP."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                urllib.request.urlopen(ready, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{command[0]} did not start: {ready}") from None
                time.sleep(1)
        yield
    finally:
        process.terminate()
        process.wait(30)


def database_url(name: str, driver: str = "pymysql") -> str:
    """The URL of a database on the benchmark's MariaDB server, with the given driver."""
    return (
        make_url(SERVER)
        .set(drivername=f"mysql+{driver}", database=name)
        .render_as_string(hide_password=False)
    )


def seed(orders: int, name: str, env: dict[str, str]) -> dict[str, Any]:
    """Create the benchmark shop `name` afresh with `orders` shipped SeQura orders over a year."""
    admin = create_engine(SERVER)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.dispose()
    return measured(
        [str(BIN / "sequra-etl"), "seed", "--orders", str(orders), "--shop-db", database_url(name),
         "--now", SHOP_NOW.isoformat(), "--days", "365"],
        env,
    )  # fmt: skip


def highest_ids(engine: Engine) -> dict[str, int]:
    """The highest primary key of every table the nightly orders are added to."""
    tables = shop_tables()
    with engine.connect() as conn:
        return {
            name: int(
                conn.execute(select(func.coalesce(func.max(getattr(tables, name).c[key]), 0))).scalar_one()
            )
            for name, key in APPENDED.items()
        }


@contextmanager
def indexed_date_upd(engine: Engine) -> Iterator[None]:
    """The indexes the README recommends on orders, customer and address date_upd, for a block only."""
    tables = ("orders", "customer", "address")
    with engine.begin() as conn:
        for name in tables:
            conn.exec_driver_sql(f"ALTER TABLE ps_{name} ADD INDEX sequra_etl_date_upd (date_upd)")
    try:
        yield
    finally:
        with engine.begin() as conn:
            for name in tables:
                conn.exec_driver_sql(f"ALTER TABLE ps_{name} DROP INDEX sequra_etl_date_upd")


def take_out_rows_above(engine: Engine, highest: dict[str, int]) -> None:
    """Delete the rows added after `highest` was taken, so the shop is as seeded again."""
    with engine.begin() as conn:
        for name, key in APPENDED.items():
            conn.execute(text(f"DELETE FROM ps_{name} WHERE {key} > :highest"), {"highest": highest[name]})


def check_out(sandbox_url: str, references: list[str]) -> None:
    """Tell the sandbox it knows these orders from checkout, as SeQura knows every order paid with it."""
    request = urllib.request.Request(
        f"{sandbox_url}_sandbox/checkouts",
        data=json.dumps({"merchant": "demo_merchant", "order_refs": references}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()


def references_above(engine: Engine, id_order: int) -> list[str]:
    """The references of the SeQura orders added above `id_order`."""
    orders = shop_tables().orders
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(orders.c.reference)
                .where(orders.c.id_order > id_order, orders.c.module == "sequrapayment")
                .distinct()
            ).scalars()
        )


def sandbox_requests(sandbox_url: str) -> list[dict[str, Any]]:
    """Every API request the sandbox logged, oldest first."""
    with urllib.request.urlopen(f"{sandbox_url}_sandbox/requests", timeout=30) as answer:
        return json.loads(answer.read())


def received(logged: list[dict[str, Any]], added: set[str]) -> dict[str, int]:
    """A run's requests as the sandbox logged them: reports, and order updates of added orders or not."""
    updates = [entry["path"].rsplit("/", 1)[-1] for entry in logged if entry["method"] == "PUT"]
    return {
        "reports": sum(1 for entry in logged if entry["method"] == "POST"),
        "updates_of_added_orders": sum(1 for ref in updates if ref in added),
        "updates_of_other_orders": sum(1 for ref in updates if ref not in added),
    }


def shop_reader() -> str:
    """The driver runs read the shop with: mysqlclient when the fast extra is installed, else pymysql."""
    return "mysqlclient" if importlib.util.find_spec("MySQLdb") else "pymysql"


def same_day_runs(name: str, env: dict[str, str], real_env: dict[str, str], work: Path) -> dict[str, Any]:
    """A scheduled run 15 minutes after the backfill, with SAME_DAY_ORDERS shipped in those minutes.

    Sent for real once per shipment channel, each from a copy of the state store the backfill left, then
    the shop is as seeded again. Writes the shop, the sandbox and the copies of the state store.
    """
    engine = create_engine(database_url(name))
    highest = highest_ids(engine)
    now = SHOP_NOW + SAME_DAY_INTERVAL
    days = SAME_DAY_INTERVAL / timedelta(days=1)
    seeding = [str(BIN / "sequra-etl"), "seed", "--orders", str(SAME_DAY_ORDERS), "--shop-db",
               database_url(name), "--now", now.isoformat(), "--days", str(days), "--seed", "3"]  # fmt: skip
    result: dict[str, Any] = {"same_day_seed": measured(seeding, env), "same_day_reader": shop_reader()}
    sandbox = env["SEQURA_API_URL"]
    added = references_above(engine, highest["orders"])
    check_out(sandbox, added)
    state = Path(make_url(real_env["STATE_DB_URL"]).database or "")
    until = (now - timedelta(hours=1)).isoformat()  # shop-local ~ UTC+1, as the nightly run's
    for channel in ("order_update", "delivery_report"):
        copy = state.with_name(f"{state.stem}-{channel}.sqlite")
        copy_state_store(state, copy)
        before = len(sandbox_requests(sandbox))
        result[f"same_day_{channel}"] = measured(
            [sys.executable, "-m", "benchmarks.deliver", "--until", until],
            {**real_env, "STATE_DB_URL": f"sqlite:///{copy}", "SEQURA_SHIPMENT_CHANNEL": channel},
        )
        result[f"same_day_{channel}"]["received"] = received(sandbox_requests(sandbox)[before:], set(added))
    take_out_rows_above(engine, highest)
    engine.dispose()
    return result


def copy_state_store(state: Path, copy: Path) -> None:
    """Copy a SQLite state store with SQLite's backup, its write-ahead log's commits included."""
    copy.unlink(missing_ok=True)
    with closing(sqlite3.connect(state)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)


def real_run_env(orders: int, env: dict[str, str], work: Path) -> dict[str, str]:
    """The settings of real runs against the shop of N = `orders`, with a state store of their own."""
    state = f"sqlite:///{work / f'state-{orders}.sqlite'}"
    return {**env, "SHOP_DB_URL": database_url(f"sequra_bench_{orders}"), "STATE_DB_URL": state}


def real_backfill(real_env: dict[str, str]) -> dict[str, Any]:
    """The seeded year sent to the sandbox for real: fills the state store the scheduled runs go on from."""
    backfill = [sys.executable, "-m", "benchmarks.deliver", "--since", YEAR_START, "--until", BACKFILL_UNTIL]
    return measured(backfill, real_env)


def bench_same_day(orders: int, env: dict[str, str], work: Path, keep_shop: bool) -> dict[str, Any]:
    """Only what the 15-minute runs need at one N: the shop (unless kept), the real backfill, the runs."""
    name = f"sequra_bench_{orders}"
    # under keys of their own, so that the figures of the last whole run stay as they were measured
    result: dict[str, Any] = {} if keep_shop else {"same_day_shop_seed": seed(orders, name, env)}
    real_env = real_run_env(orders, env, work)
    result["same_day_backfill"] = real_backfill(real_env)
    result.update(same_day_runs(name, env, real_env, work))
    result["same_day_measured"] = datetime.now().isoformat(timespec="minutes")
    return result


def bench_one(orders: int, env: dict[str, str], work: Path, profile: bool, command: bool) -> dict[str, Any]:
    """Every measurement at one N; with `command`, the command as a user runs it too."""
    name = f"sequra_bench_{orders}"
    result: dict[str, Any] = {"orders": orders, "seed": seed(orders, name, env)}
    for driver in ("pymysql", "mysqldb", "connectorx"):
        result[f"floor_{driver}"] = measured(
            [sys.executable, "-m", "benchmarks.floor", database_url(name, driver)], env
        )
    for driver in ("pymysql", "mysqldb"):
        run_env = {
            **env,
            "SHOP_DB_URL": database_url(name),
            "SHOP_FAST_READER": "true" if driver == "mysqldb" else "false",
            "STATE_DB_URL": f"sqlite:///{work / f'dry-{orders}-{driver}.sqlite'}",
        }
        dry_run = [sys.executable, "-m", "benchmarks.deliver", "--since", YEAR_START,
                   "--until", BACKFILL_UNTIL, "--dry-run", "--out", str(work / "dry-run.json")]  # fmt: skip
        result[f"backfill_dry_{driver}"] = measured(dry_run, run_env)
        if profile and driver == "mysqldb":  # once more under py-spy, which slows what it samples
            spy = work / f"profile-{orders}.txt"
            measured(dry_run, {**run_env, "STATE_DB_URL": f"{run_env['STATE_DB_URL']}-profile"}, profile=spy)
            result["profile"] = profile_summary(spy)
    if command:  # the command as a user runs it, Prefect's start included (benchmarks/command.py)
        result["command"] = measured(
            [sys.executable, "-m", "benchmarks.command", "--shop-db", database_url(name)], env
        )
    real_env = real_run_env(orders, env, work)
    result["backfill_send"] = real_backfill(real_env)
    engine = create_engine(database_url(name))
    highest = highest_ids(engine)
    result["nightly_seed"] = measured(
        [str(BIN / "sequra-etl"), "seed", "--orders", str(NIGHTLY_ORDERS), "--shop-db", database_url(name),
         "--now", (SHOP_NOW + timedelta(days=1)).isoformat(), "--days", "1", "--seed", "2"],
        env,
    )  # fmt: skip
    nightly = [sys.executable, "-m", "benchmarks.deliver", "--dry-run", "--out", str(work / "nightly.json"),
               "--until", (SHOP_NOW + timedelta(days=1, hours=-1)).isoformat()]  # fmt: skip
    result["nightly_dry"] = measured(nightly, real_env)
    with indexed_date_upd(engine):
        result["nightly_dry_indexed"] = measured(nightly, real_env)
    take_out_rows_above(engine, highest)
    result.update(same_day_runs(name, env, real_env, work))
    result["explain"] = explain_queries(engine)
    engine.dispose()
    result["per_order"] = measured(
        [sys.executable, "-m", "benchmarks.per_order", database_url(name, "mysqldb"), str(SAMPLE)], env
    )
    return result


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    with create_engine(SERVER).connect() as conn:
        server = conn.execute(text("SELECT VERSION()")).scalar_one()
        pool = conn.execute(text("SELECT @@innodb_buffer_pool_size")).scalar_one()
    return {
        "date": datetime.now().isoformat(timespec="minutes"),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "database": f"{server} (innodb_buffer_pool_size {int(pool) // 2**20} MB)",
    }


def then_the_others(backfill_orders: int | None, payout_orders: list[int]) -> None:
    """The backfill through a worker and the payout check, each as its own module writes its JSON."""
    if backfill_orders:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.backfill", "--orders", str(backfill_orders)], check=True
        )
    if payout_orders:
        sizes = [argument for orders in payout_orders for argument in ("--orders", str(orders))]
        subprocess.run([sys.executable, "-m", "benchmarks.payouts", *sizes], check=True)


def main() -> int:
    """Measure at each --orders, add to results.json, write RESULTS.md and results.png."""
    parser = argparse.ArgumentParser(description="Benchmark the delivery report on generated shops.")
    parser.add_argument("--orders", type=int, action="append", help="N shipped SeQura orders (repeatable)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from results.json")
    parser.add_argument(
        "--same-day-only",
        action="store_true",
        help="only the real backfill and the 15-minute runs, added to the figures results.json holds",
    )
    parser.add_argument(
        "--keep-shop", action="store_true", help="with --same-day-only: the shop an earlier run seeded at N"
    )
    parser.add_argument("--backfill-orders", type=int, help="then the backfill through a worker, this shop")
    parser.add_argument(
        "--payout-orders", type=int, action="append", help="then the payout check at this N (repeatable)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.report_only:
        write_report(json.loads(RESULTS.read_text()), HERE / "RESULTS.md", HERE / "results.png")
        return 0
    sizes = args.orders or [100_000]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    if not args.same_day_only:
        results["machine"] = machine()
    work = Path(tempfile.mkdtemp(prefix="sequra-etl-bench-"))
    prefect_port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "SEQURA_API_URL": f"http://127.0.0.1:{sandbox_port}/",
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_MERCHANT_ID": "demo_merchant",
        "SEQURA_BATCH_SIZE": "5000",
    }
    try:
        with (
            background(
                [str(BIN / "prefect"), "server", "start", "--port", str(prefect_port)],
                env,
                f"http://127.0.0.1:{prefect_port}/api/health",
            ),
            background(
                [str(BIN / "sequra-etl"), "sandbox", "--port", str(sandbox_port)],
                env,
                f"http://127.0.0.1:{sandbox_port}/_sandbox/orders",
            ),
        ):
            for orders in sizes:
                print(f"benchmarking N = {orders:,}", flush=True)
                profile = not args.no_profile and orders == min(sizes)
                if args.same_day_only:
                    results["runs"][str(orders)].update(bench_same_day(orders, env, work, args.keep_shop))
                else:
                    results["runs"][str(orders)] = bench_one(
                        orders, env, work, profile=profile, command=orders == COMMAND_ORDERS
                    )
                RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    then_the_others(args.backfill_orders, args.payout_orders or [])
    if args.backfill_orders and args.payout_orders:
        results["bench_seconds"], results["bench_sizes"] = time.perf_counter() - started, sizes
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    write_report(results, HERE / "RESULTS.md", HERE / "results.png", plot_too=not args.same_day_only)
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

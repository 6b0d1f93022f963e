"""Backfills of daily windows of generated MariaDB shops through the Prefect deployments and a worker.

For each shop (30 days of --orders shipped SeQura orders, and a year of --year-orders): seeds it, starts the
sandbox and a Prefect server on PostgreSQL (as the README advises for a server that lasts; --prefect-postgres
names the PostgreSQL server), creates the work pool, deploys (`prefect deploy --all`, as the README does)
and starts a worker; then runs `sequra-etl backfill` over its days. The 30-day one runs twice (the second
must create no run and send nothing), once more on a Prefect server with its default SQLite file, and once
more without a server on a fresh state store (the windows in the command's process, Prefect's temporary
server). Per backfill: wall seconds, windows, the sum of the windows' pipeline seconds (each window's run in
the state store, from taking its merchant's lock to its end), and the overhead per window, (wall - pipeline
sum) / windows. Writes benchmarks/backfill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from benchmarks.run import BIN, SERVER, background, database_url, free_port, measured
from schemas.outcomes import COUNT_COLUMNS
from schemas.state import runs

HERE = Path(__file__).parent
PROJECT = HERE.parent
SHOP_NOW = "2026-11-20T12:00:00"
MONTH = ("2026-10-21", "2026-11-20")  # 30 UTC days, inside the seeded month
YEAR = ("2025-11-20", "2026-11-20")  # 365 UTC days, inside the seeded year
PROJECT_SETTINGS = ("PREFECT_", "SHOP_", "SEQURA_", "STATE_DB_URL", "CORRECTIONS_")
PREFECT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"  # where the Prefect server's database goes
PREFECT_DATABASE = "sequra_bench_prefect"


def clean_environment(**values: str) -> dict[str, str]:
    """This process's environment without Prefect's and the project's settings, plus `values`."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(PROJECT_SETTINGS)}
    return {**kept, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **values}


def get_json(url: str, body: object | None = None) -> Any:
    """GET (or POST `body` to) a JSON endpoint."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def pipeline_seconds(state_url: str, after: datetime) -> tuple[int, float]:
    """How many windows' runs the state store records as started after `after`, and their seconds summed."""
    engine = create_engine(state_url)
    with engine.connect() as conn:
        spans = conn.execute(
            select(runs.c.started_at, runs.c.finished_at).where(runs.c.started_at >= after)
        ).all()
    engine.dispose()
    return len(spans), sum((end - start).total_seconds() for start, end in spans if end is not None)


def backfill(env: dict[str, str], cwd: Path, span: tuple[str, str]) -> dict[str, Any]:
    """Run the backfill command once; its wall seconds, its windows' pipeline seconds and its totals line."""
    began = datetime.now(UTC)
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "sequra-etl"), "backfill", "--since", span[0], "--until", span[1], "--window", "1d"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(
            f"backfill failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    totals = next(line for line in done.stdout.splitlines() if line.startswith("| **"))
    cells = [cell.strip() for cell in totals.strip("|").split("|")]
    windows = int(cells[0].strip("* ").split()[0])
    recorded, pipeline = pipeline_seconds(env["STATE_DB_URL"], began)
    return {
        "seconds": seconds,
        "windows": windows,
        "windows_recorded": recorded,
        "pipeline_seconds": pipeline,
        "overhead_per_window": (seconds - pipeline) / windows,
        **dict(zip(COUNT_COLUMNS, map(int, cells[3:]), strict=True)),
    }


def measured_backfill(
    env: dict[str, str], cwd: Path, span: tuple[str, str], sandbox: str, name: str
) -> dict[str, Any]:
    """One backfill's figures (`backfill`) with what the sandbox accepted in all; prints them."""
    figures = backfill(env, cwd, span)
    figures["sandbox_accepted"], figures["sandbox_distinct"] = accepted(sandbox)
    print(name, json.dumps(figures), flush=True)
    return figures


def runs_of_delivery_report(api: str) -> int:
    """How many flow runs the delivery-report deployment has."""
    deployment = get_json(f"{api}/deployments/name/delivery-report/delivery-report")
    return get_json(f"{api}/flow_runs/count", {"deployments": {"id": {"any_": [deployment["id"]]}}})


def accepted(sandbox: str) -> tuple[int, int]:
    """Orders the sandbox accepted, and how many distinct ones."""
    orders = get_json(f"{sandbox}_sandbox/orders")
    return len(orders), len({order["order_ref_1"] for order in orders})


def seeded_shop(name: str, orders: int, days: int, env: dict[str, str]) -> float:
    """Create the shop `name` afresh with `orders` shipped SeQura orders over `days`; the seconds it took."""
    admin = create_engine(SERVER)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.dispose()
    seeded = measured(
        [str(BIN / "sequra-etl"), "seed", "--orders", str(orders), "--shop-db", database_url(name),
         "--now", SHOP_NOW, "--days", str(days + 1)],
        env,
    )  # fmt: skip
    return float(seeded["wall_seconds"])


def drop_shop(name: str) -> None:
    """Drop the benchmark shop `name`."""
    admin = create_engine(SERVER)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


def prefect_database(server: str) -> str:
    """A new, empty database for the Prefect server on the PostgreSQL `server`; its asyncpg URL."""
    admin = create_engine(
        make_url(server).set(drivername="postgresql+psycopg2"),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {PREFECT_DATABASE}")
        conn.exec_driver_sql(f"CREATE DATABASE {PREFECT_DATABASE}")
    admin.dispose()
    url = make_url(server).set(drivername="postgresql+asyncpg", database=PREFECT_DATABASE)
    return url.render_as_string(hide_password=False)


@contextmanager
def prefect_server(env: dict[str, str], database: str | None = None) -> Iterator[str]:
    """A Prefect server on `database` (else its SQLite file) and its work pool, for the block; its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    database_env = {"PREFECT_API_DATABASE_CONNECTION_URL": database} if database else {}
    with background(server, {**env, **database_env}, f"{api}/health"):
        cli = {**env, "PREFECT_API_URL": api}
        subprocess.run(
            [str(BIN / "prefect"), "work-pool", "create", "local-process", "--type", "process"],
            env=cli,
            check=True,
            capture_output=True,
        )
        yield api


@contextmanager
def deployed_with_a_worker(cli: dict[str, str], settings: dict[str, str], log: Path) -> Iterator[None]:
    """The deployments of prefect.yaml (with `settings`' state store) and a worker with `settings`."""
    subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        env={**cli, **settings},
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    with log.open("w") as written:
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "local-process"],
            env={**cli, **settings, "PREFECT_WORKER_QUERY_SECONDS": "1"},
            cwd=log.parent,
            stdout=written,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            worker.terminate()  # a Prefect worker may take minutes to exit on SIGTERM; its runs have ended
            try:
                worker.wait(5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def shop_settings(name: str, sandbox: str, state: Path) -> dict[str, str]:
    """The settings of a run against the shop `name`, the sandbox and the state store file `state`."""
    return {
        "SHOP_DB_URL": database_url(name),
        "SEQURA_API_URL": sandbox,
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_MERCHANT_ID": "demo_merchant",
        "STATE_DB_URL": f"sqlite:///{state}",
    }


def main() -> int:
    """Seed, run the backfills, write and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=30_000, help="shipped SeQura orders over the 30 days")
    parser.add_argument("--year-orders", type=int, default=36_500, help="shipped SeQura orders over the year")
    parser.add_argument("--shops", default="sequra_bench_backfill", help="the shops' database names' start")
    parser.add_argument(
        "--prefect-postgres",
        default=PREFECT_POSTGRES,
        help="the PostgreSQL server of the Prefect server's database",
    )
    args = parser.parse_args()
    month_shop, year_shop = f"{args.shops}_month", f"{args.shops}_year"
    work = Path(tempfile.mkdtemp(prefix="sequra-bench-backfill-"))
    env = clean_environment(PREFECT_HOME=str(work / "prefect-home"))
    result: dict[str, Any] = {
        "orders_seeded": args.orders,
        "seed_seconds": seeded_shop(month_shop, args.orders, 30, env),
        "span": list(MONTH),
        "year_orders_seeded": args.year_orders,
        "year_seed_seconds": seeded_shop(year_shop, args.year_orders, 365, env),
        "year_span": list(YEAR),
    }
    sandbox_port = free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}/"
    month = shop_settings(month_shop, sandbox, work / "state.sqlite")
    year = shop_settings(year_shop, sandbox, work / "state-year.sqlite")
    database = prefect_database(args.prefect_postgres)
    result["prefect_database"] = "postgresql"  # of the first three backfills; on_workers_sqlite: its file
    with ExitStack() as running:
        running.enter_context(
            background(
                [str(BIN / "sequra-etl"), "sandbox", "--port", str(sandbox_port)],
                env,
                f"{sandbox}_sandbox/orders",
            )
        )
        with prefect_server(env, database) as api:
            cli = {**env, "PREFECT_API_URL": api}
            with deployed_with_a_worker(cli, month, work / "worker.log"):
                for attempt in ("on_workers_first", "on_workers_again"):
                    result[attempt] = measured_backfill({**cli, **month}, work, MONTH, sandbox, attempt)
                    result[attempt]["runs_of_delivery_report"] = runs_of_delivery_report(api)
            get_json(f"{sandbox}_sandbox/reset", {})
            with deployed_with_a_worker(cli, year, work / "worker-year.log"):
                result["year_on_workers"] = measured_backfill({**cli, **year}, work, YEAR, sandbox, "year")
        get_json(f"{sandbox}_sandbox/reset", {})
        on_sqlite = {**env, "PREFECT_HOME": str(work / "prefect-home-sqlite")}
        month_again = {**month, "STATE_DB_URL": f"sqlite:///{work / 'state-sqlite-server.sqlite'}"}
        with prefect_server(on_sqlite) as api:
            cli = {**on_sqlite, "PREFECT_API_URL": api}
            with deployed_with_a_worker(cli, month_again, work / "worker-sqlite.log"):
                result["on_workers_sqlite"] = measured_backfill(
                    {**cli, **month_again}, work, MONTH, sandbox, "on a SQLite server"
                )
        get_json(f"{sandbox}_sandbox/reset", {})
        in_process = {
            **env,
            **month,
            "PREFECT_HOME": str(work / "prefect-home-in-process"),  # a temporary server that saw no run
            "STATE_DB_URL": f"sqlite:///{work / 'state-in-process.sqlite'}",
        }
        result["in_process"] = measured_backfill(in_process, work, MONTH, sandbox, "in process")
    for name in (month_shop, year_shop):
        drop_shop(name)
    (HERE / "backfill.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

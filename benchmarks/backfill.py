"""Backfills of daily windows of generated MariaDB shops through the Prefect deployments and a worker.

For each shop (30 days of --orders shipped SeQura orders, and a year of --year-orders): seeds it, starts the
sandbox and a Prefect server, creates the work pool, deploys (`prefect deploy --all`, as the README does)
and starts a worker; then runs `sequra-etl backfill` over its days. The 30-day one runs twice (the second
must create no run and send nothing), and once more without a server on a fresh state store (the windows in
the command's process, Prefect's temporary server). Per backfill: wall seconds, windows, the sum of the
windows' pipeline seconds (each window's run in the state store, from taking its merchant's lock to its
end), and the overhead per window, (wall - pipeline sum) / windows. Writes benchmarks/backfill.json.
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

from benchmarks.run import BIN, SERVER, background, database_url, free_port, measured
from schemas.outcomes import COUNT_COLUMNS
from schemas.state import runs

HERE = Path(__file__).parent
PROJECT = HERE.parent
SHOP_NOW = "2026-11-20T12:00:00"
MONTH = ("2026-10-21", "2026-11-20")  # 30 UTC days, inside the seeded month
YEAR = ("2025-11-20", "2026-11-20")  # 365 UTC days, inside the seeded year
PROJECT_SETTINGS = ("PREFECT_", "SHOP_", "SEQURA_", "STATE_DB_URL", "CORRECTIONS_")


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
    sandbox_port, prefect_port = free_port(), free_port()
    sandbox, api = f"http://127.0.0.1:{sandbox_port}/", f"http://127.0.0.1:{prefect_port}/api"
    month = shop_settings(month_shop, sandbox, work / "state.sqlite")
    year = shop_settings(year_shop, sandbox, work / "state-year.sqlite")
    server = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)]
    with ExitStack() as running:
        running.enter_context(
            background(
                [str(BIN / "sequra-etl"), "sandbox", "--port", str(sandbox_port)],
                env,
                f"{sandbox}_sandbox/orders",
            )
        )
        running.enter_context(background(server, env, f"{api}/health"))
        cli = {**env, "PREFECT_API_URL": api}
        subprocess.run(
            [str(BIN / "prefect"), "work-pool", "create", "local-process", "--type", "process"],
            env=cli,
            check=True,
            capture_output=True,
        )
        with deployed_with_a_worker(cli, month, work / "worker.log"):
            for attempt in ("on_workers_first", "on_workers_again"):
                result[attempt] = backfill({**cli, **month}, work, MONTH)
                result[attempt]["runs_of_delivery_report"] = runs_of_delivery_report(api)
                result[attempt]["sandbox_accepted"], result[attempt]["sandbox_distinct"] = accepted(sandbox)
                print(attempt, json.dumps(result[attempt]), flush=True)
        get_json(f"{sandbox}_sandbox/reset", {})
        with deployed_with_a_worker(cli, year, work / "worker-year.log"):
            result["year_on_workers"] = backfill({**cli, **year}, work, YEAR)
            result["year_on_workers"]["sandbox_accepted"], result["year_on_workers"]["sandbox_distinct"] = (
                accepted(sandbox)
            )
            print("year_on_workers", json.dumps(result["year_on_workers"]), flush=True)
        get_json(f"{sandbox}_sandbox/reset", {})
        in_process = {
            **env,
            **month,
            "PREFECT_HOME": str(work / "prefect-home-in-process"),  # a temporary server that saw no run
            "STATE_DB_URL": f"sqlite:///{work / 'state-in-process.sqlite'}",
        }
        result["in_process"] = backfill(in_process, work, MONTH)
        result["in_process"]["sandbox_accepted"], result["in_process"]["sandbox_distinct"] = accepted(sandbox)
    for name in (month_shop, year_shop):
        drop_shop(name)
    (HERE / "backfill.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A backfill of 30 daily windows of a generated MariaDB shop: on a Prefect worker, twice, and in process.

Seeds a shop of --orders shipped SeQura orders over 30 days, starts the sandbox and a Prefect server, creates
the work pool, deploys (`prefect deploy --all`, as the README does) and starts a worker; then runs
`sequra-etl backfill` over the 30 days twice (the second must create no run and send nothing), and once more
without a server on a fresh state store (the windows run in the command's process). Writes
benchmarks/backfill.json and prints what it measured: runs created, wall time, orders sent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from benchmarks.run import BIN, SERVER, background, database_url, free_port, measured
from schemas.outcomes import COUNT_COLUMNS

HERE = Path(__file__).parent
PROJECT = HERE.parent
SINCE, UNTIL = "2026-10-21", "2026-11-20"  # 30 UTC days, inside the seeded month
SHOP_NOW = "2026-11-20T12:00:00"
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


def backfill(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run the backfill command once; its wall seconds and the totals line it printed."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "sequra-etl"), "backfill", "--since", SINCE, "--until", UNTIL, "--window", "1d"],
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
    return {
        "seconds": seconds,
        "windows": int(cells[0].strip("* ").split()[0]),
        **dict(zip(COUNT_COLUMNS, map(int, cells[3:]), strict=True)),
    }


def runs_of_delivery_report(api: str) -> int:
    """How many flow runs the delivery-report deployment has."""
    deployment = get_json(f"{api}/deployments/name/delivery-report/delivery-report")
    return len(get_json(f"{api}/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}}))


def accepted(sandbox: str) -> tuple[int, int]:
    """Orders the sandbox accepted, and how many distinct ones."""
    orders = get_json(f"{sandbox}_sandbox/orders")
    return len(orders), len({order["order_ref_1"] for order in orders})


def main() -> int:
    """Seed, run the three backfills, write and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=30_000, help="shipped SeQura orders over the 30 days")
    orders = parser.parse_args().orders
    name = "sequra_bench_backfill"
    admin = create_engine(SERVER)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.dispose()
    work = Path(tempfile.mkdtemp(prefix="sequra-bench-backfill-"))
    env = clean_environment(PREFECT_HOME=str(work / "prefect-home"))
    seeded = measured(
        [str(BIN / "sequra-etl"), "seed", "--orders", str(orders), "--shop-db", database_url(name),
         "--now", SHOP_NOW, "--days", "31"],
        env,
    )  # fmt: skip
    sandbox_port, prefect_port = free_port(), free_port()
    sandbox, api = f"http://127.0.0.1:{sandbox_port}/", f"http://127.0.0.1:{prefect_port}/api"
    settings = {
        "SHOP_DB_URL": database_url(name),
        "SEQURA_API_URL": sandbox,
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_MERCHANT_ID": "demo_merchant",
        "STATE_DB_URL": f"sqlite:///{work / 'state.sqlite'}",
    }
    result: dict[str, Any] = {
        "orders_seeded": orders,
        "seed_seconds": seeded["wall_seconds"],
        "span": [SINCE, UNTIL],
    }
    server = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)]
    with (
        background(
            [str(BIN / "sequra-etl"), "sandbox", "--port", str(sandbox_port)],
            env,
            f"{sandbox}_sandbox/orders",
        ),
        background(server, env, f"{api}/health"),
    ):
        cli = {**env, "PREFECT_API_URL": api}
        for command in (
            ["work-pool", "create", "local-process", "--type", "process"],
            ["--no-prompt", "deploy", "--all"],
        ):
            subprocess.run(
                [str(BIN / "prefect"), *command],
                env={**cli, **settings},
                cwd=PROJECT,
                check=True,
                capture_output=True,
            )
        log = (work / "worker.log").open("w")
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "local-process"],
            env={**cli, **settings, "PREFECT_WORKER_QUERY_SECONDS": "1"},
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for attempt in ("on_workers_first", "on_workers_again"):
                result[attempt] = backfill({**cli, **settings}, work)
                result[attempt]["runs_of_delivery_report"] = runs_of_delivery_report(api)
                result[attempt]["sandbox_accepted"], result[attempt]["sandbox_distinct"] = accepted(sandbox)
                print(attempt, json.dumps(result[attempt]), flush=True)
        finally:
            worker.terminate()  # a Prefect worker may take minutes to exit on SIGTERM; its runs have ended
            try:
                worker.wait(5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()
        get_json(f"{sandbox}_sandbox/reset", {})
        in_process = {
            **env,
            **settings,
            "PREFECT_HOME": str(work / "prefect-home-in-process"),  # a temporary server that saw no run
            "STATE_DB_URL": f"sqlite:///{work / 'state-in-process.sqlite'}",
        }
        result["in_process"] = backfill(in_process, work)
        result["in_process"]["sandbox_accepted"], result["in_process"]["sandbox_distinct"] = accepted(sandbox)
    (HERE / "backfill.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

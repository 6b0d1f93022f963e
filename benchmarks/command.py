"""The command as a user runs it: `sequra-etl deliver --dry-run`, end to end, each run a process of its own.

On the shop `--shop-db` names, in one run, each timed from the process's start to its exit:

- an empty one-minute window (the minute after the seeded year), without PREFECT_API_URL (Prefect's
  temporary server), with a new PREFECT_HOME and then with the same, warm one: the command's fixed cost;
- the same empty window against a running Prefect server (PREFECT_API_URL given);
- the shop's year, with the temporary server (warm PREFECT_HOME) and against the running server;
- the floor on the same shop (benchmarks/floor.py), with each driver, right before the year's runs.

Run as `python -m benchmarks.command --shop-db mysql+pymysql://root@127.0.0.1:3306/SHOP` on a shop that
`sequra-etl seed --now 2026-11-20T12:00:00 --days 365` made; prints one JSON object: the wall seconds and
CPU seconds and peak memory of each, and the year's ratios to the fastest floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from benchmarks.run import BACKFILL_UNTIL, BIN, YEAR_START, background, free_port

EMPTY_WINDOW = ("2026-11-21T00:00:00", "2026-11-21T00:01:00")  # after the seeded year: nothing shipped
DRIVERS = ("pymysql", "mysqldb", "connectorx")


def timed(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run a command to its end: its wall seconds, CPU seconds and peak memory; raises if it fails.

    CPU seconds and peak memory count the processes it waited for too (the temporary server): on a
    shared machine, CPU seconds move less than wall seconds.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        tail = output.decode(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{tail}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mb": round(usage.ru_maxrss / 1024),
    }


def deliver(sequra_etl: str, window: tuple[str, str], out: Path, env: dict[str, str]) -> dict[str, float]:
    """`sequra-etl deliver --dry-run` over `window`, writing its report to `out` (replaced)."""
    since, until = window
    command = [sequra_etl, "deliver", "--dry-run", "--since", since, "--until", until]
    return timed([*command, "--out", str(out), "--force"], env)


def floor(shop_db: str, driver: str, env: dict[str, str]) -> float:
    """The floor's seconds on the shop with `driver` (its own fetch time, not the process's start)."""
    url = make_url(shop_db).set(drivername=f"mysql+{driver}").render_as_string(hide_password=False)
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", url], env=env, capture_output=True, text=True, check=True
    )
    return round(json.loads(finished.stdout.splitlines()[-1])["seconds"], 2)


def measure(shop_db: str, sequra_etl: str, work: Path) -> dict[str, Any]:
    """Every figure of the command on the shop, in one run; uses `work` for homes, stores and reports."""
    user = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PREFECT_", "SHOP_", "STATE_", "SEQURA_"))
    }
    env = {
        **user,
        "SHOP_DB_URL": shop_db,
        "STATE_DB_URL": f"sqlite:///{work / 'state.sqlite'}",
        "SEQURA_USERNAME": "demo",
        "SEQURA_PASSWORD": "demo-secret",
        "SEQURA_MERCHANT_ID": "demo_merchant",
        "PREFECT_HOME": str(work / "prefect-home"),
    }
    year = (YEAR_START, BACKFILL_UNTIL)
    result: dict[str, Any] = {
        "empty_fresh_home": deliver(sequra_etl, EMPTY_WINDOW, work / "empty.json", env),
        "empty_warm_home": deliver(sequra_etl, EMPTY_WINDOW, work / "empty.json", env),
    }
    result["floors"] = {driver: floor(shop_db, driver, env) for driver in DRIVERS}
    result["year_temporary_server"] = deliver(sequra_etl, year, work / "year.json", env)
    port = free_port()
    server_env = {**env, "PREFECT_HOME": str(work / "server-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "0"}
    running = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    server = [str(BIN / "prefect"), "server", "start", "--port", str(port)]
    with background(server, server_env, f"http://127.0.0.1:{port}/api/health"):
        result["empty_running_server"] = deliver(sequra_etl, EMPTY_WINDOW, work / "empty.json", running)
        result["year_running_server"] = deliver(sequra_etl, year, work / "year.json", running)
    fastest = min(result["floors"].values())
    result["floor_seconds"] = fastest
    result["year_temporary_over_floor"] = round(result["year_temporary_server"]["seconds"] / fastest, 2)
    result["year_running_over_floor"] = round(result["year_running_server"]["seconds"] / fastest, 2)
    return result


def main() -> None:
    """Measure the command on the shop --shop-db names and print the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shop-db", required=True, help="a seeded shop's URL (mysql+pymysql://...)")
    parser.add_argument(
        "--command", default=str(BIN / "sequra-etl"), help="the sequra-etl to run (another version's)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sequra-etl-command-"))
    try:
        print(json.dumps(measure(args.shop_db, args.command, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

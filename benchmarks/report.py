"""Write benchmarks/RESULTS.md and results.png from results.json (and benchmarks/analysis.md's reading)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.delivery.read_ahead import PROCESSES_FROM_CHUNKS

ANALYSIS = Path(__file__).parent / "analysis.md"
PAYOUTS = Path(__file__).parent / "payouts.json"  # written by benchmarks/payouts.py
BACKFILL = Path(__file__).parent / "backfill.json"  # written by benchmarks/backfill.py
DRIVERS = {"pymysql": "pymysql", "mysqldb": "mysqlclient"}  # the readers the pipeline runs with
FLOORS = {**DRIVERS, "connectorx": "connectorx"}  # the readers the floor is measured with


def pipeline_seconds(run: dict[str, Any]) -> float:
    """Seconds of pipeline work in a flow run: the sum of its stages (Prefect's start is not among them)."""
    return sum(run["stage_seconds"].values())


def _n(value: float, digits: int = 1) -> str:
    """A number for a table, thousands separated."""
    return f"{value:,.{digits}f}"


def _count(number: int, noun: str) -> str:
    """A count with its noun: 1 request, 98 requests."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs, by N."""
    return [results["runs"][key] for key in sorted(results["runs"], key=int)]


def figures_table(results: dict[str, Any]) -> list[str]:
    """One row per measurement and N: seconds, peak memory, ratio to the floor of the same driver."""
    lines = [
        "| N | measurement | seconds | peak memory (MB) | vs floor, same driver |",
        "|---:|---|---:|---:|---:|",
    ]
    for run in _runs(results):
        n = f"{run['orders']:,}"
        for driver, label in FLOORS.items():
            if f"floor_{driver}" not in run:
                continue
            floor = run[f"floor_{driver}"]
            lines.append(
                f"| {n} | (a) floor, {label} ({floor['rows']:,} rows) | {_n(floor['seconds'])} | "
                f"{_n(floor['peak_mb'], 0)} | 1.0 |"
            )
        for driver, label in DRIVERS.items():
            dry = run[f"backfill_dry_{driver}"]
            work = pipeline_seconds(dry)
            lines.append(
                f"| {n} | (b) backfill dry run, {label}: pipeline (flow call {_n(dry['flow_seconds'])} s) | "
                f"{_n(work)} | {_n(whole_peak(dry), 0)} | {work / run[f'floor_{driver}']['seconds']:.1f} |"
            )
        nightly = run["nightly_dry"]
        lines.append(
            f"| {n} | (c) nightly run, {NIGHTLY:,} new among N, mysqlclient: pipeline (flow call "
            f"{_n(nightly['flow_seconds'])} s; {nightly['found']:,} references read) | "
            f"{_n(pipeline_seconds(nightly))} | {_n(nightly['peak_mb'], 0)} | |"
        )
        if "nightly_dry_indexed" in run:
            indexed = run["nightly_dry_indexed"]
            lines.append(
                f"| {n} | (c) the same with the README's indexes on date_upd: pipeline (flow call "
                f"{_n(indexed['flow_seconds'])} s) | {_n(pipeline_seconds(indexed))} | "
                f"{_n(indexed['peak_mb'], 0)} | |"
            )
        lines.extend(same_day_rows(run))
        send = run["backfill_send"]
        sending = send["sent"] / send["stage_seconds"].get("load", 1.0)
        end_to_end = send["sent"] / pipeline_seconds(send)
        lines.append(
            f"| {n} | (d) real backfill to the sandbox: {send['sent']:,} orders in {send['requests']} "
            f"requests, {_n(sending, 0)} orders/s while sending, {_n(end_to_end, 0)} orders/s end to end | "
            f"{_n(pipeline_seconds(send))} | {_n(send['peak_mb'], 0)} | |"
        )
        base = run["per_order"]
        per_order = base["seconds"] / base["references"]
        scaled = per_order * run["backfill_dry_mysqldb"]["found"]
        lines.append(
            f"| {n} | (e) per-order baseline, mysqlclient: {base['references']:,} references, "
            f"{base['queries'] / base['references']:.1f} queries and {per_order * 1000:.2f} ms each, "
            f"scaled to {run['backfill_dry_mysqldb']['found']:,} | {_n(scaled)} | {_n(base['peak_mb'], 0)} | "
            f"{scaled / run['floor_mysqldb']['seconds']:.1f} |"
        )
    return lines


NIGHTLY = 10_000
SAME_DAY = 100
CHANNELS = {"order_update": "as order updates", "delivery_report": "in a delivery report"}


def same_day_rows(run: dict[str, Any]) -> list[str]:
    """The 15-minute runs' rows, one per shipment channel, when measured; dated when measured apart."""
    n = f"{run['orders']:,}"
    when = f", measured {run['same_day_measured']}" if "same_day_measured" in run else ""
    reader = run.get("same_day_reader", "mysqlclient")
    rows = []
    for channel, label in CHANNELS.items():
        if f"same_day_{channel}" not in run:
            continue
        same_day = run[f"same_day_{channel}"]
        rows.append(
            f"| {n} | (c) 15-minute run, {SAME_DAY} new shipments among N, sent {label}, {reader}: "
            f"pipeline (flow call {_n(same_day['flow_seconds'])} s; {same_day['found']:,} references read; "
            f"{same_day['sent']:,} sent in {_count(same_day['requests'], 'request')}{when}) | "
            f"{_n(pipeline_seconds(same_day))} | {_n(same_day['peak_mb'], 0)} | |"
        )
    return rows


def whole_peak(run: dict[str, Any]) -> float:
    """A run's peak memory, its build processes' counted: the main process's plus the largest one's each."""
    return run["peak_mb"] + run.get("build_processes", 0) * run.get("worker_peak_mb", 0.0)


def fastest_floor(run: dict[str, Any]) -> tuple[float, str]:
    """The fastest floor measured at one N: its seconds and its reader."""
    return min(
        (run[f"floor_{driver}"]["seconds"], label)
        for driver, label in FLOORS.items()
        if f"floor_{driver}" in run
    )


def _met(target: str, measured: str, met: bool) -> str:
    """One row of the targets table."""
    return f"| {target} | {measured} | {'met' if met else '**not met**'} |"


def memory_flat_row(big: dict[str, Any], small: dict[str, Any]) -> str:
    """Whether each process's peak stays the same from the smaller N to the larger (within 25%).

    Build processes start only for runs of PROCESSES_FROM_CHUNKS chunks or more, so the smaller run may
    have none: its whole peak is then one process's, and each process is compared instead.
    """
    runs = {
        size: [size_run[f"backfill_dry_{d}"] for d in DRIVERS]
        for size, size_run in (("small", small), ("big", big))
    }
    main = {size: max(run["peak_mb"] for run in found) for size, found in runs.items()}
    workers = {
        size: max((run["worker_peak_mb"] for run in found if run.get("build_processes")), default=None)
        for size, found in runs.items()
    }
    flat = main["big"] <= main["small"] * 1.25
    if workers["small"] is not None and workers["big"] is not None:
        flat = flat and workers["big"] <= workers["small"] * 1.25
    each = (
        f"none at {small['orders']:,} (fewer than {PROCESSES_FROM_CHUNKS} chunks)"
        if workers["small"] is None
        else f"{workers['small']:,.0f} MB at {small['orders']:,}"
    )
    build = (
        ""
        if workers["big"] is None
        else f"; each build process: {each}, {workers['big']:,.0f} MB at {big['orders']:,}"
    )
    return _met(
        f"peak memory the same at {small['orders']:,} and {big['orders']:,}, process by process",
        f"the run's process: {main['small']:,.0f} MB at {small['orders']:,}, {main['big']:,.0f} MB at "
        f"{big['orders']:,}{build}",
        flat,
    )


def throughput_rows(big: dict[str, Any], small: dict[str, Any]) -> list[str]:
    """The backfill's targets: pipeline and flow call against the fastest floor, memory, sending."""
    floor, reader = fastest_floor(big)
    dry = big["backfill_dry_mysqldb"]
    work, call = pipeline_seconds(dry), dry["flow_seconds"]
    peak = max(whole_peak(big[f"backfill_dry_{d}"]) for d in DRIVERS)
    send = big["backfill_send"]
    end_to_end = send["sent"] / pipeline_seconds(send)
    n = f"{big['orders']:,}"
    return [
        _met(
            f"backfill dry run of {n} ≤ 1.5× the fastest floor, pipeline time",
            f"{work / floor:.2f}× ({_n(work)} s against {_n(floor)} s with {reader})",
            work <= 1.5 * floor,
        ),
        _met(
            "the same as the flow call on a running Prefect server ≤ 2× the fastest floor",
            f"{call / floor:.2f}× ({_n(call)} s)",
            call <= 2 * floor,
        ),
        _met(
            "peak memory ≤ 1 GB (the run's process and its build processes)", f"{peak:,.0f} MB", peak <= 1024
        ),
        memory_flat_row(big, small),
        _met(
            f"sending ≥ 6,000 orders/s end to end at {n}",
            f"{end_to_end:,.0f} orders/s ({send['sent']:,} orders in {_n(pipeline_seconds(send))} s)",
            end_to_end >= 6000,
        ),
    ]


def nightly_rows(big: dict[str, Any], small: dict[str, Any]) -> list[str]:
    """The nightly run's targets: 3 s among the largest N, installed and indexed, and flat in N."""
    rows = []
    for key, how in (
        ("nightly_dry", "the shop as installed"),
        ("nightly_dry_indexed", "with date_upd indexes"),
    ):
        seconds, seconds_small = pipeline_seconds(big[key]), pipeline_seconds(small[key])
        rows += [
            _met(
                f"nightly run, {NIGHTLY:,} new among {big['orders']:,}, {how}: ≤ 3 s of pipeline",
                f"{seconds:.1f} s ({big[key]['found']:,} references read)",
                seconds <= 3,
            ),
            _met(
                f"the same no slower than among {small['orders']:,} (within 20%)",
                f"{seconds_small:.1f} s at {small['orders']:,}, {seconds:.1f} s at {big['orders']:,}",
                seconds <= seconds_small * 1.2,
            ),
        ]
    return rows


def earlier_rows(big: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """The targets of earlier issues, still measured."""
    slow = pipeline_seconds(big["backfill_dry_pymysql"]) / big["floor_pymysql"]["seconds"]
    per_order = (
        big["per_order"]["seconds"] / big["per_order"]["references"] * big["backfill_dry_mysqldb"]["found"]
    )
    speedup = per_order / pipeline_seconds(big["backfill_dry_mysqldb"])
    per_n = [pipeline_seconds(run["backfill_dry_mysqldb"]) / run["orders"] * 1e6 for run in runs]
    return [
        _met("backfill dry run ≤ 3× the floor with pymysql", f"{slow:.1f}×", slow <= 3),
        _met(
            "time linear in N",
            ", ".join(
                f"{value:.0f} µs an order at {run['orders']:,}"
                for value, run in zip(per_n, runs, strict=True)
            ),
            max(per_n) <= min(per_n) * 1.3,
        ),
        _met("≥ 50× faster per order than the per-order baseline", f"{speedup:.0f}×", speedup >= 50),
    ]


def command_rows(results: dict[str, Any]) -> list[str]:
    """The command as a user runs it (benchmarks/command.py): its fixed cost, and a year against the floor."""
    timed = [run for run in _runs(results) if "command" in run]
    if not timed:
        return [_met("the command as a user runs it", "not measured (benchmarks.command)", False)]
    run = timed[0]
    command, n = run["command"], f"{run['orders']:,}"
    fresh, warm = command["empty_fresh_home"]["seconds"], command["empty_warm_home"]["seconds"]
    temporary, running = command["year_temporary_over_floor"], command["year_running_over_floor"]
    floor = f"{command['floor_seconds']:.1f} s floor"
    return [
        _met(
            "fixed cost of a command (an empty window, end to end, Prefect's temporary server) ≤ 5 s",
            f"{warm:.1f} s ({fresh:.1f} s with a new PREFECT_HOME)",
            warm <= 5,
        ),
        _met(
            f"`deliver --dry-run` over a year of {n} ≤ 3× the floor end to end, Prefect's start included",
            f"{temporary:.1f}× ({command['year_temporary_server']['seconds']:.1f} s against the {floor})",
            temporary <= 3,
        ),
        _met(
            "the same against a running Prefect server ≤ 2× the floor",
            f"{running:.1f}× ({command['year_running_server']['seconds']:.1f} s)",
            running <= 2,
        ),
    ]


def window_rows() -> list[str]:
    """A backfill's overhead a window through the deployment (benchmarks/backfill.py): 30, 365 windows.

    On a Prefect server on PostgreSQL, as the README advises for a server that lasts; the 30 windows again
    on one with its default SQLite file.
    """
    if not BACKFILL.exists():
        return [
            _met("a backfill's windows ≤ 1 s of overhead each", "not measured (benchmarks.backfill)", False)
        ]
    backfill = json.loads(BACKFILL.read_text())
    database = "PostgreSQL" if backfill.get("prefect_database") == "postgresql" else "SQLite"
    rows = []
    for key, server in (
        ("on_workers_first", database),
        ("year_on_workers", database),
        ("on_workers_sqlite", "SQLite"),
    ):
        if key not in backfill:
            continue
        run = backfill[key]
        rows.append(
            _met(
                f"a backfill of {run['windows']} daily windows through the deployment, the Prefect server on "
                f"{server}: ≤ 1 s of overhead a window beyond its pipeline time",
                f"{run['overhead_per_window']:.2f} s ({run['seconds']:.0f} s wall, "
                f"{run['pipeline_seconds']:.0f} s of pipeline)",
                run["overhead_per_window"] <= 1,
            )
        )
    return rows


def bench_row(results: dict[str, Any]) -> list[str]:
    """The whole make bench's wall time, when it was one run with 1,000,000."""
    if "bench_seconds" not in results:
        return []
    minutes = results["bench_seconds"] / 60
    sizes = ", ".join(f"{n:,}" for n in results["bench_sizes"])
    return [
        _met("make bench ≤ 40 minutes with BENCH_1M=1", f"{minutes:.1f} minutes (N = {sizes})", minutes <= 40)
    ]


def targets_table(results: dict[str, Any]) -> list[str]:
    """The targets against the largest N measured, with the smaller N for comparison."""
    runs = _runs(results)
    big, small = runs[-1], runs[0]
    return [
        f"Measured at N = {big['orders']:,} (the largest N run), with the smaller N for comparison; every "
        "floor in the same run.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *throughput_rows(big, small),
        *command_rows(results),
        *nightly_rows(big, small),
        *window_rows(),
        *bench_row(results),
        *earlier_rows(big, runs),
    ]


def profile_lines(results: dict[str, Any]) -> list[str]:
    """Where the time goes, from the profile and the runs' own stage timings."""
    lines = []
    for run in _runs(results):
        dry = run["backfill_dry_mysqldb"]
        stages = ", ".join(
            f"{stage} {seconds:.1f} s" for stage, seconds in sorted(dry["stage_seconds"].items())
        )
        lines.append(f"- N = {run['orders']:,}, backfill dry run (mysqlclient), by stage: {stages}.")
        if "profile" in run:
            profile = run["profile"]
            lines.append(
                "  - py-spy, share of samples by stage: "
                + ", ".join(f"{stage} {share}%" for stage, share in profile["stages"].items())
                + "."
            )
            lines.append(
                "  - by part of the code: "
                + ", ".join(f"{part} {share}%" for part, share in profile["parts"].items())
                + "."
            )
    return lines


def explain_lines(results: dict[str, Any]) -> list[str]:
    """The plans of the largest N, one line per query."""
    big = _runs(results)[-1]
    lines = [
        f"On the shop of N = {big['orders']:,} just loaded, without ANALYZE TABLE "
        "(`in_predicate_conversion_threshold = 0`, as the pipeline sets on MariaDB):",
        "",
        "| query | plan (table: access, key, estimated rows) |",
        "|---|---|",
    ]
    for entry in big["explain"]:
        plan = "; ".join(
            f"{step['table']}: {step['type']}{' ' + step['key'] if step['key'] else ''}, {step['rows']}"
            for step in entry["plan"]
        )
        once = "once per chunk" if entry["query"].startswith("chunk") else "once per run"
        flag = f" **full scan of {', '.join(entry['full_scans'])}, {once}**" if entry["full_scans"] else ""
        lines.append(f"| {entry['query']} | {plan}{flag} |")
    return lines


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Time and peak memory against N, one line per measurement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _runs(results)
    sizes = [run["orders"] for run in runs]
    figure, (times, memory) = plt.subplots(1, 2, figsize=(12, 5))
    series = {
        "floor, pymysql": [run["floor_pymysql"]["seconds"] for run in runs],
        "floor, mysqlclient": [run["floor_mysqldb"]["seconds"] for run in runs],
        "backfill dry run, pymysql": [pipeline_seconds(run["backfill_dry_pymysql"]) for run in runs],
        "backfill dry run, mysqlclient": [pipeline_seconds(run["backfill_dry_mysqldb"]) for run in runs],
        "real backfill to the sandbox": [pipeline_seconds(run["backfill_send"]) for run in runs],
        "nightly, 10,000 new": [pipeline_seconds(run["nightly_dry"]) for run in runs],
    }
    for label, values in series.items():
        times.plot(sizes, values, marker="o", label=label)
    times.set(xscale="log", yscale="log", xlabel="shipped SeQura orders (N)", ylabel="seconds", title="Time")
    times.legend(fontsize=8)
    peaks = {
        "floor, pymysql": [run["floor_pymysql"]["peak_mb"] for run in runs],
        "backfill dry run, pymysql": [run["backfill_dry_pymysql"]["peak_mb"] for run in runs],
        "backfill dry run, mysqlclient": [run["backfill_dry_mysqldb"]["peak_mb"] for run in runs],
        "real backfill to the sandbox": [run["backfill_send"]["peak_mb"] for run in runs],
        "nightly": [run["nightly_dry"]["peak_mb"] for run in runs],
    }
    for label, values in peaks.items():
        memory.plot(sizes, values, marker="o", label=label)
    memory.set(xscale="log", xlabel="shipped SeQura orders (N)", ylabel="peak memory (MB)", title="Memory")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _received(same_day: dict[str, Any]) -> str:
    """What the sandbox logged of a 15-minute run's requests, when it was recorded."""
    if "received" not in same_day:
        return ""
    received = same_day["received"]
    updates = _count(received["updates_of_added_orders"], "order update")
    return (
        f": {_count(received['reports'], 'report')}, {updates} of the orders added, "
        f"{received['updates_of_other_orders']:,} of older ones"
    )


def same_day_lines(results: dict[str, Any]) -> list[str]:
    """How to read the 15-minute runs' rows, with their figures, when they were measured."""
    runs = [run for run in _runs(results) if "same_day_order_update" in run]
    if not runs:
        return []
    lines = [
        "## 15-minute runs",
        "",
        'README "Same-day reporting": a scheduled run 15 minutes after the real backfill, with '
        f"{SAME_DAY} orders shipped in those minutes (`sequra-etl seed --days` of 15 minutes), sent for real "
        "to the sandbox, which knows the new orders from checkout; once with order updates and once with "
        "the delivery report, each from a copy of the state store the backfill left. Measured with the "
        "other figures, or apart (`python -m benchmarks.run --same-day-only`) on the date a row gives.",
        "",
    ]
    for run in runs:
        update, report = run["same_day_order_update"], run["same_day_delivery_report"]
        sending = _n(update["stage_seconds"].get("load", 0.0))
        lines.append(
            f"- N = {run['orders']:,}: {update['found']:,} references read for {update['new']:,} new; "
            f"{_n(pipeline_seconds(update))} s of pipeline time with order updates "
            f"({_count(update['requests'], 'request')}{_received(update)}, {sending} s of it sending), "
            f"{_n(pipeline_seconds(report))} s with the delivery report "
            f"({_count(report['requests'], 'request')}{_received(report)})."
        )
    lines += [
        "",
        "A run reads the references of every `order_history` row above the last run's mark, and a mark stays "
        "below the first row dated within `DELIVERY_OVERLAP_MINUTES` (6 hours) of the last run's end. The "
        "generator writes history rows in date order, as PrestaShop inserts one when a state changes, so a "
        "run reads again only the orders with a history row in those 6 hours (more at 1,000,000, whose "
        "generated shop ships ten times as many orders an hour), and the orders, buyers and addresses "
        "edited in them.",
        "",
    ]
    return lines


def _plan_flag(query: str, steps: list[str]) -> str:
    """A warning for a plan whose time grows faster than the rows it returns."""
    again = [step.split(":")[0] for step in steps if ": ALL," in step and "BNL join" in step]
    if again:
        return f" **{', '.join(again)} read whole once per join buffer: time grows with N²**"
    by_order = any("ix_disbursement_lines_order" in step for step in steps)
    lines_first = not steps[0].startswith("disbursements:")
    if query.startswith("findings: disbursements of") and not (by_order and lines_first):
        return " **every line of every disbursement read for each 500 orders found, not their own lines**"
    return ""


def payout_lines(payouts: dict[str, Any]) -> list[str]:
    """The payout check's section, from payouts.json: a row per N and state store, what was planted, plans."""
    runs = sorted(payouts["runs"].values(), key=lambda run: (run["orders"], run["backend"]))
    lines = [
        "## Payout check",
        "",
        "Written by `python -m benchmarks.payouts` (in `make bench`) into benchmarks/payouts.json; "
        "benchmarks/payouts.py says what each store holds. One merchant's N reported orders shipped over a "
        "year, 52 weekly disbursements paying them, planted differences; the check as a run does it once "
        "the disbursements are read (paid_periods, due_before with 30 grace days, the findings streamed "
        "into the CSV and counted, payout_totals with unpaid_past_grace), in a process of its own. Seconds "
        "per part; memory is the process's peak, and in brackets what it held before the check began. The "
        "findings counted are the ones planted, or the benchmark fails. A check still running after "
        f"{max(run['stopped_after_seconds'] for run in runs):,} s is stopped.",
        "",
        "| N | state store | fill | paid_periods | due_before | findings (query, CSV, tally) | totals | "
        "check | peak memory (MB) | not_paid | paid_differs | paid_not_reported | < 60 s, bounded memory |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        check = run["check"]
        start = f"| {run['orders']:,} | {run['backend']} | {_n(run['fill_seconds'])} |"
        target = "met" if run["target"] == "met" else "**not met**"
        if check is None:
            stopped = f"**stopped after {run['stopped_after_seconds']:,} s**"
            lines.append(f"{start} | | {stopped} | | {stopped} | | | | | {target} |")
            continue
        parts = " | ".join(
            _n(check["seconds"][part], 2) for part in ("paid_periods", "due_before", "findings", "totals")
        )
        found = " | ".join(
            f"{check['findings'][kind]:,}" for kind in ("not_paid", "paid_differs", "paid_not_reported")
        )
        lines.append(
            f"{start} {parts} | {_n(check['total_seconds'], 2)} | {_n(check['peak_mb'], 0)} "
            f"({_n(check['rss_before_mb'], 0)}) | {found} | {target} |"
        )
    lines.append("")
    for orders in sorted({run["orders"] for run in runs}):
        planted = next(run["planted"] for run in runs if run["orders"] == orders)
        when = "; ".join(
            f"{run['backend']} measured {run['measured']} on tasks/state/payouts.py at {run.get('code', '?')}"
            for run in runs
            if run["orders"] == orders
        )
        lines.append(
            f"- N = {orders:,}: planted {planted['not_paid']:,} not paid, {planted['paid_less']:,} paid "
            f"less, {planted['paid_not_reported']:,} paid and not reported; {planted['returned']:,} "
            "returned after payment (a negative line later, the report lowered) and "
            f"{planted['unpaid_in_grace']:,} shipped after the latest period (unpaid, within the grace "
            "days) are no findings; "
            f"{planted['lines']:,} disbursement lines; {when}."
        )
    largest = {run["backend"]: run for run in runs}
    lines += [
        "",
        "Query plans at the largest N, as sent (MariaDB's EXPLAIN: table: access, key, estimated rows; "
        "SQLite's EXPLAIN QUERY PLAN), on a store just filled, without ANALYZE TABLE:",
        "",
        "| state store | query | plan |",
        "|---|---|---|",
    ]
    for backend, run in sorted(largest.items()):
        for entry in run["plans"]:
            lines.append(
                f"| {backend}, N = {run['orders']:,} | {entry['query']} | {'; '.join(entry['plan'])}"
                f"{_plan_flag(entry['query'], entry['plan'])} |"
            )
    return [*lines, ""]


def write_report(results: dict[str, Any], report: Path, plot: Path, *, plot_too: bool = True) -> None:
    """Write RESULTS.md, and the plot it shows unless `plot_too` is false (its figures unchanged)."""
    machine = results["machine"]
    if plot_too:
        write_plot(results, plot)
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks.run`); benchmarks/run.py says what each figure is.",
        "",
        f"Machine: {machine['cpus']} cores, {machine['memory_gb']} GB, Python {machine['python']}, "
        f"{machine['platform']}; {machine['database']}; measured {machine['date']}.",
        "",
        "## Targets",
        "",
        *targets_table(results),
        "",
        "## Figures",
        "",
        "Pipeline seconds are the sum of the run's stages (plan, extract and build, diff, load: the build "
        "processes read and build the next chunks while the run diffs and sends one); the flow call "
        "adds Prefect's task and artifact calls to a running server, and the statistics block.",
        "",
        *figures_table(results),
        "",
        f"![time and memory against N]({plot.name})",
        "",
        *same_day_lines(results),
        *(payout_lines(json.loads(PAYOUTS.read_text())) if PAYOUTS.exists() else []),
        "## Where the time goes",
        "",
        *profile_lines(results),
        "",
        "## Query plans",
        "",
        *explain_lines(results),
        "",
    ]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""]
    report.write_text("\n".join(lines), encoding="utf-8")

"""`make bench`, the payout check: N reported orders against a year of weekly disbursements, per state store.

For each N (`--orders`, repeatable) and each backend of the state store (a SQLite file, the default store, and
MariaDB in a scratch database `sequra_bench_payouts`, dropped at the end), it makes the store with the
project's own open_state_store and fills it set-based: N snapshots of one merchant shipped over a year
(executemany, BATCH rows a statement), and 52 weekly disbursements paying each order shipped in their week,
each kept with its lines by the project's record_disbursement as a check keeps what it reads, with planted
differences (see Plan). Then, in a process of its own so that its peak memory is the check's own, it
times the check as check_payouts does it once the disbursements are read: paid_periods, due_before, the
findings streamed through write_findings into a CSV and counted by FindingTally, payout_totals and
unpaid_past_grace (timed with the totals). A finding
count or a total other than what was planted fails the benchmark. Each query of the check is explained
(EXPLAIN on MariaDB, EXPLAIN QUERY PLAN on SQLite). Writes benchmarks/payouts.json, then RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, event, insert
from sqlalchemy.engine import Engine

from benchmarks.report import write_report
from benchmarks.run import HERE, RESULTS, SERVER, database_url, machine
from schemas import state
from schemas.payouts import Disbursement, DisbursementLine, Finding
from tasks.payouts.check import FindingTally, TallyKey, due_before
from tasks.payouts.output import write_findings
from tasks.state.disbursements import record_disbursement
from tasks.state.payouts import paid_periods, payout_findings, payout_totals, unpaid_past_grace
from tasks.state.store import StateStore, open_state_store

PAYOUTS = HERE / "payouts.json"
DATABASE = "sequra_bench_payouts"
MERCHANT = "bench_merchant"
TIMEZONE = "Europe/Madrid"
GRACE_DAYS = 30  # PAYOUT_GRACE_DAYS's default
BATCH = 10_000  # rows a statement while filling
WEEKS = 52
LATEST_TO_DATE = date(2026, 11, 8)  # a Sunday; paid out (issue_date) 7 days later
CHECKED_AT = datetime.combine(LATEST_TO_DATE + timedelta(days=8), day_start(), UTC)  # the day after its issue
FIRST_TO_DATE = LATEST_TO_DATE - timedelta(weeks=WEEKS - 1)
# Shipped over the 365 days from the first period's last day (shop time): the first disbursement pays that
# day, each later one a week, and the 7 days after the latest period are not paid yet (within the grace).
SHIPPED_FROM = datetime.combine(FIRST_TO_DATE, day_start(), ZoneInfo(TIMEZONE)).astimezone(UTC)
SHIPPED_SPAN = timedelta(days=365)
LONG_BEFORE = timedelta(days=7)  # orders planted as not paid shipped this long before due_before, or more
SECONDS_TARGET = 60
STOPPED_AFTER = 5 * SECONDS_TARGET  # a check still running then is stopped, and its target not met
MEMORY_GROWTH = 1.25  # bounded memory: the peak at the largest N at most this times the smallest N's


@dataclass
class Plan:
    """What a filled store holds and the check must find: counts and cents."""

    orders: int
    unpaid_in_grace: int = 0  # shipped after the latest period: not paid, not due
    not_paid: int = 0
    paid_less: int = 0
    returned: int = 0  # paid, then partly taken back by a later disbursement: matches the lowered report
    paid_not_reported: int = 0
    lines: int = 0
    not_paid_cents: int = 0
    paid_less_cents: int = 0  # what was paid short, as a negative difference
    paid_not_reported_cents: int = 0
    paid_cents: int = 0
    expected_cents: int = 0

    def findings(self) -> dict[str, int]:
        """The findings the check must count, per kind."""
        return {
            Finding.NOT_PAID: self.not_paid,
            Finding.PAID_DIFFERS: self.paid_less,
            Finding.PAID_NOT_REPORTED: self.paid_not_reported,
        }

    def at_stake(self) -> dict[str, int]:
        """The cents at stake the check must sum, per kind."""
        return {
            Finding.NOT_PAID: self.not_paid_cents,
            Finding.PAID_DIFFERS: self.paid_less_cents,
            Finding.PAID_NOT_REPORTED: self.paid_not_reported_cents,
        }


def disbursement_reference(week: int) -> str:
    """The reference of the week's disbursement (week 1 is the first)."""
    return f"DSB-{FIRST_TO_DATE + timedelta(weeks=week - 1):%Y%m%d}"


def week_paid(shipped_at: datetime) -> int | None:
    """The disbursement paying an order shipped at `shipped_at` (1 to WEEKS), or None after the latest."""
    days = (shipped_at.astimezone(ZoneInfo(TIMEZONE)).date() - FIRST_TO_DATE).days
    week = 1 if days <= 0 else 1 + (days + 6) // 7
    return week if week <= WEEKS else None


def period_start(week: int) -> datetime:
    """When the week's period began: the Monday after the previous period's to_date, in shop time."""
    monday = FIRST_TO_DATE + timedelta(weeks=week - 2, days=1)
    return datetime.combine(monday, day_start(), ZoneInfo(TIMEZONE)).astimezone(UTC)


def planted_orders(orders: int, rng: random.Random) -> dict[int, str]:
    """Which orders differ, by position: 0.1% not paid, 0.1% paid less, 0.05% returned after payment.

    All shipped at least LONG_BEFORE before due_before, so that each is due and has a later disbursement.
    """
    due = due_before(LATEST_TO_DATE, GRACE_DAYS, TIMEZONE)
    assert due is not None
    eligible = int(orders * ((due - LONG_BEFORE) - SHIPPED_FROM) / SHIPPED_SPAN) - 1
    kinds = ["not_paid", "paid_less"] * (orders // 1000) + ["returned"] * (orders // 2000)
    return dict(zip(rng.sample(range(eligible), len(kinds)), kinds, strict=True))


def snapshot_row(
    ref: str, total: int, shipped_at: datetime, sent_at: datetime, last_sent_at: datetime
) -> dict[str, Any]:
    """One order_snapshots row as a run leaves it after SeQura accepted the report (and its last update)."""
    payload = json.dumps(
        {
            "merchant": {"id": MERCHANT},
            "order": {"order_ref_1": ref},
            "cart": {"currency": "EUR", "order_total_with_tax": total},
            "sent_at": shipped_at.isoformat(),
        },
        separators=(",", ":"),
    )
    return {
        "merchant": MERCHANT,
        "order_ref_1": ref,
        "reference": ref,
        "fingerprint": hashlib.sha256(payload.encode()).hexdigest(),
        "payload": payload,
        "first_sent_at": sent_at,
        "last_sent_at": last_sent_at,
        "run_id": "00000000-0000-4000-8000-000000000001",
        "sent_by": "sequra-etl",
        "shipped_total": total,
        "currency": "EUR",
        "shipped_at": shipped_at,
    }


class Filling:
    """Fills one store: snapshots BATCH at a time, each week's disbursement once its orders are all made."""

    def __init__(self, store: StateStore, plan: Plan) -> None:
        self.store, self.plan = store, plan
        self.snapshots: list[dict[str, Any]] = []
        self.lines: defaultdict[int, list[DisbursementLine]] = defaultdict(list)  # by week, not paid yet
        self.next_week = 1

    def add_snapshot(self, row: dict[str, Any]) -> None:
        """Keep one snapshot; writes the store every BATCH."""
        self.snapshots.append(row)
        if len(self.snapshots) == BATCH:
            self.write_snapshots()

    def write_snapshots(self) -> None:
        """Insert the snapshots kept so far (one executemany); writes the store."""
        if self.snapshots:
            with self.store.engine.begin() as conn:
                conn.execute(insert(state.order_snapshots), self.snapshots)
            self.snapshots = []

    def pay_until(self, week: int) -> None:
        """Record every disbursement before `week` with its lines, as read_new_disbursements keeps them."""
        for paid in range(self.next_week, week):
            lines = self.lines.pop(paid, [])
            to_date = FIRST_TO_DATE + timedelta(weeks=paid - 1)
            amount = sum(line.amount_with_tax for line in lines)
            reference = disbursement_reference(paid)
            disbursement = Disbursement(
                reference=reference,
                issue_date=to_date + timedelta(days=7),
                to_date=to_date,
                currency="EUR",
                disbursed_amount=amount,
                adjustments_with_tax=0,
                path=f"merchants/{MERCHANT}/disbursements/{reference}",
            )
            detail = json.dumps({"reference": reference})
            record_disbursement(self.store, MERCHANT, disbursement, lines, detail)
            self.plan.lines += len(lines)
            self.plan.paid_cents += amount
        self.next_week = max(self.next_week, week)


def fill(url: str, orders: int) -> tuple[Plan, float]:
    """Make the store at `url` with open_state_store and fill it; the plan and the seconds it took."""
    started = time.perf_counter()
    store = open_state_store(url)
    plan = Plan(orders)
    rng = random.Random(orders)
    planted = planted_orders(orders, rng)
    filling = Filling(store, plan)
    for position in range(orders // 2000):
        week, amount = rng.randint(1, WEEKS), rng.randint(1_990, 89_900)
        filling.lines[week].append(DisbursementLine(f"EX{position:09d}", amount, amount))
        plan.paid_not_reported += 1
        plan.paid_not_reported_cents += amount
    step = SHIPPED_SPAN / orders
    for position in range(orders):
        ref = f"BP{position:09d}"
        shipped_at = (SHIPPED_FROM + step * (position + rng.random())).replace(microsecond=0)
        sent_at = shipped_at + timedelta(minutes=rng.randint(60, 360))
        total = rng.randint(1_990, 89_900)
        week = week_paid(shipped_at)
        kind = planted.get(position)
        reported, last_sent_at = total, sent_at
        if week is None:
            plan.unpaid_in_grace += 1
        else:
            filling.pay_until(week)
            plan.expected_cents += total
        if week is not None and kind == "not_paid":
            plan.not_paid += 1
            plan.not_paid_cents += total
        elif week is not None:
            paid = total
            if kind == "paid_less":
                paid = total - rng.randint(1, min(total - 1, 5_000))
                plan.paid_less += 1
                plan.paid_less_cents += paid - total
            filling.lines[week].append(DisbursementLine(ref, paid, total))
            if kind == "returned":
                taken_back = rng.randint(1, total - 1)
                later = week + rng.randint(1, min(4, WEEKS - week))
                filling.lines[later].append(DisbursementLine(ref, -taken_back, None))
                plan.returned += 1
                plan.expected_cents -= taken_back
                reported = total - taken_back  # reported as an order update in the period paying it
                last_sent_at = period_start(later) + timedelta(minutes=rng.randint(60, 6 * 24 * 60))
        filling.add_snapshot(snapshot_row(ref, reported, shipped_at, sent_at, last_sent_at))
    filling.write_snapshots()
    filling.pay_until(WEEKS + 1)
    store.dispose()
    return plan, time.perf_counter() - started


def _peak_mb() -> float:
    """This process's peak resident memory so far, in MB.

    Linux's VmHWM, of this program alone: ru_maxrss would keep, across exec, the peak of the benchmark
    process that started it (about as large, once it has filled a store).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _query_name(part: str, statement: str, ordinal: int) -> str:
    """What one query of the check is for, from its part and its text."""
    if part == "findings":
        if "NOT (EXISTS" in statement:
            return "findings: paid, not reported"
        if "LEFT OUTER JOIN" in statement:
            return "findings: not paid, paid differs"
        return "findings: disbursements of the orders found (500 a query)"
    if part == "totals":
        return f"totals: {('transferred', 'paid', 'expected', 'past the grace, in no disbursement')[ordinal]}"
    return part


def _plan_of(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The database's plan of one statement as it was sent, a line per step."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return [row[-1] for row in rows]
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).mappings().all()
    return [
        f"{row['table']}: {row['type']}, key {row['key'] or '-'}, rows {row['rows']}"
        + (f", {row['Extra']}" if row["Extra"] else "")
        for row in rows
    ]


def measure(url: str, out: Path) -> dict[str, Any]:
    """The check as a run does it, timed part by part: its findings, totals and peak memory.

    Each statement the check sends is printed (a JSON line, the first time it is seen), so that the
    parent can explain it even when it stopped this process for running too long.
    """
    started = time.perf_counter()
    store = open_state_store(url)
    opened = time.perf_counter() - started
    rss_before = _peak_mb()
    seen: set[str] = set()
    queries = 0
    part = "paid_periods"

    @event.listens_for(store.engine, "before_cursor_execute")
    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *context: Any) -> None:
        nonlocal queries
        queries += 1
        if statement not in seen:
            seen.add(statement)
            sent = {"part": part, "statement": statement, "parameters": parameters}
            print(json.dumps(sent, default=str), flush=True)

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    periods = paid_periods(store, MERCHANT)
    seconds["paid_periods"] = time.perf_counter() - started
    part, started = "due_before", time.perf_counter()
    due = due_before(periods.latest_to_date, GRACE_DAYS, TIMEZONE)
    seconds["due_before"] = time.perf_counter() - started
    part, started = "findings", time.perf_counter()
    tally = FindingTally()
    tally.count(write_findings(out, payout_findings(store, MERCHANT, due), TIMEZONE))
    seconds["findings"] = time.perf_counter() - started
    part, started = "totals", time.perf_counter()
    totals = payout_totals(store, MERCHANT, due)
    overdue = unpaid_past_grace(store, MERCHANT, CHECKED_AT - timedelta(days=GRACE_DAYS), due)
    seconds["totals"] = time.perf_counter() - started
    peak = _peak_mb()
    store.dispose()
    with out.open(encoding="utf-8", newline="") as stream:
        csv_rows = sum(1 for _ in csv.DictReader(stream))
    return {
        "open_seconds": opened,
        "seconds": seconds,
        "total_seconds": sum(seconds.values()),
        "rss_before_mb": rss_before,
        "peak_mb": peak,
        "queries": queries,
        "csv_rows": csv_rows,
        "periods": {"count": periods.count, "latest_to_date": str(periods.latest_to_date)},
        "due_before": due.isoformat() if due else None,
        "findings": {str(kind): _of_kind(tally.orders, kind) for kind in Finding},
        "at_stake": {str(kind): _of_kind(tally.amounts, kind) for kind in Finding},
        "totals": [asdict(total) for total in totals],
        "unpaid_past_grace": overdue,
    }


def _of_kind(counts: Counter[TallyKey], kind: Finding) -> int:
    """One finding's count (or cents) in EUR, its orders paid more and paid less together."""
    return sum(
        value for (finding, currency, _), value in counts.items() if finding is kind and currency == "EUR"
    )


def statements_of_check(url: str) -> list[dict[str, Any]]:
    """The findings' and totals' statements, each sent with LIMIT 0 so that none reads a row.

    For a check stopped before it sent them all: the plans of those it did not reach.
    """
    store = open_state_store(url)
    sent: list[dict[str, Any]] = []
    part = "findings"

    @event.listens_for(store.engine, "before_cursor_execute", retval=True)
    def read_nothing(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> tuple[str, Any]:
        sent.append({"part": part, "statement": statement, "parameters": parameters})
        return f"{statement} LIMIT 0", parameters

    due = due_before(LATEST_TO_DATE, GRACE_DAYS, TIMEZONE)
    for _ in payout_findings(store, MERCHANT, due):
        pass
    part = "totals"
    payout_totals(store, MERCHANT, due)
    unpaid_past_grace(store, MERCHANT, CHECKED_AT - timedelta(days=GRACE_DAYS), due)
    store.dispose()
    return sent


def explained(url: str, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plan of each statement the check sent, named; reads the store."""
    engine = create_engine(url)
    plans, ordinals = [], Counter[str]()
    for statement in sent:
        if statement["part"] == "due_before":
            continue
        name = _query_name(statement["part"], statement["statement"], ordinals[statement["part"]])
        ordinals[statement["part"]] += 1
        if any(plan["query"] == name for plan in plans):  # the same query with a shorter IN list
            continue
        parameters = statement["parameters"]
        parameters = tuple(parameters) if isinstance(parameters, list) else parameters
        plans.append({"query": name, "plan": _plan_of(engine, statement["statement"], parameters)})
    engine.dispose()
    return plans


def check_figures(plan: Plan, check: dict[str, Any]) -> None:
    """Raise unless the check found what was planted, and summed what was filled."""
    found = {kind: check["findings"][str(kind)] for kind in Finding}
    if found != plan.findings():
        raise AssertionError(f"findings {found}, planted {plan.findings()}")
    at_stake = {kind: check["at_stake"][str(kind)] for kind in Finding}
    if at_stake != plan.at_stake():
        raise AssertionError(f"cents at stake {at_stake}, planted {plan.at_stake()}")
    if check["csv_rows"] != sum(found.values()):
        raise AssertionError(f"{check['csv_rows']} CSV rows for {sum(found.values())} findings")
    if check["periods"] != {"count": WEEKS, "latest_to_date": str(LATEST_TO_DATE)}:
        raise AssertionError(f"paid periods {check['periods']}")
    wanted = [
        {
            "currency": "EUR",
            "transferred": plan.paid_cents,
            "paid": plan.paid_cents,
            "expected": plan.expected_cents,
        }
    ]
    if check["totals"] != wanted:
        raise AssertionError(f"totals {check['totals']}, filled {wanted}")
    if check["unpaid_past_grace"] != 0:  # the orders after the latest period are within the grace
        raise AssertionError(f"{check['unpaid_past_grace']} orders past the grace in no disbursement listed")


def measured_apart(url: str, work: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The check measured in a process of its own, and the statements it sent.

    The figures are None when it ran past STOPPED_AFTER seconds: it is then stopped.
    """
    out = work / "findings.csv"
    command = [sys.executable, "-m", "benchmarks.payouts", "--measure", url, "--out", str(out)]
    printed = work / "measured.jsonl"
    with (
        printed.open("w") as printing,
        subprocess.Popen(command, stdout=printing, stderr=subprocess.PIPE) as child,
    ):
        try:
            _, stderr = child.communicate(timeout=STOPPED_AFTER)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            stderr = None
    lines = [json.loads(line) for line in printed.read_text().splitlines() if line.startswith("{")]
    sent = [line for line in lines if "statement" in line]
    if stderr is None:
        return None, sent
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{stderr.decode()[-3000:]}")
    return lines[-1], sent


def stop_queries(admin: Engine) -> None:
    """End the queries a stopped check left running in the scratch database; writes nothing."""
    with admin.connect() as conn:
        for (query,) in conn.exec_driver_sql(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id != CONNECTION_ID()",
            (DATABASE,),
        ):
            conn.exec_driver_sql(f"KILL {int(query)}")


def code_measured() -> str:
    """The commit of the check's SQL (tasks/state/payouts.py) measured, and whether it had changes on top."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args, "--", "tasks/state/payouts.py"], capture_output=True, text=True)

    commit = git("log", "-1", "--format=%h").stdout.strip()
    return commit if git("diff", "--quiet").returncode == 0 else f"{commit} with uncommitted changes"


def bench_backend(orders: int, backend: str, work: Path) -> dict[str, Any]:
    """Fill a store of `backend` with `orders` orders, measure the check in a process of its own, verify it.

    A check that does not end within STOPPED_AFTER seconds is stopped and recorded as such (no figures).
    """
    admin = create_engine(SERVER)
    if backend == "sqlite":
        url = f"sqlite:///{work / f'payouts-{orders}.sqlite'}"
    else:
        url = database_url(DATABASE)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DATABASE}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
    try:
        plan, fill_seconds = fill(url, orders)
        print(f"  {backend}: {orders:,} orders, {plan.lines:,} lines in {fill_seconds:.0f} s", flush=True)
        check, sent = measured_apart(url, work)
        if check is not None:
            check_figures(plan, check)
        if backend == "mariadb":
            stop_queries(admin)
        if check is None:
            seen = {statement["statement"] for statement in sent}
            sent += [other for other in statements_of_check(url) if other["statement"] not in seen]
        plans = explained(url, sent)
    finally:
        if backend == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        else:
            stop_queries(admin)
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        admin.dispose()
    planted = asdict(plan)
    took = f"{check['total_seconds']:.1f} s, peak {check['peak_mb']:.0f} MB" if check else "stopped"
    print(f"  {backend}: check {took}", flush=True)
    return {
        "orders": orders,
        "backend": backend,
        "planted": planted,
        "fill_seconds": fill_seconds,
        "check": check,
        "plans": plans,
        "stopped_after_seconds": STOPPED_AFTER,  # the check's figures are None when it was stopped
        "measured": datetime.now().isoformat(timespec="minutes"),
        "code": code_measured(),
    }


def judge(runs: dict[str, dict[str, Any]]) -> None:
    """Set each run's target, < SECONDS_TARGET s and bounded memory, against the smallest N of its backend."""
    for run in runs.values():
        if not run["check"]:
            run["target"] = "not met"
            continue
        same = [other for other in runs.values() if other["backend"] == run["backend"] and other["check"]]
        smallest = min(same, key=lambda other: other["orders"])
        fast = run["check"]["total_seconds"] < SECONDS_TARGET
        bounded = run["check"]["peak_mb"] <= smallest["check"]["peak_mb"] * MEMORY_GROWTH
        run["target"] = "met" if fast and bounded else "not met"


def rewrite_results() -> None:
    """Write RESULTS.md again from results.json and payouts.json (the plot as it is)."""
    write_report(json.loads(RESULTS.read_text()), HERE / "RESULTS.md", HERE / "results.png", plot_too=False)


def main() -> int:
    """Measure at each --orders and backend, add to payouts.json, write RESULTS.md (a child: measure only)."""
    parser = argparse.ArgumentParser(description="Benchmark the payout check on generated state stores.")
    parser.add_argument("--orders", type=int, action="append", help="N reported orders (repeatable)")
    parser.add_argument("--backend", action="append", choices=("sqlite", "mariadb"), help="default: both")
    parser.add_argument("--measure", metavar="STATE_DB_URL", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from the JSON files")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.out)))
        return 0
    if args.report_only:
        rewrite_results()
        return 0
    payouts = json.loads(PAYOUTS.read_text()) if PAYOUTS.exists() else {"runs": {}}
    payouts["machine"] = machine()
    work = Path(tempfile.mkdtemp(prefix="sequra-etl-bench-payouts-"))
    try:
        for orders in args.orders or [1_000_000]:
            print(f"payout check, N = {orders:,}", flush=True)
            for backend in args.backend or ["sqlite", "mariadb"]:
                payouts["runs"][f"{backend} {orders}"] = bench_backend(orders, backend, work)
                judge(payouts["runs"])
                PAYOUTS.write_text(json.dumps(payouts, indent=1, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rewrite_results()
    print(f"wrote {PAYOUTS} and {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

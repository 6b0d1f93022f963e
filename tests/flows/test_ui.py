"""The Prefect UI as a merchant sees it: a real browser at 1400×1000 on the pages a person opens.

A delivery report's flow run and its artifacts (summary, sent, quarantine, open quarantine), a
reconciliation's, a backfill's and a payout check's, on a real Prefect server. What the browser shows is
measured: a table wider than the artifact's view is cut (the Vue UI never wraps a table cell: it scrolls the
table sideways inside the view, and a person sees the last columns cut off).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.server import SandboxServer
from tests.flows.test_deployment import deployments
from tests.prefect_servers import BIN, STARTUP, clean_environment, prefect_api, served_prefect, stop
from tests.shops import sqlite_shop

VIEWPORT = {"width": 1400, "height": 1000}
ZONE = "Europe/Madrid"  # the shop's time zone (tests/shops.py), and the browser's
UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d[:-]\d\d")  # 2026-11-26T20:58Z, 2026-12-04T10-20
KEY_HEADING = re.compile(r"[a-z0-9]+(_[a-z0-9]+)+")  # order_ref_1, id_orders, what_to_do
BARE_HASH = re.compile(r"[0-9a-f]{8,}")
LABELLED = re.compile(r"[a-z][a-z-]*:.+")  # merchant:shop-es, shop:029552beb172
NONE_WORD = re.compile(r"\bNone\b")
WORKER_GRACE = 5  # seconds a worker is given to stop after the second Ctrl-C
SCREENSHOTS = "UI_SCREENSHOTS"  # a folder to save the screenshots in too (docs, for the README)

# Every table of the page, with the headings and cells that the artifact's view does not show whole.
CUT_COLUMNS = """() => {
  const view = document.querySelector('.artifact-data-view');
  const edge = view.getBoundingClientRect().right + 1;
  return Array.from(view.querySelectorAll('table')).map(table => ({
    headings: Array.from(table.querySelectorAll('th')).map(th => th.innerText.trim()),
    cut: Array.from(table.querySelectorAll('th, td'))
      .filter(cell => cell.getBoundingClientRect().right > edge || cell.scrollWidth > cell.clientWidth + 1)
      .map(cell => cell.innerText.trim().slice(0, 30))
      .slice(0, 6),
    width: Math.round(table.getBoundingClientRect().width),
    shown: Math.round(view.getBoundingClientRect().width),
  }));
}"""


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; skips the test without it, fails it on CI (.ci/run installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "no chromium on this machine; apt-get install chromium (the tests never download a browser)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def shop_with_a_quarantined_order(folder: Path) -> str:
    """A shop of two orders to send and one whose totals do not add up; its URL."""
    shop = sqlite_shop(folder / "shop.sqlite")
    shop.shipped_order("AAAAAAAAA")
    shop.shipped_order("BBBBBBBBB")
    shop.set_order(shop.shipped_order("CCCCCCCCC"), total_paid_tax_incl=Decimal("99.00"))
    shop.engine.dispose()
    return f"sqlite:///{folder / 'shop.sqlite'}"


def corrections(folder: Path) -> str:
    """SeQura's corrections: two long differences, one malformed record, one reference the shop has not."""
    path = folder / "corrections.jsonl"
    records = [
        {
            "order_ref_1": "AAAAAAAAA",
            "customer": {"email": "ana.maria.garcia.fernandez@example.com"},
            "delivery_address": {"address_line_1": "Calle de Bravo Murillo 123, 4º izquierda, escalera B"},
        },
        {"order_ref_1": "AAAAAAAAA", "delivery_address": {"postal_code": 28013}},
        {"order_ref_1": "NOTINSHOP", "customer": {"email": "x@example.com"}},
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def sequra_etl(env: dict[str, str], folder: Path, *arguments: str) -> str:
    """Run a sequra-etl command against the test's Prefect server; what it printed, to explain a failure."""
    done = subprocess.run(
        [str(BIN / "sequra-etl"), *arguments],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=STARTUP,
    )
    return f"sequra-etl {arguments[0]} exited {done.returncode}: {done.stderr[-1500:]}"


def flow_runs(api: str, flow: str) -> list[dict[str, Any]]:
    """The runs of one flow, oldest first."""
    body = {"flows": {"name": {"any_": [flow]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return prefect_api(api, "POST", "/flow_runs/filter", body)


def artifacts_of(api: str, flow_run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A flow run's artifacts that a person opens (not progress bars), by key."""
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}}
    found = prefect_api(api, "POST", "/artifacts/filter", body)
    return {
        artifact["key"]: artifact for artifact in found if artifact["key"] and artifact["type"] != "progress"
    }


class Browser:
    """One browser page on the Prefect UI, in the shop's time zone; collects what a person could not read."""

    def __init__(self, page: Any, ui: str, shots: list[Path]) -> None:
        self.page, self.ui, self.shots = page, ui, shots
        self.problems: list[str] = []

    def flow_run(self, flow_run: dict[str, Any]) -> str:
        """Open a flow run's page; check its name, tags and state in the heading; the heading's text."""
        self.page.goto(
            f"{self.ui}/runs/flow-run/{flow_run['id']}", wait_until="networkidle", timeout=STARTUP * 1000
        )
        heading = self.page.locator(".page-heading").first
        heading.wait_for()
        shown = heading.inner_text()
        where = f"flow run {flow_run['name']}"
        self.readable(where, shown)
        self.said_no_none(where, f"{flow_run['name']} {flow_run['state']['message'] or ''}")
        if ZONE not in flow_run["name"]:
            self.problems.append(f"{where}: its name does not say the shop's time zone ({ZONE})")
        for tag in self.page.locator(".page-heading .p-tag-wrapper .p-tag").all_inner_texts():
            if BARE_HASH.search(tag) and not LABELLED.fullmatch(tag):
                self.problems.append(f"{where}: the tag {tag!r} is a hash without a label")
        return shown

    def artifact(self, artifact: dict[str, Any], name: str = "") -> str:
        """Open an artifact's page; check no column is cut, headings are words, times are shop time."""
        self.page.goto(
            f"{self.ui}/artifacts/artifact/{artifact['id']}", wait_until="networkidle", timeout=STARTUP * 1000
        )
        view = self.page.locator(".artifact-data-view").first
        view.wait_for()
        if artifact["type"] == "table":
            view.locator("table").first.wait_for()
        where = f"artifact {artifact['key']}"
        for table in self.page.evaluate(CUT_COLUMNS):
            if table["cut"]:
                self.problems.append(
                    f"{where}: a {table['width']}-px table in a {table['shown']}-px view cuts {table['cut']}"
                )
            for heading in table["headings"]:
                if KEY_HEADING.fullmatch(heading):
                    self.problems.append(f"{where}: the column heading {heading!r} is a key, not words")
        shown = view.inner_text()
        self.readable(where, shown)
        self.said_no_none(where, shown)
        if name:
            self.save(name)
        return shown

    def said_no_none(self, where: str, text: str) -> None:
        """Note a 'None' in our words (Prefect's own say None for no tags, no state message, no task run)."""
        for found in NONE_WORD.finditer(text):
            self.problems.append(f"{where}: says 'None' ({text[found.start() - 40 : found.end() + 20]!r})")

    def readable(self, where: str, shown: str) -> None:
        """Note a UTC stamp in what a page shows."""
        for stamp in UTC_STAMP.findall(shown):
            self.problems.append(f"{where}: shows {stamp}, a UTC stamp, not the shop's time ({ZONE})")

    def save(self, name: str) -> None:
        """A screenshot of the whole page, in the test's folder and in $UI_SCREENSHOTS if set."""
        for folder in self.shots:
            self.page.screenshot(path=str(folder / name), full_page=True)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect server for these tests, on a free port (PREFECT_UI_API_URL names it); its API URL."""
    with served_prefect(tmp_path_factory.mktemp("prefect-server")) as api:
        yield api


def a_delivery_a_reconciliation_a_backfill_and_payouts(
    api: str, sandbox: SandboxServer, folder: Path
) -> list[Any]:
    """Run four commands on the Prefect server `api`; the delivery, reconciliation, backfill and payouts runs.

    Seven weeks after the delivery the sandbox has paid, leaving AAAAAAAAA out and paying an order never sent.
    """
    requests.post(f"{sandbox.url}_sandbox/reset", timeout=5).raise_for_status()
    env = clean_environment(
        PREFECT_API_URL=api,
        SHOP_DB_URL=shop_with_a_quarantined_order(folder),
        STATE_DB_URL=f"sqlite:///{folder / 'state.sqlite'}",
        SEQURA_API_URL=sandbox.url,
        SEQURA_USERNAME="demo",
        SEQURA_PASSWORD="demo-secret",
        SEQURA_MERCHANT_ID="demo_merchant",
        SHOP_ADMIN_URL="https://shop.example/admin123",  # the differences link their back-office page
    )
    said = [
        sequra_etl(env, folder, "deliver", "--since", "2026-11-20", "--until", "2026-11-21"),
        sequra_etl(env, folder, "reconcile", "--corrections", corrections(folder), "--out", "d.csv"),
        sequra_etl(env, folder, "backfill", "--since", "2026-11-19", "--until", "2026-11-21"),
    ]
    paid = {
        "now": (datetime.now() + timedelta(weeks=7)).isoformat(timespec="seconds"),
        "leave_out": ["AAAAAAAAA"],
        "pay_unknown": [{"order_ref_1": "PAIDNOTSENT", "amount_with_tax": 4990}],
    }
    requests.post(f"{sandbox.url}_sandbox/payouts", json=paid, timeout=5).raise_for_status()
    said.append(sequra_etl(env, folder, "payouts", "--out", "payouts.csv"))
    runs = [
        [run for run in flow_runs(api, "delivery-report") if not run["parent_task_run_id"]],
        flow_runs(api, "reconciliation"),
        flow_runs(api, "backfill"),
        flow_runs(api, "payouts"),
    ]
    assert [len(of_flow) for of_flow in runs] == [1, 1, 1, 1], said
    return [of_flow[0] for of_flow in runs]


def test_what_a_merchant_opens_reads_in_words_and_shop_time_and_no_column_is_cut_at_1400_px(
    chromium: str, sandbox_server: SandboxServer, prefect_server: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    api = prefect_server
    delivery, reconciliation, backfill, payouts = a_delivery_a_reconciliation_a_backfill_and_payouts(
        api, sandbox_server, tmp_path
    )
    delivered, reconciled = artifacts_of(api, delivery), artifacts_of(api, reconciliation)
    shots = [tmp_path, *([Path(os.environ[SCREENSHOTS])] if os.environ.get(SCREENSHOTS) else [])]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = launched.new_context(viewport=VIEWPORT, timezone_id=ZONE).new_page()
        browser = Browser(page, api.removesuffix("/api"), shots)
        heading = browser.flow_run(delivery)
        summary = browser.artifact(
            delivered["delivery-report-summary-demo-merchant"], "prefect-ui-summary.png"
        )
        sent = browser.artifact(delivered["delivery-report-sent-demo-merchant"], "prefect-ui-sent.png")
        quarantine = browser.artifact(delivered["delivery-report-quarantine-demo-merchant"])
        waiting = browser.artifact(delivered["open-quarantine-demo-merchant"])
        browser.flow_run(reconciliation)
        listed = {key: browser.artifact(artifact) for key, artifact in reconciled.items()}
        browser.flow_run(backfill)
        windows = browser.artifact(artifacts_of(api, backfill)["backfill-runs"])
        checked = artifacts_of(api, payouts)
        browser.flow_run(payouts)
        paid = browser.artifact(checked["payouts-summary-demo-merchant"], "prefect-ui-payouts.png")
        findings = browser.artifact(checked["payouts-findings-demo-merchant"])
        launched.close()
    assert not browser.problems, "\n".join(browser.problems)
    assert "Quarantined" in heading
    assert f"orders shipped from 2026-11-20 01:00 to 2026-11-21 01:00 ({ZONE})" in summary
    assert "2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid" in " ".join(summary.split())
    assert [line.split("\t")[0] for line in sent.splitlines() if line.startswith(("AAA", "BBB"))] == [
        "AAAAAAAAA",
        "BBBBBBBBB",
    ]
    assert "2026-11-20 10:00" in sent and "17.45 EUR" in sent
    assert "CCCCCCCCC" in quarantine and "CCCCCCCCC" in waiting
    differences = "".join(listed["reconciliation-differences-demo-merchant"].split())  # lines in a cell
    assert "ana.maria.garcia.fernandez@example.com" in differences and "escaleraB" in differences
    assert "back-officepage" in differences
    assert "NOTINSHOP" in listed["reconciliation-not-reconciled-demo-merchant"]
    assert "2026-11-19 01:00 → 2026-11-20 01:00 Europe/Madrid" in " ".join(windows.split())  # lines in a cell
    assert "Reported as shipped, not paid" in paid and "17.45 EUR" in paid
    assert "The oldest unpaid order: AAAAAAAAA" in " ".join(paid.split())
    said = "".join(findings.split())  # lines in a cell
    assert "AAAAAAAAA" in said and "PAIDNOTSENT" in said and "askSeQura'smerchantsupport" in said
    assert (tmp_path / "prefect-ui-summary.png").stat().st_size > 10_000


def test_the_ui_of_a_server_on_another_port_reaches_its_api_and_a_worker_stops_on_a_second_ctrl_c(
    prefect_server: str, tmp_path: Path
) -> None:
    ui_settings = requests.get(f"{prefect_server.removesuffix('/api')}/ui-settings", timeout=30).json()
    assert ui_settings["api_url"] == prefect_server  # PREFECT_UI_API_URL; without it, port 4200
    prefect_api(prefect_server, "POST", "/work_pools/", {"name": "stopped-by-hand", "type": "process"})
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", "stopped-by-hand"],
            env=clean_environment(PREFECT_API_URL=prefect_server, PREFECT_HOME=str(tmp_path / "home")),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP
            while "started!" not in log.read_text():
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            worker.send_signal(signal.SIGINT)  # Ctrl-C: the worker often goes on running (README)
            time.sleep(1)
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)  # the second Ctrl-C
            stopped = time.monotonic()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=WORKER_GRACE)
            took = time.monotonic() - stopped
        finally:
            if worker.poll() is None:
                stop(worker, grace=0)
    assert took < WORKER_GRACE, log.read_text()


def test_each_deployment_tags_its_runs_with_its_own_name_so_a_tag_filter_finds_what_it_says() -> None:
    assert {name: deployment["tags"] for name, deployment in deployments().items()} == {
        name: ["sequra", name]
        for name in ("every-merchant", "delivery-report", "backfill", "release", "reconciliation", "payouts")
    }

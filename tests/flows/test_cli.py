from __future__ import annotations

import io
import logging
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL
from sqlalchemy import select
from sqlalchemy.engine import make_url

from flows.cli import main as cli_main
from flows.cli.main import EXIT_FAILED, EXIT_SETTING, failures_off_the_terminal, main, parser
from flows.release import release
from schemas.errors import SettingError
from schemas.masking import masked_url
from schemas.reports import QuarantinedOrder, Stage
from schemas.state import runs
from tasks.state.errors import StateStoreError
from tasks.state.in_flight import StateLedger, record_sent, uncertain_deliveries
from tasks.state.quarantine import record_quarantine
from tasks.state.runs import start_run
from tasks.state.snapshots import last_answers
from tasks.state.store import open_state_store
from tasks.window import Window
from tests.cases import built_report
from tests.flows.conftest import Pipeline
from tests.prefect_servers import BIN, STARTUP
from tests.shops import SINCE, UNTIL

RECORD_START = re.compile(r"\d\d:\d\d:\d\d\.\d{3} \| |sequra-etl: ")
SETTINGS = {
    "SHOP_DB_URL": "sqlite:///shop.sqlite",
    "SEQURA_USERNAME": "demo",
    "SEQURA_PASSWORD": "demo-secret",
    "SEQURA_MERCHANT_ID": "demo_merchant",
}


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.usefixtures("configured")
def test_a_missing_setting_gives_one_line_naming_it_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    code, err = run(["deliver"], capsys)
    assert code == EXIT_SETTING
    assert err.count("\n") == 1
    assert "SEQURA_MERCHANT_ID" in err


@pytest.mark.usefixtures("configured")
def test_deliver_with_several_merchants_and_none_chosen_asks_which_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEQURA_MERCHANT_ID")
    monkeypatch.setenv(
        "SEQURA_MERCHANTS", '{"shop_es": {"countries": ["ES"]}, "shop_pt": {"countries": ["PT"]}}'
    )
    code, err = run(["deliver"], capsys)
    assert (code, err.count("\n")) == (EXIT_SETTING, 1)
    assert "SEQURA_MERCHANTS: names several merchants (shop_es, shop_pt): say which one" in err


@pytest.mark.usefixtures("configured")
def test_a_malformed_setting_gives_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEQURA_BATCH_SIZE", "lots")
    code, err = run(["deliver"], capsys)
    assert (code, err.count("\n")) == (EXIT_SETTING, 1)
    assert "SEQURA_BATCH_SIZE: 'lots'" in err


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize(
    "api_url",
    [
        "http://leak:InUrlS3cret@127.0.0.1:4812/",
        "http://192.0.2.1/",
        "http://127.0.0.1:4812/api/v1/../../admin/",
        "http://127.0.0.1:4812/api/v1/%2e%2e/%2e%2e/admin/",
    ],
)
def test_an_api_url_that_would_leak_or_misdirect_credentials_stops_deliver_before_any_run_in_one_line(
    api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEQURA_API_URL", api_url)
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    code = main(["deliver", "--since", "2026-11-20", "--until", "2026-11-21"])
    out, err = capsys.readouterr()
    assert (code, err.count("\n")) == (EXIT_SETTING, 1)
    assert err.startswith("sequra-etl: SEQURA_API_URL: ")
    assert "InUrlS3cret" not in out + err
    assert not (tmp_path / "state.sqlite").exists()


@pytest.mark.usefixtures("configured")
def test_a_malformed_window_bound_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["deliver", "--since", "last tuesday"], capsys)
    assert (code, err.count("\n")) == (EXIT_SETTING, 1)
    assert "since: 'last tuesday'" in err


@pytest.mark.usefixtures("configured")
def test_a_bad_option_value_is_named_like_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(["deliver", "--shop-db-url", "nonsense"], capsys)
    assert code == EXIT_SETTING
    assert "SHOP_DB_URL" in err


def test_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "SEQURA_PAYMENT_MODULES" in out and "STATE_DB_URL" in out


def test_deliver_twice_over_the_same_window_sends_nothing_the_second_time(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    window = ["--since", "2026-11-20", "--until", "2026-11-21T00:00:00Z"]
    assert main(["deliver", *window]) == 0
    first = capsys.readouterr().out
    assert "| 1 | 0 | 0 | 0 |" in first and "| 1 | 0 | 0 | 0 | 0 | 0 |" in first  # new, then sent
    assert main(["deliver", *window]) == 0
    again = capsys.readouterr().out
    assert "| 0 | 0 | 1 | 0 |" in again and "| 0 | 0 | 0 | 0 | 0 | 0 |" in again  # already reported
    assert pipeline.accepted() == ["AAAAAAAAA"]


def test_wrong_credentials_end_the_command_with_one_line_naming_the_settings(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    monkeypatch.setenv("SEQURA_PASSWORD", "wrong-password-value")
    assert main(["deliver", "--since", "2026-11-20", "--until", "2026-11-21"]) == 1
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("sequra-etl: SeQura refused the credentials (401)") and "SEQURA_PASSWORD" in last
    assert "wrong-password-value" not in captured.out + captured.err


def test_unlock_frees_a_lock_left_behind_and_says_which_run_held_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = open_state_store(url)
    start_run(store, "killed-run", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    store.dispose()

    assert main(["unlock", "--merchant", "demo_merchant", "--state-db-url", url]) == 0

    assert "freed the lock of merchant demo_merchant held by run killed-run" in capsys.readouterr().out
    assert main(["unlock", "--merchant", "demo_merchant", "--state-db-url", url]) == 0
    assert "no run holds the lock" in capsys.readouterr().out


@pytest.mark.parametrize("named", [["HELDORDER"], ["--run", "run-1"]], ids=["by order", "by run"])
def test_release_by_default_records_a_held_order_as_sequras_and_never_reports_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], named: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = open_state_store(url)
    start_run(store, "run-1", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", "demo_merchant").sending([built_report("HELDORDER")])
    store.dispose()

    assert main(["release", *named, "--merchant", "demo_merchant", "--state-db-url", url]) == 0

    assert "recorded as delivered to SeQura, not to be reported again: HELDORDER" in capsys.readouterr().out
    store = open_state_store(url)
    assert last_answers(store, "demo_merchant", ["HELDORDER"])[0] == {
        "HELDORDER": built_report("HELDORDER").fingerprint
    }
    assert uncertain_deliveries(store, "demo_merchant", ["HELDORDER"]) == {}
    store.dispose()


def test_forget_erases_a_buyer_saying_how_much_never_what_and_run_again_erases_nothing_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = open_state_store(url)
    start_run(store, "run-1", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    record_sent(store, "run-1", "demo_merchant", [built_report("FORGETME1"), built_report("FORGETME2")])
    store.dispose()

    assert main(["forget", "--email", "Ana@Example.com", "--state-db-url", url]) == 0
    said = capsys.readouterr().out
    assert main(["forget", "--order", "FORGETME1", "--state-db-url", url]) == 0
    again = capsys.readouterr().out

    assert "orders of merchant demo_merchant: FORGETME1, FORGETME2" in said
    assert "erased: order snapshots 2, reports in flight 0, order updates 0, quarantine reasons 0" in said
    assert "nothing was left to erase" in again
    printed = (said + again).lower()
    assert [data for data in ("ana@", "garcía", "calle mayor", "28013") if data in printed] == []
    store = open_state_store(url)
    assert last_answers(store, "demo_merchant", ["FORGETME1"])[0] == {
        "FORGETME1": built_report("FORGETME1").fingerprint
    }
    store.dispose()


def test_forget_asks_for_an_order_or_an_email(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["forget"])
    assert stopped.value.code == EXIT_SETTING
    assert "one of the arguments --order --email is required" in capsys.readouterr().err


@pytest.mark.mysql
@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize(
    ("problem", "named"),
    [
        ("wrong password", "Access denied for user"),
        ("unreachable server", "Can't connect"),
        ("no such table", "ps_configuration' doesn't exist"),
    ],
)
def test_a_shop_that_cannot_be_read_ends_in_one_line_before_any_run(
    problem: str,
    named: str,
    mysql_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = make_url(mysql_database_url)
    shop = {
        "wrong password": url.set(password="not-the-password"),
        "unreachable server": url.set(port=9),
        "no such table": url,
    }[problem]
    monkeypatch.setenv("SHOP_DB_URL", shop.render_as_string(hide_password=False))
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")

    assert main(["deliver", "--since", "2026-11-20", "--until", "2026-11-21"]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "check SHOP_DB_URL" in err
    assert "not-the-password" not in err
    store = open_state_store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with store.engine.connect() as conn:
        assert conn.execute(select(runs.c.run_id)).all() == []  # no run begun, nothing marked
    store.dispose()


@pytest.mark.usefixtures("configured")
def test_a_damaged_state_store_ends_in_one_line_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "state.sqlite"
    damaged.write_text("not a database")
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///{damaged}")

    assert main(["deliver"]) == 1

    err = capsys.readouterr().err
    assert err == ("sequra-etl: cannot open the state store: file is not a database; check STATE_DB_URL\n")


@pytest.mark.usefixtures("configured")
def test_a_state_store_in_a_folder_that_cannot_be_made_ends_in_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STATE_DB_URL", "sqlite:////proc/sequra-etl/state.db")

    assert main(["deliver"]) == 1

    err = capsys.readouterr().err
    assert err.startswith("sequra-etl: cannot create the state store's folder /proc/sequra-etl")
    assert err.count("\n") == 1 and "check STATE_DB_URL" in err


@pytest.mark.usefixtures("configured")
def test_a_read_only_state_store_ends_in_one_line_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.sqlite"
    open_state_store(f"sqlite:///{path}").dispose()
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///file:{path}?mode=ro&uri=true")

    assert main(["deliver"]) == 1

    err = capsys.readouterr().err
    assert err.startswith("sequra-etl: the state store cannot be written: attempt to write a")
    assert err.count("\n") == 1 and "check STATE_DB_URL" in err


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("argv", [["--debug", "deliver"], ["deliver", "--debug"]], ids=["before", "after"])
def test_debug_before_or_after_the_command_shows_the_traceback_instead_of_one_line(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged = tmp_path / "state.sqlite"
    damaged.write_text("not a database")
    monkeypatch.setenv("STATE_DB_URL", f"sqlite:///{damaged}")

    with pytest.raises(StateStoreError, match="check STATE_DB_URL"):
        main(argv)


def test_a_window_that_ends_before_it_starts_is_refused_before_any_run_is_created(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    with get_client(sync_client=True) as client:
        before = client.count_flow_runs()
        code, err = run(["deliver", "--since", "2026-11-21", "--until", "2026-11-20"], capsys)
        after = client.count_flow_runs()
    assert code == EXIT_SETTING
    assert err == "sequra-etl: --since (2026-11-21) must be before --until (2026-11-20)\n"
    assert after == before


def test_the_cli_prints_the_summary_once(pipeline: Pipeline, capfd: pytest.CaptureFixture[str]) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    assert main(["deliver", "--since", "2026-11-20", "--until", "2026-11-21"]) == 0
    out, err = capfd.readouterr()
    assert (out + err).count("# Delivery report 2026-11-20 01:00 → 2026-11-21 01:00 Europe/Madrid") == 1


def test_version_and_an_example_in_the_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("sequra-etl ")
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, command in commands.items():
        assert "example:\n  sequra-etl " + name in command.format_help(), name


def test_the_temporary_prefect_server_gets_time_to_start_on_a_busy_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("STATE_DB_URL", raising=False)
    assert main(["state-store"]) == 0
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "120"
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    assert main(["state-store"]) == 0
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "300"


def test_deliver_without_prefect_api_url_runs_on_a_temporary_server_that_keeps_the_run_and_stops_with_it(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    home = tmp_path / "prefect-home"
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    window = ["--since", "2026-11-20", "--until", "2026-11-21T00:00:00Z"]
    done = subprocess.run(
        [str(BIN / "sequra-etl"), "deliver", *window],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=STARTUP,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert "| 1 | 0 | 0 | 0 | 0 | 0 |" in done.stdout
    [address] = re.findall(r"Starting temporary server on (http://127\.0\.0\.1:\d+)", said)
    assert f"Stopping temporary server on {address}" in said
    assert "View at" not in said  # the temporary server serves no UI to link to
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{address}/api/health", timeout=5)
    kept = sqlite3.connect(home / "prefect.db")
    try:
        [(name, state)] = kept.execute("SELECT name, state_type FROM flow_run").fetchall()
        artifacts = {key for (key,) in kept.execute("SELECT key FROM artifact")}
        logs = [message for (message,) in kept.execute("SELECT message FROM log")]
    finally:
        kept.close()
    assert name.startswith("delivery-report") and state == "COMPLETED"
    kinds = ("delivery-report-summary", "delivery-report-counts", "delivery-report-sent")
    assert {f"{kind}-demo-merchant" for kind in kinds} <= artifacts
    assert any("found 1, new 1" in message for message in logs)  # its last logs reached the server
    assert pipeline.accepted() == ["AAAAAAAAA"]


def test_state_store_prints_the_same_default_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATE_DB_URL", raising=False)
    printed = set()
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        assert main(["state-store"]) == 0
        printed.add(capsys.readouterr().out)
    [url] = printed
    assert url.startswith("sqlite:///") and url.endswith("/sequra-etl/state.sqlite\n")
    assert str(tmp_path) not in url


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg2://etl:state-pw@db/state", "postgresql+psycopg2://etl@db/state?password=state-pw"],
)
def test_state_store_refuses_to_name_a_url_with_its_password(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STATE_DB_URL", url)
    code, err = run(["state-store"], capsys)
    assert code == EXIT_SETTING
    assert "STATE_DB_URL: holds a password" in err
    assert "state-pw" not in err + capsys.readouterr().out
    assert "state-pw" not in masked_url(url)


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://ops:hunter2@files.example.com/c.jsonl", "the URL holds a user or password"),
        ("https://files.example.com/c.jsonl?access_token=hunter2", "the URL's query holds a secret"),
        ("https://files.example.com/c.jsonl?X-Amz-Signature=hunter2&x=1", "the URL's query holds a secret"),
    ],
)
def test_a_corrections_url_with_credentials_is_refused_before_any_run(
    url: str, refusal: str, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    with get_client(sync_client=True) as client:
        before = client.count_flow_runs()
        code, err = run(["reconcile", "--corrections", url], capsys)
        after = client.count_flow_runs()
    assert code == EXIT_SETTING
    assert f"--corrections: {refusal}" in err
    assert "hunter2" not in err
    assert after == before


def test_local_files_are_ignored_by_git() -> None:
    project = Path(__file__).resolve().parents[2]
    ignored = subprocess.run(
        ["git", "check-ignore", ".sequra-etl/dry-run-2026.json", ".demo/shop.sqlite"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == [".sequra-etl/dry-run-2026.json", ".demo/shop.sqlite"]


def test_release_from_the_ui_settles_a_held_order_and_says_so_in_an_artifact(pipeline: Pipeline) -> None:
    store = open_state_store(pipeline.state_url)
    start_run(store, "run-1", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", "demo_merchant").sending([built_report("AAAAAAAAA")])
    held = QuarantinedOrder(
        "AAAAAAAAA", "AAAAAAAAA", (1,), Stage.LOAD, "no answer; check in SeQura's back office"
    )
    record_quarantine(store, "run-1", "demo_merchant", [held])
    store.dispose()
    state = release(order_refs=["AAAAAAAAA"], return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert run.name == "release-AAAAAAAAA"
    [result] = [a for a in artifacts if a.key == "release-result-demo-merchant"]
    assert "AAAAAAAAA" in result.data
    [waiting] = [a for a in artifacts if a.key == "open-quarantine-demo-merchant"]
    assert "Update to send" in waiting.data  # the next run sends it as an order update
    store = open_state_store(pipeline.state_url)
    assert uncertain_deliveries(store, "demo_merchant", ["AAAAAAAAA"]) == {}
    store.dispose()


def installed(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """The installed sequra-etl command, started with `argv` in its own process."""
    return subprocess.Popen(
        [str(BIN / "sequra-etl"), *argv],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ended(process: subprocess.Popen[str]) -> tuple[int, str]:
    """A command's exit code and what it wrote on stderr, once it ended."""
    _out, err = process.communicate(timeout=STARTUP)
    return process.returncode, err


def one_error_line(err: str) -> str:
    """The only record on stderr that is not a run's progress (Prefect's INFO lines); fails otherwise.

    A record starts with a log line's time or with sequra-etl's own prefix; other lines continue it.
    """
    records: list[list[str]] = []
    for line in err.splitlines():
        if RECORD_START.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    others = [record for record in records if " | INFO    | " not in record[0]]
    assert others == records[-1:] and len(records[-1]) == 1, err[-3000:]
    assert records[-1][0].startswith("sequra-etl: "), err[-3000:]
    return records[-1][0]


def test_every_anticipated_error_of_the_installed_command_is_one_line_with_its_exit_code(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.shop.shipped_order("AAAAAAAAA")
    store = open_state_store(pipeline.state_url)
    bad_data = QuarantinedOrder(
        "BADDATA01", "BADDATA01", (7,), Stage.BUILD, "totals do not add up; correct them in the back office"
    )
    record_quarantine(store, "run-0", "demo_merchant", [bad_data])
    for merchant in ("demo_merchant", "refused_merchant", "debug_merchant"):  # each has a history
        record_sent(store, "run-0", merchant, [built_report("SENT00001")])
    start_run(store, "other-run", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    store.dispose()
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "SEQURA_LOCK_WAIT_SECONDS": "1"}
    unset = {name: value for name, value in env.items() if name != "SEQURA_MERCHANT_ID"}
    refused = {**env, "SEQURA_PASSWORD": "wrong-password-value"}
    window = ["deliver", "--since", "2026-11-20", "--until", "2026-11-21"]
    commands = {  # all at once: each command in its own process
        "an argument": (["deliver", "--since", "yesterday"], env),
        "a setting": (["deliver"], unset),
        "a shop that cannot be read": (
            ["deliver", "--shop-db-url", f"sqlite:///{tmp_path}/nowhere/shop.sqlite"],
            env,
        ),
        "a release of an order quarantined for its data": (["release", "BADDATA01"], env),
        "a held lock": (window, env),
        "SeQura's refusal": ([*window, "--merchant", "refused_merchant"], refused),
        "--debug": (["--debug", *window, "--merchant", "debug_merchant"], refused),
    }
    started = {
        problem: installed(argv, environment, tmp_path) for problem, (argv, environment) in commands.items()
    }
    ends = {problem: ended(process) for problem, process in started.items()}

    code, err = ends.pop("--debug")
    assert code == EXIT_FAILED
    assert "Traceback (most recent call last)" in err and "SequraAuthError" in err
    assert "Finished in state Failed" in err  # Prefect's own lines about the failure, only with --debug
    said = {problem: one_error_line(err) for problem, (_code, err) in ends.items()}
    assert {problem: code for problem, (code, _err) in ends.items()} == {
        "an argument": EXIT_SETTING,
        "a setting": EXIT_SETTING,
        "a shop that cannot be read": EXIT_FAILED,
        "a release of an order quarantined for its data": EXIT_SETTING,
        "a held lock": EXIT_FAILED,
        "SeQura's refusal": EXIT_FAILED,
    }
    assert "--since: 'yesterday' is not an ISO 8601 date" in said["an argument"]
    assert "SEQURA_MERCHANT_ID" in said["a setting"]
    assert "check SHOP_DB_URL" in said["a shop that cannot be read"]
    release = said["a release of an order quarantined for its data"]
    assert "BADDATA01 is quarantined for its data, not held: totals do not add up" in release
    assert "the next run sends it by itself" in release
    assert "for the lock of merchant demo_merchant" in said["a held lock"]
    assert said["SeQura's refusal"].startswith(
        "sequra-etl: SeQura refused the credentials (401); check SEQURA"
    )
    for problem, (_code, err) in ends.items():
        assert "Traceback" not in err and " | ERROR " not in err and "wrong-password-value" not in err, (
            problem
        )
        assert "Finished in state Failed" not in err, problem
    assert pipeline.accepted() == []


@pytest.mark.parametrize(
    ("given", "resend", "said"),
    [
        (["BADDATA01"], False, "BADDATA01 is quarantined for its data, not held: totals do not add up"),
        (
            ["REFUSED01"],
            False,
            "REFUSED01 is quarantined, not held: SeQura refused it (422): no email; correct",
        ),
        (["SENT00001"], False, "SeQura already has SENT00001 (reported"),
        (
            ["NOTKNOWN1"],
            False,
            "NOTKNOWN1 is not in the state store of merchant demo_merchant: check the order",
        ),
        (["HELDORDER", "NOTKNOWN1"], True, "NOTKNOWN1 is not in the state store"),
        ([], False, "no order given; name the orders (their order_ref_1) or --run RUN_ID"),
        (["--run", "run-9"], False, "run run-9 left no order of merchant demo_merchant without an answer"),
    ],
    ids=[
        "bad data",
        "refused report",
        "reported",
        "unknown",
        "unknown beside a held one",
        "none",
        "empty run",
    ],
)
def test_a_release_of_an_order_that_is_not_held_says_what_it_is_and_what_to_do_and_changes_nothing(
    given: list[str], resend: bool, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    store = open_state_store(url)
    start_run(store, "run-1", "demo_merchant", Window(SINCE, UNTIL), dry_run=False, flow_run_id=None)
    StateLedger(store, "run-1", "demo_merchant").sending([built_report("HELDORDER")])
    record_sent(store, "run-1", "demo_merchant", [built_report("SENT00001")])
    record_quarantine(
        store,
        "run-1",
        "demo_merchant",
        [
            QuarantinedOrder("BADDATA01", "BADDATA01", (7,), Stage.BUILD, "totals do not add up; fix them"),
            QuarantinedOrder("REFUSED01", "REFUSED01", (8,), Stage.LOAD, "SeQura refused it (422): no email"),
        ],
    )
    store.dispose()
    options = ["--merchant", "demo_merchant", "--state-db-url", url, *(["--resend"] if resend else [])]

    code, err = run(["release", *given, *options], capsys)

    assert (code, err.count("\n")) == (EXIT_SETTING, 1)
    assert err.startswith("sequra-etl: nothing was released: ") and said in err
    store = open_state_store(url)
    assert uncertain_deliveries(store, "demo_merchant", ["HELDORDER"]) != {}
    store.dispose()


def test_a_release_from_the_ui_of_an_order_quarantined_for_its_data_fails_saying_what_to_do_in_its_artifact(
    pipeline: Pipeline,
) -> None:
    store = open_state_store(pipeline.state_url)
    bad_data = QuarantinedOrder("BADDATA01", "BADDATA01", (7,), Stage.BUILD, "totals do not add up; fix them")
    record_quarantine(store, "run-1", "demo_merchant", [bad_data])
    store.dispose()
    state = release(order_refs=["BADDATA01"], return_state=True)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    assert state.is_failed() and "BADDATA01 is quarantined for its data" in (state.message or "")
    [result] = [a for a in artifacts if a.key == "release-result-demo-merchant"]
    assert "nothing was released: BADDATA01 is quarantined for its data" in result.data
    assert "the next run sends it by itself" in result.data


def record(logger: str, level: int, message: str) -> logging.LogRecord:
    """A log record as Prefect's loggers make them."""
    return logging.LogRecord(logger, level, __file__, 1, message, None, None)


def test_a_failure_keeps_prefects_lines_about_it_and_the_servers_closing_line_off_the_terminal() -> None:
    failed = record("prefect.flow_runs", logging.ERROR, "Encountered exception during execution")
    closing = record("prefect", logging.INFO, "Stopping temporary server on http://127.0.0.1:8017")
    progress = record("prefect.flow_runs", logging.INFO, "Window 2026-11-20 for merchant demo_merchant")
    with pytest.raises(SettingError), failures_off_the_terminal("deliver", debug=False):
        consoles = [kept for kept in logging.getLogger().handlers if isinstance(kept, PrefectConsoleHandler)]
        assert consoles and [console.filter(failed) for console in consoles] == [False] * len(consoles)
        raise SettingError("SEQURA_MERCHANT_ID", "is not set")
    assert all(console.filter(progress) and console.filter(failed) for console in consoles)
    assert not any(console.filter(closing) for console in consoles)  # it would follow the error's line


def test_the_console_script_exits_after_the_threads_and_exit_handlers_without_freeing_modules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done: list[object] = []
    monkeypatch.setattr(cli_main, "main", lambda: done.append("main") or 0)
    monkeypatch.setattr(cli_main.threading, "_shutdown", lambda: done.append("threads"))
    monkeypatch.setattr(cli_main.atexit, "_run_exitfuncs", lambda: done.append("exit handlers"))
    monkeypatch.setattr(cli_main.os, "_exit", lambda code: done.append(("exit", code)))

    cli_main.console()

    assert done == ["main", "threads", "exit handlers", ("exit", 0)]


def test_the_console_script_exits_quietly_when_its_reader_has_gone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class GoneReader(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    exits: list[int] = []
    monkeypatch.setattr(cli_main, "main", lambda: 0)
    monkeypatch.setattr(cli_main.threading, "_shutdown", lambda: None)
    monkeypatch.setattr(cli_main.atexit, "_run_exitfuncs", lambda: None)
    monkeypatch.setattr(cli_main.os, "_exit", exits.append)
    monkeypatch.setattr(sys, "stdout", GoneReader())

    cli_main.console()

    assert exits == [0]

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from pydantic import SecretStr

from sandbox.server import SandboxServer
from tasks.delivery.build import serialised
from tasks.delivery.load import delivery_report_body
from tasks.delivery.order_updates import order_update_body
from tasks.sequra_client import (
    MAX_RETRY_AFTER_SECONDS,
    HttpSequraClient,
    SequraAuthError,
    SequraNotSequraError,
    SequraRejectedError,
    SequraUnavailableError,
    _retry_after,
)
from tests.cases import PLATFORM, order_report
from tests.clocks import MovedClock
from tests.not_sequra import LOGIN_PAGE, REDIRECT, not_sequra

MERCHANT = "demo_merchant"


def client_for(
    server: SandboxServer,
    *,
    password: str = "demo-secret",
    merchant: str = MERCHANT,
    timeout: float = 5.0,
    attempts: int = 4,
) -> tuple[HttpSequraClient, list[float]]:
    """A client on the sandbox whose waits are recorded instead of slept."""
    clock = MovedClock()
    client = HttpSequraClient(
        server.url,
        "demo",
        SecretStr(password),
        merchant,
        timeout_seconds=timeout,
        max_attempts=attempts,
        backoff_seconds=0.01,
        clock=clock,
    )
    return client, clock.slept


def report(*refs: str, merchant: str = MERCHANT) -> bytes:
    return delivery_report_body(merchant, [serialised(order_report(r))[0] for r in refs], None, PLATFORM)


def faults(server: SandboxServer, **plan: object) -> None:
    requests.post(server.url + "_sandbox/faults", json=plan, timeout=5).raise_for_status()


def accepted_refs(server: SandboxServer) -> list[str]:
    return [o["order_ref_1"] for o in requests.get(server.url + "_sandbox/orders", timeout=5).json()]


@pytest.fixture
def server(sandbox_server: SandboxServer) -> SandboxServer:
    requests.post(sandbox_server.url + "_sandbox/reset", timeout=5).raise_for_status()
    return sandbox_server


def test_delivery_report_is_accepted_over_http(server: SandboxServer) -> None:
    client, waits = client_for(server)
    client.send_delivery_report(report("ABCDEFGHI"))
    assert accepted_refs(server) == ["ABCDEFGHI"]
    assert waits == []


def test_server_errors_are_retried_with_growing_backoff(server: SandboxServer) -> None:
    faults(server, fail_next=2)
    client, waits = client_for(server)
    client.send_delivery_report(report("RETRYME"))
    assert accepted_refs(server) == ["RETRYME"]
    assert len(waits) == 2
    assert waits[1] > waits[0] * 1.0 / 3  # jitter stays within 0.5x..1.5x of a doubling base


def test_rate_limit_waits_what_retry_after_asks(server: SandboxServer) -> None:
    faults(server, rate_limit_next=1, retry_after=7)
    client, waits = client_for(server)
    client.send_delivery_report(report("RATELIMIT"))
    assert waits == [7.0]
    assert accepted_refs(server) == ["RATELIMIT"]


def test_a_report_whose_connection_dropped_is_not_posted_again_as_it_may_have_arrived(
    server: SandboxServer,
) -> None:
    faults(server, drop_next=1)
    client, waits = client_for(server)
    with pytest.raises(
        SequraUnavailableError, match="it may have been processed, so it is not sent again"
    ) as error:
        client.send_delivery_report(report("DROPPED"))
    assert (error.value.maybe_delivered, waits) == (True, [])


def test_a_report_whose_answer_is_slow_is_not_posted_again(server: SandboxServer) -> None:
    faults(server, slow_answer_next=1, slow_answer_seconds=1.0)
    client, waits = client_for(server, timeout=0.2, attempts=3)
    with pytest.raises(SequraUnavailableError) as error:
        client.send_delivery_report(report("SLOW"))
    assert (error.value.maybe_delivered, waits) == (True, [])
    assert accepted_refs(server) == ["SLOW"]  # it arrived, once


def test_an_update_whose_connection_dropped_is_simply_sent_again(server: SandboxServer) -> None:
    client, waits = client_for(server)
    client.send_delivery_report(report("UPDATED"))
    faults(server, drop_next=1, lose_answer_next=1)
    assert (
        client.update_order("UPDATED", order_update_body(MERCHANT, order_report("UPDATED"), PLATFORM)) == 200
    )
    assert len(waits) == 2


def test_a_refused_connection_is_retried_as_nothing_left() -> None:
    clock = MovedClock()
    closed = HttpSequraClient(
        "http://127.0.0.1:9/",
        "demo",
        SecretStr("x"),
        MERCHANT,
        max_attempts=3,
        backoff_seconds=0.01,
        clock=clock,
    )
    with pytest.raises(SequraUnavailableError, match="nothing was marked as sent") as error:
        closed.send_delivery_report(report("NEVERLEFT"))
    assert (error.value.maybe_delivered, len(clock.slept)) == (False, 2)


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (LOGIN_PAGE, "with text/html"),
        (("302 Found", "text/html", b""), "answered a redirect (302) to http://elsewhere.example/"),
        (REDIRECT, "answered a redirect (307)"),
    ],
)
def test_only_sequras_own_answer_counts_never_a_page_or_a_redirect(answer: tuple, named: str) -> None:
    with not_sequra(*answer) as url:
        client = HttpSequraClient(url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL") as error:
            client.send_delivery_report(report("HTMLPAGE1"))
    assert named in str(error.value)
    assert "nothing was marked as sent" in str(error.value)


def test_wrong_password_fails_at_once_naming_the_settings(server: SandboxServer) -> None:
    client, waits = client_for(server, password="wrong")
    with pytest.raises(SequraAuthError, match="SEQURA_USERNAME and SEQURA_PASSWORD"):
        client.send_delivery_report(report("AUTH"))
    assert waits == []
    assert accepted_refs(server) == []


def test_unknown_merchant_fails_at_once_naming_the_setting(server: SandboxServer) -> None:
    client, waits = client_for(server, merchant="nobody")
    with pytest.raises(SequraAuthError, match="SEQURA_MERCHANT_ID"):
        client.send_delivery_report(report("X", merchant="nobody"))
    assert waits == []


def test_conflict_is_not_retried_and_carries_sequras_errors(server: SandboxServer) -> None:
    faults(server, reject_refs=["BADORDER"])
    client, waits = client_for(server)
    with pytest.raises(SequraRejectedError) as rejected:
        client.send_delivery_report(report("GOODORDER", "BADORDER"))
    assert waits == []
    assert any("BADORDER" in error for error in rejected.value.errors)


def test_the_password_never_shows_in_the_clients_repr(server: SandboxServer) -> None:
    client, _ = client_for(server, password="hunter2-secret")
    assert "hunter2-secret" not in repr(client)


def test_retry_after_is_read_in_seconds_or_as_an_http_date() -> None:
    def answer(value: str) -> requests.Response:
        response = requests.Response()
        response.status_code = 429
        response.headers["Retry-After"] = value
        return response

    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    in_a_minute = format_datetime(now + timedelta(seconds=60), usegmt=True)
    assert _retry_after(answer("7"), now) == 7.0
    assert _retry_after(answer(in_a_minute), now) == 60.0
    assert _retry_after(answer("soon"), now) is None
    assert _retry_after(answer("99999"), now) == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize("status", ["502 Bad Gateway", "504 Gateway Timeout"])
def test_a_gateway_that_gave_up_on_a_report_leaves_its_outcome_unknown_and_it_is_not_posted_again(
    status: str,
) -> None:
    clock = MovedClock()
    with not_sequra(status, "text/html", b"<html>gateway</html>") as url:
        client = HttpSequraClient(url, "demo", SecretStr("x"), MERCHANT, max_attempts=3, clock=clock)
        with pytest.raises(SequraUnavailableError) as error:
            client.send_delivery_report(report("GATEWAY01"))
    assert (error.value.maybe_delivered, clock.slept) == (True, [])

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Literal
from urllib.parse import unquote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from sandbox.server import SandboxServer
from schemas.errors import DisbursementFormatError, SettingError
from tasks.delivery.build import serialised
from tasks.delivery.load import delivery_report_body
from tasks.delivery.order_updates import order_update_body
from tasks.sequra_client import (
    MAX_RETRY_AFTER_SECONDS,
    HttpSequraClient,
    SequraAuthError,
    SequraError,
    SequraNoDisbursementError,
    SequraNotSequraError,
    SequraRejectedError,
    SequraUnavailableError,
    SequraUnsafeReferenceError,
    _retry_after,
    order_path,
)
from tests.cases import PLATFORM, order_report
from tests.clocks import MovedClock
from tests.hostile import hostile
from tests.not_sequra import LOGIN_PAGE, REDIRECT, Replay, Scripted, not_sequra, path_as_served

MERCHANT = "demo_merchant"
DEADLINE_MARGIN = 0.3  # seconds past its timeout an exchange may take to end


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


def test_a_password_beyond_latin_1_is_sent_as_utf_8_not_a_crash() -> None:
    with Replay() as double:
        double.answers["POST"] = Scripted(204)
        client = HttpSequraClient(double.url, "demo", SecretStr("пароль-€"), MERCHANT, max_attempts=1)
        client.send_delivery_report(report("UTF8PASS1"))
    [authorization] = double.authorizations
    assert authorization == "Basic " + base64.b64encode("demo:пароль-€".encode()).decode()


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


NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_retry_after_is_read_in_seconds_or_as_an_http_date() -> None:
    in_a_minute = format_datetime(NOW + timedelta(seconds=60), usegmt=True)
    assert _retry_after("7", NOW) == 7.0
    assert _retry_after(in_a_minute, NOW) == 60.0
    assert _retry_after("soon", NOW) is None
    assert _retry_after("99999", NOW) == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("nan", None),
        ("NaN", None),
        ("inf", MAX_RETRY_AFTER_SECONDS),
        ("-inf", 0.0),
        ("1e400", MAX_RETRY_AFTER_SECONDS),
        ("-5", 0.0),
        ("5, 7", None),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_SECONDS),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 -0000", None),  # a date without a zone: no moment to wait for
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
        ("\x00", None),
    ],
)
def test_any_retry_after_gives_a_bounded_wait_or_none(value: str, wait: float | None) -> None:
    assert _retry_after(value, NOW) == wait


def test_a_retry_after_of_nan_waits_a_bounded_time_instead_of_crashing_the_run() -> None:
    clock = MovedClock()
    with Replay() as double:
        double.answers["POST"] = Scripted(429, (("Retry-After", "nan"),))
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=3, clock=clock)
        with pytest.raises(SequraUnavailableError, match="HTTP 429"):
            client.send_delivery_report(report("NANWAIT01"))
    assert len(clock.slept) == 2
    assert all(math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER_SECONDS for wait in clock.slept)


def test_a_2xx_typed_json_whose_body_is_an_html_login_page_is_not_sequras_acceptance() -> None:
    with not_sequra("200 OK", "application/json", LOGIN_PAGE[2]) as url:
        client = HttpSequraClient(url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL") as error:
            client.send_delivery_report(report("LOGINJSON"))
    assert "nothing was marked as sent" in str(error.value)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'"accepted"'),
        ("application/json", b"null"),
        ("application/json", b"NaN"),
        ("application/json", b'{"a": 1} trailing'),
        ("application/json", b"\xff\xfe{}"),
        ("application/json", b"{}" + b" " * (17 << 20)),  # past what is read of an answer
        ("text/plain", b"{}"),
        ("", b"[]"),
    ],
    ids=["string", "null", "nan", "trailing", "not utf-8", "huge", "typed as text", "untyped"],
)
def test_a_2xx_is_accepted_only_with_no_body_or_a_json_object_or_array_typed_as_json(
    content_type: str, body: bytes
) -> None:
    with Replay() as double:
        double.answers["POST"] = Scripted(200, (("Content-Type", content_type),), body)
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL"):
            client.send_delivery_report(report("NOTADOC01"))


@pytest.mark.parametrize("body", [b"", b" \r\n", b"{}", b'{"ok": true}', b"[]"])
def test_a_2xx_with_no_body_or_a_json_object_or_array_is_accepted(body: bytes) -> None:
    with Replay() as double:
        double.answers["POST"] = Scripted(200, (("Content-Type", "application/json; charset=utf-8"),), body)
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        client.send_delivery_report(report("ADOCUMENT"))
    assert double.requests == [("POST", "/orders/delivery_reports")]


def test_a_compressed_answer_that_does_not_inflate_is_a_sequra_error_not_a_crash() -> None:
    with Replay() as double:
        garbled = (("Content-Type", "application/json"), ("Content-Encoding", "gzip"))
        double.answers["POST"] = Scripted(200, garbled, b"not gzip at all")
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL"):
            client.send_delivery_report(report("GARBLED01"))


def test_a_refusal_nested_too_deep_for_python_is_still_sequras_refusal() -> None:
    deep = b'{"errors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with Replay() as double:
        double.answers["POST"] = Scripted(409, (("Content-Type", "application/json"),), deep)
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraRejectedError) as refused:
            client.send_delivery_report(report("DEEPNEST1"))
    assert len(str(refused.value)) < 1000


def test_an_answer_that_drips_past_the_timeout_is_an_answer_lost_not_a_hang() -> None:
    dripping = Scripted(200, (("Content-Type", "application/json"),), b"{}" + b" " * 60, drip_seconds=0.05)
    with Replay() as double:
        double.answers["POST"] = dripping
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(SequraUnavailableError, match="it may have been processed") as error:
            client.send_delivery_report(report("DRIPPING1"))
    assert time.monotonic() - started < 2.0
    assert error.value.maybe_delivered


JSON_204 = Scripted(204, (("Content-Type", "application/json"),))


@pytest.mark.parametrize("drip_from", ["status line", "headers"])
def test_a_report_whose_status_line_or_headers_drip_past_the_timeout_is_an_answer_lost_not_a_hang(
    drip_from: Literal["status line", "headers"],
) -> None:
    with Replay() as double:
        double.answers["POST"] = replace(JSON_204, drip_seconds=0.1, drip_from=drip_from)
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(SequraUnavailableError, match=r"no answer within 0\.5s") as error:
            client.send_delivery_report(report("DRIPHEAD1"))
        took = time.monotonic() - started
    assert took < 0.5 + DEADLINE_MARGIN
    assert error.value.maybe_delivered
    assert len(double.requests) == 1  # it may have arrived: never posted again


def test_an_update_whose_headers_drip_past_the_timeout_is_sent_again_each_attempt_held_to_it() -> None:
    clock = MovedClock()
    with Replay() as double:
        double.answers["PUT"] = replace(JSON_204, drip_seconds=0.1, drip_from="headers")
        client = HttpSequraClient(
            double.url, "demo", SecretStr("x"), MERCHANT, timeout_seconds=0.5, max_attempts=2, clock=clock
        )
        started = time.monotonic()
        with pytest.raises(SequraUnavailableError, match=r"no answer within 0\.5s"):
            client.update_order("DRIPHEAD2", b"{}")
        took = time.monotonic() - started
    assert took < 2 * 0.5 + DEADLINE_MARGIN
    assert len(double.requests) == 2


def test_a_connection_kept_alive_from_an_earlier_answer_is_held_to_the_timeout_too() -> None:
    with Replay() as double:
        double.answers["PUT"] = replace(JSON_204, keep_alive=True)
        client = HttpSequraClient(
            double.url, "demo", SecretStr("x"), MERCHANT, timeout_seconds=0.5, max_attempts=1
        )
        assert client.update_order("KEPTALIVE", b"{}") == 204
        double.answers["PUT"] = replace(JSON_204, drip_seconds=0.1, drip_from="headers", keep_alive=True)
        started = time.monotonic()
        with pytest.raises(SequraUnavailableError, match=r"no answer within 0\.5s"):
            client.update_order("KEPTALIVE", b"{}")
        took = time.monotonic() - started
    assert double.peers[0] == double.peers[1]  # the same connection, kept alive
    assert took < 0.5 + DEADLINE_MARGIN


def test_a_redirect_whose_body_cannot_be_read_is_refused_as_not_sequras_never_a_crash() -> None:
    chain = ", ".join(["gzip", "deflate"] * 3)  # more codings than urllib3 will stack
    with Replay() as double:
        headers = (("Content-Encoding", chain), ("Location", "https://login.example/"))
        double.answers["POST"] = Scripted(302, headers, b"\x1f\x8b garbage", content_length=False)
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraNotSequraError, match=r"redirect \(302\) to https://login\.example/"):
            client.send_delivery_report(report("REDIRECT2"))


def test_a_redirect_to_an_address_with_a_password_is_named_without_it() -> None:
    with Replay() as double:
        double.answers["POST"] = Scripted(302, (("Location", "http://leak:InUrlS3cret@elsewhere.example/"),))
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraNotSequraError, match=r"elsewhere\.example") as error:
            client.send_delivery_report(report("REDIRECTS"))
    assert "InUrlS3cret" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://leak:InUrlS3cret@127.0.0.1:4812/",
        "http://192.0.2.1/",
        "http://127.0.0.1:4812/api/v1/../../admin/",
        "http://127.0.0.1:4812/api/v1/%2e%2e/%2E%2E/admin/",
    ],
)
def test_a_client_refuses_a_base_url_that_would_leak_or_misdirect_its_credentials(url: str) -> None:
    with pytest.raises(SettingError, match=r"^SEQURA_API_URL: ") as refused:
        HttpSequraClient(url, "demo", SecretStr("x"), MERCHANT)
    assert "InUrlS3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "order_ref_1",
    ["..", ".", "%2e%2e", "%2E.", "", " ", "A/../..", "..;x", "\uff0e\uff0e", "\u2025", "AB\nC", "x" * 256],
)
def test_an_order_reference_that_could_leave_its_url_segment_is_refused_before_anything_is_sent(
    order_ref_1: str,
) -> None:
    with Replay() as double:
        double.answers["PUT"] = Scripted(200, (("Content-Type", "application/json"),), b"{}")
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        with pytest.raises(SequraUnsafeReferenceError, match="order reference") as refused:
            client.update_order(order_ref_1, order_update_body(MERCHANT, order_report("X"), PLATFORM))
    assert double.requests == []
    assert "\n" not in str(refused.value)


def test_an_order_reference_with_odd_characters_stays_one_segment_of_its_order() -> None:
    with Replay() as double:
        double.answers["PUT"] = Scripted(204)
        client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
        assert client.update_order("...", b"{}") == 204
        assert client.update_order("A;B?C#D%E", b"{}") == 204
    assert double.requests == [
        ("PUT", "/merchants/demo_merchant/orders/..."),
        ("PUT", "/merchants/demo_merchant/orders/A%3BB%3FC%23D%25E"),
    ]


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


PASSWORD = "p4ss-S3cret"
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
)
TOKEN = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), min_size=1
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


BODIES = st.one_of(
    st.sampled_from(
        [
            b"",
            b" \r\n\t",
            b"{}",
            b"[]",
            b"null",
            b"NaN",
            b'{"a": NaN}',
            b'"ok"',
            LOGIN_PAGE[2],
            b'{"errors": ["Invalid data: order X"]}',
            b'{"errors": []}',
            b'{"errors": [{"title": "t"}, 3, null, {"no": "title"}]}',
            b"\xff\xfe{}",
            b"\xef\xbb\xbf{}",
            b"{" * 5 + b"}" * 5,
        ]
    ),
    JSON_VALUES.map(json_bytes),
    st.lists(JSON_VALUES, max_size=3).map(lambda errors: json_bytes({"errors": errors})),
    st.integers(1, 60_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
CONTENT_TYPES = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
            "APPLICATION/JSON",
            "application/jsonx",
            "text/html",
            "text/plain",
            ";",
            "",
        ]
    )
    | HEADER_TEXT
)
RETRY_AFTERS = (
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "-1",
            "0",
            "1e400",
            "3.5",
            "1_000",
            "5, 7",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 -0000",
            "Mon, 99 Foo 2026 99:99:99 GMT",
        ]
    )
    | st.floats().map(str)
    | st.integers().map(str)
    | HEADER_TEXT
)
OTHER_HEADERS = st.lists(
    st.tuples(TOKEN, HEADER_TEXT)
    | st.sampled_from(
        [
            ("Content-Encoding", "gzip"),
            ("Content-Encoding", "br"),
            ("Content-Encoding", "gzip, deflate, gzip, deflate, gzip, deflate"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "5"),
            ("Location", f"http://leak:{PASSWORD}@elsewhere.example/"),
            ("Location", "\x01\x02"),
            ("Set-Cookie", "a=b; Domain=.; Path=/; Expires=never"),
            ("Retry-After", "7"),
        ]
    ),
    max_size=4,
)
FRAMING = {"content-encoding", "transfer-encoding", "content-length"}


@st.composite
def answers(draw: st.DrawFn) -> Scripted:
    """Whatever a server in SeQura's place may answer: any status, headers and body."""
    headers = [("Content-Type", draw(CONTENT_TYPES))] if draw(st.booleans()) else []
    if draw(st.booleans()):
        headers.append(("Retry-After", draw(RETRY_AFTERS)))
    headers += draw(OTHER_HEADERS)
    return Scripted(draw(st.integers(100, 599)), tuple(headers), draw(BODIES), draw(st.booleans()))


def not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def is_acceptance(answer: Scripted) -> bool:
    """SeQura's acceptance as documented: a 2xx with no body, or a JSON object or array typed as JSON."""
    if not 200 <= answer.status < 300:
        return False
    body = b"" if answer.status == 204 else answer.body  # a 204 has no body, whatever follows it
    if not body.strip(b" \t\r\n"):
        return True
    media = dict((name.lower(), value) for name, value in answer.headers).get("content-type", "")
    media = media.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return False
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=not_json)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict | list)


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    with Replay() as double:
        yield double


@pytest.mark.hostile
@hostile
@given(answer=answers(), call=st.sampled_from(["report", "update"]))
def test_any_answer_is_sequras_acceptance_as_documented_or_a_sequra_error_never_a_crash_or_a_wait_unbounded(
    replay: Replay, answer: Scripted, call: str
) -> None:
    replay.answers = {"POST": answer, "PUT": answer}
    clock = MovedClock()
    client = HttpSequraClient(
        replay.url, "demo", SecretStr(PASSWORD), MERCHANT, timeout_seconds=1.0, max_attempts=2, clock=clock
    )
    try:
        if call == "report":
            client.send_delivery_report(b"{}")
        else:
            client.update_order("ABCDEFGHI", b"{}")
        accepted = True
    except SequraError as error:
        accepted = False
        assert "\n" not in str(error) and PASSWORD not in str(error)
    finally:
        client.close()
    framed_plainly = not FRAMING & {name.lower() for name, _ in answer.headers}
    assert accepted <= is_acceptance(answer)
    assert accepted or not (is_acceptance(answer) and framed_plainly)
    assert all(math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER_SECONDS for wait in clock.slept)


ORDER_REF_PIECES = st.sampled_from(
    [
        ".",
        "..",
        "%2e",
        "%2E",
        "%252e",
        "/",
        "\\",
        "%2f",
        "%5c",
        ";",
        "?",
        "#",
        "%",
        "．",
        "‥",
        "／",
        " ",
        "\n",
        "\x00",
    ]
)


@pytest.mark.hostile
@hostile
@given(
    order_ref_1=st.text(st.characters(exclude_categories=()))
    | st.lists(ORDER_REF_PIECES | st.text(max_size=2), max_size=6).map("".join)
)
def test_an_order_reference_is_refused_naming_it_or_stays_the_one_segment_of_its_order_as_a_server_reads_it(
    order_ref_1: str,
) -> None:
    try:
        path = order_path(MERCHANT, order_ref_1)
    except SequraUnsafeReferenceError as refused:
        assert str(refused).startswith("order reference ") and "\n" not in str(refused)
        return
    served = path_as_served(requests.Request("PUT", "http://127.0.0.1:8765/" + path).prepare().path_url)
    orders = f"/merchants/{MERCHANT}/orders/"
    assert served.startswith(orders)
    segment = served.removeprefix(orders)
    assert segment and "/" not in segment
    assert unquote(segment, errors="strict") == order_ref_1


DISBURSEMENT_ID = "c6105f92-5718-4355-9f5b-56b24fe19baa"
DISBURSEMENTS = f"/merchants/{MERCHANT}/disbursements"


@pytest.fixture
def double(replay: Replay) -> Replay:
    """The module's Replay server, with no answer scripted and no request noted yet."""
    replay.answers = {}
    replay.requests.clear()
    return replay


def disbursement_list(path: str = f"{DISBURSEMENTS}/{DISBURSEMENT_ID}") -> Scripted:
    """SeQura's list of one disbursement, as its docs show it, whose detail is at `path`."""
    fields = {
        "issue_date": "2014-12-02",
        "to_date": "2014-11-16",
        "currency": "EUR",
        "disbursed_amount": 34234,
        "adjustments_with_tax": 0,
        "reference": "0000008mlHWOC",
        "path": path,
    }
    return Scripted(
        200, (("Content-Type", "application/json; charset=utf-8"),), json_bytes([{"disbursement": fields}])
    )


@pytest.mark.parametrize("prefix", ["", "api/v1/"])
def test_disbursements_and_then_a_detail_are_read_under_the_api_url(double: Replay, prefix: str) -> None:
    detail = {"disbursement": {"orders": [{"order_ref_1": "ABCDEFGHI", "amount_with_tax": 12100}]}}
    double.answers[f"GET /{prefix}{DISBURSEMENTS[1:]}"] = disbursement_list()
    double.answers[f"GET /{prefix}{DISBURSEMENTS[1:]}/{DISBURSEMENT_ID}"] = Scripted(
        200, (("Content-Type", "application/json"),), json_bytes(detail)
    )
    client = HttpSequraClient(double.url + prefix, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
    [disbursement] = client.disbursements()
    lines = client.disbursement_lines(disbursement).lines
    assert (disbursement.reference, disbursement.disbursed_amount) == ("0000008mlHWOC", 34234)
    assert [(line.order_ref_1, line.amount_with_tax) for line in lines] == [("ABCDEFGHI", 12100)]
    assert double.requests == [
        ("GET", f"/{prefix}{DISBURSEMENTS[1:]}"),
        ("GET", f"/{prefix}{DISBURSEMENTS[1:]}/{DISBURSEMENT_ID}"),
    ]


def test_disbursements_refused_credentials_fail_at_once_naming_the_settings(double: Replay) -> None:
    double.answers["GET"] = Scripted(401)
    client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=3)
    with pytest.raises(SequraAuthError, match="SEQURA_USERNAME and SEQURA_PASSWORD"):
        client.disbursements()
    assert len(double.requests) == 1


def test_a_disbursement_list_or_detail_sequra_does_not_have_is_named(double: Replay) -> None:
    double.answers["GET"] = Scripted(
        404, (("Content-Type", "application/json"),), b'{"errors": ["Not found"]}'
    )
    client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=3)
    with pytest.raises(SequraNoDisbursementError, match="no disbursement list for merchant 'demo_merchant'"):
        client.disbursements()
    double.answers[f"GET {DISBURSEMENTS}"] = disbursement_list()
    [disbursement] = client.disbursements()
    with pytest.raises(SequraNoDisbursementError, match=f"no disbursement 0000008mlHWOC at {DISBURSEMENTS}/"):
        client.disbursement_lines(disbursement)
    assert len(double.requests) == 3


@pytest.mark.parametrize("content_type", ["text/html", "application/json"])
def test_a_disbursement_list_that_is_an_html_page_is_not_sequras_answer(
    double: Replay, content_type: str
) -> None:
    double.answers["GET"] = Scripted(200, (("Content-Type", content_type),), LOGIN_PAGE[2])
    client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=3)
    with pytest.raises(SequraNotSequraError, match="SEQURA_API_URL"):
        client.disbursements()
    assert len(double.requests) == 1


@pytest.mark.parametrize(
    "path",
    [
        "http://127.0.0.1:{port}/elsewhere/disbursements/x",
        "//127.0.0.1:{port}/merchants/demo_merchant/disbursements/x",
        "/merchants/demo_merchant/disbursements/../../../elsewhere",
        "/merchants/demo_merchant/disbursements/%2e%2e",
        "/merchants/another_merchant/disbursements/x",
    ],
)
def test_a_detail_path_leading_anywhere_else_is_refused_and_never_requested(
    double: Replay, path: str
) -> None:
    double.answers["GET"] = disbursement_list(path.format(port=double.server.server_port))
    client = HttpSequraClient(double.url, "demo", SecretStr("x"), MERCHANT, max_attempts=1)
    [disbursement] = client.disbursements()
    with pytest.raises(DisbursementFormatError, match="disbursement 0000008mlHWOC: its path"):
        client.disbursement_lines(disbursement)
    assert double.requests == [("GET", DISBURSEMENTS)]


def test_a_disbursement_list_that_times_out_is_asked_again(double: Replay) -> None:
    clock = MovedClock()
    double.answers["GET"] = replace(disbursement_list(), drip_seconds=0.1, drip_from="headers")
    client = HttpSequraClient(
        double.url, "demo", SecretStr("x"), MERCHANT, timeout_seconds=0.3, max_attempts=2, clock=clock
    )
    with pytest.raises(SequraUnavailableError, match=r"no answer within 0\.3s"):
        client.disbursements()
    assert len(double.requests) == 2
    assert len(clock.slept) == 1

"""Downloading the corrections: a whole-transfer deadline; redirects only within the same scheme and host."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from schemas.errors import SettingError
from schemas.setting_values import parse_api_url
from schemas.settings import Settings
from tasks.reconciliation.corrections import stage_corrections, staged_chunk
from tasks.reconciliation.source import (
    MAX_REDIRECTS,
    CorrectionsSourceError,
    download,
    redirect_target,
    source_label,
)
from tests.hostile import hostile

BODY = b'{"order_ref_1": "A-1", "customer": {"given_names": "Ana"}}\n'
DRIP_SECONDS = 0.5
DRIP_FOR = 8.0  # the server gives up dripping after this long, so a test of a broken deadline still ends
PASSWORD = "Pa55-never-shown"


@dataclass
class Seen:
    """What a loopback double was asked: each request's path and Authorization header."""

    requests: list[tuple[str, str | None]] = field(default_factory=list)


class Double(BaseHTTPRequestHandler):
    """Serves corrections, redirects (`/to?URL`, `/loop`), drips, a gzip bomb, any status (`/status?304`)."""

    seen: Seen

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.seen.requests.append((self.path, self.headers.get("Authorization")))
        route, _, query = self.path.partition("?")
        if route == "/corrections":
            self._answer(200, BODY)
        elif route == "/to":
            self._answer(302, b"", location=query)
        elif route == "/gzip":
            self._answer(200, gzip.compress(b"\n" * 50_000_000), encoding="gzip")
        elif route == "/status":
            self._answer(int(query), b"")
        elif route == "/loop":
            self._answer(302, b"", location="/loop")
        elif route == "/drip":
            self._drip_body()
        elif route == "/drip-headers":
            self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"x" * 10_000)

    def _answer(self, status: int, body: bytes, location: str | None = None, encoding: str = "") -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) * 1000))
        self.end_headers()
        self._drip(BODY * 1000)

    def _drip(self, data: bytes) -> None:
        drip(self._send, data)

    def _send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()


def drip(send: Callable[[bytes], object], data: bytes) -> None:
    """Send `data` one byte every DRIP_SECONDS until the client leaves or DRIP_FOR has passed."""
    ends = time.monotonic() + DRIP_FOR
    for byte in data:
        if time.monotonic() > ends:
            return
        try:
            send(bytes([byte]))
        except OSError:
            return
        time.sleep(DRIP_SECONDS)


@dataclass
class Server:
    """A loopback double on its own port."""

    url: str
    seen: Seen


def serve() -> Iterator[Server]:
    """A double on a free loopback port, served from a thread until the module's tests end."""
    seen = Seen()
    handler = type("Handler", (Double,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{server.server_address[1]}", seen)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def here() -> Iterator[Server]:
    """The double the corrections URL points at."""
    yield from serve()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Server]:
    """Another double, on another port: another host as far as credentials go."""
    yield from serve()


def settings(timeout: str = "5") -> Settings:
    return Settings.from_env(
        environ={
            "CORRECTIONS_USERNAME": "reader",
            "CORRECTIONS_PASSWORD": PASSWORD,
            "CORRECTIONS_TIMEOUT_SECONDS": timeout,
        }
    )


# The URL


@pytest.mark.parametrize("url", ["http://[::1/corrections", "https://files.example:99999/c", "http://h:x/c"])
def test_a_corrections_url_that_is_no_url_is_a_setting_error_naming_corrections(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(SettingError) as raised:
        download(url, settings(), tmp_path / "download")

    assert raised.value.name == "--corrections"
    assert source_label(url) in {"the --corrections URL", url}


@pytest.mark.parametrize(
    ("host", "this_machine"),
    [
        ("127.0.0.2", True),
        ("[::1]", True),
        ("LocalHost", True),
        ("192.0.2.1", False),
        ("127.0.0.1.example", False),
        ("[::ffff:192.0.2.1]", False),
    ],
)
def test_credentials_go_over_plain_http_only_to_this_machine_by_the_rule_of_sequra_api_url(
    tmp_path: Path, host: str, this_machine: bool
) -> None:
    url = f"http://{host}:9/corrections"  # nothing listens on port 9: a download tried fails to connect

    with pytest.raises(CorrectionsSourceError if this_machine else SettingError) as raised:
        download(url, settings("1"), tmp_path / "download")

    assert ("plain http" in str(raised.value)) is not this_machine
    try:
        parse_api_url("SEQURA_API_URL", f"http://{host}:9/")
    except SettingError as refused:
        assert not this_machine and "plain http" in str(refused)
    else:
        assert this_machine


# The whole-transfer deadline


@pytest.mark.parametrize("route", ["/drip", "/drip-headers"])
def test_a_server_dripping_one_byte_every_half_second_is_stopped_at_the_timeout_naming_the_setting(
    here: Server, tmp_path: Path, route: str
) -> None:
    started = time.monotonic()

    with pytest.raises(CorrectionsSourceError) as raised:
        download(f"{here.url}{route}", settings(timeout="1.5"), tmp_path / "download")

    assert time.monotonic() - started < 1.5 + 1.0
    assert "CORRECTIONS_TIMEOUT_SECONDS" in str(raised.value)
    assert "1.5 s" in str(raised.value)


def test_an_https_server_dripping_its_tls_handshake_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    handshake = b"\x16\x03\x03\x40\x00" + b"\x02" * 0x4000  # a TLS record's header, then its 16 KiB slowly
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        threading.Thread(target=drip_to_first_client, args=(listener, handshake), daemon=True).start()
        started = time.monotonic()

        with pytest.raises(CorrectionsSourceError, match="CORRECTIONS_TIMEOUT_SECONDS"):
            download(f"https://127.0.0.1:{listener.getsockname()[1]}/c", settings("1"), tmp_path / "d")

    assert time.monotonic() - started < 1 + 1.0


def drip_to_first_client(listener: socket.socket, data: bytes) -> None:
    """Accept one connection and drip `data` to it."""
    client, _ = listener.accept()
    with client:
        drip(client.sendall, data)


def test_a_server_that_never_answers_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()

        with pytest.raises(CorrectionsSourceError, match="CORRECTIONS_TIMEOUT_SECONDS"):
            download(f"http://127.0.0.1:{silent.getsockname()[1]}/c", settings("1"), tmp_path / "download")

    assert time.monotonic() - started < 1 + 1.0


@pytest.mark.parametrize("timeout", ["5", "1e12", "1e308"])
def test_a_download_within_the_timeout_is_kept_whole(here: Server, tmp_path: Path, timeout: str) -> None:
    target = download(f"{here.url}/corrections", settings(timeout), tmp_path / "download")

    assert target.read_bytes() == BODY


def test_a_compressed_answer_is_refused_and_never_unpacked(here: Server, tmp_path: Path) -> None:
    target = tmp_path / "download"

    with pytest.raises(CorrectionsSourceError, match="compressed"):
        download(f"{here.url}/gzip", settings(), target)

    assert not target.exists() or target.stat().st_size < 1_000_000


@pytest.mark.parametrize("status", [300, 302, 304, 404, 500])
def test_an_answer_other_than_2xx_or_a_redirect_with_a_location_is_refused_naming_it(
    here: Server, tmp_path: Path, status: int
) -> None:
    with pytest.raises(CorrectionsSourceError, match=f"answered {status}; check the URL"):
        download(f"{here.url}/status?{status}", settings(), tmp_path / "download")


# Redirects


def test_a_redirect_within_the_same_host_is_followed_with_the_credentials(
    here: Server, tmp_path: Path
) -> None:
    folder = tmp_path / "staged"

    result = stage_corrections(f"{here.url}/to?/corrections", settings(), folder, 10)

    assert [c.order_ref_1 for c in staged_chunk(folder, 0)] == ["A-1"]
    assert result.records == 1
    assert here.seen.requests[-1][0] == "/corrections"
    assert here.seen.requests[-1][1] is not None  # Basic auth, on the same host


def test_a_redirect_to_another_host_is_refused_naming_it_and_nothing_reaches_it(
    here: Server, elsewhere: Server, tmp_path: Path
) -> None:
    asked_before = len(elsewhere.seen.requests)

    with pytest.raises(CorrectionsSourceError) as raised:
        stage_corrections(f"{here.url}/to?{elsewhere.url}/corrections", settings(), tmp_path / "staged", 10)

    message = str(raised.value)
    assert f"{here.url}/to" in message
    assert elsewhere.url.removeprefix("http://") in message
    assert "another host" in message
    assert PASSWORD not in message
    assert len(elsewhere.seen.requests) == asked_before


def test_a_redirect_to_localhost_from_127_0_0_1_is_another_host(here: Server, tmp_path: Path) -> None:
    port = here.url.rsplit(":", 1)[1]

    with pytest.raises(CorrectionsSourceError, match="localhost"):
        download(f"{here.url}/to?http://localhost:{port}/corrections", settings(), tmp_path / "download")


def test_a_redirect_to_a_file_url_is_refused_as_another_scheme_without_blaming_the_network(
    here: Server, tmp_path: Path
) -> None:
    with pytest.raises(CorrectionsSourceError) as raised:
        download(f"{here.url}/to?file:///etc/passwd", settings(), tmp_path / "download")

    message = str(raised.value)
    assert "file:" in message
    assert "another scheme" in message
    assert "network" not in message
    assert "CORRECTIONS_TIMEOUT_SECONDS" not in message


def test_a_redirect_holding_a_user_and_password_never_shows_them(here: Server, tmp_path: Path) -> None:
    host = here.url.removeprefix("http://")

    with pytest.raises(CorrectionsSourceError) as raised:
        download(f"{here.url}/to?http://mallory:{PASSWORD}@{host}/corrections", settings(), tmp_path / "d")

    assert PASSWORD not in str(raised.value)
    assert "mallory" not in str(raised.value)


def test_redirects_are_followed_a_few_times_at_most(here: Server, tmp_path: Path) -> None:
    asked_before = len(here.seen.requests)

    with pytest.raises(CorrectionsSourceError, match=f"more than {MAX_REDIRECTS} times"):
        download(f"{here.url}/loop", settings(), tmp_path / "download")

    assert len(here.seen.requests) - asked_before == MAX_REDIRECTS + 1


LOCATION_PARTS = [
    "http://",
    "https://",
    "HTTP://",
    "file://",
    "javascript:",
    "//",
    "/",
    "\\",
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    "[::1]",
    "[",
    "evil.example",
    ":8000",
    ":80",
    ":99999",
    ":x",
    "@",
    "mallory:SECRET@",
    "#",
    "?",
    "%2e",
    "..",
    " ",
    "\t",
    "\n",
    "\x00",
    "\u3002",
]
SOURCE = "http://127.0.0.1:8000/export"


@pytest.mark.hostile
@hostile
@given(location=st.lists(st.sampled_from(LOCATION_PARTS) | st.text(max_size=4), max_size=8).map("".join))
def test_whatever_a_redirect_says_it_is_followed_only_within_the_scheme_host_and_port(location: str) -> None:
    try:
        target = redirect_target(SOURCE, SOURCE, location)
    except CorrectionsSourceError as refused:
        assert "SECRET" not in str(refused)
        return
    try:
        parsed = parse_url(target)  # as requests reads the URL it connects to
    except LocationParseError:
        return  # requests refuses it too, and connects nowhere
    assert (parsed.scheme, parsed.host, parsed.port or 80, parsed.auth) == ("http", "127.0.0.1", 8000, None)

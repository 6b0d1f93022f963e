"""The corrections' source: a file, or a URL fetched with its credentials, a whole-transfer deadline, TLS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from schemas.errors import SettingError, TerminalError
from schemas.masking import SECRET_QUERY_KEY, WEB_SCHEMES, masked_url
from schemas.setting_values import is_loopback
from schemas.settings import Settings
from schemas.shown import shown
from tasks.http_deadline import Deadline, watched

DOWNLOAD_BLOCK = 1 << 16
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}


class CorrectionsSourceError(TerminalError):
    """The corrections could not be fetched; the message names the source (no password) and what to do."""


def is_url(source: str) -> bool:
    """Whether the corrections come from an HTTP(S) URL rather than a file."""
    return source.lower().startswith(("http://", "https://"))


def source_label(source: str) -> str:
    """The source as shown in run names and logs: a URL masked and without its query, a file by its name."""
    if not is_url(source):
        return Path(source).name
    try:
        parts = urlsplit(source)
    except ValueError:
        return "the --corrections URL"  # not a URL at all: nothing of it is shown
    return masked_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def _basic_auth(settings: Settings, url: str) -> tuple[str, str] | None:
    """The credentials for `url`: CORRECTIONS_USERNAME, or SeQura's own on SEQURA_API_URL's host, or none."""
    if settings.corrections_username:
        password = settings.corrections_password.get_secret_value() if settings.corrections_password else ""
        return settings.corrections_username, password
    target, sequra = urlsplit(url), urlsplit(settings.api_url)
    same_host = (target.scheme, target.netloc.lower()) == (sequra.scheme, sequra.netloc.lower())
    if same_host and settings.username:
        return settings.username, settings.password.get_secret_value() if settings.password else ""
    return None


def refuse_credentials_in(url: str) -> None:
    """Raise a SettingError for a URL that is none, or holds a user or password (run parameters show it)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is no number raises here)
    except ValueError:
        raise SettingError(
            "--corrections", "is not a URL (a bracket or port out of place); check the address"
        ) from None
    if parts.username or parts.password:
        raise SettingError(
            "--corrections",
            "the URL holds a user or password, which would show in the run's parameters and logs; put them "
            "in CORRECTIONS_USERNAME and CORRECTIONS_PASSWORD instead",
        )
    secret_keys = sorted({key for key, _ in parse_qsl(parts.query) if SECRET_QUERY_KEY.search(key)})
    if secret_keys:
        raise SettingError(
            "--corrections",
            f"the URL's query holds a secret ({shown(', '.join(secret_keys))}), which would show in the "
            "run's parameters; download the file and give its path, or use CORRECTIONS_USERNAME and "
            "CORRECTIONS_PASSWORD",
        )


def download(url: str, settings: Settings, target: Path) -> Path:
    """Fetch `url` into `target` (TLS verified, Basic auth if configured, CORRECTIONS_TIMEOUT_SECONDS).

    The timeout holds for the whole transfer, however slowly the server sends; redirects are followed only
    within the URL's own scheme and host. Writes `target`.
    """
    refuse_credentials_in(url)
    parts = urlsplit(url)
    label = source_label(url)
    auth = _basic_auth(settings, url)
    if auth is not None and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingError(
            "--corrections",
            f"{label} is plain http, and credentials are only sent over https (or to this machine); use its "
            "https address",
        )
    deadline = Deadline(settings.corrections_timeout_seconds)
    took_too_long = CorrectionsSourceError(
        f"{label} took over {settings.corrections_timeout_seconds:g} s to download; raise "
        "CORRECTIONS_TIMEOUT_SECONDS for a big file or a slow server"
    )
    try:
        with (
            deadline,
            watched(requests.Session()) as session,
            _answer(session, url, auth, deadline) as response,
            target.open("wb") as out,
        ):
            for block in response.raw.stream(DOWNLOAD_BLOCK, decode_content=False):
                out.write(block)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
        if deadline.passed or isinstance(error, requests.Timeout | urllib3.exceptions.TimeoutError):
            raise took_too_long from None
        raise CorrectionsSourceError(
            f"could not download {label}: {type(error).__name__}; check the URL and the network"
        ) from None
    if deadline.passed:  # the deadline shut the socket, which can look like the end of the body
        raise took_too_long
    return target


@contextmanager
def _answer(
    session: requests.Session, url: str, auth: tuple[str, str] | None, deadline: Deadline
) -> Iterator[requests.Response]:
    """The 2xx answer to GET `url`, redirects within its scheme and host followed (at most MAX_REDIRECTS)."""
    label = source_label(url)
    for _ in range(MAX_REDIRECTS + 1):
        response = session.get(
            url,
            auth=auth,
            headers={"Accept-Encoding": "identity"},  # a compressed answer could unpack to any size
            timeout=(deadline.left(), deadline.left()),
            stream=True,
            allow_redirects=False,
        )
        with response:
            location = session.get_redirect_target(response)  # as requests decodes it (UTF-8)
            if location is not None:
                url = redirect_target(label, url, location)
                continue
            _check_status(label, response.status_code)
            _check_plain(label, response.headers.get("Content-Encoding", "identity"))
            yield response
            return
    raise CorrectionsSourceError(
        f"{label} redirected more than {MAX_REDIRECTS} times; give the address it ends at as --corrections"
    )


def _check_status(label: str, status: int) -> None:
    """Raise a CorrectionsSourceError for an answer other than 2xx, naming what to check."""
    if status in (401, 403):
        raise CorrectionsSourceError(
            f"{label} answered {status}: check CORRECTIONS_USERNAME and CORRECTIONS_PASSWORD (or "
            "SEQURA_USERNAME and SEQURA_PASSWORD on SeQura's host)"
        )
    if not 200 <= status < 300:
        raise CorrectionsSourceError(f"{label} answered {status}; check the URL and try again")


def _check_plain(label: str, encoding: str) -> None:
    """Raise a CorrectionsSourceError for a compressed answer, which was not asked for and is not unpacked."""
    if encoding.strip().lower() not in ("", "identity"):
        raise CorrectionsSourceError(
            f"{label} answered compressed ({shown(encoding)}) though asked for plain text, and a compressed "
            "answer is not unpacked (it could unpack to any size); serve the file uncompressed"
        )


def _origin(url: str) -> tuple[str, str | None, int | None, bool]:
    """Scheme, host, port and whether a user or password is given: what a redirect may not change."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or DEFAULT_PORTS.get(scheme), bool(parts.netloc.count("@"))


def redirect_target(label: str, url: str, location: str) -> str:
    """Where a redirect from `url` goes, if within its scheme and host; else raise a CorrectionsSourceError.

    The error names the target by its scheme and host only (masked), never by its path or credentials.
    """
    try:
        target = urljoin(url, location)
        here, there = _origin(url), _origin(target)
    except ValueError:
        raise CorrectionsSourceError(
            f"{label} redirects to an address that is not a URL; check the URL with whoever serves it"
        ) from None
    if there == here:
        return target
    parts = urlsplit(target)
    web = there[0] in WEB_SCHEMES
    where = shown(masked_url(f"{parts.scheme}://{parts.netloc}")) if web else f"a {shown(there[0])}: URL"
    what = (
        "another scheme"
        if there[0] != here[0]
        else "another host"
        if there[1:3] != here[1:3]
        else "an address holding a user or password"
    )
    origin = masked_url(f"{here[0]}://{urlsplit(url).netloc}")
    raise CorrectionsSourceError(
        f"{label} redirects to {where}, {what}; only redirects within {origin} are followed, so that "
        f"neither its credentials nor the corrections come from elsewhere. If SeQura's corrections are "
        f"really there, give that address as --corrections"
    )


def local_copy(source: str, settings: Settings, folder: Path) -> Path:
    """The corrections as a local file: the file itself, or a URL downloaded into `folder`."""
    if is_url(source):
        return download(source, settings, folder / "corrections.download")
    path = Path(source)
    if not path.is_file():
        raise SettingError("--corrections", f"no file at {path}; give a file path or an http(s) URL")
    return path

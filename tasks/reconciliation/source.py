"""The corrections' source: a file, or a URL fetched with its credentials, a timeout and TLS."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from schemas.errors import SettingError, TerminalError
from schemas.settings import Settings

DOWNLOAD_BLOCK = 1 << 16


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class CorrectionsSourceError(TerminalError):
    """The corrections could not be fetched; the message names the source (no password) and what to do."""


def is_url(source: str) -> bool:
    """Whether the corrections come from an HTTP(S) URL rather than a file."""
    return source.lower().startswith(("http://", "https://"))


def source_label(source: str) -> str:
    """The source as shown in run names and logs: a URL without its query, a file by its name."""
    if is_url(source):
        parts = urlsplit(source)
        return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
    return Path(source).name


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
    """Raise a SettingError for a URL holding a user or password, which would show as a run parameter."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise SettingError(
            "--corrections",
            "the URL holds a user or password, which would show in the run's parameters and logs; put them "
            "in CORRECTIONS_USERNAME and CORRECTIONS_PASSWORD instead",
        )


def download(url: str, settings: Settings, target: Path) -> Path:
    """Fetch `url` into `target` (TLS verified, Basic auth if configured, CORRECTIONS_TIMEOUT_SECONDS)."""
    refuse_credentials_in(url)
    parts = urlsplit(url)
    shown = source_label(url)
    auth = _basic_auth(settings, url)
    if auth is not None and parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise SettingError(
            "--corrections",
            f"{shown} is plain http, and credentials are only sent over https (or to this machine); use its "
            "https address",
        )
    deadline = time.monotonic() + settings.corrections_timeout_seconds
    try:
        with requests.get(
            url, auth=auth, timeout=settings.corrections_timeout_seconds, stream=True
        ) as response:
            if response.status_code in (401, 403):
                raise CorrectionsSourceError(
                    f"{shown} answered {response.status_code}: check CORRECTIONS_USERNAME and "
                    "CORRECTIONS_PASSWORD (or SEQURA_USERNAME and SEQURA_PASSWORD on SeQura's host)"
                )
            if response.status_code >= 400:
                raise CorrectionsSourceError(
                    f"{shown} answered {response.status_code}; check the URL and try again"
                )
            with target.open("wb") as out:
                for block in response.iter_content(DOWNLOAD_BLOCK):
                    if time.monotonic() > deadline:
                        raise CorrectionsSourceError(
                            f"{shown} took over {settings.corrections_timeout_seconds:g} s to download; "
                            "raise CORRECTIONS_TIMEOUT_SECONDS for a big file"
                        )
                    out.write(block)
    except requests.RequestException as error:
        raise CorrectionsSourceError(
            f"could not download {shown}: {type(error).__name__}; check the URL and the network, or raise "
            "CORRECTIONS_TIMEOUT_SECONDS"
        ) from None
    return target


def local_copy(source: str, settings: Settings, folder: Path) -> Path:
    """The corrections as a local file: the file itself, or a URL downloaded into `folder`."""
    if is_url(source):
        return download(source, settings, folder / "corrections.download")
    path = Path(source)
    if not path.is_file():
        raise SettingError("--corrections", f"no file at {path}; give a file path or an http(s) URL")
    return path

"""The SeQura API client: one small interface, one implementation over HTTP with timeouts and retries.

Only SeQura's own answer counts: a 2xx with no body or a JSON object or array, read whole within the timeout
(from connecting to its last byte, whatever its pace) and at most MAX_ANSWER_BYTES of it. Every URL a message
shows goes through masked_url, and every text from an answer through shown.
"""

from __future__ import annotations

import abc
import json
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import requests
import urllib3
from pydantic import SecretStr

from schemas.errors import SequraEtlError, TerminalError, TransientError
from schemas.masking import masked_url
from schemas.payouts import (
    Disbursement,
    DisbursementDetail,
    disbursement_detail,
    disbursement_id,
    disbursements,
)
from schemas.sequra import unsafe_order_ref
from schemas.setting_values import DEFAULT_SEQURA_API_URL, parse_api_url, parse_merchant_id
from schemas.shown import shown
from tasks.clock import RUN_CLOCK, Clock
from tasks.http_deadline import Deadline, watched

LOG = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Answered by a proxy in front of SeQura that stopped waiting for it: the request may have been processed.
GATEWAY_TIMEOUTS = frozenset({502, 504})
# Answers about the payload itself: the loader sets the refused orders aside and sends the rest.
REFUSED_STATUS = frozenset({400, 409, 413, 422})
MAX_RETRY_AFTER_SECONDS = 300.0  # the longest wait between two attempts, whatever Retry-After or backoff says
# The most of an answer's body read: SeQura's are small, the biggest a 409 naming every order of a batch.
MAX_ANSWER_BYTES = 16 << 20
ANSWER_BLOCK = 1 << 16
SHOWN_CHARACTERS = 500  # of a text from an answer (an error, a page) that a message shows


class SequraError(SequraEtlError):
    """Base of every error the SeQura client raises."""


class SequraAuthError(SequraError, TerminalError):
    """SeQura refused the credentials (401) or the merchant (403); nothing was accepted."""


class SequraRejectedError(SequraError, TerminalError):
    """SeQura refused the payload (409, or 400/413/422): orders it will not accept; `errors` says why."""

    def __init__(self, status: int, errors: list[str], *, maybe_delivered: bool = False) -> None:
        super().__init__(f"SeQura refused the report ({status}): " + "; ".join(errors))
        self.status = status
        self.errors = errors
        self.maybe_delivered = maybe_delivered


class SequraUnavailableError(SequraError, TransientError):
    """SeQura kept failing (5xx, 429, timeouts, dropped connections) after every retry.

    `maybe_delivered` is true when an attempt timed out or lost its connection after the request left:
    SeQura may have accepted it without our hearing so.
    """

    def __init__(self, message: str, *, maybe_delivered: bool) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered


def _never_left(error: requests.RequestException) -> bool:
    """True when the request cannot have reached SeQura: no connection was ever made."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class SequraNotSequraError(SequraError, TerminalError):
    """The answer did not come from SeQura's API: a redirect, or a page that is not SeQura's JSON.

    Nothing is marked as sent: SEQURA_API_URL most likely points at a proxy, a login page or another host.
    """


class SequraRequestError(SequraError, TerminalError):
    """SeQura answered another 4xx (404, 405…): the URL or method is wrong; retrying would not help."""

    def __init__(self, status: int, errors: list[str]) -> None:
        super().__init__(f"SeQura answered {status}: {'; '.join(errors)}")
        self.status = status
        self.errors = errors


class SequraUnknownOrderError(SequraRequestError):
    """SeQura answered an order update with 404: it holds no order of this merchant by that reference."""


class SequraNoDisbursementError(SequraRequestError):
    """SeQura answered a disbursement GET with 404: no list for this merchant, or no such disbursement."""

    def __init__(self, what: str, errors: list[str]) -> None:
        SequraError.__init__(
            self,
            f"SeQura has no {what} (404: {'; '.join(errors)}); check SEQURA_API_URL and SEQURA_MERCHANT_ID",
        )
        self.status = 404
        self.errors = errors


class SequraUnsafeReferenceError(SequraError, TerminalError):
    """An order reference SeQura's order URL cannot carry (a dot segment, a /, a control character…)."""


class SequraClient(abc.ABC):
    """What the pipeline needs from SeQura."""

    @abc.abstractmethod
    def send_delivery_report(self, body: bytes) -> None:
        """POST one delivery report (its JSON body); return on 2xx, raise a SequraError otherwise."""

    @abc.abstractmethod
    def update_order(self, order_ref_1: str, body: bytes) -> int:
        """PUT one order update (its JSON body); return the 2xx status, raise a SequraError otherwise."""


class SequraPayouts(abc.ABC):
    """What reading SeQura's payouts needs: its disbursements and the orders each one pays."""

    @abc.abstractmethod
    def disbursements(self) -> list[Disbursement]:
        """GET the merchant's disbursements; raise a SequraError or DisbursementFormatError otherwise."""

    @abc.abstractmethod
    def disbursement_lines(self, disbursement: Disbursement) -> DisbursementDetail:
        """GET one disbursement's detail, its order lines; raise a SequraError or DisbursementFormatError."""


def order_path(merchant_id: str, order_ref_1: str) -> str:
    """merchants/{merchant_id}/orders/{order_ref_1}, each one percent-encoded segment that cannot climb out.

    Raises SequraUnsafeReferenceError, naming the reference, for one that no encoding keeps in its segment.
    """
    reason = unsafe_order_ref(order_ref_1)
    if reason is not None:
        raise SequraUnsafeReferenceError(reason)
    return f"merchants/{quote(merchant_id, safe='')}/orders/{quote(order_ref_1, safe='')}"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole: its status, its headers and at most MAX_ANSWER_BYTES of its body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    cut: bool = False  # the body went on past MAX_ANSWER_BYTES

    def content_type(self) -> str:
        """The media type of the body, lower-case and without parameters ('' when untyped)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def text(self, limit: int = SHOWN_CHARACTERS) -> str:
        """The body as text a message shows, cut after `limit` characters."""
        return shown(self.body[: (limit + 1) * 4].decode("utf-8", "replace"), limit)

    def document(self) -> object:
        """The body as strict JSON (UTF-8, no NaN or Infinity, whole); None when it is not JSON."""
        if self.cut:
            return None
        try:
            return json.loads(self.body.decode("utf-8"), parse_constant=_not_json)
        except (ValueError, RecursionError):
            return None

    def is_sequras_acceptance(self) -> bool:
        """Whether this 2xx is SeQura's acceptance: no body, or a JSON object or array typed as JSON."""
        if not self.body.strip(b" \t\r\n"):
            return True
        typed = self.content_type() == "application/json" or self.content_type().endswith("+json")
        return typed and isinstance(self.document(), dict | list)

    def errors(self) -> list[str]:
        """The `errors` list of a SeQura error body, or the body's text when it has none."""
        document = self.document()
        items = document.get("errors") if isinstance(document, dict) else None
        if not isinstance(items, list) or not items:
            return [self.text() or f"HTTP {self.status}"]
        return [_error_text(item) for item in items]


def _not_json(name: str) -> object:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not JSON")


def _error_text(item: object) -> str:
    """One item of SeQura's `errors` as a line: a string, an object's title, or the item written out."""
    text = item.get("title", item) if isinstance(item, dict) else item
    try:
        written = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    except RecursionError:
        return "(an error SeQura wrote too deeply nested to show)"
    return shown(written, SHOWN_CHARACTERS)


def _redirect_target(location: str) -> str:
    """Where a redirect points, as a message shows it: scheme and host only, as its path may hold secrets."""
    try:
        parts = urlsplit(location)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "an address that is not a URL"
    if not parts.scheme or not host:
        return "an address that is not a URL"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    return shown(masked_url(f"{parts.scheme}://{netloc}/"), 200)


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds Retry-After asks to wait (a number or an HTTP date), within 0..MAX; None if it says none."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class _UnredirectedSession(requests.Session):
    """A session blind to redirects: it neither follows one nor reads its body to find the next request."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        """No target, whatever the answer says: a redirect is SeQura's client's to refuse (_raise_final)."""
        return None


class HttpSequraClient(SequraClient, SequraPayouts):
    """SeQura over HTTPS: Basic auth, Sequra-Merchant-Id, a timeout on every call, backoff with jitter.

    The base URL and the merchant id are checked as their settings are (SettingError naming them): https or
    http to this machine, no credentials in the URL, no segment that would take a request elsewhere.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr,
        merchant_id: str,
        *,
        timeout_seconds: float = 30.0,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        clock: Clock = RUN_CLOCK,
        log: logging.Logger | logging.LoggerAdapter = LOG,
    ) -> None:
        self.base_url = parse_api_url("SEQURA_API_URL", base_url)
        self.merchant_id = parse_merchant_id("SEQURA_MERCHANT_ID", merchant_id)
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._clock = clock
        self._log = log
        self._session = watched(_UnredirectedSession())
        # UTF-8 (RFC 7617): requests would encode text as latin-1, and crash on any other character
        self._session.auth = (username.encode(), password.get_secret_value().encode())
        self._session.headers.update(
            {
                "Accept": "application/json",
                "Accept-Encoding": "identity",  # SeQura's answers are small: nothing to inflate, no bomb
                "Content-Type": "application/json",
                "Sequra-Merchant-Id": merchant_id,
            }
        )

    def __repr__(self) -> str:
        return f"HttpSequraClient(base_url={masked_url(self.base_url)!r}, merchant_id={self.merchant_id!r})"

    def close(self) -> None:
        """Close the client's HTTP session and its connections."""
        self._session.close()

    def send_delivery_report(self, body: bytes) -> None:
        """POST orders/delivery_reports; 2xx returns, 409 raises SequraRejectedError with SeQura's errors.

        A report may be processed though its answer is lost (a dropped connection or a timeout after it
        was sent): it is then never repeated, since SeQura would get it twice; SequraUnavailableError with
        `maybe_delivered` says so, and its orders are settled by order updates instead.
        """
        self._request("POST", "orders/delivery_reports", body, repeatable=False)

    def update_order(self, order_ref_1: str, body: bytes) -> int:
        """PUT merchants/{merchant}/orders/{order_ref_1}, both URL-encoded; 200, 202 and 204 are success.

        Unlike the delivery report's POST, an update carries the order's absolute state (both carts,
        addresses, buyer), so sending it twice leaves SeQura as sending it once: an attempt that got no
        answer is simply sent again. 404 raises SequraUnknownOrderError, 409 SequraRejectedError, and a
        reference no URL segment can carry SequraUnsafeReferenceError, before anything is sent.
        """
        path = order_path(self.merchant_id, order_ref_1)
        try:
            return self._request("PUT", path, body, repeatable=True).status
        except SequraRequestError as error:
            if error.status == 404:
                raise SequraUnknownOrderError(404, error.errors) from None
            raise

    def disbursements(self) -> list[Disbursement]:
        """GET merchants/{merchant}/disbursements (the id URL-encoded): SeQura's payouts, as it lists them.

        A GET changes nothing, so an attempt that got no answer is simply sent again. 404 raises
        SequraNoDisbursementError; a list not in the documented shape DisbursementFormatError.
        """
        path = f"merchants/{quote(self.merchant_id, safe='')}/disbursements"
        answer = self._read(path, f"disbursement list for merchant '{self.merchant_id}'")
        return disbursements(answer.document())

    def disbursement_lines(self, disbursement: Disbursement) -> DisbursementDetail:
        """GET a disbursement's detail and return its order lines.

        Its `path` is SeQura's data, never followed as given: only the id ending
        /merchants/{merchant}/disbursements/{id} is taken, and the detail is requested under SEQURA_API_URL
        (its path prefix included) like every other call. Any other path raises DisbursementFormatError
        before anything is sent; 404 raises SequraNoDisbursementError.
        """
        identifier = disbursement_id(disbursement, self.merchant_id)
        path = f"merchants/{quote(self.merchant_id, safe='')}/disbursements/{identifier}"
        answer = self._read(path, f"disbursement {shown(disbursement.reference)} at /{path}")
        return disbursement_detail(disbursement, answer.document(), answer.body.decode("utf-8"))

    def _read(self, path: str, what: str) -> Answer:
        """GET `path` with no body, retried as a repeatable request; 404 raises SequraNoDisbursementError."""
        try:
            return self._request("GET", path, b"", repeatable=True)
        except SequraRequestError as error:
            if error.status == 404:
                raise SequraNoDisbursementError(what, error.errors) from None
            raise

    def backoff(self, attempt: int, answer: Answer | None) -> float:
        """Seconds to wait before the next attempt: Retry-After if given, else exponential with jitter.

        Never more than MAX_RETRY_AFTER_SECONDS, whatever the answer or the number of attempts.
        """
        asked = _retry_after(answer.headers.get("Retry-After") if answer else None, self._clock.now())
        if asked is not None:
            return asked
        growing = self.backoff_seconds * 2.0 ** min(attempt - 1, 32) * random.uniform(0.5, 1.5)
        return min(growing, MAX_RETRY_AFTER_SECONDS)

    def _request(self, method: str, path: str, body: bytes, *, repeatable: bool) -> Answer:
        """Send one request, retrying what cannot have been processed (no connection, 500, 503, 429).

        A request that may have been processed unanswered (a timeout or a dropped connection after it was
        sent, a gateway's 502 or 504) is retried only when `repeatable`, when sending it twice does no harm.
        """
        url = self.base_url + path
        problem = ""
        maybe_delivered = False
        for attempt in range(1, self.max_attempts + 1):
            answer: Answer | None = None
            try:
                answer = self._exchange(method, url, body)
            except requests.RequestException as error:
                maybe_delivered = maybe_delivered or not _never_left(error)
                problem = type(error).__name__ + (
                    f" (no answer within {self.timeout_seconds:g}s)"
                    if isinstance(error, requests.Timeout)
                    else ""
                )
                if maybe_delivered and not repeatable:
                    break
            else:
                if 200 <= answer.status < 300:
                    return self._sequras(method, url, answer)
                self._raise_final(answer, maybe_delivered)
                problem = f"HTTP {answer.status}"
                if answer.status in GATEWAY_TIMEOUTS and not repeatable:
                    maybe_delivered = True  # a gateway gave up waiting: SeQura may have processed it
                    break
            if attempt < self.max_attempts:
                delay = self.backoff(attempt, answer)
                self._log.warning(
                    "SeQura %s %s: %s; retry %d in %.1fs", method, path, problem, attempt, delay
                )
                self._clock.sleep(delay)
        raise SequraUnavailableError(
            f"SeQura did not answer {method} {masked_url(url)} (last: {problem}); "
            + (
                "it may have been processed, so it is not sent again: its orders are settled by order updates"
                if maybe_delivered and not repeatable
                else "nothing was marked as sent, the next run will try again"
            ),
            maybe_delivered=maybe_delivered,
        )

    def _exchange(self, method: str, url: str, body: bytes) -> Answer:
        """Send one request; read its answer whole within timeout_seconds, from connecting to its last byte.

        An answer not whole by then, however it drips (TLS, status line, headers, body), raises
        requests.ReadTimeout: like a lost answer, the request may have been processed. Only a connection never
        made raises as requests does (ConnectTimeout, ConnectionError), as nothing left.
        """
        deadline = Deadline(self.timeout_seconds)
        try:
            with (
                deadline,
                self._session.request(
                    method, url, data=body, timeout=self.timeout_seconds, allow_redirects=False, stream=True
                ) as response,
            ):
                content, cut = self._body(response)
        except requests.RequestException as error:
            if deadline.passed and not _never_left(error):
                raise requests.ReadTimeout(f"no answer within {self.timeout_seconds:g}s") from None
            raise
        if deadline.passed:  # the deadline shut the socket, which can look like the end of an answer
            raise requests.ReadTimeout(f"no answer within {self.timeout_seconds:g}s")
        return Answer(response.status_code, response.headers, content, cut)

    def _body(self, response: requests.Response) -> tuple[bytes, bool]:
        """The answer's body, at most MAX_ANSWER_BYTES of it, and whether it went on past them.

        One read too slowly raises requests.ReadTimeout, one cut short requests.ConnectionError.
        """
        content = bytearray()
        try:
            while len(content) <= MAX_ANSWER_BYTES:
                block = response.raw.read1(ANSWER_BLOCK, decode_content=False)
                if not block:
                    break
                content += block
        except urllib3.exceptions.ReadTimeoutError as error:
            raise requests.ReadTimeout(error) from None
        except urllib3.exceptions.HTTPError as error:
            raise requests.ConnectionError(error) from None
        return bytes(content[:MAX_ANSWER_BYTES]), len(content) > MAX_ANSWER_BYTES

    def _sequras(self, method: str, url: str, answer: Answer) -> Answer:
        """The 2xx answer if it is SeQura's acceptance; SequraNotSequraError otherwise."""
        if answer.is_sequras_acceptance():
            return answer
        raise SequraNotSequraError(
            f"the answer to {method} {masked_url(url)} was {answer.status} with "
            f"{shown(answer.content_type(), 100) or 'an untyped body'} ('{answer.text(60)}'), not SeQura's "
            f"API (no body, or JSON): check SEQURA_API_URL (e.g. {DEFAULT_SEQURA_API_URL}); "
            + ("nothing read from it was kept" if method == "GET" else "nothing was marked as sent")
        )

    def _raise_final(self, answer: Answer, maybe_delivered: bool) -> None:
        """Raise for answers that retrying cannot fix: redirects, 401, 403, 409 and other 4xx.

        A refusal after an unanswered attempt says so: SeQura may be refusing what it already has.
        """
        status = answer.status
        if 300 <= status < 400:
            location = _redirect_target(answer.headers.get("Location", ""))
            raise SequraNotSequraError(
                f"{masked_url(self.base_url)} answered a redirect ({status}) to {location}; redirects are "
                "not followed, so no order goes to another address: set SEQURA_API_URL to SeQura's API "
                f"itself (e.g. {DEFAULT_SEQURA_API_URL}); nothing was marked as sent"
            )
        if status == 401:
            raise SequraAuthError(
                "SeQura refused the credentials (401); check SEQURA_USERNAME and SEQURA_PASSWORD "
                f"for {masked_url(self.base_url)}"
            )
        if status == 403:
            raise SequraAuthError(
                f"SeQura refused merchant '{self.merchant_id}' (403: {'; '.join(answer.errors())}); "
                "check SEQURA_MERCHANT_ID matches the credentials"
            )
        if status in REFUSED_STATUS:
            raise SequraRejectedError(status, answer.errors(), maybe_delivered=maybe_delivered)
        if status not in RETRYABLE_STATUS:
            raise SequraRequestError(status, answer.errors())

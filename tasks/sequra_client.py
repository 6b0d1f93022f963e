"""The SeQura API client: one small interface, one implementation over HTTP with timeouts and retries."""

from __future__ import annotations

import abc
import logging
import random
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import requests
import urllib3
from pydantic import SecretStr

from schemas.errors import SequraEtlError, TerminalError, TransientError
from tasks.clock import RUN_CLOCK, Clock

LOG = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Answered by a proxy in front of SeQura that stopped waiting for it: the request may have been processed.
GATEWAY_TIMEOUTS = frozenset({502, 504})
# Answers about the payload itself: the loader sets the refused orders aside and sends the rest.
REFUSED_STATUS = frozenset({400, 409, 413, 422})
MAX_RETRY_AFTER_SECONDS = 300.0


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


class SequraClient(abc.ABC):
    """What the pipeline needs from SeQura."""

    @abc.abstractmethod
    def send_delivery_report(self, body: bytes) -> None:
        """POST one delivery report (its JSON body); return on 2xx, raise a SequraError otherwise."""

    @abc.abstractmethod
    def update_order(self, order_ref_1: str, body: bytes) -> int:
        """PUT one order update (its JSON body); return the 2xx status, raise a SequraError otherwise."""


def _errors(response: requests.Response) -> list[str]:
    """The `errors` list of a SeQura error body, or the body text when it is not JSON."""
    try:
        body = response.json()
    except ValueError:
        return [response.text.strip() or f"HTTP {response.status_code}"]
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return [response.text.strip()]
    return [item.get("title", str(item)) if isinstance(item, dict) else str(item) for item in items]


def _retry_after(response: requests.Response | None, now: datetime) -> float | None:
    """Seconds a 429 or 503 asks us to wait (Retry-After in seconds or as an HTTP date), capped."""
    value = response.headers.get("Retry-After", "").strip() if response is not None else ""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class HttpSequraClient(SequraClient):
    """SeQura over HTTPS: Basic auth, Sequra-Merchant-Id, a timeout on every call, backoff with jitter."""

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
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.merchant_id = merchant_id
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._clock = clock
        self._log = log
        self._session = requests.Session()
        self._session.auth = (username, password.get_secret_value())
        self._session.headers.update(
            {
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Sequra-Merchant-Id": merchant_id,
            }
        )

    def __repr__(self) -> str:
        return f"HttpSequraClient(base_url={self.base_url!r}, merchant_id={self.merchant_id!r})"

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
        answer is simply sent again. 404 raises SequraUnknownOrderError, 409 SequraRejectedError.
        """
        path = f"merchants/{quote(self.merchant_id, safe='')}/orders/{quote(order_ref_1, safe='')}"
        try:
            return self._request("PUT", path, body, repeatable=True).status_code
        except SequraRequestError as error:
            if error.status == 404:
                raise SequraUnknownOrderError(404, error.errors) from None
            raise

    def backoff(self, attempt: int, response: requests.Response | None) -> float:
        """Seconds to wait before the next attempt: Retry-After if given, else exponential with jitter."""
        asked = _retry_after(response, self._clock.now())
        if asked is not None:
            return asked
        return self.backoff_seconds * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)

    def _request(self, method: str, path: str, body: bytes, *, repeatable: bool) -> requests.Response:
        """Send one request, retrying what cannot have been processed (no connection, 500, 503, 429).

        A request that may have been processed unanswered (a timeout or a dropped connection after it was
        sent, a gateway's 502 or 504) is retried only when `repeatable`, when sending it twice does no harm.
        """
        url = self.base_url + path
        problem = ""
        maybe_delivered = False
        for attempt in range(1, self.max_attempts + 1):
            response: requests.Response | None = None
            try:
                response = self._session.request(
                    method, url, data=body, timeout=self.timeout_seconds, allow_redirects=False
                )
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as error:
                maybe_delivered = maybe_delivered or not _never_left(error)
                problem = type(error).__name__ + (
                    f" (no answer within {self.timeout_seconds:g}s)"
                    if isinstance(error, requests.Timeout)
                    else ""
                )
                if maybe_delivered and not repeatable:
                    break
            else:
                if 200 <= response.status_code < 300:
                    return self._sequras(response)
                self._raise_final(response, maybe_delivered)
                problem = f"HTTP {response.status_code}"
                if response.status_code in GATEWAY_TIMEOUTS and not repeatable:
                    maybe_delivered = True  # a gateway gave up waiting: SeQura may have processed it
                    break
            if attempt < self.max_attempts:
                delay = self.backoff(attempt, response)
                self._log.warning(
                    "SeQura %s %s: %s; retry %d in %.1fs", method, path, problem, attempt, delay
                )
                self._clock.sleep(delay)
        raise SequraUnavailableError(
            f"SeQura did not answer {method} {url} (last: {problem}); "
            + (
                "it may have been processed, so it is not sent again: its orders are settled by order updates"
                if maybe_delivered and not repeatable
                else "nothing was marked as sent, the next run will try again"
            ),
            maybe_delivered=maybe_delivered,
        )

    def _sequras(self, response: requests.Response) -> requests.Response:
        """The 2xx answer if it is SeQura's (no body, or a JSON one); SequraNotSequraError otherwise."""
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        text = response.content.strip()
        if not text or content_type == "application/json" or content_type.endswith("+json"):
            return response
        raise SequraNotSequraError(
            f"the answer to {response.request.method} {response.url} was {response.status_code} with "
            f"{content_type or 'an untyped body'} ({text[:60].decode('utf-8', 'replace')!r}), not SeQura's "
            "API: check SEQURA_API_URL (e.g. https://sandbox.sequrapi.com/); nothing was marked as sent"
        )

    def _raise_final(self, response: requests.Response, maybe_delivered: bool) -> None:
        """Raise for answers that retrying cannot fix: redirects, 401, 403, 409 and other 4xx.

        A refusal after an unanswered attempt says so: SeQura may be refusing what it already has.
        """
        status = response.status_code
        if 300 <= status < 400:
            raise SequraNotSequraError(
                f"{self.base_url} answered a redirect ({status}) to {response.headers.get('Location', '?')}; "
                "redirects are not followed, so no order goes to another address: set SEQURA_API_URL to "
                "SeQura's API itself (e.g. https://sandbox.sequrapi.com/); nothing was marked as sent"
            )
        if status == 401:
            raise SequraAuthError(
                "SeQura refused the credentials (401); check SEQURA_USERNAME and SEQURA_PASSWORD "
                f"for {self.base_url}"
            )
        if status == 403:
            raise SequraAuthError(
                f"SeQura refused merchant '{self.merchant_id}' (403: {'; '.join(_errors(response))}); "
                "check SEQURA_MERCHANT_ID matches the credentials"
            )
        if status in REFUSED_STATUS:
            raise SequraRejectedError(status, _errors(response), maybe_delivered=maybe_delivered)
        if status not in RETRYABLE_STATUS:
            raise SequraRequestError(status, _errors(response))

"""A whole HTTP exchange's deadline: when it passes, the exchange's sockets are shut, whatever they wait for.

A timeout given to requests holds for each read, so a server that drips a byte at a time never lets one
expire. Every HTTP exchange the project makes (the corrections download, each attempt of the SeQura client)
runs inside a Deadline, on a session made by `watched`: its sockets are shut once the deadline passes, which
ends a read at once, whether it waits for the TLS handshake, the status line, the headers or the body.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

LONGEST_DEADLINE = 86_400.0  # seconds: a longer timeout is as good as none, and timers overflow above ~1e9 s

SessionT = TypeVar("SessionT", bound=requests.Session)


class Deadline:
    """A whole exchange's deadline: once it passes, every socket the exchange uses is shut, ending any read.

    Used as a context manager around the exchange; after it, `passed` says whether time ran out (a shut
    socket can look like the end of an answer). Once left, it shuts nothing more.
    """

    def __init__(self, seconds: float) -> None:
        seconds = min(seconds, LONGEST_DEADLINE)
        self.ends = time.monotonic() + seconds
        self.passed = False
        self._over = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._shut)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        """Start the clock: sockets the exchange opens or reuses from here on are watched."""
        self._token = _DEADLINE.set(self)
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop the clock; from here on no socket is shut by it, even one back in a pool for reuse."""
        self._timer.cancel()
        with self._lock:
            self._over = True
        _DEADLINE.reset(self._token)

    def left(self) -> float:
        """Seconds left before the deadline (a little more than none once it passed)."""
        return max(self.ends - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` when the deadline passes (at once if it passed already)."""
        with self._lock:
            self._sockets.append(sock)
            if self.passed:
                _shut(sock)

    def _shut(self) -> None:
        """The deadline passed: shut every socket watched unless the exchange is over; on the timer thread."""
        with self._lock:
            if self._over:
                return
            self.passed = True
            for sock in self._sockets:
                _shut(sock)


_DEADLINE: ContextVar[Deadline | None] = ContextVar("http_exchange_deadline", default=None)


def _shut(sock: socket.socket) -> None:
    """Shut a socket for reading and writing, which wakes whatever waits on it; a closed one is left."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    """Hand `sock` to the current exchange's deadline, if there is one and the socket is open."""
    deadline = _DEADLINE.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _WatchedConnection(HTTPConnection):
    """A connection whose socket the current exchange's deadline watches from the moment it connects."""

    def _new_conn(self) -> socket.socket:
        """The connected socket (before any TLS handshake), handed to the deadline."""
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    """An HTTPS connection watched by the exchange's deadline."""


class _WatchedPool(HTTPConnectionPool):
    """HTTP connections watched by the exchange's deadline, also one kept alive from an earlier exchange."""

    ConnectionCls = _WatchedConnection

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        """A connection for this exchange: a new one is watched as it connects, a kept one at once."""
        conn = super()._get_conn(timeout)
        _watch(conn.sock)
        return conn


class _WatchedHTTPSPool(_WatchedPool, HTTPSConnectionPool):
    """HTTPS connections watched by the exchange's deadline."""

    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """Requests' transport, with connections the exchange's deadline watches (a SOCKS proxy keeps its own)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pool manager, making watched connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> PoolManager:
        """The manager of a proxy (HTTPS_PROXY), making watched connections unless it is a SOCKS proxy."""
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager


def watched(session: SessionT) -> SessionT:
    """`session`, its http and https connections now watched by the deadline of each exchange; mounts them."""
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session

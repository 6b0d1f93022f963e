"""Time: the one clock a run reads it from, which a test can move instead of waiting."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """The machine's time: aware UTC moments, a monotonic count of seconds, and waits."""

    def now(self) -> datetime:
        """The current moment, aware, in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds that only move forward, to measure how long something took or may take."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`; blocks the calling thread."""
        time.sleep(seconds)


RUN_CLOCK = Clock()
"""The clock runs read time from unless they are given one; a test may put a moved clock in its place."""

"""Time: the one clock a run reads it from, which a test can move instead of waiting."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


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


NOT_MOVED = timedelta(0)


class MovedClock(Clock):
    """The machine's time moved on by `ahead`; its waits move it on at once instead of sleeping.

    A test's lapsed lease or report clearly not coming, the demo's next day.
    """

    def __init__(self, ahead: timedelta = NOT_MOVED) -> None:
        self.ahead = ahead
        self.slept: list[float] = []

    def now(self) -> datetime:
        """The machine's moment, moved on."""
        return super().now() + self.ahead

    def monotonic(self) -> float:
        """The machine's monotonic seconds, moved on."""
        return super().monotonic() + self.ahead.total_seconds()

    def sleep(self, seconds: float) -> None:
        """Move on by `seconds`, at once; noted in `slept`."""
        self.slept.append(seconds)
        self.ahead += timedelta(seconds=seconds)

    def move(self, seconds: float) -> None:
        """Move on by `seconds`, as if they had passed."""
        self.ahead += timedelta(seconds=seconds)


RUN_CLOCK = Clock()
"""The clock runs read time from unless they are given one; a test may put a moved clock in its place."""

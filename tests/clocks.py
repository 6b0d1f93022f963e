"""A clock a test moves instead of waiting: a lease that lapses, a report clearly not coming."""

from __future__ import annotations

from datetime import datetime, timedelta

from tasks.clock import Clock


class MovedClock(Clock):
    """The machine's time moved on by `ahead`; its waits move it on at once instead of sleeping."""

    def __init__(self, ahead: timedelta = timedelta(0)) -> None:
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

"""A clock a test moves instead of waiting: a lease that lapses, a report clearly not coming."""

from tasks.clock import MovedClock

__all__ = ["MovedClock"]

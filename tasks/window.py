"""Report windows: UTC half-open [since, until), from parameters or from the last successful run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.errors import TerminalError


class WindowError(TerminalError, ValueError):
    """A window bound is malformed or the window is empty; the message names the parameter."""


@dataclass(frozen=True)
class Window:
    """A UTC half-open interval of shipping times.

    `continues` is true when the window starts no later than where earlier successful runs ended and does
    not end in the future, so that, once it succeeds, scheduled runs may go on from its `until` without
    leaving a gap behind. `follows_last_run` is true when no `since` was given and the window starts from
    the last successful run: such a run may read the shop's new rows above that run's high-water marks.
    """

    since: datetime
    until: datetime
    continues: bool = True
    follows_last_run: bool = False  # since was worked out from the last successful run: a scheduled run

    def label(self) -> str:
        """The window as run names and artifacts show it, e.g. 2026-11-05T00:00Z-2026-11-06T00:00Z."""
        return f"{_stamp(self.since)}-{_stamp(self.until)}"

    def in_shop_time(self, timezone: str) -> str:
        """The window in the shop's time zone, named: 2026-11-26 21:58 → 2026-12-03 21:58 Europe/Madrid."""
        zone = ZoneInfo(timezone)
        since, until = self.since.astimezone(zone), self.until.astimezone(zone)
        return f"{since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} {timezone}"


def _stamp(moment: datetime) -> str:
    """A UTC moment to the minute, ending in Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_moment(name: str, value: str | datetime | date) -> datetime:
    """An ISO 8601 date or datetime to an aware UTC datetime; no offset means UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif not isinstance(value, str):
        raise WindowError(
            f"{name}: {value!r} is not an ISO 8601 date or datetime in quotes, like '2026-11-05'"
        )
    else:
        text = value.strip()
        try:
            moment = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
        except ValueError:
            raise WindowError(
                f"{name}: '{value}' is not an ISO 8601 date or datetime "
                "(e.g. 2026-11-05, 2026-11-05T00:00:00Z, 2026-11-05T01:00:00+01:00)"
            ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_window(
    since: str | datetime | date | None,
    until: str | datetime | date | None,
    *,
    last_until: datetime | None,
    now: datetime,
    overlap: timedelta,
    first_run: timedelta,
) -> Window:
    """The run's window: given bounds win; else from the last successful until minus the overlap, to now."""
    end = parse_moment("until", until) if until is not None else now.astimezone(UTC)
    if since is not None:
        start = parse_moment("since", since)
    elif last_until is not None:
        start = min(last_until - overlap, end - overlap)
    else:
        start = end - first_run
    if start >= end:
        raise WindowError(f"since ({_stamp(start)}) must be before until ({_stamp(end)})")
    leaves_no_gap = last_until is None or start <= last_until
    return Window(
        start,
        end,
        continues=leaves_no_gap and end <= now.astimezone(UTC),
        follows_last_run=since is None and last_until is not None,
    )


MAX_WINDOWS = 1000  # windows one backfill may split into


def parse_width(name: str, value: str) -> timedelta:
    """A window width like 1d, 12h or 30m."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", value or "")
    if not match or int(match.group(1)) == 0:
        raise WindowError(f"{name}: '{value}' is not a window width like 1d, 12h or 30m")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def split_window(since: datetime, until: datetime, width: timedelta) -> list[Window]:
    """[since, until) cut into consecutive windows of `width` (the last one may be shorter)."""
    if since >= until:
        raise WindowError(f"since ({_stamp(since)}) must be before until ({_stamp(until)})")
    count = -(-(until - since) // width)
    if count > MAX_WINDOWS:
        raise WindowError(
            f"{_stamp(since)} to {_stamp(until)} in windows of {width} makes {count:,} windows, more than "
            f"{MAX_WINDOWS:,}; give a wider window"
        )
    starts = [since + number * width for number in range(count)]
    return [Window(start, min(start + width, until)) for start in starts]


def shop_minute(moment: datetime | str, timezone: str) -> str:
    """A moment as the merchant reads it: in the shop's time zone, to the minute (2026-11-20 10:15)."""
    parsed = parse_moment("moment", moment)
    return parsed.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")

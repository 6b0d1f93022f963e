"""The backfill flow: the delivery reports of a past span, one child run per merchant and window."""

from __future__ import annotations

from prefect import flow

from flows.children import ChildOutcome, ChildRun, parent_state
from flows.fan_out import FanOut, run_children, shop_timezone
from flows.history import rename_run
from flows.parameters import Moment, check_parameters
from schemas.settings import Settings
from tasks.window import Window, WindowError, parse_moment, parse_width, split_window


def merchants_of(merchant: str | None) -> tuple[str, ...]:
    """The merchant given, or every configured merchant (SEQURA_MERCHANTS, else SEQURA_MERCHANT_ID)."""
    settings = Settings.from_env(merchant_id=merchant)
    return (settings.merchant_id or "",) if merchant else settings.merchant_ids()


def backfill_children(since: Moment, until: Moment, window: str, merchant: str | None) -> list[ChildRun]:
    """One child per merchant and window of [since, until); raises WindowError or SettingError, named.

    Only a merchant's last window tries its quarantine again: once per backfill, not once per window.
    """
    whole = span(since, until)
    windows = split_window(whole.since, whole.until, parse_width("window", window))
    last = windows[-1]
    return [
        ChildRun(name, part.since.isoformat(), part.until.isoformat(), retry_quarantined=part is last)
        for name in merchants_of(merchant)
        for part in windows
    ]


@flow(name="backfill", flow_run_name="backfill-{since}-{until}", validate_parameters=False)
def backfill(
    since: Moment = None,
    until: Moment = None,
    window: str = "1d",
    dry_run: bool = False,
    merchant: str | None = None,
) -> list[ChildOutcome]:
    """Report again the orders shipped in [since, until): one delivery-report child run per window.

    Each window is a delivery report of its own, named after it; what SeQura already has is not sent again,
    so a backfill run twice sends nothing the second time. A scheduled run at the same time waits for the
    merchant's lock instead of sending the same orders. A window whose run died or found the lock held is
    tried again, and the merchant's later windows go on; one that failed for good (SeQura refused the
    credentials, a setting) stops them. The backfill ends as its worst window: Failed, Quarantined,
    AwaitingSeQura, or Completed; its name and its table show the windows in the shop's time zone.

    Args:
        since: start of the span (ISO 8601, UTC when no offset).
        until: end of the span, exclusive.
        window: width of each child's window: 1d, 12h, 30m.
        dry_run: build and diff only; each child writes the report it would send.
        merchant: one SeQura merchant; default every configured merchant.
    """
    check_parameters(since=since, until=until, window=window, dry_run=dry_run, merchant=merchant)
    children = backfill_children(since, until, window, merchant)
    timezone = shop_timezone(children[0].merchant)
    rename_run(f"backfill {merchant + ' ' if merchant else ''}{span(since, until).in_shop_time(timezone)}")
    fan = FanOut("backfill", "backfill", bool(dry_run), timezone, in_process=True)
    return parent_state(run_children(children, fan))  # type: ignore[return-value]


def span(since: Moment, until: Moment) -> Window:
    """The backfill's whole span, [since, until), as one window."""
    if since is None or until is None:
        raise WindowError("a backfill needs since and until: the span of the past to report again")
    return Window(parse_moment("since", since), parse_moment("until", until))

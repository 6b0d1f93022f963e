"""The delivery commands: deliver a window, backfill a span, adopt what SeQura already has."""

from __future__ import annotations

import argparse

from flows.cli.options import (
    OPTION_SETTINGS,
    SHOP_AND_STORE,
    Commands,
    check_out_option,
    check_ready,
    check_window_options,
    command,
    export_options,
    out_options,
    setting_options,
    settings_of,
    window_options,
)
from flows.cli.temporary_server import prefect_api
from schemas.errors import SettingError
from schemas.settings import Settings
from tasks.window import parse_moment


def add_commands(commands: Commands) -> None:
    """deliver, backfill and adopt."""
    deliver_command = command(
        commands,
        "deliver",
        "send the delivery report of a window",
        "sequra-etl deliver --since 2026-11-01 --until 2026-11-08 --dry-run",
        deliver,
    )
    window_options(deliver_command, "default now")
    deliver_command.add_argument(
        "--dry-run", action="store_true", help="build and diff only; send and record nothing"
    )
    out_options(deliver_command, "FILE.json", "where --dry-run writes the report it would send")
    setting_options(deliver_command, tuple(OPTION_SETTINGS))
    backfill_command = command(
        commands,
        "backfill",
        "send the delivery reports of a past span again, one run per window; what SeQura has is not resent",
        "sequra-etl backfill --since 2026-10-01 --until 2026-11-01 --window 1d --dry-run",
        backfill,
        "Report the orders shipped in [since, until) in one delivery-report run per window (and per merchant "
        "with SEQURA_MERCHANTS), after an outage or a misconfigured shipped state. Orders SeQura already has "
        "are not sent again. With PREFECT_API_URL and the delivery-report deployment, the runs go to the "
        "work pool's workers, and the same command run again finds them instead of creating them twice.",
    )
    backfill_command.add_argument(
        "--since", required=True, help="start of the span, ISO 8601; UTC if no offset"
    )
    backfill_command.add_argument("--until", required=True, help="end of the span, exclusive")
    backfill_command.add_argument(
        "--window", default="1d", help="width of each run's window: 1d, 12h, 30m (default 1d)"
    )
    backfill_command.add_argument(
        "--dry-run", action="store_true", help="build and diff only; send and record nothing"
    )
    setting_options(backfill_command, tuple(OPTION_SETTINGS))
    adopt_command = command(
        commands,
        "adopt",
        "record the orders shipped in a window as already reported, without sending them",
        "sequra-etl adopt --since 2026-01-01 --until 2026-11-27",
        adopt,
        "Record the SeQura orders shipped in [since, until) as already reported, as a baseline, without "
        "sending anything: for a state store that was lost while SeQura had the orders. A later change to "
        "one of them is sent as an order update.",
    )
    window_options(adopt_command, "required")
    adopt_command.add_argument(
        "--force",
        action="store_true",
        help="adopt even into a store that holds the merchant's history (it then records orders it was "
        "still waiting to send as SeQura's)",
    )
    setting_options(adopt_command, SHOP_AND_STORE)


def deliver(args: argparse.Namespace) -> int:
    """Check the settings, the shop and the state store, run the delivery-report flow once, print it."""
    from flows.delivery_report import delivery_report
    from tasks.delivery.summary import summary_markdown
    from tasks.inert import plain_text

    import_what_the_run_imports()
    check_out_option(args)
    settings = settings_of(args, "shop_db_url", "username", "password", "merchant_id")
    settings.state_url()
    check_window_options(args.since, args.until)
    check_ready(settings)
    with prefect_api():
        summary = delivery_report(since=args.since, until=args.until, dry_run=args.dry_run, out=args.out)
    print(plain_text(summary_markdown(summary)))
    return 0


def import_what_the_run_imports() -> None:
    """Import now what a run imports as it starts: the flow engine, the checks of the shop's frames.

    Imported by the run, they would wait for Prefect's temporary server to answer; imported here, while it
    starts on the other core.
    """
    # the flow's first call: its engines, fastapi's encoder of parameters; a frame's first check: pandera's
    import fastapi.encoders  # noqa: F401
    import pandera.backends.pandas.builtin_checks
    import pandera.backends.pandas.builtin_hypotheses
    import pandera.backends.pandas.register  # noqa: F401
    import prefect.flow_engine
    import prefect.task_engine
    import prefect.utilities.visualization  # noqa: F401


def backfill(args: argparse.Namespace) -> int:
    """Check the window, every merchant's shop and the state store, then run the backfill flow once.

    With a Prefect server that has the backfill deployment, the backfill is a run of it on the work pool
    (its windows run in that run's process); else it runs here. Prints what each window did, also when some
    failed.
    """
    from flows.backfill import backfill as backfill_flow
    from flows.backfill import backfill_children
    from flows.children import outcomes_markdown
    from flows.fan_out import BACKFILL_DEPLOYMENT, ChildRunsError, not_on_workers, run_parent_on_workers

    export_options(args)
    children = backfill_children(args.since, args.until, args.window, args.merchant_id)
    given = [
        option
        for attr, option in OPTION_SETTINGS.items()
        if attr != "merchant_id" and getattr(args, attr, None) is not None
    ]
    on_workers = not_on_workers() is None
    if given and on_workers:
        raise SettingError(
            ", ".join(given),
            "the windows run on the work pool's workers, with the settings of the workers' environment (and "
            "the deployment's STATE_DB_URL): set it there, or unset PREFECT_API_URL to run the windows here",
        )
    for merchant in dict.fromkeys(child.merchant for child in children):
        settings = Settings.from_env(merchant_id=merchant)
        settings.require("shop_db_url", "username", "password")
        check_ready(settings)
    parameters: dict[str, object] = {
        "since": args.since,
        "until": args.until,
        "window": args.window,
        "dry_run": args.dry_run,
        "merchant": args.merchant_id,
    }
    try:
        outcomes = run_parent_on_workers(BACKFILL_DEPLOYMENT, parameters, "backfill") if on_workers else None
        if outcomes is None:
            outcomes = backfill_flow(**parameters)  # type: ignore[arg-type]
    except ChildRunsError as error:
        print(outcomes_markdown(error.outcomes))
        raise
    print(outcomes_markdown(outcomes))
    return 0


def adopt(args: argparse.Namespace) -> int:
    """Record the orders shipped in a window as already reported, without sending them; say how many."""
    from tasks.delivery.adopt import adopt_window
    from tasks.resources import RunResources

    export_options(args)
    if args.since is None or args.until is None:
        raise SettingError("--since and --until", "adopt needs both: the window SeQura already has")
    check_window_options(args.since, args.until)
    settings = settings_of(args, "shop_db_url", "merchant_id")
    since, until = parse_moment("--since", args.since), parse_moment("--until", args.until)
    with RunResources.open(settings) as resources:
        resources.check_ready()
        print(adopt_window(resources, since, until, force=args.force))
    return 0

"""The sequra-etl command: one subcommand per job (deliver, reconcile, adopt, release, configure…)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from sqlalchemy import Engine

from schemas.settings import BLOCK_PREFIX, SETTINGS, SettingError, Settings, has_password, settings_table
from tasks.window import WindowError, parse_moment

EXIT_SETTING = 2
EXIT_FAILED = 1

OPTION_SETTINGS = {
    "shop_db_url": "--shop-db-url",
    "shop_table_prefix": "--table-prefix",
    "payment_modules": "--payment-modules",
    "api_url": "--api-url",
    "merchant_id": "--merchant",
    "state_db_url": "--state-db-url",
}


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    example: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with an example."""
    return commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _window_options(command: argparse.ArgumentParser, until: str) -> None:
    """--since and --until."""
    command.add_argument(
        "--since", help="window start, ISO 8601 (2026-11-05, 2026-11-05T00:00:00Z); UTC if no offset"
    )
    command.add_argument("--until", help=f"window end, exclusive; {until}")


SHOP_AND_STORE = ("shop_db_url", "shop_table_prefix", "merchant_id", "state_db_url")


def _setting_options(command: argparse.ArgumentParser, attrs: tuple[str, ...]) -> None:
    """One option per setting in `attrs` (--shop-db-url …), each overriding its environment variable."""
    for attr in attrs:
        command.add_argument(OPTION_SETTINGS[attr], dest=attr, help=f"overrides {SETTINGS[attr].env}")


def export_options(args: argparse.Namespace) -> None:
    """Put the settings given as options into the environment the flows read; writes os.environ."""
    for attr in OPTION_SETTINGS:
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[SETTINGS[attr].env] = value


def _store_options(command: argparse.ArgumentParser) -> None:
    """--merchant and --state-db-url."""
    command.add_argument("--merchant", dest="merchant_id", help=f"overrides {SETTINGS['merchant_id'].env}")
    command.add_argument(
        "--state-db-url", dest="state_db_url", help=f"overrides {SETTINGS['state_db_url'].env}"
    )


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per job, each with an example in its --help."""
    settings_help = "\n".join(
        f"  {env:<26} {meaning} (default: {default or '-'})" for env, default, meaning in settings_table()
    )
    root = argparse.ArgumentParser(
        prog="sequra-etl",
        description="Tell SeQura what a PrestaShop shop shipped, and the shop what SeQura corrected.",
        epilog="settings (environment variables; secret ones may be block:NAME, a Prefect Secret block):\n"
        + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--debug", action="store_true", help="show the traceback of an error")
    root.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    deliver = _command(
        commands,
        "deliver",
        "send the delivery report of a window",
        "sequra-etl deliver --since 2026-11-01 --until 2026-11-08 --dry-run",
    )
    _window_options(deliver, "default now")
    deliver.add_argument(
        "--dry-run", action="store_true", help="build and diff only; send and record nothing"
    )
    deliver.add_argument("--out", help="where --dry-run writes the report it would send")
    _setting_options(deliver, tuple(OPTION_SETTINGS))
    backfill = _command(
        commands,
        "backfill",
        "send the delivery reports of a past span again, one run per window; what SeQura has is not resent",
        "sequra-etl backfill --since 2026-10-01 --until 2026-11-01 --window 1d --dry-run",
        "Report the orders shipped in [since, until) in one delivery-report run per window (and per merchant "
        "with SEQURA_MERCHANTS), after an outage or a misconfigured shipped state. Orders SeQura already has "
        "are not sent again. With PREFECT_API_URL and the delivery-report deployment, the runs go to the "
        "work pool's workers, and the same command run again finds them instead of creating them twice.",
    )
    backfill.add_argument("--since", required=True, help="start of the span, ISO 8601; UTC if no offset")
    backfill.add_argument("--until", required=True, help="end of the span, exclusive")
    backfill.add_argument(
        "--window", default="1d", help="width of each run's window: 1d, 12h, 30m (default 1d)"
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="build and diff only; send and record nothing"
    )
    _setting_options(backfill, tuple(OPTION_SETTINGS))
    reconcile = _command(
        commands,
        "reconcile",
        "list every shop value that differs from SeQura-corrected buyer data, and fix them with --apply",
        "sequra-etl reconcile --corrections corrections.jsonl --out differences.csv",
        "Compare SeQura's corrections (JSON Lines, a JSON array or CSV; a file or an http(s) URL) with the "
        "shop's buyers and addresses, field by field. Without --apply nothing is written.",
    )
    reconcile.add_argument(
        "--corrections", required=True, metavar="PATH_OR_URL", help="SeQura's corrections: a file or a URL"
    )
    reconcile.add_argument("--out", metavar="FILE.csv", help="write every difference to this CSV")
    reconcile.add_argument(
        "--apply",
        action="store_true",
        help="write the corrections into the shop as PrestaShop does (needs INSERT and UPDATE grants)",
    )
    _setting_options(reconcile, SHOP_AND_STORE)
    adopt = _command(
        commands,
        "adopt",
        "record the orders shipped in a window as already reported, without sending them",
        "sequra-etl adopt --since 2026-01-01 --until 2026-11-27",
        "Record the SeQura orders shipped in [since, until) as already reported, as a baseline, without "
        "sending anything: for a state store that was lost while SeQura had the orders. A later change to "
        "one of them is sent as an order update.",
    )
    _window_options(adopt, "required")
    adopt.add_argument(
        "--force",
        action="store_true",
        help="adopt even into a store that holds the merchant's history (it then records orders it was "
        "still waiting to send as SeQura's)",
    )
    _setting_options(adopt, SHOP_AND_STORE)
    release = _command(
        commands,
        "release",
        "settle an order held because its report got no answer, or send again an order update SeQura refused",
        "sequra-etl release AAAAAAAAA",
    )
    release.add_argument(
        "order_refs", nargs="*", metavar="ORDER_REF_1", help="orders as SeQura knows them (order_ref_1)"
    )
    release.add_argument("--run", dest="run_id", help="every order this run left without a clear answer")
    release.add_argument(
        "--resend",
        action="store_true",
        help="SeQura does not have it (you checked): report it again; without this flag a held order is "
        "recorded as SeQura's and confirmed by an order update, which can never report it twice",
    )
    _store_options(release)
    _store_options(_command(commands, "unlock", "free the merchant's run lock", "sequra-etl unlock"))
    _command(
        commands,
        "state-store",
        "print the state store runs use here (for deployments; never a password)",
        "sequra-etl state-store",
    )
    configure = _command(
        commands,
        "configure",
        "keep the secret settings in Prefect Secret blocks, and create the automation that alerts a person",
        "sequra-etl configure --notify ops-slack",
        "Save SHOP_DB_URL, STATE_DB_URL, SEQURA_USERNAME, SEQURA_PASSWORD (and the corrections' credentials) "
        "from the environment into Prefect Secret blocks, and print the block:NAME values to use instead. "
        "With --notify, create the automation that sends the named notification block a message when a run "
        "fails, crashes, is late, or leaves orders in quarantine.",
    )
    configure.add_argument("--notify", metavar="BLOCK", help="a notification block (Slack, e-mail, webhook…)")
    sandbox = _command(commands, "sandbox", "run the local SeQura sandbox", "sequra-etl sandbox --port 8765")
    sandbox.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    _command(
        commands,
        "demo",
        "seed a demo shop, start the sandbox and run the flows end to end",
        "sequra-etl demo",
    )
    seed = _command(
        commands,
        "seed",
        "generate a big PrestaShop shop on MariaDB/MySQL for benchmarks (or add orders to one)",
        "sequra-etl seed --orders 100000 --shop-db mysql+pymysql://root@127.0.0.1:3306/bigshop",
        "Generate N shipped SeQura orders (plus about 8%% other orders) into a MariaDB or MySQL database, "
        "creating PrestaShop's real tables when it is empty; run again to add more orders.",
    )
    seed.add_argument("--orders", type=int, required=True, help="how many shipped SeQura orders to add")
    seed.add_argument("--shop-db", dest="shop_db_url", help=f"overrides {SETTINGS['shop_db_url'].env}")
    seed.add_argument(
        "--table-prefix", dest="shop_table_prefix", help=f"overrides {SETTINGS['shop_table_prefix'].env}"
    )
    seed.add_argument("--days", type=float, default=365, help="ship them over this many days before now")
    seed.add_argument("--now", help="shop-local end of that period, ISO 8601 (default: now)")
    seed.add_argument(
        "--prestashop-version",
        default="8.0",
        help="real DDL to create an empty shop with: 1.7.8.1, 8.0, 9.1.0",
    )
    seed.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same shop")
    return root


def package_version() -> str:
    """The installed version of sequra-etl."""
    try:
        return metadata.version("sequra-etl")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def check_window_options(since: str | None, until: str | None) -> None:
    """Refuse --since and --until that do not make a window, before any run is created."""
    end = parse_moment("--until", until) if until is not None else datetime.now(UTC)
    if since is not None and parse_moment("--since", since) >= end:
        raise WindowError(f"--since ({since}) must be before --until ({until or 'now'})")


def apply_options(args: argparse.Namespace) -> Settings:
    """Put the command-line settings into the environment the flow reads, then check them all."""
    export_options(args)
    settings = Settings.from_env()
    settings.require("shop_db_url", "username", "password", "merchant_id")
    settings.state_url()
    check_window_options(args.since, args.until)
    return settings


def deliver(args: argparse.Namespace) -> int:
    """Check the shop and the state store, run the delivery-report flow once and print what it did."""
    from flows.delivery_report import delivery_report
    from tasks.delivery.run import check_ready
    from tasks.delivery.summary import summary_markdown

    settings = Settings.from_env()
    settings.require("shop_db_url", "merchant_id")
    check_ready(settings)
    summary = delivery_report(since=args.since, until=args.until, dry_run=args.dry_run, out=args.out)
    print(summary_markdown(summary))
    return 0


def backfill(args: argparse.Namespace) -> int:
    """Check the window, every merchant's shop and the state store, then run the backfill flow once.

    Prints what each window did, also when some failed.
    """
    from flows.backfill import backfill as backfill_flow
    from flows.backfill import backfill_children
    from flows.fan_out import ChildRunsError, not_on_workers, outcomes_markdown
    from tasks.delivery.run import check_ready

    export_options(args)
    children = backfill_children(args.since, args.until, args.window, args.merchant_id)
    given = [
        option
        for attr, option in OPTION_SETTINGS.items()
        if attr != "merchant_id" and getattr(args, attr, None) is not None
    ]
    if given and not_on_workers() is None:
        raise SettingError(
            ", ".join(given),
            "the windows run on the work pool's workers, with the settings of the workers' environment (and "
            "the deployment's STATE_DB_URL): set it there, or unset PREFECT_API_URL to run the windows here",
        )
    for merchant in dict.fromkeys(child.merchant for child in children):
        settings = Settings.from_env(merchant_id=merchant)
        settings.require("shop_db_url", "username", "password")
        check_ready(settings)
    try:
        outcomes = backfill_flow(
            since=args.since,
            until=args.until,
            window=args.window,
            dry_run=args.dry_run,
            merchant=args.merchant_id,
        )
    except ChildRunsError as error:
        print(outcomes_markdown(error.outcomes))
        raise
    print(outcomes_markdown(outcomes))
    return 0


def reconcile(args: argparse.Namespace) -> int:
    """Check the settings, the source, the shop and the state store, then run the reconciliation flow once."""
    from flows.reconcile import reconciliation
    from tasks.delivery.run import check_ready
    from tasks.reconciliation.source import is_url, refuse_credentials_in
    from tasks.reconciliation.summary import changes_markdown, reconciliation_markdown

    export_options(args)
    settings = Settings.from_env()
    settings.require("shop_db_url", "merchant_id")
    if not is_url(args.corrections) and not os.path.isfile(args.corrections):
        raise SettingError(
            "--corrections", f"no file at {args.corrections}; give a file path or an http(s) URL"
        )
    if is_url(args.corrections):
        refuse_credentials_in(args.corrections)
    check_ready(settings)
    summary = reconciliation(corrections=args.corrections, out=args.out, apply=args.apply)
    print(reconciliation_markdown(summary))
    print()
    print(changes_markdown(summary, Path(summary.changes).read_text(encoding="utf-8").splitlines()))
    return 0


def release(args: argparse.Namespace) -> int:
    """Settle held orders (maybe delivered, or with a refused update) and say what happens next."""
    from tasks.state.releases import release_orders

    merchant, store = _state_store_of(args)
    try:
        for line in release_orders(store, merchant, args.order_refs, run_id=args.run_id, resend=args.resend):
            print(line)
    finally:
        store.dispose()
    return 0


def state_store(_args: argparse.Namespace) -> int:
    """Print the state store runs use with these settings, for a deployment to name it; never a password."""
    raw = os.environ.get(SETTINGS["state_db_url"].env, "")
    if raw.startswith(BLOCK_PREFIX):
        print(raw)
        return 0
    url = Settings.from_env().state_url()
    if has_password(url):
        raise SettingError(
            SETTINGS["state_db_url"].env,
            "holds a password, which a deployment would show; keep it in a Secret block "
            "(`sequra-etl configure`) and set STATE_DB_URL=block:NAME",
        )
    print(url)
    return 0


def configure(args: argparse.Namespace) -> int:
    """Keep the secret settings in Prefect Secret blocks; with --notify, create the alerting automation."""
    from flows.alerts import create_alert_automation, keep_secrets

    if not os.environ.get("PREFECT_API_URL"):
        raise SettingError(
            "PREFECT_API_URL",
            "is not set: blocks and automations would go to a temporary server and be lost; set it to your "
            "Prefect server's API, like http://127.0.0.1:4200/api",
        )
    for env, block in keep_secrets().items():
        print(f"{env}=block:{block}")
    if args.notify:
        print(create_alert_automation(args.notify))
    return 0


def adopt(args: argparse.Namespace) -> int:
    """Record the orders shipped in a window as already reported, without sending them; say how many."""
    from tasks.delivery.run import adopt_window, check_ready

    export_options(args)
    if args.since is None or args.until is None:
        raise SettingError("--since and --until", "adopt needs both: the window SeQura already has")
    check_window_options(args.since, args.until)
    settings = Settings.from_env()
    settings.require("shop_db_url", "merchant_id")
    check_ready(settings)
    since, until = parse_moment("--since", args.since), parse_moment("--until", args.until)
    print(adopt_window(settings, since, until, force=args.force))
    return 0


def unlock(args: argparse.Namespace) -> int:
    """Free the merchant's run lock, for a run that died without its lease running out; says what it freed."""
    from tasks.state.locks import free_lock

    merchant, store = _state_store_of(args)
    try:
        print(free_lock(store, merchant))
    finally:
        store.dispose()
    return 0


def _state_store_of(args: argparse.Namespace) -> tuple[str, Engine]:
    """The merchant and the opened state store the command's settings name."""
    from tasks.state.store import open_state_store

    export_options(args)
    settings = Settings.from_env()
    settings.require("merchant_id")
    return settings.merchant_id or "", open_state_store(settings.state_url())


def shop_now(value: str | None) -> datetime:
    """The shop-local `--now` of seed: a naive ISO 8601 datetime, or the machine's local time."""
    if value is None:
        return datetime.now().replace(microsecond=0)
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None)
    except ValueError:
        raise SettingError("--now", f"'{value}' is not an ISO 8601 datetime like 2026-11-27T12:00") from None


def seed(args: argparse.Namespace) -> int:
    """Generate a big shop (or add orders to one) and say what was written."""
    from schemas.prestashop import shop_tables
    from seeding.big_shop import loading_engine, seed_big_shop

    if args.orders <= 0:
        raise SettingError("--orders", f"'{args.orders}' is not a whole number above zero")
    settings = Settings.from_env(shop_db_url=args.shop_db_url, shop_table_prefix=args.shop_table_prefix)
    settings.require("shop_db_url")
    assert settings.shop_db_url is not None
    now = (
        parse_moment("now", args.now).replace(tzinfo=None)
        if args.now
        else datetime.now().replace(microsecond=0)
    )
    engine = loading_engine(settings.shop_db_url)
    try:
        shop = seed_big_shop(
            engine,
            shop_tables(settings.shop_table_prefix),
            args.orders,
            now=now,
            days=args.days,
            seed=args.seed,
            prestashop_version=args.prestashop_version,
        )
    finally:
        engine.dispose()
    print(
        f"Added {shop.shipped_orders:,} shipped SeQura orders ({shop.shipped_references:,} references) and "
        f"{shop.other_orders:,} other orders to {settings.shop_db_url.database} in {shop.seconds:.0f} s"
    )
    print(", ".join(f"{table} {rows:,}" for table, rows in shop.rows.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the sequra-etl console script.

    Without PREFECT_API_URL a run starts Prefect's temporary server, which takes 15 to 20 s on a busy
    2-core machine: it gets 120 s instead of Prefect's 20, unless
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS says otherwise.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = parser().parse_args(argv)
    try:
        if args.command == "deliver":
            apply_options(args)
            return deliver(args)
        if args.command == "reconcile":
            return reconcile(args)
        if args.command == "backfill":
            return backfill(args)
        if args.command == "release":
            return release(args)
        if args.command == "unlock":
            return unlock(args)
        if args.command == "state-store":
            return state_store(args)
        if args.command == "configure":
            return configure(args)
        if args.command == "adopt":
            return adopt(args)
        if args.command == "sandbox":
            from sandbox.config import SandboxConfig
            from sandbox.server import serve_forever

            config = SandboxConfig()
            print(
                f"SeQura sandbox on http://127.0.0.1:{args.port}/ (user {config.username}, merchants "
                f"{', '.join(config.merchants)}); inspect /_sandbox/orders; Ctrl-C to stop"
            )
            serve_forever(args.port, config)
            return 0
        if args.command == "seed":
            return seed(args)
        from demo.run import run_demo

        return run_demo()
    except (SettingError, WindowError) as error:
        if args.debug:
            raise
        print(f"sequra-etl: {error}", file=sys.stderr)
        return EXIT_SETTING
    except Exception as error:
        if args.debug or not getattr(error, "__module__", "").startswith(
            ("tasks", "schemas", "seeding", "flows.fan_out")
        ):
            raise
        print(f"sequra-etl: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""What every command shares: how a subcommand is declared, its setting options, and window checks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from schemas.settings import SETTINGS, Settings
from tasks.window import WindowError, parse_moment

Commands = argparse._SubParsersAction
Command = Callable[[argparse.Namespace], int]

OPTION_SETTINGS = {
    "shop_db_url": "--shop-db-url",
    "shop_table_prefix": "--table-prefix",
    "payment_modules": "--payment-modules",
    "api_url": "--api-url",
    "merchant_id": "--merchant",
    "state_db_url": "--state-db-url",
}
SHOP_AND_STORE = ("shop_db_url", "shop_table_prefix", "merchant_id", "state_db_url")


def command(
    commands: Commands,
    name: str,
    summary: str,
    example: str,
    run: Command,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand that `run` carries out, whose --help ends with an example; --debug also after its name."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
    )
    parser.set_defaults(run=run)
    return parser


def window_options(parser: argparse.ArgumentParser, until: str) -> None:
    """--since and --until."""
    parser.add_argument(
        "--since", help="window start, ISO 8601 (2026-11-05, 2026-11-05T00:00:00Z); UTC if no offset"
    )
    parser.add_argument("--until", help=f"window end, exclusive; {until}")


def setting_options(parser: argparse.ArgumentParser, attrs: tuple[str, ...]) -> None:
    """One option per setting in `attrs` (--shop-db-url …), each overriding its environment variable."""
    for attr in attrs:
        parser.add_argument(OPTION_SETTINGS[attr], dest=attr, help=f"overrides {SETTINGS[attr].env}")


def out_options(parser: argparse.ArgumentParser, metavar: str, what: str) -> None:
    """--out FILE, which never replaces a file that exists, and --force, which lets it."""
    parser.add_argument("--out", metavar=metavar, help=f"{what}; refused if it exists, unless --force")
    parser.add_argument("--force", action="store_true", help="replace the file --out names if it exists")


def check_out_option(args: argparse.Namespace, *beside: Callable[[Path], Path]) -> None:
    """Refuse --out (or a file `beside` names next to it) that exists without --force, or is a folder."""
    from flows.parameters import check_out

    if args.out:
        out = Path(args.out)
        files = [out, *(companion(out) for companion in beside)]
        check_out("--out", files, replace=args.force, force="--force")


def export_options(args: argparse.Namespace) -> None:
    """Put the settings given as options into the environment the flows read; writes os.environ."""
    for attr in OPTION_SETTINGS:
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[SETTINGS[attr].env] = value


def settings_of(args: argparse.Namespace, *required: str) -> Settings:
    """The settings, with the command's options put in the environment; SettingError for the first unset."""
    export_options(args)
    settings = Settings.from_env()
    settings.require(*required)
    return settings


def check_window_options(since: str | None, until: str | None) -> None:
    """Refuse --since and --until that do not make a window, before any run is created."""
    end = parse_moment("--until", until) if until is not None else datetime.now(UTC)
    if since is not None and parse_moment("--since", since) >= end:
        raise WindowError(f"--since ({since}) must be before --until ({until or 'now'})")


def check_ready(settings: Settings) -> None:
    """Check that the state store can be written and the shop read, before any run; reads both."""
    from tasks.resources import RunResources

    with RunResources.open(settings) as resources:
        resources.check_ready()

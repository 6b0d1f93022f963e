"""The sequra-etl command: one subcommand per job, declared by command group, dispatched by the parser.

Every error sequra-etl raises on purpose (SequraEtlError) ends the command with one line saying what to do:
exit code 2 for a setting or an option, 1 for the rest; --debug shows its traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from flows.cli import delivery, dev, reconciliation, setup, store
from schemas.errors import SequraEtlError, SettingError
from schemas.settings import settings_table
from schemas.version import package_version
from tasks.window import WindowError

EXIT_SETTING = 2
EXIT_FAILED = 1
COMMAND_GROUPS = (delivery, reconciliation, store, setup, dev)


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
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return root


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
        return args.run(args)
    except (SettingError, WindowError) as error:
        if args.debug:
            raise
        print(f"sequra-etl: {error}", file=sys.stderr)
        return EXIT_SETTING
    except SequraEtlError as error:
        if args.debug:
            raise
        print(f"sequra-etl: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""The sequra-etl command: one subcommand per job, declared by command group, dispatched by the parser.

Every error sequra-etl raises on purpose (SequraEtlError) ends the command with one line on stderr saying
what to check and what to do: exit code 2 for a setting or an argument, 1 for a failed run. Prefect's own
lines about a failed run (its traceback, "Finished in state Failed") stay in the Prefect UI, off the
terminal. --debug shows them, and the error's traceback, instead.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NoReturn

from flows.cli.temporary_server import early_temporary_server
from schemas.errors import SequraEtlError, SettingError
from schemas.version import package_version
from tasks.window import WindowError

EXIT_SETTING = 2
EXIT_FAILED = 1
FLOW_COMMANDS = ("deliver", "backfill", "reconcile", "payouts", "demo")
"""Commands that run Prefect flows here, whose failures Prefect would also log on the terminal."""
FAILED_STATES = ("Finished in state Failed(", "Finished in state Crashed(")
SERVER_CLOSING = "Stopping temporary server"


class FailureLinesOff(logging.Filter):
    """Keeps off the terminal Prefect's lines about a failure: errors, tracebacks, a run's failed end."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for an error, a record with a traceback, or a run's or task's failed final state."""
        if record.levelno >= logging.ERROR or record.exc_info:
            return False
        return not str(record.msg).startswith(FAILED_STATES)


class ClosingLineOff(logging.Filter):
    """Keeps off the terminal the temporary server's closing line, which would follow a failure's one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for Prefect's 'Stopping temporary server' line, logged as the process exits."""
        return not str(record.msg).startswith(SERVER_CLOSING)


@contextmanager
def failures_off_the_terminal(command: str, debug: bool) -> Iterator[None]:
    """While a command that runs flows runs, filter Prefect's console lines about a failure.

    The API and the UI keep them; --debug keeps them on the terminal too. After a failure, the temporary
    server's closing line is kept off too, so the error's line ends the output. Configures Prefect's logging.
    """
    if debug or command not in FLOW_COMMANDS:
        yield
        return
    import prefect.main  # noqa: F401  (configures Prefect's logging, once per process)
    from prefect.logging.handlers import PrefectConsoleHandler

    consoles = [
        handler for handler in logging.getLogger().handlers if isinstance(handler, PrefectConsoleHandler)
    ]
    quiet = FailureLinesOff()
    for console in consoles:
        console.addFilter(quiet)
    try:
        yield
    except SequraEtlError:
        for console in consoles:
            if not any(isinstance(kept, ClosingLineOff) for kept in console.filters):
                console.addFilter(ClosingLineOff())
        raise
    finally:
        for console in consoles:
            console.removeFilter(quiet)


def make_prefect_home() -> None:
    """Create the folder PREFECT_HOME names, parents included, before Prefect looks for it; makes folders.

    Prefect makes only the last folder and warns that it failed (falsely: it makes it later) when its
    parent does not exist yet, as .demo/prefect in a fresh clone. A folder that cannot be made is left
    to Prefect, whose warning is then true.
    """
    home = os.environ.get("PREFECT_HOME")
    if home:
        with suppress(OSError):
            Path(home).expanduser().mkdir(mode=0o700, parents=True, exist_ok=True)


def is_argument_error(error: SequraEtlError) -> bool:
    """Whether a person fixes the error in the command line or the environment (exit code 2)."""
    from tasks.state.releases import NotReleasableError

    return isinstance(error, SettingError | WindowError | NotReleasableError)


def command_named(argv: Sequence[str]) -> str | None:
    """The subcommand the command line names, before parsing it: its first word that is not an option.

    None when it asks for help or the version, which run no command.
    """
    if any(word in ("-h", "--help", "--version") for word in argv):
        return None
    return next((word for word in argv if not word.startswith("-")), None)


def said(error: SequraEtlError) -> str:
    """An error as the terminal shows it: one line, control characters shown as their codes."""
    from tasks.inert import markdown_text, plain_text

    return f"sequra-etl: {plain_text(markdown_text(error))}"


class Parser(argparse.ArgumentParser):
    """A parser whose refusal of an argument is one line naming the --help to read, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print what is wrong with the arguments and where to read about them, and exit 2."""
        self.exit(EXIT_SETTING, f"{self.prog}: {message}; see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per job, each with an example in its --help; imports them all."""
    from flows.cli import delivery, dev, payouts, reconciliation, setup, store
    from schemas.settings import settings_table

    settings_help = "\n".join(
        f"  {env:<26} {meaning} (default: {default or '-'})" for env, default, meaning in settings_table()
    )
    root = Parser(
        prog="sequra-etl",
        description="Tell SeQura what a PrestaShop shop shipped, and the shop what SeQura corrected.",
        epilog="settings (environment variables; secret ones may be block:NAME, a Prefect Secret block):\n"
        + settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--debug", action="store_true", help="show the traceback of an error")
    root.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = root.add_subparsers(dest="command", required=True)
    for group in (delivery, reconciliation, payouts, store, setup, dev):
        group.add_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the sequra-etl console script.

    Without PREFECT_API_URL a run starts Prefect's temporary server, which takes 15 to 20 s on a busy
    2-core machine: it gets 120 s instead of Prefect's 20, unless
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS says otherwise. A command that starts it as it starts
    (EARLY_COMMANDS) starts it before importing the commands, the shop's and Prefect's code.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    make_prefect_home()
    with early_temporary_server(command_named(argv)):
        args = parser().parse_args(argv)
        try:
            with failures_off_the_terminal(args.command, args.debug):
                return args.run(args)
        except SequraEtlError as error:
            if args.debug:
                raise
            print(said(error), file=sys.stderr)
            return EXIT_SETTING if is_argument_error(error) else EXIT_FAILED


def console() -> NoReturn:
    """The console script: main(), then Python's exit without its last clean-up; ends the process.

    Python's exit waits for the threads and runs their exit hooks and the exit handlers (Prefect sends its
    last logs and events, the temporary server stops), then frees every module one by one: half a second
    of CPU after a run, for a process that ends anyway. An exception leaves as from main().
    """
    code = main()
    threading._shutdown()  # type: ignore[attr-defined]  # as Python's exit: Prefect's hooks send the rest
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(BrokenPipeError):  # its reader is gone (`| head`): nothing is left to say to it
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    console()

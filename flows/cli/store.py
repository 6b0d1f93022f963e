"""The state store's commands: release held orders, free a lock, name the store a deployment uses."""

from __future__ import annotations

import argparse
import os

from flows.cli.options import Commands, command, settings_of
from schemas.errors import SettingError
from schemas.settings import BLOCK_PREFIX, SETTINGS, Settings, has_password


def add_commands(commands: Commands) -> None:
    """release, unlock and state-store."""
    release_command = command(
        commands,
        "release",
        "settle an order held because its report got no answer, or send again an order update SeQura refused",
        "sequra-etl release AAAAAAAAA",
        release,
    )
    release_command.add_argument(
        "order_refs", nargs="*", metavar="ORDER_REF_1", help="orders as SeQura knows them (order_ref_1)"
    )
    release_command.add_argument(
        "--run", dest="run_id", help="every order this run left without a clear answer"
    )
    release_command.add_argument(
        "--resend",
        action="store_true",
        help="SeQura does not have it (you checked): report it again; without this flag a held order is "
        "recorded as SeQura's and confirmed by an order update, which can never report it twice",
    )
    store_options(release_command)
    store_options(command(commands, "unlock", "free the merchant's run lock", "sequra-etl unlock", unlock))
    command(
        commands,
        "state-store",
        "print the state store runs use here (for deployments; never a password)",
        "sequra-etl state-store",
        state_store,
    )


def store_options(parser: argparse.ArgumentParser) -> None:
    """--merchant and --state-db-url."""
    parser.add_argument("--merchant", dest="merchant_id", help=f"overrides {SETTINGS['merchant_id'].env}")
    parser.add_argument(
        "--state-db-url", dest="state_db_url", help=f"overrides {SETTINGS['state_db_url'].env}"
    )


def release(args: argparse.Namespace) -> int:
    """Settle held orders (maybe delivered, or with a refused update) and say what happens next."""
    from tasks.state.releases import release_orders
    from tasks.state.store import open_state_store

    settings = settings_of(args, "merchant_id")
    store = open_state_store(settings.state_url())
    try:
        merchant = settings.merchant_id or ""
        for line in release_orders(store, merchant, args.order_refs, run_id=args.run_id, resend=args.resend):
            print(line)
    finally:
        store.dispose()
    return 0


def unlock(args: argparse.Namespace) -> int:
    """Free the merchant's run lock, for a run that died before its lease ran out; says what it freed."""
    from tasks.state.locks import free_lock
    from tasks.state.store import open_state_store

    settings = settings_of(args, "merchant_id")
    store = open_state_store(settings.state_url())
    try:
        print(free_lock(store, settings.merchant_id or ""))
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

"""The state store's commands: release held orders, free a lock, forget a buyer, name the store to use."""

from __future__ import annotations

import argparse
import os

from flows.cli.options import Commands, command, settings_of
from schemas.errors import SettingError
from schemas.settings import BLOCK_PREFIX, SETTINGS, Settings, has_password


def add_commands(commands: Commands) -> None:
    """release, unlock, forget and state-store."""
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
    store_options(
        command(
            commands,
            "unlock",
            "free the merchant's run lock",
            "sequra-etl unlock",
            unlock,
            description="Free the merchant's run lock, naming the run that held it (flow run, host, pid). "
            "A run takes a dead run's lock itself when its process on the same host is gone or Prefect "
            "shows its flow run ended; unlock is for a run that died elsewhere before its lease ran out.",
        )
    )
    forget_options(
        command(
            commands,
            "forget",
            "erase one buyer's data from the state store (GDPR art. 17); their orders stay reported",
            "sequra-etl forget --email ana@example.com",
            forget,
            description="Erase one buyer's names, emails, addresses, phones and trackings from the state "
            "store, in every merchant's orders: the stored reports, reports in flight, order updates, "
            "quarantine reasons, corrected shop values and run messages. Each order keeps its fingerprint, "
            "carts and dates, so it stays reported: no run sends it again for this, and a later change to "
            "it is still sent as an order update. Prints what it erased (counts, never the data); running "
            "it again erases nothing more.",
        )
    )
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
    state_store_option(parser)


def state_store_option(parser: argparse.ArgumentParser) -> None:
    """--state-db-url."""
    parser.add_argument(
        "--state-db-url", dest="state_db_url", help=f"overrides {SETTINGS['state_db_url'].env}"
    )


def forget_options(parser: argparse.ArgumentParser) -> None:
    """--order or --email (either, each as often as needed), and --state-db-url."""
    buyer = parser.add_mutually_exclusive_group(required=True)
    buyer.add_argument(
        "--order",
        dest="order_refs",
        action="append",
        default=[],
        metavar="REF",
        help="an order of the buyer: its order_ref_1 or shop reference (repeat for several)",
    )
    buyer.add_argument(
        "--email",
        dest="emails",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="the buyer's email, case aside: every order whose buyer it is (repeat for several)",
    )
    state_store_option(parser)


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
    """Free the merchant's run lock, for a run that died elsewhere before its lease ran out; says what.

    The words name the run that held it (flow run, host, pid) and whether its process still runs here.
    """
    from tasks.state.locks import free_lock
    from tasks.state.store import open_state_store

    settings = settings_of(args, "merchant_id")
    store = open_state_store(settings.state_url())
    try:
        print(free_lock(store, settings.merchant_id or ""))
    finally:
        store.dispose()
    return 0


def forget(args: argparse.Namespace) -> int:
    """Erase one buyer's data from the state store and say what was erased: counts, never the data."""
    from tasks.state.privacy import forget_buyer
    from tasks.state.store import open_state_store

    store = open_state_store(settings_of(args).state_url())
    try:
        erased = forget_buyer(store, args.order_refs, args.emails)
    finally:
        store.dispose()
    for line in erased.said():
        print(line)
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

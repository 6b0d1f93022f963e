"""The payouts command: what SeQura paid, checked against what it was told shipped, order by order."""

from __future__ import annotations

import argparse

from flows.cli.options import (
    Commands,
    check_out_option,
    command,
    export_options,
    out_options,
    setting_options,
)
from schemas.errors import SettingError
from schemas.settings import Settings


def add_commands(commands: Commands) -> None:
    """Payouts."""
    payouts_command = command(
        commands,
        "payouts",
        "check what SeQura paid against what it was told shipped, and list each order that differs",
        "sequra-etl payouts --out payouts.csv",
        payouts,
        "Read the disbursements SeQura lists that were not read before, compare every order SeQura was told "
        "shipped with what they paid, and write each order that differs (not_paid, paid_differs, "
        "paid_not_reported) to a CSV. Exit 0 when the check ran, whatever it found.",
    )
    out_options(payouts_command, "FILE.csv", "write the findings to this CSV (one merchant)")
    setting_options(
        payouts_command, ("merchant_id", "api_url", "state_db_url", "shop_db_url", "shop_table_prefix")
    )


def payouts(args: argparse.Namespace) -> int:
    """Check the settings of every merchant checked, then run the payouts flow once; print what it found."""
    from flows.payouts import payouts as payouts_flow
    from tasks.inert import plain_text
    from tasks.payouts.summary import payouts_markdown

    check_out_option(args)
    export_options(args)
    merchants = Settings.from_env().merchant_ids() if args.merchant_id is None else (args.merchant_id,)
    if args.out and len(merchants) > 1:
        raise SettingError(
            "--out",
            f"names one CSV, and SEQURA_MERCHANTS has {len(merchants)} merchants: add --merchant, or leave "
            "out --out (each merchant's CSV goes to .sequra-etl/)",
        )
    for merchant in merchants:
        Settings.from_env(merchant_id=merchant).require("username", "password", "merchant_id")
    checked = payouts_flow(merchant=args.merchant_id, out=args.out)
    for summary in checked if isinstance(checked, list) else [checked]:
        print(plain_text(payouts_markdown(summary)))
        print()
    return 0

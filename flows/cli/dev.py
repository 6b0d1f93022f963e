"""The developers' commands: the local SeQura sandbox, the demo, and big generated shops for benchmarks."""

from __future__ import annotations

import argparse
from datetime import datetime

from flows.cli.options import Commands, command
from schemas.errors import SettingError
from schemas.settings import SETTINGS, Settings
from tasks.window import parse_moment


def add_commands(commands: Commands) -> None:
    """sandbox, demo and seed."""
    sandbox_command = command(
        commands, "sandbox", "run the local SeQura sandbox", "sequra-etl sandbox --port 8765", sandbox
    )
    sandbox_command.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    command(
        commands,
        "demo",
        "seed a demo shop, start the sandbox and run the flows end to end",
        "sequra-etl demo",
        demo,
    )
    seed_command = command(
        commands,
        "seed",
        "generate a big PrestaShop shop on MariaDB/MySQL for benchmarks (or add orders to one)",
        "sequra-etl seed --orders 100000 --shop-db mysql+pymysql://root@127.0.0.1:3306/bigshop",
        seed,
        "Generate N shipped SeQura orders (plus about 8%% other orders) into a MariaDB or MySQL database, "
        "creating PrestaShop's real tables when it is empty; run again to add more orders.",
    )
    seed_command.add_argument(
        "--orders", type=int, required=True, help="how many shipped SeQura orders to add"
    )
    seed_command.add_argument(
        "--shop-db", dest="shop_db_url", help=f"overrides {SETTINGS['shop_db_url'].env}"
    )
    seed_command.add_argument(
        "--table-prefix", dest="shop_table_prefix", help=f"overrides {SETTINGS['shop_table_prefix'].env}"
    )
    seed_command.add_argument(
        "--days", type=float, default=365, help="ship them over this many days before now"
    )
    seed_command.add_argument("--now", help="shop-local end of that period, ISO 8601 (default: now)")
    seed_command.add_argument(
        "--prestashop-version",
        default="8.0",
        help="real DDL to create an empty shop with: 1.7.8.1, 8.0, 9.1.0",
    )
    seed_command.add_argument(
        "--seed", type=int, default=1, help="random seed: the same seed gives the same shop"
    )


def sandbox(args: argparse.Namespace) -> int:
    """Serve the local SeQura sandbox on loopback until Ctrl-C."""
    from sandbox.config import SandboxConfig
    from sandbox.server import serve_forever

    config = SandboxConfig()
    print(
        f"SeQura sandbox on http://127.0.0.1:{args.port}/ (user {config.username}, merchants "
        f"{', '.join(config.merchants)}); inspect /_sandbox/orders; Ctrl-C to stop"
    )
    serve_forever(args.port, config)
    return 0


def demo(_args: argparse.Namespace) -> int:
    """Seed the demo shop, start the sandbox and run the flows end to end."""
    from demo.run import run_demo

    return run_demo()


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

"""Several merchants (SEQURA_MERCHANTS): each merchant's shop, delivery countries and API user."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from schemas.errors import SettingError
from schemas.setting_values import is_merchant_id


@dataclass(frozen=True)
class MerchantAccount:
    """One SeQura merchant of the shop: the orders it takes (a shop, delivery countries) and its API user."""

    merchant_id: str
    shop_id: int | None = None
    countries: tuple[str, ...] = ()  # ISO codes of delivery countries; empty: every country
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def claims(self) -> str:
        """The orders it takes, in words."""
        shop = f"shop {self.shop_id}" if self.shop_id is not None else "every shop"
        countries = ", ".join(self.countries) if self.countries else "any country no other merchant lists"
        return f"{shop}, delivered to {countries}"

    def shares_shops(self, other: MerchantAccount) -> bool:
        """Whether both take orders of one shop (the same id_shop, or either every shop)."""
        return self.shop_id is None or other.shop_id is None or self.shop_id == other.shop_id

    def overlaps(self, other: MerchantAccount) -> bool:
        """Whether an order could belong to both: a shared shop and a common country, or both the rest."""
        if not self.shares_shops(other):
            return False
        if not self.countries or not other.countries:
            return not self.countries and not other.countries
        return bool(set(self.countries) & set(other.countries))


def uncovered_shops(accounts: tuple[MerchantAccount, ...]) -> list[str]:
    """The shops whose merchants all list countries, with those countries: orders elsewhere go to none."""
    notes = []
    for shop_id in dict.fromkeys(account.shop_id for account in accounts):
        sharing = [a for a in accounts if a.shop_id is None or shop_id is None or a.shop_id == shop_id]
        if all(a.countries for a in sharing):
            shop = f"shop {shop_id}" if shop_id is not None else "every shop"
            notes.append(f"{shop} ({', '.join(sorted({c for a in sharing for c in a.countries}))})")
    return notes


MERCHANTS_EXAMPLE = (
    '{"shop_es": {"shop": 1, "countries": ["ES"], "username": "…", "password": "block:sequra-es"}, '
    '"shop_pt": {"shop": 1, "countries": ["PT"], "username": "…", "password": "block:sequra-pt"}}'
)


MERCHANT_KEYS = ("shop", "countries", "username", "password")


def _merchant_account(name: str, merchant: str, entry: object) -> MerchantAccount:
    """Check one merchant's entry of SEQURA_MERCHANTS; the error names the merchant and the key."""
    where = f"merchant '{merchant}'"
    if not is_merchant_id(merchant):
        raise SettingError(name, f"{where} is not a SeQura merchant id (letters, digits, _ . -)")
    if not isinstance(entry, dict):
        raise SettingError(name, f'{where} must map to an object like {{"shop": 1, "countries": ["ES"]}}')
    unknown = sorted(set(entry) - set(MERCHANT_KEYS))
    if unknown:
        raise SettingError(
            name, f"{where} has unknown keys {', '.join(unknown)}; use {', '.join(MERCHANT_KEYS)}"
        )
    shop = entry.get("shop")
    if shop is not None and (not isinstance(shop, int) or isinstance(shop, bool) or shop <= 0):
        raise SettingError(name, f"{where}: shop must be an id_shop, a whole number above zero")
    countries = entry.get("countries") or []
    if not isinstance(countries, list) or any(
        not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code) for code in countries
    ):
        raise SettingError(name, f'{where}: countries must be a list of ISO codes like ["ES", "PT"]')
    credentials = {key: entry.get(key) for key in ("username", "password")}
    for key, value in credentials.items():
        if value is not None and not isinstance(value, str):
            raise SettingError(name, f"{where}: {key} must be text (or block:NAME, a Prefect Secret block)")
    if (credentials["username"] is None) != (credentials["password"] is None):
        raise SettingError(
            name,
            f"{where} has a username or a password, not both: give both, or neither to use SEQURA_USERNAME",
        )
    return MerchantAccount(merchant, shop, tuple(code.upper() for code in countries), **credentials)


def parse_merchants(name: str, value: str) -> tuple[MerchantAccount, ...]:
    """Parse the merchants of a shop with several (JSON); no order may belong to two of them."""
    if not value.strip():
        return ()
    try:
        raw = json.loads(value)
    except json.JSONDecodeError as error:
        raise SettingError(
            name, f"is not JSON ({error.msg} at character {error.pos}); write it like {MERCHANTS_EXAMPLE}"
        ) from None
    if not isinstance(raw, dict) or not raw:
        raise SettingError(name, f"must map merchant ids to their orders, like {MERCHANTS_EXAMPLE}")
    accounts = [_merchant_account(name, merchant, entry) for merchant, entry in raw.items()]
    for number, account in enumerate(accounts):
        for other in accounts[number + 1 :]:
            if account.overlaps(other):
                raise SettingError(
                    name,
                    f"merchants {account.merchant_id} ({account.claims()}) and {other.merchant_id} "
                    f"({other.claims()}) could both take one order; give each shop and country to one "
                    "merchant",
                )
    return tuple(accounts)

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from schemas.settings import DEFAULT_SEQURA_API_URL, SETTINGS, SettingError, Settings

BASE = {
    "SHOP_DB_URL": "mysql+pymysql://shop:pw@db:3306/prestashop",
    "SEQURA_USERNAME": "user",
    "SEQURA_PASSWORD": "s3cret-password",
    "SEQURA_MERCHANT_ID": "acme",
}


def test_every_setting_has_one_attribute_and_one_variable() -> None:
    derived_from_the_merchants_setting = {"delivery_countries"}
    assert {f.name for f in fields(Settings)} == set(SETTINGS) | derived_from_the_merchants_setting
    assert len({s.env for s in SETTINGS.values()}) == len(SETTINGS)


def test_defaults_follow_the_php_module() -> None:
    settings = Settings.from_env(BASE)
    assert settings.shop_table_prefix == "ps_"
    assert settings.payment_modules == ("sequrapayment",)
    assert settings.api_url == DEFAULT_SEQURA_API_URL
    assert settings.order_ref_field == "reference"
    assert settings.batch_size == 5000


def test_payment_modules_are_a_comma_separated_list() -> None:
    settings = Settings.from_env({**BASE, "SEQURA_PAYMENT_MODULES": "sequrapayment, sequracheckout"})
    assert settings.payment_modules == ("sequrapayment", "sequracheckout")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHOP_TABLE_PREFIX", "ps-; drop"),
        ("SEQURA_PAYMENT_MODULES", ","),
        ("SEQURA_API_URL", "sandbox.sequrapi.com"),
        ("SEQURA_BATCH_SIZE", "0"),
        ("SEQURA_TIMEOUT_SECONDS", "soon"),
        ("SEQURA_ORDER_REF_FIELD", "id_cart"),
        ("DELIVERY_OVERLAP_MINUTES", "15"),
    ],
)
def test_a_malformed_setting_is_named_in_the_error(variable: str, value: str) -> None:
    with pytest.raises(SettingError, match=rf"^{variable}: '") as raised:
        Settings.from_env({**BASE, variable: value})
    assert raised.value.name == variable


@pytest.mark.parametrize("variable", ["SHOP_DB_URL", "STATE_DB_URL"])
def test_a_malformed_database_url_is_named_without_echoing_its_password(variable: str) -> None:
    with pytest.raises(SettingError, match=rf"^{variable}: is not a database URL") as raised:
        Settings.from_env({**BASE, variable: "mysql+pymysql//shop:s3cret-password@db/prestashop"})
    assert "s3cret-password" not in str(raised.value)


def test_database_passwords_never_show_in_a_repr() -> None:
    settings = Settings.from_env({**BASE, "STATE_DB_URL": "postgresql+psycopg2://etl:state-pw@db/state"})
    assert "state-pw" not in repr(settings) and "pw@db" not in repr(settings)
    assert settings.state_url() == "postgresql+psycopg2://etl:state-pw@db/state"


def test_a_missing_credential_is_named_with_what_to_set() -> None:
    settings = Settings.from_env({k: v for k, v in BASE.items() if k != "SEQURA_PASSWORD"})
    with pytest.raises(SettingError, match=r"^SEQURA_PASSWORD: is not set; set it to the SeQura API"):
        settings.require("username", "password")


def test_the_password_never_shows_in_a_repr() -> None:
    settings = Settings.from_env(BASE)
    assert "s3cret-password" not in repr(settings)
    assert "s3cret-password" not in str(settings)


def test_api_url_gets_its_trailing_slash() -> None:
    assert (
        Settings.from_env({**BASE, "SEQURA_API_URL": "http://127.0.0.1:8765"}).api_url
        == "http://127.0.0.1:8765/"
    )


def test_the_default_state_store_is_a_file_in_the_user_data_folder_wherever_the_command_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    urls = set()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        urls.add(Settings.from_env(BASE).state_url())
    assert urls == {f"sqlite:///{tmp_path / 'data' / 'sequra-etl' / 'state.sqlite'}"}


def test_overrides_are_parsed_like_their_variable() -> None:
    settings = Settings.from_env(BASE, merchant_id="other", batch_size="10", shop_id=None)
    assert (settings.merchant_id, settings.batch_size, settings.shop_id) == ("other", 10, None)

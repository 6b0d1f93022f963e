from __future__ import annotations

import ipaddress
import json
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.utils import unquote_unreserved

from schemas.errors import SettingError
from schemas.setting_values import DEFAULT_SEQURA_API_URL, parse_api_url
from schemas.settings import SETTINGS, Settings
from tests.hostile import hostile
from tests.not_sequra import path_as_served

BASE = {
    "SHOP_DB_URL": "mysql+pymysql://shop:pw@db:3306/prestashop",
    "SEQURA_USERNAME": "user",
    "SEQURA_PASSWORD": "s3cret-password",
    "SEQURA_MERCHANT_ID": "acme",
}


def test_every_setting_has_one_attribute_and_one_variable() -> None:
    derived_from_the_merchants_setting = {"delivery_countries", "claimed_elsewhere"}
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
    settings = Settings.from_env(BASE, api_url="http://127.0.0.1:8765", batch_size="10", shop_id=None)
    assert (settings.api_url, settings.batch_size, settings.shop_id) == ("http://127.0.0.1:8765/", 10, None)


TWO_MERCHANTS = {
    "shop_es": {"shop": 1, "countries": ["ES"], "username": "es-user", "password": "es-secret"},
    "shop_pt": {"shop": 1, "countries": ["pt"]},
}


def with_merchants(merchants: object, **environ: str) -> dict[str, str]:
    """An environment with SEQURA_MERCHANTS set to `merchants` as JSON."""
    return {
        "SEQURA_USERNAME": "main-user",
        "SEQURA_PASSWORD": "main-secret",
        **environ,
        "SEQURA_MERCHANTS": json.dumps(merchants),
    }


def test_a_merchant_of_several_takes_its_shop_countries_and_api_user() -> None:
    spain = Settings.from_env(with_merchants(TWO_MERCHANTS), merchant_id="shop_es")
    assert (spain.merchant_id, spain.shop_id, spain.delivery_countries) == ("shop_es", 1, ("ES",))
    assert (spain.username, spain.password and spain.password.get_secret_value()) == ("es-user", "es-secret")


def test_a_merchant_without_credentials_of_its_own_uses_the_main_api_user() -> None:
    portugal = Settings.from_env(with_merchants(TWO_MERCHANTS), merchant_id="shop_pt")
    assert (portugal.delivery_countries, portugal.username) == (("PT",), "main-user")


def test_several_merchants_without_one_chosen_are_all_run_and_one_is_asked_for_where_one_is_needed() -> None:
    settings = Settings.from_env(with_merchants(TWO_MERCHANTS))
    assert settings.merchant_ids() == ("shop_es", "shop_pt")
    with pytest.raises(SettingError, match=r"SEQURA_MERCHANTS: names several merchants \(shop_es, shop_pt\)"):
        settings.require("merchant_id")


def test_the_only_merchant_configured_is_the_one_runs_use() -> None:
    settings = Settings.from_env(with_merchants({"shop_es": {"countries": ["ES"]}}))
    assert (settings.merchant_id, settings.delivery_countries) == ("shop_es", ("ES",))


def test_a_merchant_the_setting_does_not_name_is_refused_with_those_it_names() -> None:
    with pytest.raises(SettingError, match="does not name merchant shop_fr; it names shop_es, shop_pt"):
        Settings.from_env(with_merchants(TWO_MERCHANTS), merchant_id="shop_fr")


@pytest.mark.parametrize(
    ("merchants", "named"),
    [
        (
            {"a": {"countries": ["ES"]}, "b": {"countries": ["ES", "PT"]}},
            "merchants a (every shop, delivered to ES)",
        ),
        (
            {"a": {"shop": 1}, "b": {}},
            "and b (every shop, delivered to any country no other merchant lists) could",
        ),
        ({"a": {"username": "a-user"}}, "merchant 'a' has a username or a password, not both"),
        ({"a": {"shop": 1, "contries": ["ES"]}}, "merchant 'a' has unknown keys contries"),
        ({"a": {"countries": ["Spain"]}}, "countries must be a list of ISO codes"),
        ({"a": {"shop": "1"}}, "shop must be an id_shop"),
        ({}, "must map merchant ids to their orders"),
        ({"a b": {}}, "merchant 'a b' is not a SeQura merchant id"),
    ],
)
def test_a_merchants_setting_that_could_send_an_order_twice_or_is_malformed_is_named(
    merchants: object, named: str
) -> None:
    with pytest.raises(SettingError, match="SEQURA_MERCHANTS") as refused:
        Settings.from_env(with_merchants(merchants))
    assert named in str(refused.value)


def test_merchants_of_different_shops_may_share_a_country() -> None:
    settings = Settings.from_env(
        with_merchants({"a": {"shop": 1, "countries": ["ES"]}, "b": {"shop": 2, "countries": ["ES"]}})
    )
    assert settings.merchant_ids() == ("a", "b")


def test_a_merchants_setting_that_is_not_json_says_how_to_write_it() -> None:
    with pytest.raises(SettingError, match=r'is not JSON .* write it like \{"shop_es"'):
        Settings.from_env({"SEQURA_MERCHANTS": "shop_es=ES"})


def test_the_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert [s.env for s in SETTINGS.values() if not any(f"`{s.env}`" in row for row in rows)] == []


def test_a_merchant_without_countries_takes_every_country_the_others_of_its_shops_do_not() -> None:
    merchants = {"shop_es": {"shop": 1, "countries": ["ES"]}, "rest": {"shop": 1}, "other_shop": {"shop": 2}}
    rest = Settings.from_env(with_merchants(merchants), merchant_id="rest")
    assert (rest.delivery_countries, rest.claimed_elsewhere) == ((), ((1, ("ES",)),))
    assert Settings.from_env(with_merchants(merchants), merchant_id="shop_es").claimed_elsewhere == ()


def test_shop_id_with_several_merchants_is_refused_for_each_merchant_names_its_shop() -> None:
    with pytest.raises(SettingError, match="SHOP_ID: is set with SEQURA_MERCHANTS"):
        Settings.from_env(with_merchants(TWO_MERCHANTS, SHOP_ID="1"), merchant_id="shop_es")


def test_a_run_for_another_merchant_than_the_configured_one_is_refused_without_the_merchants_setting() -> (
    None
):
    with pytest.raises(
        SettingError, match="SEQURA_MERCHANT_ID: is acme here, and the run is for merchant other"
    ):
        Settings.from_env(BASE, merchant_id="other")


def test_a_shop_whose_merchants_all_list_countries_is_named_as_leaving_orders_to_none() -> None:
    from schemas.merchants import uncovered_shops

    spain_and_portugal = Settings.from_env(with_merchants(TWO_MERCHANTS), merchant_id="shop_es").merchants
    assert uncovered_shops(spain_and_portugal) == ["shop 1 (ES, PT)"]
    with_the_rest = Settings.from_env(
        with_merchants({**TWO_MERCHANTS, "rest": {"shop": 1}}), merchant_id="rest"
    )
    assert uncovered_shops(with_the_rest.merchants) == []


SECRET = "InUrlS3cret"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://leak:{SECRET}@127.0.0.1:4812/", "holds a user or password"),
        (f"https://leak:{SECRET}@sandbox.sequrapi.com/", "holds a user or password"),
        ("http://192.0.2.1/", "is plain http to another machine"),
        ("http://sandbox.sequrapi.com/", "is plain http to another machine"),
        ("http://127.0.0.1:4812/api/v1/../../admin/", "has a '.' or '..' segment"),
        ("https://sandbox.sequrapi.com/api/v1/%2e%2e/%2E%2E/admin/", "has a '.' or '..' segment"),
        ("https://sandbox.sequrapi.com/api/./", "has a '.' or '..' segment"),
        (f"https://sandbox.sequrapi.com/?password={SECRET}", "has a query or a fragment"),
        ("https://sandbox.sequrapi.com/#", "has a query or a fragment"),
        (f"https//leak:{SECRET}@sandbox.sequrapi.com/", "is not an http(s) URL"),
    ],
)
def test_an_api_url_that_would_leak_or_misdirect_the_credentials_is_refused_in_one_line_naming_it(
    url: str, problem: str
) -> None:
    with pytest.raises(SettingError, match=r"^SEQURA_API_URL: ") as refused:
        Settings.from_env({**BASE, "SEQURA_API_URL": url})
    assert problem in str(refused.value)
    assert SECRET not in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://live.sequrapi.com",
        "http://127.0.0.1:8765/",
        "http://localhost:8765/api/",
        "http://[::1]:8765",
    ],
)
def test_an_api_url_over_tls_or_to_this_machine_is_accepted(url: str) -> None:
    assert Settings.from_env({**BASE, "SEQURA_API_URL": url}).api_url == url.rstrip("/") + "/"


@pytest.mark.parametrize("merchant", ["..", ".", "a/b", "demo merchant", "demo\r\nX-Injected: 1"])
def test_a_merchant_id_that_could_leave_its_url_segment_is_refused(merchant: str) -> None:
    with pytest.raises(SettingError, match=r"^SEQURA_MERCHANT_ID: "):
        Settings.from_env({**BASE, "SEQURA_MERCHANT_ID": merchant})
    with pytest.raises(SettingError, match=r"^SEQURA_MERCHANTS: merchant "):
        Settings.from_env(with_merchants({merchant: {"shop": 1}}))


def is_loopback_host(host: str | None) -> bool:
    """The test's own idea of this machine: localhost or a loopback IP address."""
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


URL_PIECES = {
    "scheme": st.sampled_from(["https", "http", "HTTPS", "ftp", "javascript", "", "file"]),
    "separator": st.sampled_from(["://", ":/", ":", "//", ":///", ":\\\\"]),
    "userinfo": st.sampled_from(["", "", "user@", f"leak:{SECRET}@", f":{SECRET}@", "@", "a@b@", "x:%40@"]),
    "host": st.sampled_from(
        [
            "127.0.0.1",
            "localhost",
            "LOCALHOST",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "127.1",
            "0x7f000001",
            "2130706433",
            "127.0.0.1.nip.io",
            "192.0.2.1",
            "sandbox.sequrapi.com",
            "exa%6dple.com",
            "a..b",
            "-a.com",
            "ñandú.es",
            "xn--and-6ma2c.es",
            "",
        ]
    )
    | st.text(max_size=8),
    "port": st.sampled_from(["", ":8765", ":0", ":65536", ":abc", ":", ":-1"]),
    "segments": st.lists(
        st.sampled_from(
            [
                "api",
                "v1",
                ".",
                "..",
                "%2e",
                "%2E%2e",
                ".%2e",
                "%252e%252e",
                "..;",
                "",
                "a b",
                "%2f",
                "\\",
                "．．",
                "‥",
            ]
        )
        | st.text(max_size=4),
        max_size=5,
    ),
    "tail": st.sampled_from(["", "/", f"?password={SECRET}", "#frag", "?", "#", "\n", " ", "\t", "\x00"]),
}


@st.composite
def api_urls(draw: st.DrawFn) -> str:
    """A SEQURA_API_URL as an operator, a copy-paste or an attacker may write it."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.text())
    piece = {name: draw(strategy) for name, strategy in URL_PIECES.items()}
    path = "/" + "/".join(piece["segments"]) if piece["segments"] else ""
    return (
        piece["scheme"]
        + piece["separator"]
        + piece["userinfo"]
        + piece["host"]
        + piece["port"]
        + path
        + piece["tail"]
    )


@pytest.mark.hostile
@hostile
@given(url=api_urls())
def test_an_api_url_is_refused_naming_the_setting_or_sends_credentials_only_where_it_says_by_tls_or_loopback(
    url: str,
) -> None:
    try:
        accepted = parse_api_url("SEQURA_API_URL", url)
    except SettingError as refused:
        assert str(refused).startswith("SEQURA_API_URL: ")
        assert "\n" not in str(refused) and SECRET not in str(refused)
        return
    parts = urlsplit(accepted)
    assert parts.scheme.lower() == "https" or (
        parts.scheme.lower() == "http" and is_loopback_host(parts.hostname)
    )
    assert (parts.username, parts.password, parts.query, parts.fragment) == (None, None, "", "")
    sent = urlsplit(requests.Request("POST", accepted + "orders/delivery_reports").prepare().url)
    assert sent.netloc.lower() == parts.netloc.lower()
    assert path_as_served(sent.path) == unquote_unreserved(sent.path)
    assert path_as_served(sent.path).endswith("/orders/delivery_reports")


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("variable", ["SEQURA_TIMEOUT_SECONDS", "SEQURA_BACKOFF_SECONDS"])
def test_a_number_of_seconds_that_is_not_finite_is_refused_naming_it(variable: str, seconds: str) -> None:
    with pytest.raises(SettingError, match=rf"^{variable}: '{seconds}' is not a number of seconds"):
        Settings.from_env({**BASE, variable: seconds})

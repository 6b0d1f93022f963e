"""Every URL shown goes through masked_url: no password, token or signature shows, whatever the text."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas.masking import masked_url
from tests.hostile import hostile

PASSWORD = "S3cret-pw"


def test_a_web_urls_user_and_password_are_both_masked() -> None:
    assert (
        masked_url(f"https://reader:{PASSWORD}@files.example/c.jsonl") == "https://***@files.example/c.jsonl"
    )
    assert masked_url(f"http://{PASSWORD}@127.0.0.1:8080/") == "http://***@127.0.0.1:8080/"


def test_a_database_urls_password_is_masked_in_its_user_part_and_its_query_its_user_kept() -> None:
    url = f"mysql+pymysql://reader:{PASSWORD}@db.example:3306/shop?charset=utf8mb4&password={PASSWORD}"

    assert masked_url(url) == "mysql+pymysql://reader:***@db.example:3306/shop?charset=utf8mb4&password=***"
    assert masked_url(f"postgresql://etl:{PASSWORD}@[::1]/state") == "postgresql://etl:***@[::1]/state"


def test_a_presigned_urls_credential_and_signature_are_masked_with_all_after_the_first_of_them() -> None:
    url = (
        "https://bucket.s3.eu-west-1.amazonaws.com/corrections.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential=AKIAEXAMPLE%2F20261204%2Fs3&X-Amz-Expires=3600&X-Amz-Signature={PASSWORD}"
    )

    assert masked_url(url) == (
        "https://bucket.s3.eu-west-1.amazonaws.com/corrections.jsonl?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***"
    )


def test_a_password_with_an_unencoded_ampersand_or_hash_never_shows_its_end() -> None:
    assert masked_url("https://files.example/c?token=Pa55&word=x") == "https://files.example/c?token=***"
    assert masked_url("https://files.example/c?token=Pa55#word") == "https://files.example/c?token=***"


def test_a_token_in_a_fragment_is_masked_as_in_a_query() -> None:
    assert (
        masked_url(f"https://files.example/c#access_token={PASSWORD}")
        == "https://files.example/c#access_token=***"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/sequra-etl/corrections.jsonl",
        "corrections 2026-12 (copy).csv",
        "C:\\exports\\corrections.csv",
        "sqlite:////var/lib/sequra-etl/state.db",
        "https://sandbox.sequrapi.com/",
    ],
)
def test_a_file_path_or_a_url_without_secrets_is_shown_unchanged(path: str) -> None:
    assert masked_url(path) == path


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://[", "https://***"),
        (f"https://reader:{PASSWORD}@[::1", "https://***"),
        (f"mysql://reader:{PASSWORD}@db\uff03.example/shop", "mysql://***"),
        (f"https://reader:{PASSWORD}@files.example]:8443/c", "https://***"),
        (f"https://files.example/next=https://reader:{PASSWORD}@elsewhere/", "https://***"),
        (f"reader:{PASSWORD}@db.example/shop", "***"),
    ],
)
def test_an_address_that_cannot_be_read_or_hides_a_user_past_its_host_is_masked_whole_never_raised(
    url: str, masked: str
) -> None:
    assert masked_url(url) == masked


SCHEMES = st.sampled_from(
    ["http", "https", "HTTPS", "mysql+pymysql", "postgresql", "sqlite", "ftp"]
) | st.text(max_size=6)
HOSTS = st.sampled_from(
    ["files.example", "127.0.0.1:8080", "[::1]", "[", "]", "db\uff03.example", ""]
) | st.text(max_size=8)
SECRET_KEYS = st.sampled_from(
    [
        "password",
        "PASSWORD",
        "pwd",
        "token",
        "access_token",
        "api_key",
        "X-Amz-Signature",
        "sig",
        "auth",
        "secret",
    ]
)
PASSWORDS = st.text(st.characters(exclude_categories=()), min_size=6, max_size=20)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)


@st.composite
def texts_holding_a_password(draw: st.DrawFn) -> tuple[str, str]:
    """Any text holding a password in a URL's userinfo or as a secret query key's value: (text, password)."""
    password = draw(PASSWORDS)
    scheme, host, path = draw(SCHEMES), draw(HOSTS), draw(st.sampled_from(["", "/", "/c.jsonl"]) | ANY_TEXT)
    if draw(st.booleans()):
        address = f"{scheme}://{draw(ANY_TEXT)}:{password}@{host}{path}"
    else:
        pairs = draw(st.lists(st.tuples(ANY_TEXT, ANY_TEXT).map("=".join), max_size=3))
        address = f"{scheme}://{host}{path}?" + "&".join([*pairs, f"{draw(SECRET_KEYS)}={password}"])
    text = draw(ANY_TEXT) + address + draw(ANY_TEXT)
    assume(text.count(password) == 1 and password not in "***")
    return text, password


@pytest.mark.hostile
@hostile
@given(holding=texts_holding_a_password())
def test_no_password_in_a_userinfo_or_a_secret_query_ever_shows_whatever_surrounds_it(
    holding: tuple[str, str],
) -> None:
    text, password = holding

    assert password not in masked_url(text)


URL_PIECES = st.sampled_from(
    [
        "https://",
        "mysql://",
        "[",
        "]",
        "@",
        ":",
        "?",
        "#",
        "&",
        "=",
        "/",
        "%",
        "token",
        "\ud800",
        "\uff03",
        "\t",
    ]
)


@pytest.mark.hostile
@hostile
@given(text=st.lists(URL_PIECES | ANY_TEXT.map(lambda text: text[:3]), max_size=12).map("".join))
def test_masked_url_never_raises_whatever_the_text(text: str) -> None:
    assert isinstance(masked_url(text), str)

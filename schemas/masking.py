"""Secrets as they may be shown: every URL a log line, message, artifact or file shows goes through here."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query keys that carry a secret (password=, api_key=, X-Amz-Signature=, access_token=, sig=…).
SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token|key|sig|auth|credential", re.IGNORECASE)
WEB_SCHEMES = ("http", "https")
QUERY_KEY = re.compile(r"(?:^|[&?;])([^&?;=]*)")  # each key of a query, after whatever may begin a pair
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}(?=://)")  # how an address begins, as far as it is shown


def masked_url(url: str) -> str:
    """`url` with its secrets masked: a web URL's userinfo, a database URL's password, secret query values.

    Never raises. Anything that is not a URL (a file path, a bare name) is returned as it is, unless it holds
    an '@' or a secret query. Such a text, an address urlsplit cannot read (`https://[`), and a URL with an
    '@' past its host (where a user and password may hide) are shown as `<scheme>://***` or `***`.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [ or ], a host that NFKC would change
        return _unreadable(url)
    query = _masked_pairs(parts.query)
    fragment = _masked_pairs(parts.fragment) if query == parts.query else ""
    if not parts.scheme or not parts.netloc:
        plain = "@" not in url and (query, fragment) == (parts.query, parts.fragment)
        return url if plain else _unreadable(url)
    if "@" in parts.path + query + fragment:
        return _unreadable(url)
    return urlunsplit((parts.scheme, _masked_netloc(parts.scheme, parts.netloc), parts.path, query, fragment))


def _masked_netloc(scheme: str, netloc: str) -> str:
    """A netloc with its userinfo masked: all of it for the web, the password only for a database."""
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _ = userinfo.partition(":")
    return f"{MASK if scheme.lower() in WEB_SCHEMES else user + (f':{MASK}' if colon else '')}@{host}"


def _masked_pairs(text: str) -> str:
    """A query (or a fragment) as it is, or cut at its first secret key, whose value and the rest are ***.

    An & or # left unencoded in a password would otherwise let its end show as another pair or a fragment;
    a key is looked for after a ? or ; too, where a query within a query may hide one.
    """
    for pair in QUERY_KEY.finditer(text):
        if SECRET_QUERY_KEY.search(unquote_plus(pair.group(1))):
            return f"{text[: pair.end()]}={MASK}"
    return text


def _unreadable(url: str) -> str:
    """An address that cannot be shown safely: its scheme alone, or nothing of it."""
    scheme = SCHEME.match(url)
    return f"{scheme.group()}://{MASK}" if scheme else MASK

"""Secrets as they may be shown: every URL a log line, message, artifact or file shows goes through here."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query keys that carry a secret (password=, api_key=, X-Amz-Signature=, access_token=, sig=…).
SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token|key|sig|auth|credential", re.IGNORECASE)
WEB_SCHEMES = ("http", "https")


def masked_url(url: str) -> str:
    """`url` with its secrets masked: a web URL's userinfo, a database URL's password, secret query values.

    Anything that is not a URL (a file path, a bare name) is returned as it is.
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        web = parts.scheme.lower() in WEB_SCHEMES
        userinfo = MASK if web else user + (f":{MASK}" if colon else "")
    netloc = f"{userinfo}@{host}" if at else host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, MASK if SECRET_QUERY_KEY.search(key) else value) for key, value in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

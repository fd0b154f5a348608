"""Keep credentials out of everything ocitrace writes: reports, events, log lines.

Captures hold them verbatim (Authorization headers, cookies, tokens in token responses); what leaves
ocitrace shows only their scheme.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

REDACTED = "<redacted>"

# Headers whose value is a credential. Authorization keeps its scheme ("Bearer <redacted>").
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie",
                            "x-registry-auth", "x-auth-token", "private-token", "x-amz-security-token"})
SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Query keys that carry a credential: OAuth2 and token-auth URLs, presigned storage URLs (blob redirects).
SECRET_QUERY_KEYS = frozenset({"access_token", "token", "refresh_token", "password", "client_secret", "code",
                               "x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "sig",
                               "x-goog-signature", "x-goog-credential", "verify"})


# Headers whose value is a URL: a redirect to presigned storage carries its signature in the query.
URL_HEADERS = frozenset({"location", "content-location"})


def header_value(name: str, value: str) -> str:
    key = name.lower()
    if key in URL_HEADERS:
        return url(value)
    if key not in SECRET_HEADERS:
        return value
    if key in SCHEME_HEADERS and " " in value.strip():
        return f"{value.strip().split(' ', 1)[0]} {REDACTED}"
    return REDACTED


def headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, header_value(name, value)) for name, value in pairs]


def query(text: str) -> str:
    if not text:
        return text
    pairs = parse_qsl(text, keep_blank_values=True)
    if not any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
        return text
    return urlencode([(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe=":/<>")


def url(text: str) -> str:
    base, sep, rest = text.partition("?")
    return base + sep + query(rest) if sep else text

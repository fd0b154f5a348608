"""Keep credentials out of everything ocitrace writes from a capture: reports, events, JSON, log lines.

By design, not by list: a header or a query key keeps its value only when it is known to be harmless and is
what a report about registry traffic needs (the OCI and HTTP ones below). Every other value is masked, so a
vendor's new token header (X-JFrog-Art-Api, X-Api-Key, ...) or a presigned URL's new signing key never leaks.
Authorization keeps its scheme (`Bearer <redacted>`); Basic keeps its user name, never its password.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode

REDACTED = "<redacted>"

# Headers a report needs, whose values carry no secret.
SHOWN_HEADERS = frozenset({
    # HTTP
    "accept", "accept-encoding", "accept-ranges", "cache-control", "connection", "content-encoding",
    "content-length", "content-range", "content-type", "date", "etag", "expect", "host", "keep-alive",
    "last-modified", "location", "content-location", "range", "retry-after", "server", "strict-transport-security",
    "transfer-encoding", "user-agent", "vary", "via", "x-content-type-options", "age", "pragma", "expires",
    # OCI distribution and the Docker registry API
    "docker-content-digest", "docker-distribution-api-version", "docker-upload-uuid", "oci-subject",
    "oci-filters-applied", "oci-chunk-min-length", "link", "www-authenticate", "ratelimit-limit",
    "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy", "docker-ratelimit-source",
    "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
})
# Headers whose value is a URL: shown with its query redacted like any other.
URL_HEADERS = frozenset({"location", "content-location"})
SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Query keys a report needs (the spec's, token requests' scope and service, paging), whose values are no secret.
SHOWN_QUERY_KEYS = frozenset({"digest", "mount", "from", "n", "last", "artifacttype", "digest-algorithm", "ns",
                              "service", "scope", "account", "grant_type", "client_id", "offline_token", "tag"})
# Keys whose values are opaque state, not secrets, but long: shown shortened.
SHORTENED_QUERY_KEYS = frozenset({"_state"})
SHORT = 12


def _credential(value: str) -> str:
    """`Bearer <redacted>`; `Basic` with its user name kept when the value decodes, the password never."""
    scheme, _, secret = value.strip().partition(" ")
    if not secret:
        return REDACTED
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(secret.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError, ValueError):
            user = ""
        if user:
            return f"{scheme} {user}:{REDACTED}"
    return f"{scheme} {REDACTED}"


def header_value(name: str, value: str) -> str:
    key = name.lower()
    if key in URL_HEADERS:
        return url(value)
    if key in SHOWN_HEADERS:
        return value
    if key in SCHEME_HEADERS:
        return _credential(value)
    return REDACTED


def headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, header_value(name, value)) for name, value in pairs]


def _query_value(key: str, value: str) -> str:
    name = key.lower()
    if not value:
        return value
    if name in SHOWN_QUERY_KEYS:
        return value
    if name in SHORTENED_QUERY_KEYS:
        return value if len(value) <= SHORT else value[:SHORT] + "..."
    return REDACTED


def query(text: str) -> str:
    if not text:
        return text
    pairs = parse_qsl(text, keep_blank_values=True)
    shown = [(k, _query_value(k, v)) for k, v in pairs]
    if shown == pairs:
        return text
    return urlencode(shown, safe=":/<>", quote_via=quote)


def url(text: str) -> str:
    base, sep, rest = text.partition("?")
    return base + sep + query(rest) if sep else text

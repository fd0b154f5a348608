"""Keep credentials out of everything ocitrace writes from a capture: reports, events, JSON, log lines.

By design, not by list: a header or a query key keeps its value only when it is known to be harmless and is
what a report about registry traffic needs (the OCI and HTTP ones below). Every other value is masked, so a
vendor's new token header (X-JFrog-Art-Api, X-Api-Key, ...) or a presigned URL's new signing key never leaks.
Authorization keeps its scheme (`Bearer <redacted>`); Basic keeps its user name, never its password.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode

from .calls import METADATA_KEY, content_decoded
from .tokens import redacted_token

REDACTED = "<redacted>"
SOURCE_ADDRESS, SOURCE_ACCOUNT = "<an IP address>", "<an account>"
_REDACTED_BASIC = re.compile(r"[^\s:]*:" + re.escape(REDACTED))

# Headers a report needs, whose values carry no secret.
SHOWN_HEADERS = frozenset({
    # HTTP
    "accept", "accept-encoding", "accept-ranges", "cache-control", "connection", "content-encoding",
    "content-length", "content-range", "content-type", "date", "etag", "expect", "host", "keep-alive",
    "last-modified", "location", "content-location", "range", "retry-after", "server", "strict-transport-security",
    "transfer-encoding", "user-agent", "vary", "via", "x-content-type-options", "age", "pragma", "expires",
    # OCI distribution and the Docker registry API
    "docker-content-digest", "docker-distribution-api-version", "docker-upload-uuid", "oci-subject",
    "oci-filters-applied", "oci-chunk-min-length", "www-authenticate", "ratelimit-limit",
    "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy", "ratelimit",
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
    if secret == REDACTED or _REDACTED_BASIC.fullmatch(secret):  # redacted already (a shared flow file)
        return f"{scheme} {secret}"
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(secret.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError, ValueError):
            user = ""
        if user and ":" in base64.b64decode(secret.strip(), validate=True).decode("utf-8"):
            return f"{scheme} {user}:{REDACTED}"  # a value without its colon is a secret whole: nothing kept
    return f"{scheme} {REDACTED}"


def ratelimit_source(value: str) -> str:
    """Docker Hub's `docker-ratelimit-source` names who is counted (an IP address, an account id): its kind is
    kept, never the value."""
    if value in (SOURCE_ADDRESS, SOURCE_ACCOUNT):
        return value
    try:
        ipaddress.ip_address(value.strip())
        return SOURCE_ADDRESS
    except ValueError:
        return SOURCE_ACCOUNT


def _link(value: str) -> str:
    """A Link header's URLs with their queries redacted (`<url>; rel="next"`)."""
    return re.sub(r"<([^>]*)>", lambda m: f"<{url(m.group(1))}>", value)


def header_value(name: str, value: str) -> str:
    key = name.lower()
    if key == "link":
        return _link(value)
    if key == "docker-ratelimit-source":
        return ratelimit_source(value)
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


# --- whole flows (mitmproxy's flow state, as flow files store it) ---

# Top-level keys of a JSON body that carry a credential: token-endpoint answers (OAuth2, Docker token auth).
SECRET_BODY_KEYS = frozenset({"token", "access_token", "refresh_token", "id_token", "password", "client_secret",
                              "authorizationtoken", "secret", "secretaccesskey", "sessiontoken", "identitytoken",
                              "registrytoken", "auth", "api_key", "apikey"})
GRANT_KEYS = frozenset({"token", "access_token"})


def _header_pairs(pairs: object) -> object:
    if not isinstance(pairs, list | tuple):
        return pairs
    shown = []
    for pair in pairs:
        if isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(p, bytes) for p in pair):
            name, value = pair
            text = header_value(name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            shown.append([name, text.encode("utf-8", "surrogateescape")])
        else:
            shown.append(pair)
    return shown


def _path(path: object) -> object:
    if not isinstance(path, bytes):
        return path
    return url(path.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


_FORM = re.compile(rb"^[\w.%~+-]+=[^&\s]*(&[\w.%~+-]+=[^&\s]*)*$")


def _body(content: object, content_type: str, encoding: str = "") -> object:
    """A form's or a token answer's credentials masked, at any depth of a JSON body; any other body as it is
    (manifests, blobs). A gzip- or deflate-encoded body is redacted decoded, and stored so (decoded)."""
    if not isinstance(content, bytes) or not content or len(content) > 1 << 20:
        return content
    if encoding and encoding != "identity":
        decoded = content_decoded(content, encoding, 1 << 20)
        if decoded is None:
            return content
        shown = _body(decoded, content_type)
        return shown if shown != decoded else content
    if "x-www-form-urlencoded" in content_type or _FORM.match(content.strip()):
        return query(content.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    if content.lstrip()[:1] not in (b"{", b"["):
        return content
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):
        return content
    shown, changed = _masked(document)
    return json.dumps(shown).encode() if changed else content


def _secret(key: str, value: object) -> str:
    """A registry token keeps its claims, not its signature (the report shows what it granted); others go."""
    if key in GRANT_KEYS and isinstance(value, str):
        return redacted_token(value, REDACTED)
    return REDACTED


def _masked(value: object, depth: int = 0) -> tuple[object, bool]:
    """A JSON value with every secret key's value masked, however deep (ECR's authorizationData[].
    authorizationToken, an answer wrapping its token in `data`), keys in any case."""
    if depth > 32:
        return value, False
    if isinstance(value, dict):
        changed, shown = False, {}
        for key, item in value.items():
            name = str(key).lower()
            if name in SECRET_BODY_KEYS:
                shown[key], changed = _secret(name, item), True
            else:
                shown[key], inner = _masked(item, depth + 1)
                changed |= inner
        return shown, changed
    if isinstance(value, list):
        pairs = [_masked(item, depth + 1) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    return value, False


def _header(pairs: object, name: bytes) -> str:
    for pair in pairs if isinstance(pairs, list | tuple) else ():
        if isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], bytes) \
                and pair[0].lower() == name and isinstance(pair[1], bytes):
            return pair[1].decode("latin-1").strip().lower()
    return ""


def _content_type(pairs: object) -> str:
    return _header(pairs, b"content-type")


def flow_state(state: dict) -> dict:
    """A flow's state with what `headers`, `url` and token bodies would hide hidden: a flow file safe to share.
    The analysis reads a redacted flow as it reads the original (it needs no credential): a body made shorter
    keeps its measured size in the capture's metadata."""
    state = dict(state)
    metadata = dict(state["metadata"]) if isinstance(state.get("metadata"), dict) else {}
    measured = dict(metadata[METADATA_KEY]) if isinstance(metadata.get(METADATA_KEY), dict) else {}
    for side in ("request", "response"):
        message = state.get(side)
        if not isinstance(message, dict):
            continue
        message = dict(message)
        kind = _content_type(message.get("headers"))
        coding = _header(message.get("headers"), b"content-encoding")
        message["headers"] = _header_pairs(message.get("headers"))
        content = message.get("content")
        message["content"] = _body(content, kind, coding)
        if coding and message["content"] != content:  # stored decoded: its Content-Encoding goes
            message["headers"] = [p for p in message["headers"] if not (isinstance(p, list | tuple) and p
                                  and isinstance(p[0], bytes) and p[0].lower() == b"content-encoding")]
        if message["content"] != content and side not in measured:
            measured[side] = {"digest": None, "size": len(content), "complete": True}
        if side == "request":
            message["path"] = _path(message.get("path"))
        state[side] = message
    if measured:
        metadata[METADATA_KEY] = measured
        state["metadata"] = metadata
    return state


def _items(value: object) -> list:
    """The entries of a HAR list field, or none when a tool wrote something else there."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def har(document: dict) -> dict:
    """A HAR document with what the reports hide hidden: headers, cookies, URLs, query strings, form and token
    bodies (text or base64, at any depth). Manifests and other bodies are kept."""
    entries = ((document.get("log") or {}).get("entries")) if isinstance(document, dict) else None
    for entry in _items(entries):
        for side in ("request", "response"):
            message = entry.get(side)
            if not isinstance(message, dict):
                continue
            content_type = ""
            for header in _items(message.get("headers")):
                if isinstance(header.get("value"), str):
                    header["value"] = header_value(str(header.get("name", "")), header["value"])
                    if str(header.get("name", "")).lower() == "content-type":
                        content_type = header["value"].lower()
            for cookie in _items(message.get("cookies")):
                cookie["value"] = REDACTED
            for key in ("url", "redirectURL"):
                if isinstance(message.get(key), str):
                    message[key] = url(message[key])
            for pair in _items(message.get("queryString")):
                if isinstance(pair.get("value"), str):
                    pair["value"] = _query_value(str(pair.get("name", "")), pair["value"])
            body = message.get("postData") if side == "request" else message.get("content")
            if not isinstance(body, dict):
                continue
            kind = content_type or str(body.get("mimeType", ""))
            if isinstance(body.get("text"), str):
                if body.get("encoding") == "base64":  # Charles, Chrome, ocitrace's own export: binary bodies
                    try:
                        raw = base64.b64decode(body["text"], validate=False)
                    except (binascii.Error, ValueError):
                        raw = None
                    if raw is not None and (shown := _body(raw, kind)) != raw:
                        body["text"] = base64.b64encode(shown).decode()
                else:
                    text = body["text"].encode("utf-8", "surrogateescape")
                    body["text"] = _body(text, kind).decode("utf-8", "surrogateescape")
            for param in _items(body.get("params")):
                if isinstance(param.get("value"), str):
                    param["value"] = _query_value(str(param.get("name", "")), param["value"])
    return document

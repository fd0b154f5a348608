"""One HTTP exchange as ocitrace sees it, whichever capture (flow file, HAR, live proxy) it came from."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from sys import intern
from typing import Any
from urllib.parse import urljoin, urlsplit

# Key under which the live addon leaves what it measured on a flow (flow.metadata); it survives
# in flow files, so an offline analysis of a live capture sees the same digests.
METADATA_KEY = "ocitrace"
DEFAULT_PORTS = {"https": 443, "http": 80}
# Registries accept manifests of at least 4 MiB (distribution-spec); a body past twice that is checked, not decoded.
DECODE_LIMIT = 8 << 20
_ABSENT = object()


class Headers:
    """Ordered header pairs with case-insensitive lookup."""

    __slots__ = ("_pairs", "_first")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self._pairs = tuple((str(k), str(v)) for k, v in pairs)
        self._first: dict[str, str] | None = None  # lower-cased name -> its first value, made on the first get

    @classmethod
    def trusted(cls, pairs: tuple[tuple[str, str], ...]) -> Headers:
        """Headers from pairs already of text (a reader made them so): nothing converted."""
        headers = cls.__new__(cls)
        headers._pairs, headers._first = pairs, None
        return headers

    def forget_index(self) -> None:
        """Let the lookup index go (it is made again on the next `get`), and share each name's string with
        every other call that sends it: what an analysis keeps of a call, of many (memory, not speed)."""
        self._first = None
        self._pairs = tuple([(intern(name), value) for name, value in self._pairs])

    def _index(self) -> dict[str, str]:
        """Each lower-cased name's first value (the pairs, last first), made on the first lookup."""
        first = self._first
        if first is None:
            first = self._first = {key.lower(): value for key, value in reversed(self._pairs)}
        return first

    def names(self):
        """The names sent, in lower case (a set-like view)."""
        return self._index().keys()

    def values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._pairs if key.lower() == name]

    def get(self, name: str, default: str | None = None) -> str | None:
        first = self._first
        if first is None:  # (`_index`, inline: a call's headers are looked up some ten times each analysis)
            first = self._index()
        value = first.get(name, _ABSENT)  # most names are asked for in lower case already
        if value is _ABSENT:
            lowered = name.lower()
            return first.get(lowered, default) if lowered != name else default
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._pairs == other._pairs

    def __repr__(self) -> str:
        return f"Headers({list(self._pairs)!r})"


@dataclass(frozen=True)
class BodyTap:
    """What the live proxy measured of a body it streamed without keeping it; or, `captured`, what the reader of a
    flow file measured of a large body the capture held whole (analysed as that body, not carried to the analysis)."""

    digest: str | None
    size: int
    complete: bool = True
    captured: bool = False

    @classmethod
    def from_state(cls, state: Any) -> BodyTap | None:
        if not isinstance(state, Mapping) or not isinstance(state.get("size"), int):
            return None
        digest = state.get("digest")
        return cls(digest=digest if isinstance(digest, str) else None, size=state["size"],
                   complete=state.get("complete", True) is not False)

    def to_state(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, "complete": self.complete}


@dataclass(frozen=True)
class CaptureMeta:
    """What the live proxy records on a flow (`flow.metadata["ocitrace"]`), kept in flow files.

    The name the client asked for when the upstream was mapped, and what the stream taps measured of the
    bodies (and of a whole upload session, on the call that closed it).
    """

    client_host: str | None = None
    client_scheme: str | None = None
    client_port: int | None = None
    request: BodyTap | None = None
    response: BodyTap | None = None
    session: BodyTap | None = None

    @classmethod
    def from_state(cls, state: Any) -> CaptureMeta:
        if not isinstance(state, Mapping):
            return cls()
        host, scheme, port = state.get("client_host"), state.get("client_scheme"), state.get("client_port")
        return cls(
            client_host=host if isinstance(host, str) and host else None,
            client_scheme=scheme if isinstance(scheme, str) and scheme else None,
            client_port=port if isinstance(port, int) and not isinstance(port, bool) else None,
            request=BodyTap.from_state(state.get("request")),
            response=BodyTap.from_state(state.get("response")),
            session=BodyTap.from_state(state.get("session")),
        )

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name in ("client_host", "client_scheme", "client_port"):
            if getattr(self, name) is not None:
                state[name] = getattr(self, name)
        for name in ("request", "response", "session"):
            tap = getattr(self, name)
            if tap is not None:
                state[name] = tap.to_state()
        return state


@dataclass(slots=True)
class Call:
    """An HTTP request and its answer (or the error that ended it).

    A body is None when the capture did not keep it (streamed); b"" when it was empty. Nothing changes a Call
    once made (`dataclasses.replace` makes another); it is not frozen only because a frozen dataclass's
    `__init__` sets each of its 19 fields through `object.__setattr__`, ~5 µs against ~1 µs, and a large
    capture makes one per flow, twice when workers read it.
    """

    method: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: str = ""
    status: int | None = None
    request_headers: Headers = field(default_factory=Headers)
    response_headers: Headers = field(default_factory=Headers)
    request_body: bytes | None = None
    response_body: bytes | None = None
    timestamp: float | None = None
    end: float | None = None  # when the answer (or the error) ended
    error: str | None = None
    source: str = ""
    request_tap: BodyTap | None = None
    response_tap: BodyTap | None = None
    session_tap: BodyTap | None = None
    upstream: str | None = None

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.authority}"

    @property
    def authority(self) -> str:
        """The registry as an image reference names it: its host, and its port unless the scheme's own
        (`registry.lab:5000`): two ports of one host are two registries."""
        return authority_of(self.scheme, self.host, self.port)

    @property
    def url(self) -> str:
        return self.origin + self.path + (f"?{self.query}" if self.query else "")

    @property
    def duration(self) -> float | None:
        """Seconds from the request's start to the end of its answer."""
        if self.timestamp is None or self.end is None:
            return None
        return round(max(self.end - self.timestamp, 0.0), 6)

    @property
    def request_size(self) -> int | None:
        return _body_size(self.request_body, self.request_tap, self.request_headers)

    @property
    def response_size(self) -> int | None:
        if self.method == "HEAD":
            return 0 if self.status is not None else None
        return _body_size(self.response_body, self.response_tap, self.response_headers)


def authority_of(scheme: str, host: str, port: int | None) -> str:
    """host[:port] as a URL writes it: an IPv6 address bracketed, the scheme's own port left out."""
    host = host if ":" not in host else url_host(host)
    return host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def redirected(status: int | None) -> bool:
    """Whether an answer is a redirect (3xx): its Location is where the client goes next."""
    return status is not None and 300 <= status < 400


def origin_and_path(url: str) -> str:
    """scheme://host[:port]/path as Call.origin + Call.path print it (no default port, no query)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{authority_of(parts.scheme, parts.hostname or '', port)}{parts.path}"


def resolved(base: str, reference: str) -> str | None:
    """scheme://host/path of `reference` (a Location, a realm) read against `base`; None for a URL that cannot be
    one."""
    try:
        return origin_and_path(urljoin(base, reference))
    except ValueError:
        return None


def url_host(host: str) -> str:
    """A host as a URL writes it: an IPv6 address in brackets (RFC 3986, 3.2.2)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def content_length(value: str | None) -> int | None:
    """A Content-Length header's value, when it is one (ASCII digits of a sane length)."""
    if value and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _body_size(body: bytes | None, tap: BodyTap | None, headers: Headers) -> int | None:
    # What was measured as the body passed comes first: a body kept in a redacted flow file is shorter.
    if tap is not None:
        return tap.size
    if body is not None:
        return len(body)
    return content_length(headers.get("content-length"))


def content_decoded(body: bytes, coding: str, limit: int) -> bytes | None:
    """A body with its Content-Encoding (gzip, deflate) undone, at most `limit` bytes of it; None for a coding
    ocitrace cannot undo, a damaged one, or one that unpacks past the limit."""
    import zlib

    if coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        decoder = zlib.decompressobj()
    else:
        return None
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error:
        return None
    return data if len(data) <= limit and decoder.eof else None


def json_object(body: bytes | None) -> dict | None:
    """A body that is a JSON object, parsed; None for any other body (none, not JSON, an array, too deep)."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return None
    return document if isinstance(document, dict) else None

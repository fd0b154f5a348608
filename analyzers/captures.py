"""Read saved captures into Calls: mitmproxy flow files and HAR files, told apart by their content.

Flow files are read with a small tnetstring reader of our own, one flow at a time, so memory stays flat
and a damaged file still yields every flow before the damage.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .calls import METADATA_KEY, BodyTap, Call, Headers

FLOW_FORMAT_VERSION = 21  # mitmproxy 12's flow format; older files are migrated by mitmproxy itself


class CaptureError(Exception):
    """A capture that could not be read to its end. `calls` holds what was read before the damage."""

    def __init__(self, path: str, message: str, calls: Iterable[Call] = ()):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.calls = list(calls)


@dataclass
class CaptureSet:
    """Calls of one or more captures, in time order, and the files that could not be read whole."""

    calls: list[Call] = field(default_factory=list)
    errors: list[CaptureError] = field(default_factory=list)


# --- tnetstrings (the mitmproxy flow file format: one tnetstring per flow, back to back) ---

class _Truncated(Exception):
    pass


def _parse(data: memoryview, pos: int) -> tuple[Any, int]:
    colon = pos
    while data[colon] != 0x3A:  # ':'
        if colon - pos > 12 or not 0x30 <= data[colon] <= 0x39:
            raise ValueError(f"bad length prefix at byte {pos}")
        colon += 1
    length = int(bytes(data[pos:colon]))
    end = colon + 1 + length
    if end >= len(data):
        raise _Truncated
    payload, tag = data[colon + 1 : end], data[end]
    nxt = end + 1
    if tag == 0x2C:  # ',' bytes
        return bytes(payload), nxt
    if tag == 0x3B:  # ';' text
        return str(payload, "utf-8", "surrogateescape"), nxt
    if tag == 0x23:  # '#' integer
        return int(bytes(payload)), nxt
    if tag == 0x5E:  # '^' float
        return float(bytes(payload)), nxt
    if tag == 0x21:  # '!' boolean
        return bytes(payload) == b"true", nxt
    if tag == 0x7E:  # '~' null
        return None, nxt
    if tag == 0x5D:  # ']' list
        items, i = [], 0
        while i < length:
            item, j = _parse(payload, i)
            items.append(item)
            i = j
        return items, nxt
    if tag == 0x7D:  # '}' dict; keys are text
        obj, i = {}, 0
        while i < length:
            key, i = _parse(payload, i)
            value, i = _parse(payload, i)
            obj[key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key] = value
        return obj, nxt
    raise ValueError(f"unknown tnetstring type {chr(tag)!r}")


def iter_tnetstrings(fh: BinaryIO) -> Iterator[tuple[Any, int]]:
    """Yield (object, end offset) for each top-level tnetstring in a stream, reading one at a time."""
    offset = 0
    while True:
        prefix = b""
        while not prefix.endswith(b":"):
            byte = fh.read(1)
            if not byte:
                if prefix:
                    raise _Truncated
                return
            if not byte.isdigit() and byte != b":" or len(prefix) > 12:
                raise ValueError(f"bad length prefix at byte {offset}")
            prefix += byte
        length = int(prefix[:-1])
        rest = fh.read(length + 1)
        if len(rest) < length + 1:
            raise _Truncated
        obj, _ = _parse(memoryview(prefix + rest), 0)
        offset += len(prefix) + len(rest)
        yield obj, offset


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def _headers(pairs: Iterable[Any] | None) -> Headers:
    return Headers((_text(k), _text(v)) for k, v in (pairs or ()))


def _migrate(state: dict[str, Any]) -> dict[str, Any]:
    """Older flow formats are upgraded by mitmproxy; newer ones are read as they are (the fields ocitrace
    reads have been stable for many versions)."""
    version = state.get("version")
    if not isinstance(version, int) or version >= FLOW_FORMAT_VERSION:
        return state
    from mitmproxy.io import compat  # only for files written by another mitmproxy version

    return compat.migrate_flow(state)


def call_from_state(state: Mapping[str, Any], source: str = "") -> Call | None:
    """A Call from a flow's state (what `flow.get_state()` returns and flow files store); None unless HTTP."""
    if state.get("type") != "http" or not state.get("request"):
        return None
    req, resp, err = state["request"], state.get("response") or None, state.get("error") or None
    meta = (state.get("metadata") or {}).get(METADATA_KEY) or {}
    req_headers = _headers(req.get("headers"))
    path_and_query = _text(req.get("path"))
    path, _, query = path_and_query.partition("?")
    host, port, scheme, upstream = _asked_for(req, req_headers, meta, state.get("client_conn") or {})
    return Call(
        method=_text(req.get("method")).upper(),
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        query=query,
        status=resp.get("status_code") if resp else None,
        request_headers=req_headers,
        response_headers=_headers(resp.get("headers")) if resp else Headers(),
        request_body=req.get("content"),
        response_body=resp.get("content") if resp else None,
        timestamp=req.get("timestamp_start") or state.get("timestamp_created"),
        error=_text(err.get("msg")) if err else None,
        source=source,
        request_tap=BodyTap.from_state(meta.get("request")),
        response_tap=BodyTap.from_state(meta.get("response")),
        session_tap=BodyTap.from_state(meta.get("session")),
        upstream=upstream,
    )


def _asked_for(req: Mapping[str, Any], headers: Headers, meta: Mapping[str, Any],
               client_conn: Mapping[str, Any]) -> tuple[str, int | None, str, str | None]:
    """(host, port, scheme) the client asked for, and the upstream the call went to when that differs.

    The live proxy records what it remapped. A plain mitmproxy capture remapped with map_remote keeps only
    the TLS server name the client sent: when it names another host than the request, it is the one asked.
    """
    target = f"{_text(req.get('scheme'))}://{_text(req.get('host'))}:{req.get('port')}"
    if meta.get("client_host"):
        host, port = _split_host(meta["client_host"], meta.get("client_port", req.get("port")))
        return host, port, meta.get("client_scheme") or "https", target
    sni = _text(client_conn.get("sni"))
    if sni and client_conn.get("tls") and sni.lower() != _text(req.get("host")).lower():
        return sni, 443, "https", target
    host, port = _split_host(_text(req.get("authority")) or headers.get("host") or _text(req.get("host")),
                             req.get("port"))
    return host, port, _text(req.get("scheme")) or "http", None


def _split_host(authority: str, fallback_port: Any) -> tuple[str, int | None]:
    port = fallback_port if isinstance(fallback_port, int) else None
    if authority.startswith("["):  # [::1]:5000
        host, _, rest = authority[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else port
    host, sep, maybe_port = authority.rpartition(":")
    if sep and maybe_port.isdigit():
        return host, int(maybe_port)
    return authority, port


def read_flow_file(path: str | Path) -> Iterator[Call]:
    """Calls from a mitmproxy flow file, one flow at a time. Raises CaptureError at damage."""
    name, count, offset = str(path), 0, 0
    with open(path, "rb") as fh:
        size = Path(path).stat().st_size
        try:
            for state, end in iter_tnetstrings(fh):
                offset = end
                if not isinstance(state, dict):
                    raise ValueError("a flow is not a dictionary")
                call = call_from_state(_migrate(state), name)
                count += 1
                if call is not None:
                    yield call
        except _Truncated:
            raise CaptureError(name, f"truncated after {count} flows (byte {offset} of {size})") from None
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise CaptureError(name, f"damaged after {count} flows (byte {offset} of {size}): {exc}") from None


# --- HAR (as mitmproxy's save.har and browsers write it) ---

def _har_body(content: Mapping[str, Any] | None) -> bytes | None:
    if not content:
        return None
    text = content.get("text")
    if text is None:
        return b"" if not content.get("size") else None
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    data = text.encode("utf-8", "surrogateescape")
    # A body saved empty while its size says otherwise was streamed past the recorder.
    return None if not data and content.get("size", 0) > 0 else data


def _har_time(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _unless_lost(body: bytes | None, headers: Headers) -> bytes | None:
    """An empty HAR body whose Content-Length says otherwise was not recorded (streamed), not empty."""
    length = headers.get("content-length") or ""
    if body == b"" and length.isdigit() and int(length) > 0:
        return None
    return body


def call_from_har_entry(entry: Mapping[str, Any], source: str = "") -> Call:
    req, resp = entry["request"], entry.get("response") or {}
    url = urlsplit(req["url"])
    status = resp.get("status")
    headers = Headers((h["name"], h["value"]) for h in req.get("headers", ()))
    resp_headers = Headers((h["name"], h["value"]) for h in resp.get("headers", ()))
    host = next((v for k, v in headers if k.lower() in (":authority", "host")), url.netloc)
    host, port = _split_host(host, url.port or {"https": 443, "http": 80}.get(url.scheme))
    post = req.get("postData")
    if post:
        request_body = _har_body({"text": post.get("text"), "size": req.get("bodySize", 0)})
    else:
        request_body = b"" if req.get("bodySize", 0) in (0, -1) else None
    return Call(
        method=str(req["method"]).upper(),
        scheme=url.scheme,
        host=host,
        port=port,
        path=url.path or "/",
        query=url.query,
        status=status if isinstance(status, int) and status > 0 else None,
        request_headers=headers,
        response_headers=resp_headers,
        request_body=_unless_lost(request_body, headers),
        response_body=_unless_lost(_har_body(resp.get("content")), resp_headers),
        timestamp=_har_time(entry.get("startedDateTime")),
        error=resp.get("_error") or (None if isinstance(status, int) and status > 0 else "no response"),
        source=source,
    )


def read_har_file(path: str | Path) -> Iterator[Call]:
    name = str(path)
    try:
        with open(path, "rb") as fh:
            har = json.loads(fh.read().decode("utf-8-sig"))
        entries = har["log"]["entries"]
    except UnicodeDecodeError:
        raise CaptureError(name, "is not UTF-8 text, so not a HAR file") from None
    except json.JSONDecodeError as exc:
        raise CaptureError(name, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (KeyError, TypeError):
        raise CaptureError(name, "is JSON but not HAR (no log.entries)") from None
    for i, entry in enumerate(entries):
        try:
            yield call_from_har_entry(entry, name)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise CaptureError(name, f"entry {i} is not a HAR request/response ({exc!r})") from None


# --- any capture ---

def capture_format(path: str | Path) -> str:
    """'har', 'flows' or 'empty', by the file's first meaningful byte. Raises CaptureError otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise CaptureError(str(path), f"cannot be read ({exc.strerror})") from None
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head:
        return "empty"
    if head[:1] == b"{":
        return "har"
    if head[:1].isdigit():
        return "flows"
    raise CaptureError(str(path), "is neither a mitmproxy flow file nor a HAR file")


_READERS = {"har": read_har_file, "flows": read_flow_file, "empty": lambda path: iter(())}


def read_capture(path: str | Path) -> Iterator[Call]:
    return _READERS[capture_format(path)](path)


def read_captures(paths: Iterable[str | Path]) -> CaptureSet:
    """All calls of several captures as one session in time order. Each file keeps its own order (the
    order its calls completed in), and files are interleaved by when their calls started."""
    result = CaptureSet()
    per_file: list[list[tuple[float, Call]]] = []
    for path in paths:
        calls: list[Call] = []
        try:
            calls.extend(read_capture(path))
        except CaptureError as exc:
            exc.calls = calls
            result.errors.append(exc)
        keyed, last = [], 0.0
        for call in calls:
            last = call.timestamp if call.timestamp is not None else last
            keyed.append((last, call))
        per_file.append(keyed)
    result.calls = [call for _, call in heapq.merge(*per_file, key=lambda item: item[0])]
    return result

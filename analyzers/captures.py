"""Read saved captures into Calls: mitmproxy flow files, HAR files and ocitrace's own events.jsonl, told
apart by their content.

Flow files are read with a tnetstring reader of our own (tnetstrings.py), one flow at a time from a memory map,
parsing only the fields the analysis reads: memory stays flat, it runs several times faster than mitmproxy's
FlowReader, and a damaged file still yields every flow before the damage.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import tnetstrings
from .calls import (
    DECODE_LIMIT,
    DEFAULT_PORTS,
    METADATA_KEY,
    BodyTap,
    Call,
    CaptureMeta,
    Headers,
    content_length,
    redirected,
    resolved,
    url_host,
)
from .digests import Digest, algorithm_of
from .endpoints import default_table
from .findings import Finding
from .recent import Recent

FLOW_FORMAT_VERSION = 21  # mitmproxy 12's flow format; older files are migrated by mitmproxy itself


class CaptureError(Exception):
    """A capture that could not be read to its end: `finding` says why (a `capture-*` code and its values),
    `calls` holds what was read before the damage."""

    def __init__(self, path: str, code: str, calls: Iterable[Call] = (), **values: Any):
        self.path = path
        self.finding = Finding.of(code, **values)
        self.calls = list(calls)
        super().__init__(f"{path}: {code} {values}")


@dataclass
class CaptureSet:
    """Calls of one or more captures, in time order; the files that could not be read whole; and what
    else the reading noticed (an empty file, a file given twice), as (path, finding)."""

    calls: list[Call] = field(default_factory=list)
    errors: list[CaptureError] = field(default_factory=list)
    notices: list[tuple[str, Finding]] = field(default_factory=list)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def headers_from_pairs(pairs: Any) -> Headers:
    if not isinstance(pairs, list | tuple):
        return Headers()
    if all(type(pair) is tuple and type(pair[0]) is str and type(pair[1]) is str for pair in pairs):
        return Headers.trusted(tuple(pairs))  # as tnetstrings._pairs reads them: text already
    if all(type(pair) is tuple and len(pair) == 2 and type(pair[0]) is bytes and type(pair[1]) is bytes
           for pair in pairs):  # as a live flow holds them
        return Headers.trusted(tuple((k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                                     for k, v in pairs))
    return Headers((_text(pair[0]), _text(pair[1])) for pair in pairs
                   if isinstance(pair, list | tuple) and len(pair) == 2)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    """A finite number, or None: a capture's NaN, infinity or 400-digit time is no time at all."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _body(value: Any) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _migrate(state: dict[str, Any]) -> dict[str, Any]:
    """Older flow formats are upgraded by mitmproxy; newer ones are read as they are (the fields ocitrace
    reads have been stable for many versions)."""
    version = state.get("version")
    if not isinstance(version, int) or version >= FLOW_FORMAT_VERSION:
        return state
    from mitmproxy.io import compat  # only for files written by another mitmproxy version

    return compat.migrate_flow(state)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def call_from_state(state: Mapping[str, Any], source: str = "") -> Call | None:
    """A Call from a flow's state (as flow files store it); None unless HTTP."""
    if state.get("type") != "http" or not isinstance(state.get("request"), Mapping):
        return None
    req, resp, err = state["request"], _mapping(state.get("response")), _mapping(state.get("error"))
    meta = CaptureMeta.from_state(_mapping(state.get("metadata")).get(METADATA_KEY))
    req_headers = headers_from_pairs(req.get("headers"))
    path, _, query = _text(req.get("path")).partition("?")
    client_conn = _mapping(state.get("client_conn"))
    target = Target(_text(req.get("scheme")), _text(req.get("host")), _int(req.get("port")),
                    _text(req.get("authority")))
    host, port, scheme, upstream = asked_for(target, req_headers, meta, _text(client_conn.get("sni")),
                                             client_conn.get("tls") is True)
    return Call(
        method=_text(req.get("method")).upper(),
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        query=query,
        status=_int(resp.get("status_code")) if resp else None,
        request_headers=req_headers,
        response_headers=headers_from_pairs(resp.get("headers")) if resp else Headers(),
        request_body=_body(req.get("content")),
        response_body=_body(resp.get("content")) if resp else None,
        timestamp=_float(req.get("timestamp_start")) or _float(state.get("timestamp_created")),
        end=_float(resp.get("timestamp_end")) if resp else _float(err.get("timestamp")),
        error=_text(err.get("msg")) if err else None,
        source=source,
        request_tap=meta.request,
        response_tap=meta.response,
        session_tap=meta.session,
        upstream=upstream,
    )


@dataclass(frozen=True)
class Target:
    """Where a request went: the upstream (after any mapping) and the authority the request line named."""

    scheme: str
    host: str
    port: int | None
    authority: str = ""


def asked_for(target: Target, headers: Headers, meta: CaptureMeta, sni: str = "",
              tls: bool = False) -> tuple[str, int | None, str, str | None]:
    """(host, port, scheme) the client asked for, and the upstream the call went to when that differs.

    The live proxy records what it remapped. A plain mitmproxy capture remapped with map_remote keeps only
    the TLS server name the client sent: when it names another host than the request, it is the one asked.
    The live proxy and the flow-file reader both decide it here.
    """
    upstream = f"{target.scheme}://{url_host(target.host)}:{target.port}"
    if meta.client_host:
        host, port = _split_host(meta.client_host, meta.client_port or target.port)
        return host, port, meta.client_scheme or "https", upstream
    if sni and tls and sni.lower() != target.host.lower():
        return sni, 443, "https", upstream
    host, port = _split_host(target.authority or headers.get("host") or target.host, target.port)
    return host, port, target.scheme or "http", None


def _split_host(authority: str, fallback_port: int | None) -> tuple[str, int | None]:
    port = fallback_port
    if authority.startswith("["):  # [::1]:5000
        host, _, rest = authority[1:].partition("]")
        digits = rest[1:]
        return host, int(digits) if rest.startswith(":") and digits.isascii() and digits.isdigit() \
            and len(digits) <= 5 else port
    host, sep, maybe_port = authority.rpartition(":")
    if sep and maybe_port.isascii() and maybe_port.isdigit() and len(maybe_port) <= 5:
        return host, int(maybe_port)
    return authority, port


def read_flow_file(path: str | Path, workers: int = 1, progress: Progress | None = None,
                   bodies: bool = False) -> Iterator[Call]:
    """Calls from a mitmproxy flow file, one flow at a time, reading only the fields the analysis needs.
    `workers` > 1: a large file is read by that many processes, in chunks, and yielded in order. Raises
    CaptureError at damage (every call before it yielded first). `progress` is told how many bytes are read.
    `bodies`: every body as the file holds it (for a HAR export); else one past DECODE_LIMIT is measured
    (`_measured`)."""
    name, size = str(path), Path(path).stat().st_size
    if workers > 1 and size >= PARALLEL_FROM:
        yield from _read_in_parallel(path, name, size, workers, progress, bodies)
        return
    with tnetstrings.mapped(path) as buf:  # small: in order, in this process
        yield from _read_flows(buf, name, size, progress=progress, bodies=bodies)


Progress = Callable[[int], None]  # told the offset a flow file is read up to

# Files this large are worth worker processes (their start-up and the calls' trip back cost ~0.2 s).
PARALLEL_FROM = 32 << 20
CHUNK_FLOWS = 1000
# The first chunks are smaller, so that the analysis has its first calls at once (a chunk of 1,000 flows takes a
# worker ~0.2 s), while the workers get ahead.
FIRST_CHUNKS = (50, 100, 200, 500)


def _call_of(buf, state: Any, offset: int, name: str) -> Call | None:
    if not isinstance(state, dict):
        raise ValueError("a flow is not a dictionary")
    version = state.get("version")
    if isinstance(version, int) and version < FLOW_FORMAT_VERSION:  # an older mitmproxy's: read whole, migrated
        state = _migrate(tnetstrings.parse(buf, offset)[0])
    later = state.get("client_conn")
    if isinstance(later, tnetstrings.Later):  # needed only when ocitrace did not record what the client asked
        recorded = _mapping(_mapping(state.get("metadata")).get(METADATA_KEY)).get("client_host")
        state["client_conn"] = {} if recorded else tnetstrings.client_conn(buf, later)
    return call_from_state(state, name)


def _measured(call: Call, redirects: Recent[str, str]) -> Call:
    """A call whose answer is a body past DECODE_LIMIT (a layer, as `mitmdump -w` keeps it) with that body
    measured here, by the reader, and let go: carried to the analysis, a capture's blobs cost their size in memory
    again and again, and hashing them there kept one core busy. The analysis checks it as it would the body.
    `redirects`: where the blob redirects this reader read just before sent the client (see `_algorithm`)."""
    status = call.status
    if redirected(status):
        _remember(call, redirects)
        return call
    body = call.response_body
    if body is None or len(body) <= DECODE_LIMIT or call.response_tap is not None:
        return call
    if status is None or not 200 <= status < 300:
        return call  # an error's body is read for its error codes
    if (call.response_headers.get("content-encoding") or "identity").strip().lower() != "identity":
        return call  # its digest is of the content decoded: left to the analysis
    algorithm = _algorithm(call, redirects)
    if algorithm is None:
        return call
    digest = Digest.of(body, algorithm)
    call.response_body, call.response_tap = None, BodyTap(str(digest), len(body), True, captured=True)
    return call


def _remember(call: Call, redirects: Recent[str, str]) -> None:
    """Where a blob's redirect sends the client, with the algorithm of the digest it names: what the analysis
    learns of it (a row that `teaches: redirect`)."""
    classification = default_table().classify(call.method, call.path, call.query)
    endpoint, location = classification.endpoint, call.response_headers.get("location")
    algorithm = algorithm_of(classification.digest) if classification.digest else None
    if endpoint is not None and endpoint.teaches == "redirect" and location and algorithm:
        target = resolved(call.url, location)
        if target:
            redirects[target] = algorithm


def _algorithm(call: Call, redirects: Recent[str, str]) -> str | None:
    """The algorithm the analysis hashes this body in, where the reader can know it: the digest a row of the table
    reads in the URL (a blob or a manifest by digest), or, for a URL no row knows, the digest of the blob whose
    redirect, read just before, sent the client there (a storage URL). None, left to the analysis: a URL naming no
    digest (a manifest by tag, a token), or one a redirect this reader did not read may have led to (in the chunk
    before, in another capture read with this one)."""
    table = default_table()
    classification = table.classify(call.method, call.path, call.query)
    if classification.endpoint is not None:
        return algorithm_of(classification.digest) if classification.digest else None
    url = call.origin + call.path
    algorithm = redirects.get(url)
    if algorithm is None:
        return None
    learned = table.classify(call.method, call.path, call.query, url=url, learned={"redirect": {url}}).endpoint
    return algorithm if learned is not None and learned.learned_from == "redirect" else None


# How many redirects a reader remembers: a client follows one at once, so the call it leads to comes right after.
REDIRECTS = 1024


def _read_flows(buf, name: str, size: int, offset: int = 0, count: int = 0, end: int | None = None,
                progress: Progress | None = None, bodies: bool = False) -> Iterator[Call]:
    try:
        stop = len(buf) if end is None else end
        held = offset  # pages read from here on are still held (let go in steps)
        redirects: Recent[str, str] = Recent(REDIRECTS)
        while offset < stop:
            state, after, flow, at = tnetstrings.flow_fields(buf, offset)
            call = _call_of(flow, state, at, name)
            if call is not None and not bodies:
                call = _measured(call, redirects)
            offset, count = after, count + 1
            if offset - held >= tnetstrings.LET_GO_EVERY:
                held = tnetstrings.let_go(buf, held, offset)
            if progress is not None:
                progress(offset)
            if call is not None:
                yield call
    except tnetstrings.Truncated:
        raise CaptureError(name, "capture-truncated", flows=count, offset=offset, size=size) from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, UnicodeDecodeError,
            RecursionError) as exc:
        raise CaptureError(name, "capture-damaged", flows=count, offset=offset, size=size,
                           detail=type(exc).__name__) from None


def _chunks(buf) -> Iterator[tuple[int, int | None, int]]:
    """The file's flows in chunks for the workers: (where it starts, where it ends, its first flow's index), found
    stepping from length to length while the workers read the chunks before. Where a flow's length cannot be
    read (damage), a last chunk from the start of its own, with no end: read in order, damage is told where it is."""
    pos, size, held, count = 0, len(buf), 0, 0
    sizes = iter(FIRST_CHUNKS)
    while pos < size:
        start, first, flows = pos, count, next(sizes, CHUNK_FLOWS)
        try:
            while pos < size and count - first < flows:
                pos = tnetstrings.skip(buf, pos)
                count += 1
                if pos - held >= tnetstrings.LET_GO_EVERY:
                    held = tnetstrings.let_go(buf, held, pos)
        except (tnetstrings.Truncated, ValueError):
            yield start, None, first
            return
        yield start, pos, first


def _read_chunk(path: str, name: str, start: int, end: int, bodies: bool) -> list[tuple] | None:
    """A worker's part: the calls of the flows from `start` to `end`, packed (bodies are sent back with them);
    None when a flow there is damaged."""
    try:
        with tnetstrings.mapped(path) as buf:
            return [_packed(call) for call in _read_flows(buf, name, len(buf), start, 0, end, bodies=bodies)]
    except CaptureError:
        return None


# A call's trip back from a worker, pickled, cost ~50 µs (dump and load) as a Call, most of it per object (its
# dataclasses' reduce, a tuple per header): packed as a tuple of its fields, each side's headers one string and
# each tap a tuple, it costs ~14 µs, unpacking included.
_FIELDS = tuple(f.name for f in fields(Call))
_HEADERS = frozenset({"request_headers", "response_headers"})
_TAPS = frozenset({"request_tap", "response_tap", "session_tap"})
_HEADERS_AT = tuple(i for i, name in enumerate(_FIELDS) if name in _HEADERS)
_TAPS_AT = tuple(i for i, name in enumerate(_FIELDS) if name in _TAPS)
_SEP = "\0"


def _packed(call: Call) -> tuple:
    values = [getattr(call, name) for name in _FIELDS]
    for i in _HEADERS_AT:
        pairs = tuple(values[i])
        joined = _SEP.join([part for pair in pairs for part in pair])
        # a NUL inside a name or value (a hostile capture) would split wrong: those go as pairs
        values[i] = joined if pairs and joined.count(_SEP) == 2 * len(pairs) - 1 else pairs
    for i in _TAPS_AT:
        tap = values[i]
        if tap is not None:
            values[i] = (tap.digest, tap.size, tap.complete, tap.captured)
    return tuple(values)


def _unpacked(packed: tuple) -> Call:
    values = list(packed)
    for i in _HEADERS_AT:
        value = values[i]
        if type(value) is str:
            parts = value.split(_SEP)
            value = tuple(zip(parts[::2], parts[1::2], strict=True))
        values[i] = Headers.trusted(value)
    for i in _TAPS_AT:
        if values[i] is not None:
            values[i] = BodyTap(*values[i])
    return Call(*values)


def _read_in_parallel(path: str | Path, name: str, size: int, workers: int,
                      progress: Progress | None, bodies: bool = False) -> Iterator[Call]:
    import multiprocessing
    import threading
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # fork starts at once (nothing to import again); a process with threads running (a proxy) spawns instead
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() \
        else "spawn"
    with tnetstrings.mapped(path) as buf, \
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        chunks, pending = _chunks(buf), deque()

        def ahead() -> None:  # a window of chunks ahead of the one being read: memory stays bounded
            while len(pending) < 2 * workers:
                chunk = next(chunks, None)
                if chunk is None:
                    return
                start, end, _ = chunk
                future = pool.submit(_read_chunk, str(path), name, start, end, bodies) if end is not None else None
                pending.append((chunk, future))

        ahead()
        while pending:
            (start, end, first), future = pending.popleft()
            ahead()
            calls = future.result() if future is not None else None
            if calls is None:  # damage: read on in order from this chunk, in this process, to tell it exactly
                for _, later in pending:
                    if later is not None:
                        later.cancel()
                yield from _read_flows(buf, name, size, start, first, progress=progress, bodies=bodies)
                return
            yield from map(_unpacked, calls)
            if progress is not None:
                progress(end)


# --- HAR (as mitmproxy's save.har and browsers write it) ---

def _har_body(content: Any) -> bytes | None:
    if not isinstance(content, Mapping):
        return None
    text, size = content.get("text"), _int(content.get("size")) or 0
    if not isinstance(text, str):
        return b"" if not size else None
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    data = text.encode("utf-8", "surrogateescape")
    # A body saved empty while its size says otherwise was streamed past the recorder.
    return None if not data and size > 0 else data


def _har_time(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None


def _unless_lost(body: bytes | None, headers: Headers) -> bytes | None:
    """An empty HAR body whose Content-Length says otherwise was not recorded (streamed), not empty."""
    if body == b"" and (content_length(headers.get("content-length")) or 0) > 0:
        return None
    return body


def _still_coded(body: bytes, coding: str) -> bool:
    """Whether a body begins as its coding's data does (gzip's and zstd's magic bytes, a zlib header)."""
    if coding in ("gzip", "x-gzip"):
        return body[:2] == b"\x1f\x8b"
    if coding == "deflate":
        return len(body) >= 2 and body[0] & 0x0F == 8 and ((body[0] << 8) | body[1]) % 31 == 0
    if coding == "zstd":
        return body[:4] == b"\x28\xb5\x2f\xfd"
    return True  # br has no mark to tell: the analysis says it cannot tell


def _as_har_keeps_it(body: bytes | None, headers: Headers) -> Headers:
    """A HAR body is "HTTP decoded text" (HAR 1.2; DevTools and mitmproxy's own HAR export write it so) while its
    Content-Encoding header stays: the header goes, unless the body still is in that coding (some tools keep it)."""
    coding = (headers.get("content-encoding") or "identity").strip().lower()
    if not body or coding == "identity" or _still_coded(body, coding):
        return headers
    return Headers([(name, value) for name, value in headers if name.lower() != "content-encoding"])


def _har_headers(items: Any) -> Headers:
    if not isinstance(items, list):
        return Headers()
    return Headers((_text(h["name"]), _text(h["value"])) for h in items if isinstance(h, Mapping))


def call_from_har_entry(entry: Mapping[str, Any], source: str = "") -> Call:
    req, resp = entry["request"], _mapping(entry.get("response"))
    url = urlsplit(req["url"])
    status = _int(resp.get("status"))
    headers = _har_headers(req.get("headers"))
    resp_headers = _har_headers(resp.get("headers"))
    host = next((v for k, v in headers if k.lower() in (":authority", "host")), url.netloc)
    host, port = _split_host(host, url.port or DEFAULT_PORTS.get(url.scheme))
    post = req.get("postData")
    if isinstance(post, Mapping):
        request_body = _har_body({"text": post.get("text"), "size": req.get("bodySize", 0),
                                  "encoding": post.get("encoding")})  # Charles and ocitrace base64 binary bodies
    else:
        request_body = b"" if req.get("bodySize", 0) in (0, -1) else None
    error = resp.get("_error")
    started, elapsed = _har_time(entry.get("startedDateTime")), _float(entry.get("time"))
    request_body = _unless_lost(request_body, headers)
    response_body = _unless_lost(_har_body(resp.get("content")), resp_headers)
    return Call(
        method=_text(req["method"]).upper(),
        scheme=url.scheme,
        host=host,
        port=port,
        path=url.path or "/",
        query=url.query,
        status=status if status is not None and status > 0 else None,
        request_headers=_as_har_keeps_it(request_body, headers),
        response_headers=_as_har_keeps_it(response_body, resp_headers),
        request_body=request_body,
        response_body=response_body,
        timestamp=started,
        end=_float(started + elapsed / 1000) if started is not None and elapsed is not None and elapsed >= 0
        else None,
        error=_text(error) if error else (None if status is not None and status > 0 else "no response"),
        source=source,
    )


def _json_document(path: str | Path, name: str) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CaptureError(name, "capture-not-utf8") from None
    except json.JSONDecodeError as exc:
        raise CaptureError(name, "capture-invalid-json", line=exc.lineno, column=exc.colno) from None
    except (RecursionError, ValueError):
        raise CaptureError(name, "capture-invalid-json", line=0, column=0) from None


def read_har_file(path: str | Path) -> Iterator[Call]:
    name = str(path)
    har = _json_document(path, name)
    entries = _mapping(_mapping(har).get("log")).get("entries")
    if not isinstance(entries, list):
        raise CaptureError(name, "capture-not-har")
    for i, entry in enumerate(entries):
        try:
            yield call_from_har_entry(entry, name)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
            raise CaptureError(name, "capture-bad-entry", entry=i) from None


# --- events.jsonl (what `ocitrace proxy` logs, one call per line: see report.call_record) ---

def call_from_event(record: Mapping[str, Any], source: str = "") -> Call:
    """A Call from an event record. Bodies are not in events: what was measured of them comes back as taps."""
    url = urlsplit(_text(record["url"]))
    codes = {f.get("code") for f in record.get("findings") or () if isinstance(f, Mapping)}
    digest = record.get("body_digest") if isinstance(record.get("body_digest"), str) else None
    body = _int(record.get("body_bytes"))

    def tap(size: Any, aborted: str) -> BodyTap | None:
        size = _int(size)
        return None if size is None else BodyTap(digest, size, aborted not in codes)

    # An error answer's body is not in the event, but what the analysis reads of it is: its codes and messages.
    errors = [e for e in record.get("registry_errors") or () if isinstance(e, Mapping)]
    error_body = json.dumps({"errors": [{"code": _text(e.get("code")), "message": _text(e.get("message"))}
                                        for e in errors]}).encode() if errors else None
    return Call(
        method=_text(record["method"]).upper(),
        scheme=url.scheme,
        host=_text(record.get("host")) or (url.hostname or ""),
        port=url.port,
        path=_text(record.get("path")) or url.path,
        query=_text(record.get("query")),
        status=_int(record.get("status")),
        request_headers=headers_from_pairs(record.get("request_headers")),
        response_headers=headers_from_pairs(record.get("response_headers")),
        response_body=error_body,
        timestamp=_float(record.get("timestamp")),
        end=_float(_float(record["timestamp"]) + _float(record["duration"]))
        if _float(record.get("timestamp")) is not None and _float(record.get("duration")) is not None else None,
        error=_text(record["error"]) if record.get("error") else None,
        source=source,
        request_tap=tap(record.get("request_bytes"), "upload-aborted"),
        response_tap=tap(record.get("response_bytes"), "download-aborted"),
        session_tap=BodyTap(digest, body) if digest and body is not None else None,
        upstream=_text(record["upstream"]) if record.get("upstream") else None,
    )


def read_events_file(path: str | Path) -> Iterator[Call]:
    name = str(path)
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                if not isinstance(record, Mapping):
                    raise TypeError
                yield call_from_event(record, name)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                raise CaptureError(name, "capture-bad-entry", entry=number) from None


# --- any capture ---

def capture_format(path: str | Path) -> str:
    """'har', 'events', 'flows' or 'empty', by the file's content. Raises CaptureError otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            first = head + fh.readline(1 << 20) if head[:64].lstrip()[:1] == b"{" else head
    except OSError as exc:
        raise CaptureError(str(path), "capture-unreadable", detail=exc.strerror or str(exc)) from None
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head:
        return "empty"
    if head[:1] == b"{":
        try:
            record = json.loads(first.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0])
        except (ValueError, RecursionError):
            return "har"  # a document over several lines
        return "events" if isinstance(record, Mapping) and "method" in record and "log" not in record else "har"
    if head[:1].isdigit():
        return "flows"
    raise CaptureError(str(path), "capture-unknown-format")


_READERS = {"har": read_har_file, "events": read_events_file, "flows": read_flow_file,
            "empty": lambda path: iter(())}


def read_capture(path: str | Path, workers: int = 1, progress: Progress | None = None,
                 bodies: bool = False) -> Iterator[Call]:
    kind = capture_format(path)
    return read_flow_file(path, workers, progress, bodies) if kind == "flows" else _READERS[kind](path)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


def read_captures(paths: Iterable[str | Path], workers: int = 1, stream: bool = False,
                  progress: Progress | None = None, bodies: bool = False) -> CaptureSet:
    """All calls of several captures as one session in time order. Each file keeps its own order (the
    order its calls completed in), and files are interleaved by when their calls started. A file given
    twice is read once. `workers` > 1: large flow files are read by that many processes. `stream`: one
    capture's calls are an iterator, read as the analysis takes them (its errors and notices are known once
    it is exhausted), so reading and analysing overlap and no list of every call is held; `progress` is told
    how many bytes of it are read. `bodies`: see read_flow_file."""
    paths = list(paths)
    if stream and len(paths) == 1:
        return _streamed(paths[0], workers, progress, bodies)
    result = CaptureSet()
    per_file: list[list[tuple[float, Call]]] = []
    read: list[str | Path] = []
    for path in paths:
        if any(_same_file(path, earlier) for earlier in read):
            result.notices.append((str(path), Finding.of("capture-given-twice")))
            continue
        read.append(path)
        calls: list[Call] = []
        try:
            calls.extend(read_capture(path, workers, bodies=bodies))
        except CaptureError as exc:
            exc.calls = calls
            result.errors.append(exc)
        if not calls and not any(e.path == str(path) for e in result.errors):
            result.notices.append((str(path), Finding.of("capture-empty")))
        keyed, last = [], 0.0
        for call in calls:
            last = call.timestamp if call.timestamp is not None else last
            keyed.append((last, call))
        per_file.append(keyed)
    result.calls = [call for _, call in heapq.merge(*per_file, key=lambda item: item[0])]
    return result


def _streamed(path: str | Path, workers: int, progress: Progress | None, bodies: bool) -> CaptureSet:
    result = CaptureSet()

    def calls() -> Iterator[Call]:
        count = 0
        try:
            for call in read_capture(path, workers, progress, bodies):
                count += 1
                yield call
        except CaptureError as exc:
            result.errors.append(exc)
        if not count and not result.errors:
            result.notices.append((str(path), Finding.of("capture-empty")))

    result.calls = calls()  # type: ignore[assignment]  # an iterator: read once, by the analysis
    return result

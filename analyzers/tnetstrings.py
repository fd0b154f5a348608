"""mitmproxy's flow files: tnetstrings back to back, one per flow, read from a memory map.

A tnetstring is `<length>:<payload><tag>`: every value says how long it is, so a reader can step over what it
does not need without looking inside. `flow_fields` does that: of a flow it parses only what the analysis reads
(the request, the response, the error, ocitrace's metadata, the client's SNI and TLS flag) and steps over the
rest (the server connection, certificates, websocket messages, ...), which is most of a flow's values.
`parse` reads a value whole (for `ocitrace redact`, which writes every field back).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from sys import intern
from typing import Any

_MOST_DIGITS = 12  # a length past 999 GB is damage, not a body


class Truncated(Exception):
    """The file ends inside a value."""


def _header(buf, pos: int) -> tuple[int, int, int]:
    """(start of the payload, its end, the tag) of the value at `pos`."""
    colon = buf.find(b":", pos, pos + _MOST_DIGITS + 1)
    if colon <= pos:
        if colon < 0 and len(buf) - pos <= _MOST_DIGITS:
            raise Truncated
        raise ValueError(f"bad length prefix at byte {pos}")
    digits = buf[pos:colon]
    if not digits.isdigit():
        raise ValueError(f"bad length prefix at byte {pos}")
    start = colon + 1
    end = start + int(digits)
    if end >= len(buf):
        raise Truncated
    return start, end, buf[end]


def parse(buf, pos: int) -> tuple[Any, int]:
    """The value at `pos`, whole, and where the next one starts."""
    colon = buf.find(b":", pos, pos + _MOST_DIGITS + 1)
    if colon <= pos:
        _header(buf, pos)  # raises the reason
    start = colon + 1
    end = start + int(buf[pos:colon])
    if end < start:  # int() reads "-17" too: a length that steps back would read for ever
        raise ValueError(f"bad length prefix at byte {pos}")
    if end >= len(buf):
        raise Truncated
    tag = buf[end]
    if tag == 0x2C:  # ',' bytes
        return buf[start:end], end + 1
    if tag == 0x5D:  # ']' list
        items, i = [], start
        while i < end:
            item, i = parse(buf, i)
            items.append(item)
        if i != end:
            raise ValueError(f"a list overruns its length at byte {pos}")
        return items, end + 1
    if tag == 0x3B:  # ';' text
        return buf[start:end].decode("utf-8", "surrogateescape"), end + 1
    if tag == 0x23:  # '#' integer
        return int(buf[start:end]), end + 1
    if tag == 0x5E:  # '^' float
        return float(buf[start:end]), end + 1
    if tag == 0x21:  # '!' boolean
        return buf[start:end] == b"true", end + 1
    if tag == 0x7E:  # '~' null
        return None, end + 1
    if tag == 0x7D:  # '}' dict; keys are bytes or text
        obj, i = {}, start
        while i < end:
            key, i = parse(buf, i)
            value, i = parse(buf, i)
            obj[key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key] = value
        if i != end:
            raise ValueError(f"a dict overruns its length at byte {pos}")
        return obj, end + 1
    raise ValueError(f"unknown tnetstring type {chr(tag)!r}")


def _selected(buf, pos: int, wanted: dict[bytes, Any]) -> tuple[dict[str, Any], int]:
    """A dict's entries whose keys are in `wanted` (a key's value: None to parse it whole, or the dict of keys
    to select within it); the others are stepped over. The hot loop of reading a flow file: kept flat."""
    start, end, tag = _header(buf, pos)
    if tag != 0x7D:
        return parse(buf, pos)
    find, size = buf.find, len(buf)
    obj, i = {}, start
    while i < end:
        colon = find(b":", i, i + _MOST_DIGITS + 1)  # the key (bytes), read in place
        if colon <= i:
            _header(buf, i)  # raises the reason
        key_end = colon + 1 + int(buf[i:colon])
        if key_end <= colon:  # a negative length (int() reads "-17"): it would step back for ever
            raise ValueError(f"bad length prefix at byte {i}")
        key = buf[colon + 1:key_end]
        i = key_end + 1
        inner = wanted.get(key, _SKIP)
        if inner is _SKIP:  # step over the value: its length is all that is read
            colon = find(b":", i, i + _MOST_DIGITS + 1)
            if colon <= i:
                _header(buf, i)
            i = colon + 2 + int(buf[i:colon])
            if i <= colon + 1:
                raise ValueError(f"bad length prefix at byte {colon}")
            if i > size:
                raise Truncated
            continue
        if inner is None:  # most values: bytes or a number, read here (a call per value costs more than it)
            colon = find(b":", i, i + _MOST_DIGITS + 1)
            value_end = colon + 1 + int(buf[i:colon]) if colon > i else size
            if value_end <= colon:
                raise ValueError(f"bad length prefix at byte {i}")
            if value_end >= size:
                raise Truncated
            tag = buf[value_end]
            if tag == 0x2C:
                value = buf[colon + 1:value_end]
            elif tag == 0x23:
                value = int(buf[colon + 1:value_end])
            elif tag == 0x5E:
                value = float(buf[colon + 1:value_end])
            else:
                value, value_end = parse(buf, i)
                value_end -= 1
            i = value_end + 1
        elif inner == "later":
            value, i = Later(i), skip(buf, i)
        elif inner == "pairs":
            value, i = _pairs(buf, i)
        else:
            value, i = _selected(buf, i, inner)
        obj[key.decode("utf-8", "surrogateescape")] = value
    if i != end:
        raise ValueError(f"a dict overruns its length at byte {pos}")
    return obj, end + 1


_SKIP = object()


def _pairs(buf, pos: int) -> tuple[list[tuple[str, str]] | Any, int]:
    """Header pairs, `[[name, value], ...]` of bytes, as (text, text) tuples; any other shape as parse reads it."""
    start, end, tag = _header(buf, pos)
    if tag != 0x5D:
        return parse(buf, pos)
    find, pairs, i = buf.find, [], start
    while i < end:
        colon = find(b":", i, i + _MOST_DIGITS + 1)
        if colon <= i:
            return parse(buf, pos)
        pair_end = colon + 1 + int(buf[i:colon])
        if pair_end <= colon:
            return parse(buf, pos)  # a negative length: damage, as the reader tells it
        # the name and the value, bytes both (`<n>:<name>,<n>:<value>,`), read in place
        j = colon + 1
        colon = find(b":", j, j + _MOST_DIGITS + 1)
        name_end = colon + 1 + int(buf[j:colon]) if colon > j else pair_end
        colon2 = find(b":", name_end + 1, name_end + _MOST_DIGITS + 2)
        value_end = colon2 + 1 + int(buf[name_end + 1:colon2]) if colon2 > name_end + 1 else pair_end
        if (name_end <= j or value_end <= name_end or value_end + 1 != pair_end or pair_end >= len(buf)
                or buf[name_end] != 0x2C
                or buf[value_end] != 0x2C or buf[pair_end] != 0x5D):
            return parse(buf, pos)  # not a pair of bytes: as it is, for the reader to judge
        # a name is one string for every call that sends it (a large capture holds millions)
        pairs.append((intern(buf[colon + 1:name_end].decode("utf-8", "surrogateescape")),
                      buf[colon2 + 1:value_end].decode("utf-8", "surrogateescape")))
        i = pair_end + 1
    if i != end:
        raise ValueError(f"a list overruns its length at byte {pos}")
    return pairs, end + 1


# What the analysis reads of a flow (captures.call_from_state): None parses the value whole.
_MESSAGE = {**{k: None for k in (b"method", b"scheme", b"host", b"port", b"path", b"authority", b"content",
                                 b"status_code", b"timestamp_start", b"timestamp_end")}, b"headers": "pairs"}
CLIENT = {b"sni": None, b"tls": None}
# The client connection is read only where it matters (a capture without ocitrace's own record of what the
# client asked for): here it is kept as where it starts, a `Later`.
_FLOW = {b"type": None, b"version": None, b"timestamp_created": None, b"request": _MESSAGE, b"response": _MESSAGE,
         b"error": None, b"metadata": None, b"client_conn": "later"}


class Later(int):
    """The offset of a value left unread until it is needed."""


def skip(buf, pos: int) -> int:
    """Where the value after the one at `pos` starts, without reading it."""
    start, end, _ = _header(buf, pos)
    return end + 1


# A flow up to this size is read from a copy of its bytes: slicing and finding in `bytes` costs less than in a
# memory map (the walk of a flow about a tenth less). A larger one (a body kept whole) is read in place, not copied.
COPY_UP_TO = 1 << 20


def flow_fields(buf, pos: int) -> tuple[Any, int, Any, int]:
    """The fields of the flow at `pos` that the analysis reads, where the next flow starts, and the bytes they
    were read from with where the flow starts in them (a copy of the flow, or `buf`): its `client_conn` is a
    `Later` there (see `client_conn`)."""
    _, end, _ = _header(buf, pos)  # a file cut inside this flow is Truncated here
    after = end + 1
    flow, at = (buf[pos:after], 0) if after - pos <= COPY_UP_TO and type(buf) is not bytes else (buf, pos)
    try:
        state, _ = _selected(flow, at, _FLOW)
    except Truncated:  # a value inside the flow says it runs past the flow's own end: damage, not a cut file
        raise ValueError(f"a value overruns its flow at byte {pos}") from None
    return state, after, flow, at


def client_conn(buf, later: Later) -> dict[str, Any]:
    """What the analysis reads of a client connection left for later: its SNI and TLS flag."""
    value, _ = _selected(buf, later, CLIENT)
    return value if isinstance(value, dict) else {}


@contextmanager
def mapped(path: str | Path):
    """The file's bytes, memory-mapped (an empty file as b"")."""
    with open(path, "rb") as fh:
        if Path(path).stat().st_size == 0:
            yield b""
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            yield buf


# What a reader has read is let go in steps of this many bytes (see `let_go`).
LET_GO_EVERY = 4 << 20


def let_go(buf, start: int, end: int) -> int:
    """Give up this process's hold on the pages of `buf[start:end]`, read already, and say where the next step
    starts. They stay in the page cache (read from it again if asked), but a large file read through a memory map
    no longer counts whole in the reader's memory."""
    if not isinstance(buf, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return end
    start -= start % mmap.PAGESIZE
    end -= end % mmap.PAGESIZE
    if end > start:
        buf.madvise(mmap.MADV_DONTNEED, start, end - start)
    return end


def iter_values(buf, reader=parse) -> Iterator[tuple[Any, int]]:
    """(value, end offset) of each top-level tnetstring in `buf`, read by `reader`."""
    pos, size = 0, len(buf)
    while pos < size:
        value, pos = reader(buf, pos)
        yield value, pos


class Encoded(bytes):
    """A value already written as a tnetstring (by `dumps`), to be written as it is."""


def dumps(value: Any) -> bytes:
    """`value` as a tnetstring, byte for byte what mitmproxy's writer makes (a dict's entries last first, as it
    writes them), in a fraction of its time: the live recorder writes one per call. The values most entries hold
    (text, bytes, numbers, header pairs) are written in the loop, without a call each."""
    kind = type(value)
    if kind is bytes:
        return b"%d:%s," % (len(value), value)
    if kind is str:
        data = value.encode("utf8")
        return b"%d:%s;" % (len(data), data)
    if kind is dict:
        out: list[bytes] = []
        for key, item in reversed(value.items()):
            out.append(b"%d:%s;" % (len(data := key.encode("utf8")), data) if type(key) is str else dumps(key))
            _append(out, item)
        body = b"".join(out)
        return b"%d:%s}" % (len(body), body)
    if kind is list or kind is tuple:
        out = []
        for item in value:
            _append(out, item)
        body = b"".join(out)
        return b"%d:%s]" % (len(body), body)
    if kind is Encoded:
        return value
    if value is None:
        return b"0:~"
    if value is True:
        return b"4:true!"
    if value is False:
        return b"5:false!"
    if isinstance(value, int):
        data = str(int(value)).encode()
        return b"%d:%s#" % (len(data), data)
    if isinstance(value, float):
        data = repr(value).encode()
        return b"%d:%s^" % (len(data), data)
    if isinstance(value, bytes | bytearray | memoryview):
        return dumps(bytes(value))
    if isinstance(value, str):
        return dumps(str(value))
    if isinstance(value, dict):
        return dumps(dict(value))
    if isinstance(value, list | tuple):
        return dumps(list(value))
    raise ValueError(f"unserializable object: {value!r} ({type(value)})")


def _append(out: list[bytes], value: Any) -> None:
    """`dumps(value)` onto `out`, with the common kinds written here."""
    kind = type(value)
    if kind is bytes:
        out.append(b"%d:%s," % (len(value), value))
    elif kind is str:
        data = value.encode("utf8")
        out.append(b"%d:%s;" % (len(data), data))
    elif value is None:
        out.append(b"0:~")
    elif kind is bool:
        out.append(b"4:true!" if value else b"5:false!")
    elif kind is int:
        data = str(value).encode()
        out.append(b"%d:%s#" % (len(data), data))
    elif kind is float:
        data = repr(value).encode()
        out.append(b"%d:%s^" % (len(data), data))
    elif (kind is list or kind is tuple) and len(value) == 2 and type(value[0]) is bytes and type(value[1]) is bytes:
        name, field = value  # a header pair
        pair = b"%d:%s,%d:%s," % (len(name), name, len(field), field)
        out.append(b"%d:%s]" % (len(pair), pair))
    else:
        out.append(dumps(value))

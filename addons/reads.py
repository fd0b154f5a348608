"""Reads as large as what has arrived, for `ocitrace proxy`.

mitmproxy's connection loop asks a connection's reader for at most 64 KiB at a time, and each piece read goes
through every layer of the proxy (events, the HTTP layer, commands, the stream tap, a write). asyncio's transport
takes up to 256 KiB from the socket at once, so a blob crossed the layers four times for each of its reads. Asked
for up to 256 KiB, the loop hands each read on whole: forwarding a pulled blob cost the loop a third less CPU
(1.3–1.5 s against 2.2 s for 768 MiB), less than plain mitmdump's loop (bench/README.md). The bytes are the same;
only how they are cut into pieces changes, which TCP never promised anyway.

mitmproxy has no option for this. It is done where the loop's readers are made (`ConnectionIO`), only for asyncio
readers, only in `ocitrace proxy`'s own process; a mitmproxy whose connection handling differs is left as it is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields, is_dataclass

READ_AT_ONCE = 256 << 10  # what asyncio's selector transport takes from a socket at once


class Reader:
    """An asyncio reader that answers a read of less than READ_AT_ONCE with all that has arrived, up to it."""

    __slots__ = ("_reader",)

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    def read(self, n: int = -1):
        return self._reader.read(READ_AT_ONCE if 0 < n < READ_AT_ONCE else n)

    def __getattr__(self, name: str):
        return getattr(self._reader, name)


class _Reading:
    """Marks mitmproxy's ConnectionIO once it makes `Reader`s."""


def read_more() -> bool:
    """Make mitmproxy's connections read all that has arrived at once; False where its connection handling is not
    the one this was written for (it then reads as before)."""
    from mitmproxy.proxy import server

    made = getattr(server, "ConnectionIO", None)
    if not is_dataclass(made) or "reader" not in {f.name for f in fields(made)}:
        return False
    if issubclass(made, _Reading):
        return True

    @dataclass
    class ConnectionIO(made, _Reading):
        def __post_init__(self) -> None:
            if isinstance(self.reader, asyncio.StreamReader):
                self.reader = Reader(self.reader)

    server.ConnectionIO = ConnectionIO
    return True

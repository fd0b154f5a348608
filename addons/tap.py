"""A stream tap: forwards every chunk of a body as it is, hashing it, and keeps a small body whole.

Hashing runs on one worker thread, so that a blob is hashed on another core while the event loop goes
on forwarding it: hashlib lets go of the GIL while it hashes a large buffer. Chunks are handed over in
batches of 4 MiB because the worker must win the GIL back from the busy loop for each call (up to the
5 ms switch interval): per chunk that wait would throttle it; per 4 MiB it does not. The first batch is
the chunks joined (a body shorter than a batch takes just its size); a longer body then fills the same
few 4 MiB buffers again and again (a new one for every batch cost a page fault on each of its pages).
One worker keeps every stream's batches in order; a stream with more batches waiting waits for them, so
memory stays bounded (IN_FLIGHT + 1 batches a stream).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from ocitrace.analyzers.calls import BodyTap
from ocitrace.analyzers.digests import Hasher

BATCH = 4 << 20
IN_FLIGHT = 2
_pool: ThreadPoolExecutor | None = None


def _hashing() -> ThreadPoolExecutor:
    """The hashing thread, started with the first tap (not when the module is imported)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocitrace-hash")
    return _pool


def _update(hashers: tuple[Hasher, ...], data) -> None:
    for hasher in hashers:
        hasher.update(data)


class Tap:
    """A callable for `message.stream`. `also`: a second hash fed the same bytes (an upload session's)."""

    def __init__(self, keep_limit: int, also: Hasher | None = None):
        # A session's first chunk (docker, skopeo and crane push a blob in one) is all its hash will have seen
        # when the body ends: that one hash is the body's too, so each byte is hashed once, not twice.
        shared = also is not None and also.size == 0
        self.hashers = (also,) if shared else (Hasher(),) if also is None else (Hasher(), also)
        self.size = 0
        self.keep_limit = keep_limit
        self.kept: bytearray | None = bytearray()  # the body while it is small: hashed whole when it ends
        self.used = False  # mitmproxy streams only a body that did not end with its headers
        self.complete = False
        self._first: list[bytes | bytearray] | None = []  # the first batch's chunks, until it is handed over
        self._first_size = 0
        self._buffer: memoryview | None = None  # a later batch, being filled
        self._filled = 0
        self._spare: list[memoryview] = []  # buffers already hashed, to fill again
        self._in_flight: deque[tuple[memoryview | None, Future]] = deque()

    def __call__(self, chunk: bytes) -> bytes:
        self.used = True
        if not chunk:  # mitmproxy calls once more with b"" at the end of the message
            self.complete = True
            if self.kept:
                self._add(self.kept)  # joined at once below: what small_body gives stays as it is
            self._hand_over()
            return chunk
        self.size += len(chunk)
        if self.kept is None:
            self._add(chunk)
        else:
            self.kept += chunk
            if len(self.kept) > self.keep_limit:  # not a small body: what was kept goes to be hashed
                self._add(self.kept)
                self.kept = None
        return chunk

    def _add(self, data: bytes | bytearray) -> None:
        """Add `data` to the batch being filled, handing each full batch over to be hashed."""
        if self._first is not None:
            self._first.append(data)  # unchanged until joined: chunks are bytes; a kept body is let go or joined now
            self._first_size += len(data)
            if self._first_size >= BATCH:
                self._hand_over()
            return
        view = memoryview(data)
        while view:
            if self._buffer is None:
                self._buffer = self._spare.pop() if self._spare else memoryview(bytearray(BATCH))
            part = view[:BATCH - self._filled]
            self._buffer[self._filled:self._filled + len(part)] = part
            self._filled += len(part)
            view = view[len(part):]
            if self._filled == BATCH:
                self._hand_over()

    def _hand_over(self) -> None:
        if self._first_size:
            joined = b"".join(self._first)
            self._in_flight.append((None, _hashing().submit(_update, self.hashers, joined)))
            self._first, self._first_size = None, 0
        elif self._filled:
            batch = self._buffer[:self._filled]
            self._in_flight.append((self._buffer, _hashing().submit(_update, self.hashers, batch)))
            self._buffer, self._filled = None, 0
        while self._in_flight and (len(self._in_flight) > IN_FLIGHT or self._in_flight[0][1].done()):
            buffer, hashed = self._in_flight.popleft()
            hashed.result()
            if buffer is not None:
                self._spare.append(buffer)

    def measure(self) -> BodyTap:
        """What was measured, once every chunk handed over has been hashed."""
        self._hand_over()
        while self._in_flight:
            self._in_flight.popleft()[1].result()
        self._spare.clear()  # the buffers go now, not when the flow does
        hasher = self.hashers[0]
        # A shared hash that saw more than this body (another request fed the session meanwhile, which no client
        # should do) no longer tells the body's digest. The digest is read first: the hashing thread may be adding
        # another request's batch right now, and `Hasher.update` counts a batch before it hashes it.
        digest = hasher.digest
        known = self.complete and hasher.size == self.size
        return BodyTap(digest if known else None, self.size, self.complete)

    def small_body(self) -> bytes | None:
        """The whole body, when it was small enough to keep."""
        return bytes(self.kept) if self.complete and self.kept is not None else None

"""A stream tap: forwards every chunk of a body as it is, hashing it, and keeps a small body whole.

Hashing runs on one worker thread, so that a blob is hashed on another core while the event loop goes
on forwarding it: hashlib lets go of the GIL while it hashes a large buffer. Chunks are joined into
large batches because the worker must win the GIL back from the busy loop for each call (up to the
5 ms switch interval): per 64 KiB chunk that wait would throttle it; per 4 MiB it does not. One
worker keeps every stream's chunks in order; a stream with more batches waiting waits for them, so
memory stays bounded.
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


def _update(hashers: tuple[Hasher, ...], data: bytes) -> None:
    for hasher in hashers:
        hasher.update(data)


class Tap:
    """A callable for `message.stream`. `also`: a second hash fed the same bytes (an upload session's)."""

    def __init__(self, keep_limit: int, also: Hasher | None = None):
        self.hashers = (Hasher(),) if also is None else (Hasher(), also)
        self.keep_limit = keep_limit
        self.kept: bytearray | None = bytearray()
        self.used = False  # mitmproxy streams only a body that did not end with its headers
        self.complete = False
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: deque[Future] = deque()

    def __call__(self, chunk: bytes) -> bytes:
        self.used = True
        if not chunk:  # mitmproxy calls once more with b"" at the end of the message
            self.complete = True
            self._hand_over()
            return chunk
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= BATCH:
            self._hand_over()
        if self.kept is not None:
            self.kept += chunk
            if len(self.kept) > self.keep_limit:
                self.kept = None
        return chunk

    def _hand_over(self) -> None:
        if self._batch:
            self._in_flight.append(_hashing().submit(_update, self.hashers, b"".join(self._batch)))
            self._batch, self._batched = [], 0
        while self._in_flight and (len(self._in_flight) > IN_FLIGHT or self._in_flight[0].done()):
            self._in_flight.popleft().result()

    def measure(self) -> BodyTap:
        """What was measured, once every chunk handed over has been hashed."""
        self._hand_over()
        while self._in_flight:
            self._in_flight.popleft().result()
        hasher = self.hashers[0]
        return BodyTap(hasher.digest if self.complete else None, hasher.size, self.complete)

    def small_body(self) -> bytes | None:
        """The whole body, when it was small enough to keep."""
        return bytes(self.kept) if self.complete and self.kept is not None else None

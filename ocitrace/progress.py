"""A progress bar on stderr for long reads: drawn only when stderr is a terminal, silent otherwise."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

WIDTH = 30
EVERY = 0.1  # seconds between redraws


class Bar:
    """`bar(done)` with the bytes read so far; `close()` clears it. Draws nothing unless `out` is a terminal."""

    def __init__(self, total: int, label: str, out: TextIO | None = None, drawn: bool = True):
        self.total, self.label, self.out = max(total, 1), label, out or sys.stderr
        self.shown = drawn and self.out.isatty()
        self.start = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self.shown or now - self.last < EVERY:
            return
        self.last = now
        part = min(done / self.total, 1.0)
        rate = done / max(now - self.start, 1e-6) / 1e6
        line = f"{self.label} [{'#' * int(part * WIDTH):<{WIDTH}}] {part:4.0%} {rate:6.1f} MB/s"
        columns = shutil.get_terminal_size((80, 20)).columns
        self.out.write("\r" + line[: columns - 1])
        self.out.flush()

    def close(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()

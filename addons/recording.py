"""The folder a live session is recorded into: flows.mitm, events.jsonl and, at the end, report.md.

A folder holds the current session at its top, so `ocitrace analyze DIR` reads it; a session found there
when a new one starts is moved, whole, into `DIR/earlier/<when it started>/`: no run destroys another.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import queue
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mitmproxy import http
from ocitrace.analyzers import redact, tnetstrings

logger = logging.getLogger(__name__)

FLOWS_FILE = "flows.mitm"
EVENTS_FILE = "events.jsonl"
REPORT_FILE = "report.md"
EARLIER = "earlier"
SESSION_FILES = (FLOWS_FILE, EVENTS_FILE, REPORT_FILE, "report.zh.md")


def writable_problem(out: Path) -> OSError | None:
    """Why ocitrace could not record into `out`, or None. Creates nothing: the folder (and its parents)
    are made when recording starts, so a run that fails to start leaves no trace."""
    folder = out
    while not folder.exists():
        if folder.is_symlink() or folder.parent == folder:
            return FileNotFoundError(2, "No such file or directory", str(folder))
        folder = folder.parent
    if not folder.is_dir():
        return NotADirectoryError(20, "Not a directory", str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        return PermissionError(13, "Permission denied", str(folder))
    return None


def _started(out: Path) -> str:
    """When the session in `out` started, as a folder name (20261129T135014Z): its first call's time, else
    when its files were last written."""
    when = None
    try:
        with open(out / EVENTS_FILE, encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "{}")
        when = first.get("timestamp") if isinstance(first, dict) else None
    except (OSError, ValueError):
        pass
    if not isinstance(when, int | float) or not math.isfinite(when):
        times = [(out / name).stat().st_mtime for name in SESSION_FILES if (out / name).exists()]
        when = min(times) if times else 0
    return datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")


def keep_earlier_session(out: Path) -> Path | None:
    """Move the session files found in `out` into `out/earlier/<start>/`; returns that folder, if any."""
    present = [name for name in SESSION_FILES if (out / name).exists()]
    if not present:
        return None
    base = out / EARLIER / _started(out)
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    for name in present:
        shutil.move(out / name, folder / name)
    return folder


def private_file(path: Path, mode: str) -> IO:
    """A new file only its owner can read: captures hold credentials."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # Bytes a capture held that are not UTF-8 come out escaped, as `ocitrace analyze` writes them.
    return os.fdopen(fd, mode, **({"encoding": "utf-8", "errors": "backslashreplace"} if "b" not in mode else {}))


class Recording:
    """Appends each finished flow to flows.mitm and its event to events.jsonl, flushed per call.

    The writing happens behind the proxy, on a thread of its own: a call's answer goes back to the client while
    its record is redacted, serialised and written (the state is taken first, on the event loop). A write that
    fails (disk full, folder removed) stops the recording with one message; the proxy goes on forwarding.
    """

    def __init__(self, out: Path, keep_secrets: bool = False):
        self.out = out
        self.keep_secrets = keep_secrets
        out.mkdir(parents=True, exist_ok=True)
        self.earlier = keep_earlier_session(out)
        self._flows = private_file(out / FLOWS_FILE, "wb")
        self._events = private_file(out / EVENTS_FILE, "w")
        self.failure: OSError | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_behind, name="ocitrace-recording", daemon=True)
        self._writer.start()

    @property
    def flows_path(self) -> Path:
        return self.out / FLOWS_FILE

    def write(self, flow: http.HTTPFlow, event: str) -> None:
        if self.failure is None:
            self._queue.put((flow.get_state(), event))

    def drain(self) -> None:
        """Wait until every record handed over so far is written (or the recording has failed)."""
        if not self._writer.is_alive():  # closed: everything is written
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def _write_behind(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            if self.failure is not None:
                continue
            state, event = item
            try:
                # What the reports hide, the flow file hides too (unless asked to keep it): it is shared as well.
                self._flows.write(tnetstrings.dumps(state if self.keep_secrets else redact.flow_state(state)))
                self._flows.flush()
                self._events.write(event)
                self._events.flush()
                if os.fstat(self._events.fileno()).st_nlink == 0:  # removed (with its folder): writes go nowhere
                    raise FileNotFoundError(errno.ENOENT, "removed", str(self.out / EVENTS_FILE))
            except OSError as exc:
                self.failure = exc
                self._close_files()

    def close(self) -> None:
        """Write what is left, then close the files."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        self._close_files()

    def _close_files(self) -> None:
        for fh in (self._flows, self._events):
            try:
                fh.close()
            except OSError:
                pass

"""The folder a live session is recorded into: flows.mitm, events.jsonl and, at the end, report.md.

The proxy only hands each finished flow over (`Recording`); the recorder process (`recorder.py`) analyses it,
prints its line and writes the files.

A folder holds the current session at its top, so `ocitrace analyze DIR` reads it; a session found there
when a new one starts is moved, whole, into `DIR/earlier/<when it started>/`: no run destroys another.
"""

from __future__ import annotations

import errno
import fcntl
import json
import marshal
import math
import os
import pickle
import select
import shutil
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

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


LOCK = ".ocitrace.lock"


class FolderInUse(Exception):
    """Another run records into the folder; `pid` is its process, as it wrote it."""

    def __init__(self, pid: str):
        super().__init__(pid)
        self.pid = pid


class FolderLock:
    """A run's hold on its folder (`lock_folder`)."""

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = path

    def release(self) -> None:
        """Let the folder go, and its lock file with it while the file is still this run's."""
        if self.fd < 0:
            return
        try:
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1


def lock_folder(out: Path) -> FolderLock:
    """This run's hold on `out`, for as long as it records (the system lets it go when every process holding it has
    ended, however they end): two runs into one folder would move each other's files away and swap their reports.
    Raises FolderInUse, or OSError when the lock file cannot be made (a symbolic link is not followed)."""
    path = out / LOCK
    while True:
        fd = _open_lock(path, os.O_RDWR | os.O_CREAT)
        try:
            _flock_exclusive(fd)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise FolderInUse(holder) from None
        except OSError:
            os.close(fd)
            raise
        try:  # the run that held it may have removed the file between our open and our lock: lock the new one
            mine = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            mine = False
        if mine:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return FolderLock(fd, path)


def _flock_exclusive(fd: int, tries: int = 40) -> None:
    """The lock, or BlockingIOError when a run holds it: a pre-check (`folder_in_use`, another run's or
    `ocitrace run`'s own) holds it shared for a moment only, and is waited for (up to 0.2 s)."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(0.005)


def _open_lock(path: Path, flags: int) -> int:
    """The lock file, opened without following a link or waiting on a FIFO; OSError unless a regular file."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def folder_in_use(out: Path) -> str | None:
    """The process recording into `out` right now, if one is; nothing is made or changed. Raises OSError when a lock
    file is there that cannot be read."""
    try:
        fd = _open_lock(out / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # held a moment, and only if no run holds it
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
    finally:
        os.close(fd)
    return None


def folder_sentence(exc: OSError | FolderInUse, out: Path, lang: str, named: bool = True) -> str:
    """The sentence that says why a run cannot record into `out`: another run records there, or what failed (at the
    file the error names, unless `named` is False: `writable_problem`'s names the folder it found, `out` is told)."""
    from ocitrace.analyzers.strings import os_error_text, text

    if isinstance(exc, FolderInUse):
        return text("error_out_in_use", lang, path=out, pid=exc.pid)
    return text("error_cannot_write", lang, path=(named and exc.filename) or out, reason=os_error_text(exc, lang))


def folder_problem(out: Path, lang: str) -> str | None:
    """The sentence that says why a run cannot record into `out` (not writable; another run records there; its
    lock file is a link, a FIFO or another user's), or None. Reads only: makes and changes nothing."""
    problem = writable_problem(out)
    if problem is not None:
        return folder_sentence(problem, out, lang, named=False)
    try:
        holder = folder_in_use(out)
    except OSError as exc:
        return folder_sentence(exc, out, lang)
    return None if holder is None else folder_sentence(FolderInUse(holder), out, lang)


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


def private_fd(path: Path) -> int:
    """A new file only its owner can read: captures hold credentials."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def private_file(path: Path, mode: str) -> IO:
    fd = private_fd(path)
    # Bytes a capture held that are not UTF-8 come out escaped, as `ocitrace analyze` writes them.
    return os.fdopen(fd, mode, **({"encoding": "utf-8", "errors": "backslashreplace"} if "b" not in mode else {}))


# A record on the pipe: its length and how it is encoded, then the flow state. marshal takes half pickle's time
# (both processes run one interpreter) and writes any bytes-like value as bytes, as the flow file does; pickle
# writes what marshal refuses (an object another addon left in a flow's metadata). A DRAIN record, of no length, asks
# the recorder to say when it has written everything before it.
RECORD = struct.Struct("!Ic")
MARSHAL, PICKLE, DRAIN = b"m", b"p", b"d"
# Records wait for the proxy to flush them, which it does once for the calls it records together, or until this
# many bytes have gathered.
BATCH_BYTES = 1 << 16
READY = b"R"  # the recorder's first word on its acks pipe
READY_TIMEOUT = 60  # seconds: its imports take about one
# The pipe holds this much of what waits for the recorder (Linux lets an unprivileged process ask for 1 MiB).
PIPE_SIZE = 1 << 20


def encoded(state: dict) -> bytes:
    """A flow's state as a record on the pipe (`recorder.records` reads it)."""
    try:
        data, kind = marshal.dumps(state), MARSHAL
    except ValueError:
        dump = partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            data, kind = dump(state), PICKLE
        except Exception:  # noqa: BLE001 - pickle raises whatever an object's own reduce raises
            data, kind = dump({**state, "metadata": writable(state.get("metadata"), dump)}), PICKLE
    return RECORD.pack(len(data), kind) + data


def writable(metadata, dump: Callable[[Any], bytes]) -> dict:
    """A flow's metadata without what `dump` cannot write: an object another addon left there (a function, a
    socket), which no flow file holds; mitmproxy's own flow writer fails on it."""
    if not isinstance(metadata, dict):
        return {}
    kept = {}
    for key, value in metadata.items():
        try:
            dump(value)
        except Exception:  # noqa: BLE001 - as `dump` raises it
            continue
        kept[key] = value
    return kept


class Recording:
    """Hands each finished flow to the recorder, a process of its own that analyses it, prints its line and writes
    the session's files (`recorder.py`).

    The proxy's part is to take the flow's state and write it to a pipe: the analysis, the redaction and the
    writing run on another core, where a thread would wait for the proxy's GIL and make it wait in turn. What waits
    is bounded by the pipe: a recorder that falls behind slows the proxy down rather than growing its memory. A
    write that fails stops the recording with one message (the recorder's); the proxy goes on forwarding.
    """

    def __init__(self, out: Path, keep_secrets: bool = False, lang: str = "en", lines: bool = True,
                 lock: FolderLock | None = None):
        """`lock`: the folder, already held (else taken here: raises FolderInUse or OSError)."""
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._lock = lock or lock_folder(out)
        self.earlier = keep_earlier_session(out)
        self.failure: OSError | None = None
        self._batch = bytearray()  # records not sent yet
        files = [private_fd(out / FLOWS_FILE), private_fd(out / EVENTS_FILE)]
        records, self._records = os.pipe()
        self._acks, acks = os.pipe()
        try:
            fcntl.fcntl(self._records, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except (OSError, AttributeError):  # a lower limit, or not Linux: the default pipe (64 KiB) works too
            pass
        argv = [sys.executable, "-m", "ocitrace.addons.recorder", str(out), "--lang", lang,
                "--files", f"{files[0]},{files[1]}", "--acks", str(acks)]
        argv += ["--keep-secrets"] * keep_secrets + ["--quiet"] * (not lines)
        try:  # the same interpreter, which imports ocitrace as this process did
            # the recorder holds the folder too: it writes report.md after the proxy is gone, however it went
            self.process = subprocess.Popen(argv, stdin=records, pass_fds=(*files, acks, self._lock.fd))
        finally:
            for fd in (records, acks, *files):
                os.close(fd)
        # Wait until it can take calls (its imports take a moment): lines and events come as calls end, from the
        # first one on.
        ready, _, _ = select.select([self._acks], [], [], READY_TIMEOUT)
        if not ready or os.read(self._acks, 1) != READY:
            self.failure = ChildProcessError(errno.ECHILD, "the recorder did not start")
            self._close_pipe()
            self.process.kill()

    @property
    def flows_path(self) -> Path:
        return self.out / FLOWS_FILE

    def write(self, state: dict) -> bool:
        """Hand a finished flow's state to the recorder; False when it is gone (its reason in `failure`)."""
        if self._records is None:
            return False
        self._batch += encoded(state)
        return self.flush() if len(self._batch) >= BATCH_BYTES else True

    def flush(self) -> bool:
        """Send what waits to the recorder; False when it is gone."""
        batch, self._batch = self._batch, bytearray()
        return self._send(batch) if batch else self._records is not None

    def drain(self) -> None:
        """Wait until every record handed over so far is written (or the recording has failed)."""
        if self.flush() and self._send(RECORD.pack(0, DRAIN)):
            os.read(self._acks, 1)

    def _send(self, *parts: bytes) -> bool:
        if self._records is None:
            return False
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    view = view[os.write(self._records, view):]
        except OSError as exc:  # the recorder is gone (EPIPE)
            self.failure = exc
            self._close_pipe()
            return False
        return True

    def close(self) -> None:
        """Let the recorder write what is left and the report, and wait for it."""
        self.flush()
        self._close_pipe()
        self.process.wait()
        if self._acks is not None:
            os.close(self._acks)
            self._acks = None
        self._lock.release()  # the report is written: the folder is free

    def _close_pipe(self) -> None:
        if self._records is not None:
            os.close(self._records)
            self._records = None

"""The recorder: the live proxy's second process, which analyses each finished call, prints its line and writes
the session (flows.mitm, events.jsonl, and report.md at the end).

The proxy (`recording.Recording`) starts it and writes each finished flow's state to its standard input; it reads
each one as `ocitrace analyze` reads a flow file (`captures.call_from_state`), so the live lines and events are the
offline analysis of what was recorded, by construction. It ends when the proxy closes the pipe, whatever signal
the terminal sent to both: Ctrl-C stops the proxy, and the recorder still writes the report.
"""

from __future__ import annotations

import argparse
import errno
import logging
import marshal
import os
import pickle
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ocitrace.analyzers import redact, tnetstrings
from ocitrace.analyzers.analysis import Analyzer
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.recent import Recent
from ocitrace.analyzers.report import call_line, event_line, report_of
from ocitrace.analyzers.strings import LANGUAGES, os_error_text, text
from ocitrace.analyzers.words import meaning

from .recording import DRAIN, EVENTS_FILE, FLOWS_FILE, MARSHAL, READY, RECORD, REPORT_FILE, private_file, writable

logger = logging.getLogger("ocitrace.recorder")
# mitmproxy's level for what an addon has to say (its ALERT), which its terminal log shows by default. Not
# imported: mitmproxy.log would bring in most of mitmproxy, 30 MB of this process's 50.
ALERT = logging.INFO + 1


class Lines(logging.Formatter):
    """mitmproxy's own log format, `[14:48:29.064] line`: the time dim cyan and the line magenta on a terminal."""

    default_time_format = "%H:%M:%S"
    default_msec_format = "%s.%03d"

    def __init__(self, colour: bool):
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        if self.colour:
            return f"\x1b[2;36m[{self.formatTime(record)}]\x1b[0m \x1b[35m{record.getMessage()}\x1b[0m"
        return f"[{self.formatTime(record)}] {record.getMessage()}"


def records(stream: BinaryIO, acks: int) -> Iterator[dict]:
    """The flow states the proxy hands over, in order; a drain request is answered once all before it is done."""
    while True:
        head = stream.read(RECORD.size)
        if len(head) < RECORD.size:
            return
        length, kind = RECORD.unpack(head)
        if kind == DRAIN:
            os.write(acks, b".")
            continue
        data = stream.read(length)
        if len(data) < length:
            return
        yield marshal.loads(data) if kind == MARSHAL else pickle.loads(data)


def _flow_record(state: dict) -> bytes:
    """The flow as its flow file holds it; what another addon left in its metadata that no flow file can hold is
    left out (mitmproxy's own writer would fail on the whole flow)."""
    try:
        return tnetstrings.dumps(state)
    except ValueError:
        return tnetstrings.dumps({**state, "metadata": writable(state.get("metadata"), tnetstrings.dumps)})


class Recorder:
    def __init__(self, out: Path, flows: int, events: int, lang: str, keep_secrets: bool):
        self.out = out
        self.lang = lang
        self.keep_secrets = keep_secrets
        # The live analysis keeps no call: a proxy left up for weeks holds only what the recorder works on;
        # report.md is made from flows.mitm at the end.
        self.analyzer = Analyzer(retain=False)
        self.source = str(out / FLOWS_FILE)
        self._flows: BinaryIO | None = os.fdopen(flows, "wb")
        # Bytes a capture held that are not UTF-8 come out escaped, as `ocitrace analyze` writes them.
        self._events = os.fdopen(events, "w", encoding="utf-8", errors="backslashreplace")
        self.failure: OSError | None = None
        self._connections: Recent[tuple[str, str], tuple[dict, bytes]] = Recent(256)

    def add(self, state: dict) -> None:
        call = call_from_state(state, self.source)
        if call is None:
            return
        item = self.analyzer.add(call)
        said = meaning(item, "en")  # once, for the line and the event
        logger.log(ALERT, call_line(item, self.lang, said if self.lang == "en" else None))
        if self.failure is not None:
            return
        try:
            # What the reports hide, the flow file hides too (unless asked to keep it): it is shared as well.
            self._flows.write(_flow_record(self._with_connections(
                state if self.keep_secrets else redact.flow_state(state))))
            self._flows.flush()
            self._events.write(event_line(item, said))
            self._events.flush()
            if os.fstat(self._events.fileno()).st_nlink == 0:  # removed (with its folder): writes go nowhere
                raise FileNotFoundError(errno.ENOENT, "removed", str(self.out / EVENTS_FILE))
        except OSError as exc:
            self.failure = exc
            self._close_files()
            logger.log(ALERT, text("recording_stopped", self.lang, path=self.out, reason=os_error_text(exc, self.lang)))

    def _with_connections(self, state: dict) -> dict:
        """The state with its connections written as they were for the flow before on the same connection, when
        they have not changed (keep-alive: most calls), so they are not written again."""
        state = dict(state)
        for key in ("client_conn", "server_conn"):
            conn = state.get(key)
            if not isinstance(conn, dict):
                continue
            which = (key, str(conn.get("id")))
            known = self._connections.get(which)
            if known is None or known[0] != conn:
                known = self._connections[which] = (conn, tnetstrings.Encoded(tnetstrings.dumps(conn)))
            state[key] = known[1]
        return state

    def finish(self) -> None:
        self._close_files()
        if self.failure is not None:
            return
        path = self.out / REPORT_FILE
        try:
            report = report_of(self.out / FLOWS_FILE, self.lang)
            with private_file(path, "w") as fh:  # readable by its owner only, like the session's other files
                fh.write(report)
        except OSError as exc:
            logger.log(ALERT, text("error_cannot_write", self.lang, path=path, reason=os_error_text(exc, self.lang)))
            return
        logger.log(ALERT, text("report_written", self.lang, path=path))

    def _close_files(self) -> None:
        for fh in (self._flows, self._events):
            try:
                fh.close()
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    # The proxy decides when the recording ends, by closing the pipe: a signal meant for it (Ctrl-C reaches the
    # whole foreground group) must not cut the report short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: where cores are short, the traffic goes first (the pipe holds what waits meanwhile; a
    # recorder that falls behind by all it holds slows the proxy down).
    os.nice(19)
    parser = argparse.ArgumentParser(prog="ocitrace recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--lang", choices=LANGUAGES, default="en")
    parser.add_argument("--files", required=True, help="the open flows.mitm and events.jsonl, as fds")
    parser.add_argument("--acks", type=int, required=True, help="the fd a drain is answered on")
    parser.add_argument("--keep-secrets", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no line per call")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)  # flushed per line: `ocitrace run` shows them as they come
    handler.setFormatter(Lines(sys.stdout.isatty() and "NO_COLOR" not in os.environ))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1 if args.quiet else ALERT)
    flows, events = (int(fd) for fd in args.files.split(","))
    recorder = Recorder(args.out, flows, events, args.lang, args.keep_secrets)
    os.write(args.acks, READY)
    for state in records(sys.stdin.buffer, args.acks):
        recorder.add(state)
    recorder.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())

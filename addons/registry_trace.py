"""Trace a container client's registry calls live: one annotated line per call, events, a flow file, a report.

`ocitrace proxy` runs it; plain mitmproxy loads it with `mitmdump -s addons/script.py`. Blobs stream
through untouched while sha256 is computed over the chunks; manifests are kept for decoding. The hooks here
only gather what passes (what to stream, the taps, the upload sessions the taps feed) and hand each finished
flow to the recorder process, which analyses it with `ocitrace.analyzers` as `ocitrace analyze` would.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import replace
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.flow import Error as FlowError
from mitmproxy.log import ALERT
from ocitrace.analyzers.analysis import Analyzer
from ocitrace.analyzers.calls import METADATA_KEY, BodyTap, Call, CaptureMeta, Headers, content_length
from ocitrace.analyzers.endpoints import Classification
from ocitrace.analyzers.strings import LANGUAGES, os_error_text, text

from .flowcall import answered_call, call_from_flow
from .flowstate import flow_state
from .recording import (
    EVENTS_FILE,
    FLOWS_FILE,
    REPORT_FILE,
    FolderInUse,
    FolderLock,
    Recording,
    folder_sentence,
    lock_folder,
    writable_problem,
)
from .tap import Tap

logger = logging.getLogger(__name__)

# Registries accept manifests of at least 4 MiB (distribution-spec); a "manifest" past twice that is
# streamed like a blob rather than held in memory.
KEEP_LIMIT = 8 << 20
# How long a finished call may wait to be recorded (seconds), with the calls that finish meanwhile: the proxy takes
# their states and the recorder analyses them as one run, in caches kept warm (against 5 ms, this took a third off
# the proxy's own added CPU per small call, on two cores). A call's line comes a moment after this.
RECORD_AFTER = 0.25
RECORD_RUN = 256  # calls that wait at most: what they hold, and the loop's pause to record them, stay bounded
# The error of a call the proxy was still carrying when it stopped (mitmproxy's own errors read like this).
STOPPED = "proxy stopped before the call ended"


def held_whole(message: http.Message) -> bool:
    """Whether mitmproxy may read this body whole: it says how long it is, and that is small enough."""
    length = content_length(message.headers.get("content-length"))
    return length is not None and length <= KEEP_LIMIT


def _bodiless(request: http.Request, headers: Headers) -> bool:
    """An HTTP/1 request that says it has no body (no Content-Length, not chunked): mitmproxy streams none.
    `headers` are the request's, as its Call holds them: looked up for less than in mitmproxy's own."""
    names = headers.names()
    return request.http_version.startswith("HTTP/1") and "content-length" not in names \
        and "transfer-encoding" not in names


_ASKED = {"client_host", "client_scheme", "client_port"}  # what the upstream map leaves on a flow


def _only_asked(state) -> bool:
    """Whether a flow's ocitrace metadata is absent or holds only the name the client asked for, as the upstream map
    writes it: the state of a call with nothing measured, as it is (most small calls)."""
    return state is None or type(state) is dict and state.keys() <= _ASKED


def _needs_framing(request: http.Request) -> bool:
    return ((request.is_http2 or request.is_http3) and request.method in ("POST", "PUT", "PATCH")
            and "content-length" not in request.headers and "transfer-encoding" not in request.headers)


class InFlight:
    """What the hooks learnt of a flow before it completes: what it is, and the taps on its bodies."""

    __slots__ = ("call", "classification", "taps", "flow", "measured", "session")

    def __init__(self, call: Call, classification: Classification, flow: http.HTTPFlow):
        self.call = call  # as its request's headers made it
        self.classification = classification
        self.taps: dict[str, Tap] = {}
        self.flow = flow
        self.measured: dict[str, BodyTap] | None = None  # what the taps saw, once it ended
        self.session: BodyTap | None = None  # what its upload session hashed to, if it closed one


class RegistryTrace:
    def __init__(self) -> None:
        # Here only to classify requests and follow upload sessions; the recorder analyses each call. It keeps
        # no call: a proxy left up for weeks holds only what is in flight.
        self.analyzer = Analyzer(retain=False)
        self.in_flight: dict[str, InFlight] = {}
        self._finished: deque[InFlight] = deque()  # answered, to be recorded when the proxy has a moment
        self._later: asyncio.TimerHandle | None = None
        self.out: Path | None = None
        self.lock: FolderLock | None = None  # the folder, held from configure until the recording takes it
        self.recording: Recording | None = None

    def load(self, loader) -> None:
        loader.add_option("ocitrace_out", str, "ocitrace-out",
                          f"Folder for {FLOWS_FILE}, {EVENTS_FILE} and {REPORT_FILE} (created if missing); "
                          "a session found there is moved into its earlier/ folder.")
        loader.add_option("ocitrace_lang", str, "en", "Language of log lines and report.md.", choices=LANGUAGES)
        loader.add_option("ocitrace_keep_secrets", bool, False,
                          f"Write {FLOWS_FILE} as it passed, credentials included (by default they are redacted "
                          "there as in the reports).")
        loader.add_option("ocitrace_keep_bytes", int, 65536,
                          "Streamed bodies up to this size are kept whole (configs, attestations, errors); "
                          "larger ones (layers) only hashed.")

    def configure(self, updated: set[str]) -> None:
        if "ocitrace_out" in updated:
            out = Path(ctx.options.ocitrace_out)
            problem = writable_problem(out)
            if problem is not None:
                raise exceptions.OptionsError(folder_sentence(problem, out, ctx.options.ocitrace_lang, named=False))
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            # A folder already there is taken now, before the proxy listens: a run that finds it taken never starts
            # (a new one is made, and taken, once the proxy runs: a run that cannot start touches nothing).
            self.lock = self._take(out, exceptions.OptionsError) if out.is_dir() else None
            self.out = out

    def running(self) -> None:
        # Files are opened only now that the proxy is listening: a run that cannot start touches nothing.
        if self.out is not None and self.recording is None:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                lock = self.lock or self._take(self.out, OSError)
            except OSError as exc:  # another run took the new folder meanwhile, or it cannot be made
                logger.error(str(exc))
                ctx.master.shutdown()
                return
            self.recording = Recording(self.out, ctx.options.ocitrace_keep_secrets, self._lang, self._lines,
                                       lock=lock)
            self.lock = None  # the recording's now: it lets the folder go once its report is written
            if self.recording.earlier is not None:
                logger.log(ALERT, text("earlier_session", self._lang, path=self.recording.earlier))
            if self.recording.failure is not None:
                self._stop_recording()

    def _take(self, out: Path, error: type[Exception]) -> FolderLock:
        """The folder, held for this run; else `error` with the sentence that says why."""
        try:
            return lock_folder(out)
        except (FolderInUse, OSError) as exc:
            raise error(folder_sentence(exc, out, ctx.options.ocitrace_lang)) from None

    @property
    def _lang(self) -> str:
        return ctx.options.ocitrace_lang

    @property
    def _lines(self) -> bool:
        """Whether mitmproxy's terminal log shows ocitrace's lines (ALERT) at its verbosity."""
        verbosity = getattr(ctx.options, "termlog_verbosity", "info")
        return logging.getLevelName(verbosity.upper()) <= ALERT

    # --- hooks: gather, then hand over ---

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        call = call_from_flow(flow)
        classification = self.analyzer.classify(call)
        pending = self.in_flight[flow.id] = InFlight(call, classification, flow)
        self._stream(flow.request, pending, "request", self.analyzer.session_hash(classification, call.source))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.method != "HEAD":
            self._stream(flow.response, self._pending(flow), "response")

    def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def done(self) -> None:
        # Calls still in flight when the proxy stops are recorded too, as ended without an answer.
        for pending in list(self.in_flight.values()):
            if pending.flow.error is None:
                pending.flow.error = FlowError(STOPPED)
            self._finish(pending.flow)
        self._record_finished()
        if self.recording is not None:
            self.recording.close()  # the recorder writes what is left, then report.md
            self.recording = None
        if self.lock is not None:  # never recorded (the proxy did not get to run)
            self.lock.release()
            self.lock = None

    # --- helpers ---

    def _stream(self, message: http.Message, pending: InFlight, side: str, session=None) -> None:
        """Stream the body through a tap, unless it is one the analysis decodes and small enough to hold."""
        keeps = pending.classification.keeps(side)
        if keeps and held_whole(message) or side == "request" and _bodiless(message, pending.call.request_headers):
            return
        limit = KEEP_LIMIT if keeps else ctx.options.ocitrace_keep_bytes
        message.stream = pending.taps[side] = Tap(limit, session)
        if isinstance(message, http.Request) and _needs_framing(message):
            # An HTTP/2 body of unknown length streams to an HTTP/1.1 upstream: mitmproxy would send it with
            # neither Content-Length nor chunked framing, and the registry would read an empty body.
            message.headers["transfer-encoding"] = "chunked"

    def _pending(self, flow: http.HTTPFlow) -> InFlight:
        # A flow replayed or injected without requestheaders is classified when first seen.
        if flow.id not in self.in_flight:
            call = call_from_flow(flow)
            self.in_flight[flow.id] = InFlight(call, self.analyzer.classify(call), flow)
        return self.in_flight[flow.id]

    def _finish(self, flow: http.HTTPFlow) -> None:
        pending = self._pending(flow)
        del self.in_flight[flow.id]
        if self.analyzer.follows(pending.classification, flow.response.status_code if flow.response else None):
            self._follow(pending)  # now: the next request may depend on it (its upload session, a URL it named)
        # The recording waits a moment: the answer goes out first (mitmproxy sends it as this hook returns), and the
        # calls that finish meanwhile are recorded together. The client waits for none of it.
        self._finished.append(pending)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # hooks driven by hand, outside mitmproxy's loop: at once
            self._record_finished()
            return
        if len(self._finished) == RECORD_RUN:  # a burst: recorded now (once the answer is out), not all at once later
            if self._later is not None:
                self._later.cancel()
            self._later = loop.call_soon(self._record_finished)
        elif self._later is None:
            self._later = loop.call_later(RECORD_AFTER, self._record_finished)
        if pending.taps and pending.measured is None:
            loop.call_soon(self._measure, pending)  # a streamed body's hashing buffers go now, not with the flow

    def _record_finished(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        try:
            while self._finished:
                self._record(self._finished.popleft())
        finally:  # the calls recorded together, sent at once: those before a call that failed too
            if self.recording is not None and not self.recording.flush():
                self._stop_recording()
            if self._finished:  # the rest at the loop's next turn (the failure is mitmproxy's to log)
                self._later = asyncio.get_running_loop().call_soon(self._record_finished)

    def _measure(self, pending: InFlight) -> dict[str, BodyTap]:
        """What the taps saw (once every chunk handed over is hashed); a small streamed body is kept on the flow."""
        if pending.measured is None:
            pending.measured = {}
            flow = pending.flow
            for side, tap in pending.taps.items():
                if not tap.used:  # the body ended with its headers: mitmproxy read it whole, it was not streamed
                    continue
                pending.measured[side] = tap.measure()
                message = flow.request if side == "request" else flow.response
                if message is not None and message.raw_content is None:
                    message.raw_content = tap.small_body()
                    if message.raw_content is not None:  # (a body still coming keeps what the hashes have not seen)
                        tap.kept = None  # held once, on the flow, while it waits to be recorded
        return pending.measured

    def _follow(self, pending: InFlight) -> None:
        """Follow the call's upload session (and learn the URLs its answer names), as the analysis would."""
        measured = self._measure(pending)
        call = answered_call(pending.call, pending.flow, measured.get("request"), measured.get("response"))
        pending.session = self.analyzer.follow_sessions(call, pending.classification)

    def _record(self, pending: InFlight) -> None:
        """Leave what was measured on the flow (as `ocitrace analyze` reads it) and hand it to the recorder."""
        flow, measured = pending.flow, self._measure(pending)
        state = flow.metadata.get(METADATA_KEY)
        if measured or pending.session is not None or not _only_asked(state):
            meta = replace(CaptureMeta.from_state(state), request=measured.get("request"),
                           response=measured.get("response"))
            if pending.session is not None:
                meta = replace(meta, session=pending.session)
            state = meta.to_state()
        flow.metadata[METADATA_KEY] = state if state is not None else {}
        if self.recording is not None and not self.recording.write(flow_state(flow)):
            self._stop_recording()

    def _stop_recording(self) -> None:
        """The recorder is gone (it did not end by itself: a disk it could not write to, it says itself)."""
        failure = self.recording.failure
        self.recording.close()
        logger.log(ALERT, text("recording_stopped", self._lang, path=self.recording.out,
                               reason=os_error_text(failure, self._lang)))
        self.recording = None

"""Trace a container client's registry calls live: one annotated line per call, events, a flow file, a report.

`ocitrace proxy` runs it; plain mitmproxy loads it with `mitmdump -s addons/script.py`. Blobs stream
through untouched while sha256 is computed over the chunks; manifests are kept for decoding. What a call
means is decided in `ocitrace.analyzers`; the hooks here only gather what passes and hand it over.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.flow import Error as FlowError
from mitmproxy.log import ALERT
from ocitrace.analyzers.analysis import Analyzer
from ocitrace.analyzers.calls import METADATA_KEY, BodyTap, CaptureMeta, content_length
from ocitrace.analyzers.endpoints import Classification
from ocitrace.analyzers.report import call_line, event_line, report_of
from ocitrace.analyzers.strings import LANGUAGES, os_error_text, text

from .flowcall import call_from_flow
from .recording import EVENTS_FILE, FLOWS_FILE, REPORT_FILE, Recording, private_file, writable_problem
from .tap import Tap

logger = logging.getLogger(__name__)

# Registries accept manifests of at least 4 MiB (distribution-spec); a "manifest" past twice that is
# streamed like a blob rather than held in memory.
KEEP_LIMIT = 8 << 20
# The error of a call the proxy was still carrying when it stopped (mitmproxy's own errors read like this).
STOPPED = "proxy stopped before the call ended"


def held_whole(message: http.Message) -> bool:
    """Whether mitmproxy may read this body whole: it says how long it is, and that is small enough."""
    length = content_length(message.headers.get("content-length"))
    return length is not None and length <= KEEP_LIMIT


def _needs_framing(request: http.Request) -> bool:
    return ((request.is_http2 or request.is_http3) and request.method in ("POST", "PUT", "PATCH")
            and "content-length" not in request.headers and "transfer-encoding" not in request.headers)


class InFlight:
    """What the hooks learnt of a flow before it completes: what it is, and the taps on its bodies."""

    __slots__ = ("classification", "taps", "flow")

    def __init__(self, classification: Classification, flow: http.HTTPFlow):
        self.classification = classification
        self.taps: dict[str, Tap] = {}
        self.flow = flow


class RegistryTrace:
    def __init__(self) -> None:
        # The live analysis keeps no call: each is logged and written as it completes; report.md is made
        # from flows.mitm at the end, so a proxy left up for weeks holds only what is in flight.
        self.analyzer = Analyzer(retain=False)
        self.in_flight: dict[str, InFlight] = {}
        self.out: Path | None = None
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
                raise exceptions.OptionsError(text("error_cannot_write", ctx.options.ocitrace_lang, path=out,
                                                   reason=os_error_text(problem, ctx.options.ocitrace_lang)))
            self.out = out

    def running(self) -> None:
        # Files are opened only now that the proxy is listening: a run that cannot start touches nothing.
        if self.out is not None and self.recording is None:
            self.recording = Recording(self.out, ctx.options.ocitrace_keep_secrets)
            if self.recording.earlier is not None:
                logger.log(ALERT, text("earlier_session", self._lang, path=self.recording.earlier))

    @property
    def _lang(self) -> str:
        return ctx.options.ocitrace_lang

    # --- hooks: gather, then hand over ---

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        classification = self.analyzer.classify(self._call(flow))
        pending = self.in_flight[flow.id] = InFlight(classification, flow)
        self._stream(flow.request, pending, "request", self.analyzer.session_hash(classification))

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
        if self.recording is None:
            return
        self.recording.close()
        if self.recording.failure is not None:
            self._stop_recording()
            return
        report = report_of(self.recording.flows_path, self._lang)
        path = self.recording.out / REPORT_FILE
        try:
            with private_file(path, "w") as fh:  # readable by its owner only, like the session's other files
                fh.write(report)
        except OSError as exc:
            logger.log(ALERT, text("error_cannot_write", self._lang, path=path, reason=os_error_text(exc, self._lang)))
            return
        logger.log(ALERT, text("report_written", self._lang, path=path))

    # --- helpers ---

    def _call(self, flow: http.HTTPFlow, request: BodyTap | None = None, response: BodyTap | None = None):
        source = str(self.recording.flows_path) if self.recording is not None else ""
        return call_from_flow(flow, request, response, source=source)

    def _stream(self, message: http.Message, pending: InFlight, side: str, session=None) -> None:
        """Stream the body through a tap, unless it is one the analysis decodes and small enough to hold."""
        keeps = pending.classification.keeps(side)
        if keeps and held_whole(message):
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
            self.in_flight[flow.id] = InFlight(self.analyzer.classify(self._call(flow)), flow)
        return self.in_flight[flow.id]

    def _finish(self, flow: http.HTTPFlow) -> None:
        pending = self._pending(flow)
        del self.in_flight[flow.id]
        measured: dict[str, BodyTap] = {}
        for side, tap in pending.taps.items():
            if not tap.used:  # the body ended with its headers: mitmproxy read it whole, it was not streamed
                continue
            measured[side] = tap.measure()
            message = flow.request if side == "request" else flow.response
            if message is not None and message.raw_content is None:
                message.raw_content = tap.small_body()
        call = self._call(flow, measured.get("request"), measured.get("response"))
        item = self.analyzer.add(call, pending.classification)
        meta = replace(CaptureMeta.from_state(flow.metadata.get(METADATA_KEY)), request=measured.get("request"),
                       response=measured.get("response"))
        if item.classification.closes_session(call.status) and item.body_digest:
            meta = replace(meta, session=BodyTap(item.body_digest, item.body_size or 0))
        flow.metadata[METADATA_KEY] = meta.to_state()
        logger.log(ALERT, call_line(item, self._lang))
        if self.recording is not None and self.recording.failure is not None:  # found by the writer, behind
            self._stop_recording()
        if self.recording is not None:
            self.recording.write(flow, event_line(item))

    def _stop_recording(self) -> None:
        failure = self.recording.failure
        self.recording.close()
        logger.log(ALERT, text("recording_stopped", self._lang, path=self.recording.out,
                               reason=os_error_text(failure, self._lang)))
        self.recording = None

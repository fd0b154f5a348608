"""Trace a container client's registry calls live: one annotated line per call, events, a flow file, a report.

Load it with `mitmdump -s addons/registry_trace.py --set ocitrace_out=DIR` (or run `ocitrace proxy`).
Blobs stream through untouched while sha256 is computed over the chunks; manifests are kept for decoding.
What a call means is decided in `analyzers`; the hooks here only gather what passes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

# Loaded as a script, only this folder is on sys.path: make the project's packages importable.
if __package__ in (None, "") or __package__.startswith("__mitmproxy_script__"):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mitmproxy import ctx, exceptions, http, io  # noqa: E402
from mitmproxy.log import ALERT  # noqa: E402

from analyzers.analysis import Analyzer  # noqa: E402
from analyzers.calls import METADATA_KEY, BodyTap  # noqa: E402
from analyzers.captures import call_from_state  # noqa: E402
from analyzers.digests import Hasher, UploadSessions  # noqa: E402
from analyzers.endpoints import Classification, default_table  # noqa: E402
from analyzers.report import LANGUAGES, call_line, call_record, render_markdown  # noqa: E402

logger = logging.getLogger(__name__)

FLOWS_FILE = "flows.mitm"
EVENTS_FILE = "events.jsonl"
REPORT_FILE = "report.md"


# Hashing runs on one worker thread, so that a blob is hashed on another core while the event loop goes
# on forwarding it: hashlib lets go of the GIL while it hashes a large buffer. Chunks are joined into
# large batches because the worker must win the GIL back from the busy loop for each call (up to the
# 5 ms switch interval): per 64 KiB chunk that wait would throttle it; per 4 MiB it does not. One
# worker keeps every stream's chunks in order; a stream with more batches waiting waits for them, so
# memory stays bounded.
_HASHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocitrace-hash")
BATCH = 4 << 20
IN_FLIGHT = 2


class Tap:
    """A stream callable: forwards every chunk as it is, hashing it and keeping a small body whole."""

    def __init__(self, keep_limit: int, also: Hasher | None = None):
        self.hashers = (Hasher(),) if also is None else (Hasher(), also)
        self.keep_limit = keep_limit
        self.kept: bytearray | None = bytearray()
        self.complete = False
        self._batch: list[bytes] = []
        self._batched = 0
        self._in_flight: deque[Future] = deque()

    def __call__(self, chunk: bytes) -> bytes:
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
            self._in_flight.append(_HASHING.submit(_update, self.hashers, b"".join(self._batch)))
            self._batch, self._batched = [], 0
        while self._in_flight and (len(self._in_flight) > IN_FLIGHT or self._in_flight[0].done()):
            self._in_flight.popleft().result()

    def state(self) -> dict:
        """What was measured, once every chunk handed over has been hashed."""
        self._hand_over()
        while self._in_flight:
            self._in_flight.popleft().result()
        hasher = self.hashers[0]
        return BodyTap(hasher.digest if self.complete else None, hasher.size, self.complete).to_state()

    def small_body(self) -> bytes | None:
        return bytes(self.kept) if self.complete and self.kept is not None else None


def _update(hashers: tuple[Hasher, ...], data: bytes) -> None:
    for hasher in hashers:
        hasher.update(data)


def writable_problem(out: Path) -> str | None:
    """Why ocitrace cannot write into `out` (created if missing), or None: checked before any traffic."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in (FLOWS_FILE, EVENTS_FILE, REPORT_FILE):
            with open(out / name, "ab"):
                pass
    except OSError as exc:
        return f"cannot write to {out}: {exc.strerror}"
    if not os.access(out, os.W_OK):
        return f"cannot write to {out}: permission denied"
    return None


def classify_request(request: http.Request) -> Classification:
    path, _, query = request.path.partition("?")
    return default_table().classify(request.method, path, query)


# Registries accept manifests of at least 4 MiB (distribution-spec); a "manifest" past twice that is
# streamed like a blob rather than held in memory.
KEEP_LIMIT = 8 << 20


def too_large(message: http.Message) -> bool:
    length = message.headers.get("content-length", "")
    return length.isdigit() and int(length) > KEEP_LIMIT


class InFlight:
    """What the hooks learnt of a flow before it completes: what it is, and the taps on its bodies."""

    # A plain class: mitmproxy loads this file as a script outside sys.modules, where dataclasses fail.
    def __init__(self, classification: Classification):
        self.classification = classification
        self.taps: dict[str, Tap] = {}


class RegistryTrace:
    def __init__(self) -> None:
        self.analyzer = Analyzer()
        self.uploads = UploadSessions()
        self.in_flight: dict[str, InFlight] = {}
        self.out: Path | None = None
        self._flows = None
        self._writer: io.FlowWriter | None = None
        self._events = None

    def load(self, loader) -> None:
        loader.add_option("ocitrace_out", str, "ocitrace-out",
                          f"Folder for {FLOWS_FILE}, {EVENTS_FILE} and {REPORT_FILE} (created if missing).")
        loader.add_option("ocitrace_lang", str, "en", "Language of log lines and report.md.", choices=LANGUAGES)
        loader.add_option("ocitrace_keep_bytes", int, 65536,
                          "Streamed bodies up to this size are kept whole (configs, attestations, errors); "
                          "larger ones (layers) only hashed.")

    def configure(self, updated: set[str]) -> None:
        if "ocitrace_out" in updated:
            self._open(Path(ctx.options.ocitrace_out))

    def _open(self, out: Path) -> None:
        problem = writable_problem(out)
        if problem:
            raise exceptions.OptionsError(f"ocitrace_out: {problem}")
        # One folder, one session: a new run replaces the files of the last one, so that report.md,
        # events.jsonl and flows.mitm always tell the same story.
        flows = open(out / FLOWS_FILE, "wb")
        events = open(out / EVENTS_FILE, "w", encoding="utf-8")
        self.close()
        self.out, self._flows, self._events = out, flows, events
        self._writer = io.FlowWriter(flows)

    # --- hooks: gather, then hand over ---

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        pending = self.in_flight[flow.id] = InFlight(classify_request(flow.request))
        cls = pending.classification
        if cls.keeps("request") and not too_large(flow.request):
            return
        session = self.uploads.hasher(cls.session) if cls.session else None
        flow.request.stream = pending.taps["request"] = Tap(ctx.options.ocitrace_keep_bytes, session)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        pending = self._pending(flow)
        if flow.request.method == "HEAD" or (pending.classification.keeps("response")
                                             and not too_large(flow.response)):
            return
        flow.response.stream = pending.taps["response"] = Tap(ctx.options.ocitrace_keep_bytes)

    def response(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow)

    def done(self) -> None:
        if self.out is not None:
            report = render_markdown(self.analyzer.analysis, [str(self.out / FLOWS_FILE)],
                                     lang=ctx.options.ocitrace_lang)
            (self.out / REPORT_FILE).write_text(report, encoding="utf-8")
        self.close()

    # --- helpers ---

    def _pending(self, flow: http.HTTPFlow) -> InFlight:
        # A flow replayed or injected without requestheaders is classified when first seen.
        if flow.id not in self.in_flight:
            self.in_flight[flow.id] = InFlight(classify_request(flow.request))
        return self.in_flight[flow.id]

    def _finish(self, flow: http.HTTPFlow) -> None:
        meta = flow.metadata.setdefault(METADATA_KEY, {})
        pending = self._pending(flow)
        del self.in_flight[flow.id]
        cls = pending.classification
        for side, tap in pending.taps.items():
            meta[side] = tap.state()
            if side == "request" and cls.session and not tap.complete:
                self.uploads.hasher(cls.session).whole = False
            message = flow.request if side == "request" else flow.response
            body = tap.small_body()
            if message is not None and message.raw_content is None and body is not None:
                message.raw_content = body
        status = flow.response.status_code if flow.response is not None else None
        if cls.session and cls.closes_session(status):
            session = self.uploads.close(cls.session)
            meta["session"] = BodyTap(session.digest, session.size, session.whole).to_state()
        item = self.analyzer.add(call_from_state(flow.get_state(), FLOWS_FILE))
        logger.log(ALERT, call_line(item, ctx.options.ocitrace_lang))
        if self._writer is not None:
            self._writer.add(flow)
            self._flows.flush()
            self._events.write(json.dumps(call_record(item, self.analyzer.analysis), ensure_ascii=False) + "\n")
            self._events.flush()

    def close(self) -> None:
        for fh in (self._flows, self._events):
            if fh is not None:
                fh.close()
        self._flows = self._events = self._writer = None


# mitmdump -s registry_trace.py loads both: the upstream map chooses where a call goes before it streams.
from addons.upstream_map import UpstreamMap  # noqa: E402

addons = [UpstreamMap(), RegistryTrace()]

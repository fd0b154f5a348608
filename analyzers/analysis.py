"""Turn a sequence of Calls into what they mean: classified calls, decoded objects, digest checks, findings.

`Analyzer` is the one pipeline of ocitrace: the live proxy and `ocitrace analyze` both feed it calls in
order with `add`. The live proxy also asks `classify` as soon as a request's headers are in (to choose
what to stream) and hands that classification back with the finished call, so each call is classified
once, with one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .calls import DECODE_LIMIT, BodyTap, Call, content_decoded, redirected, resolved
from .conformance import CaptureFinding, Conformance
from .digests import Digest, algorithm_of
from .endpoints import STATUS_SUCCESS, Classification, EndpointTable, default_table
from .findings import ERROR, WARNING, Finding
from .manifests import (
    Decoded,
    DecodeFailure,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    Platform,
    RegistryError,
    bare_media_type,
    canonical_bytes,
    decode_blob,
    decode_errors,
    decode_manifest,
)
from .operations import SWEEP, Operation, Operations, Reason
from .recent import Recent
from .runs import KEPT, Runs
from .sessions import UploadSessions, session_key
from .tally import MOST_ROWS, Tally
from .tokens import Grant, decode_grant


@dataclass(frozen=True)
class DigestCheck:
    """One comparison of a computed digest (or size) with what something else claimed."""

    against: str  # "url", "Docker-Content-Digest", "descriptor size"
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass
class DecodedObject:
    """A body ocitrace decoded: a manifest, an index, a config. Seen once per digest."""

    digest: str | None
    media_type: str | None
    value: Decoded
    repository: str | None
    calls: Runs = field(default_factory=Runs)

    @property
    def kind(self) -> str:
        return self.value.kind


@dataclass(slots=True)
class AnalyzedCall:
    index: int  # 0-based position in the session
    call: Call
    classification: Classification
    session: str | None = None
    body_digest: str | None = None
    body_size: int | None = None
    checks: list[DigestCheck] = field(default_factory=list)
    object: DecodedObject | None = None
    descriptor: Descriptor | None = None
    platform: Platform | None = None  # as known when the call completed
    findings: list[Finding] = field(default_factory=list)
    registry_errors: tuple[RegistryError, ...] = ()
    operation: int | None = None  # the id of the operation it belongs to
    step: str | None = None  # its part in that operation
    reason: Reason | None = None  # why it was made, where the capture shows it
    grant: Grant | None = None  # what a token answer granted

    @property
    def endpoint_id(self) -> str | None:
        return self.classification.endpoint_id

    @property
    def digest_verified(self) -> bool | None:
        """True when every check passed, False on any mismatch, None when nothing could be checked."""
        if not self.checks:
            return None
        return all(check.ok for check in self.checks)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]


@dataclass
class Analysis:
    calls: list[AnalyzedCall] = field(default_factory=list)
    objects: list[DecodedObject] = field(default_factory=list)
    objects_untold: int = 0  # decoded, and not kept (see Analyzer._keep_object)
    operations: list[Operation] = field(default_factory=list)
    # What the whole session tells of each manifest's platform (from indexes and from configs),
    # including what was learnt after the call that carried it.
    platforms: Recent[str, Platform] = field(default_factory=Recent)
    findings: list[CaptureFinding] = field(default_factory=list)  # about the capture as a whole
    tally: Tally = field(default_factory=Tally)  # what the report counts over every call
    # Over every operation, `operations` holding only those begun within the kept calls: each client, in the order
    # its first operation began; how many parts the story has; the operations that were a GET /v2/ alone.
    clients: dict[str, None] = field(default_factory=dict)
    parts: int = 0
    bare: set[int] = field(default_factory=set)
    whole: bool = True  # every call, object and operation kept whole, with every call it was seen in (JSON's)

    @property
    def told_objects(self) -> list[DecodedObject]:
        """The decoded bodies a report tells (its trees, its image graph); `objects` past them only name theirs."""
        return self.objects[:MOST_OBJECTS]

    @property
    def count(self) -> int:
        """How many calls were analysed (`calls` may hold only the first of them)."""
        return self.tally.calls

    def platform_of(self, item: AnalyzedCall) -> Platform | None:
        if item.platform is not None:
            return item.platform
        for digest in (item.classification.digest, item.body_digest):
            if digest in self.platforms:
                return self.platforms[digest]
        return None

    @property
    def warnings(self) -> list[tuple[AnalyzedCall, Finding]]:
        """Every error and warning of every call, in call order."""
        return [(item, finding) for item in self.calls for finding in item.warnings]


def _realm(challenge: str) -> str | None:
    """The realm of a `WWW-Authenticate: Bearer realm="...",service="..."` challenge."""
    scheme, _, params = challenge.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    for part in params.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "realm":
            return value.strip().strip('"') or None
    return None


class Analyzer:
    def __init__(self, table: EndpointTable | None = None, *, retain: bool = True, keep: int | None = None):
        """`retain`: keep calls and objects in `analysis` (for a report), the first `keep` calls whole (None:
        every call; what the report counts over every call is tallied either way). The live proxy keeps none."""
        self.table = table or default_table()
        self.retain = retain
        self.keep = keep
        self.count = 0
        self.sessions = UploadSessions()
        # what an object, an operation or a finding was seen in: every call for JSON, else what a report says of them
        self._runs = None if keep is None else KEPT
        self.analysis = Analysis(tally=Tally(runs=self._runs, rows=None if keep is None else MOST_ROWS))
        self.operations = Operations(retain=retain, runs=self._runs, keep=keep)
        self.conformance = Conformance()
        self._aliases: Recent[str, str] = Recent(4096)  # upload ids a session was given later -> the session
        self.analysis.operations = self.operations.all
        self.analysis.clients = self.operations.clients
        self.analysis.whole = keep is None
        # URLs earlier answers named, by kind (`challenge`: token realms from 401s; the `teaches` of a row,
        # e.g. `redirect`: storage URLs from 307s), with the classification of the call that named them.
        self._learned: dict[str, Recent[str, Classification | None]] = {}
        self._descriptors: Recent[str, Descriptor] = Recent()
        self._platforms = self.analysis.platforms
        self._objects: Recent[str, DecodedObject] = Recent()
        self._manifests_of_config: Recent[str, dict[str, None]] = Recent()
        self._kept_names: set[str] = set()  # what the objects kept for the report name (see _keep_object)
        # Small blobs uploaded whole (configs, attestations): decoded once a manifest names them.
        self._uploaded: Recent[str, tuple[bytes, int]] = Recent(256)
        # Upload URLs a session's answers named outside /v2 (Google Artifact Registry's /artifacts-uploads/...): the
        # spec's Location is opaque. URL -> (repository, session).
        self._upload_urls: Recent[str, tuple[str, str]] = Recent(4096)

    def classify(self, call: Call) -> Classification:
        """What a call is, from its request alone. Its status class comes with `add`."""
        url = call.origin + call.path
        classification = self.table.classify(call.method, call.path, call.query, url=url, learned=self._learned)
        opened = self._upload_urls.get(url) if classification.endpoint is None else None
        if opened is not None:  # a session's own URL, wherever it is: the session's call, as on /v2
            repository, session = opened
            classification = self.table.classify(call.method, f"/v2/{repository}/blobs/uploads/{session}", call.query)
        endpoint = classification.endpoint
        if endpoint is not None and endpoint.learned_from:
            source = self._learned.get(endpoint.learned_from, {}).get(url)
            if source is not None:
                classification = replace(classification, repository=source.repository, digest=source.digest)
        session = self._aliases.get(session_key(call.source, classification.session or ""))
        if session is not None:  # a session whose Location changed on the way: still the session it began as
            classification = replace(classification, session=session)
        return classification

    def session_hash(self, classification: Classification, source: str = ""):
        """For the live proxy: the running hash a request's stream tap should feed, when the request carries a
        chunk of an upload session (the table's `carries: {request: chunk}`); else None."""
        endpoint = classification.endpoint
        if classification.session and endpoint is not None and endpoint.carries.get("request") == "chunk":
            return self.sessions.tap(session_key(source, classification.session))
        return None

    def add(self, call: Call, classification: Classification | None = None) -> AnalyzedCall:
        """Analyse the next call; `classification` is what `classify` said of its request, if asked."""
        classification = (classification or self.classify(call)).answered(call.status, call.method)
        item = AnalyzedCall(index=self.count, call=call, classification=classification,
                            findings=list(classification.findings))
        self.count += 1
        if call.error:
            item.findings.append(Finding.of("call-failed", error=call.error))
        if call.status is not None and call.status >= 400:
            item.registry_errors = decode_errors(call.response_body)
        try:
            self._analyse(item)
        except Exception as exc:  # noqa: BLE001 - a call is never lost to a fault of the analysis: it is told
            item.findings.append(Finding.of("analysis-failed", error=type(exc).__name__))
        try:
            self.operations.add(item)
        except Exception as exc:  # noqa: BLE001
            item.findings.append(Finding.of("analysis-failed", error=type(exc).__name__))
        try:
            item.findings += self.conformance.check(item)
            if item.index % SWEEP == SWEEP - 1:  # what ended operations did: a long capture's memory stays flat
                self.conformance.forget_operations(self.operations.live())
        except Exception as exc:  # noqa: BLE001
            item.findings.append(Finding.of("analysis-failed", error=type(exc).__name__))
        if self.retain:
            item.call = _without_bodies(item.call)
            try:
                self.conformance.gather(item)
            except Exception as exc:  # noqa: BLE001
                item.findings.append(Finding.of("analysis-failed", error=type(exc).__name__))
            self.analysis.tally.add(item)
        if self.retain and (self.keep is None or item.index < self.keep):
            item.call.request_headers.forget_index()  # a report reads few headers again: memory, not speed
            item.call.response_headers.forget_index()
            self.analysis.calls.append(item)
        return item

    @staticmethod
    def follows(classification: Classification, status: int | None) -> bool:
        """Whether `follow_sessions` has anything to learn from a call so answered (most calls: nothing)."""
        endpoint = classification.endpoint
        return (classification.session is not None or classification.opens_session(status) or status == 401
                or (endpoint is not None and bool(endpoint.teaches) and redirected(status)))

    def follow_sessions(self, call: Call, classification: Classification) -> BodyTap | None:
        """For the live proxy, which leaves the rest of the analysis to its recorder: follow the call's upload
        session only (its stream taps feed the session hashes), and say what the session hashed to when this
        call closed it (recorded as the call's `session`, as an offline analysis reads it)."""
        classification = classification.answered(call.status, call.method)
        item = AnalyzedCall(index=self.count, call=call, classification=classification)
        self.count += 1
        self._session(item)
        endpoint = classification.endpoint
        if endpoint is not None and endpoint.carries.get("request") == "chunk" and call.method != "HEAD":
            self._chunk(item, call.request_body, call.request_tap)
        if classification.closes_session(call.status) and item.body_digest:
            return BodyTap(item.body_digest, item.body_size or 0)
        return None

    def _analyse(self, item: AnalyzedCall) -> None:
        self._session(item)
        self._body(item)
        self._link_descriptor(item)

    def _session(self, item: AnalyzedCall) -> None:
        call, classification = item.call, item.classification
        self._learn(call, classification)
        item.session = classification.session or self._opened_session(item)
        if item.session and classification.session:
            self._follow_location(item)
        if item.session and classification.ends_session(call.status):
            self.sessions.close(session_key(call.source, item.session))  # cancelled: nothing to check

    def add_all(self, calls) -> Analysis:
        for call in calls:
            self.add(call)
        return self.finish()

    def finish(self) -> Analysis:
        """The analysis of every call added, with what only the whole capture shows (`at: end` rules)."""
        if self.retain:
            self.analysis.parts = self.operations.parts()
            self.analysis.bare = self.operations.bare_pings()
            try:
                self.analysis.findings = self.conformance.at_end(self.analysis)
            except Exception as exc:  # noqa: BLE001
                self.analysis.findings = [CaptureFinding((), Finding.of("analysis-failed", error=type(exc).__name__))]
        return self.analysis

    # --- steps ---

    def _learn(self, call: Call, classification: Classification) -> None:
        if call.status == 401:
            realm = _realm(call.response_headers.get("www-authenticate") or "")
            target = resolved(call.url, realm) if realm else None
            if target:
                self._learned.setdefault("challenge", Recent())[target] = None
        endpoint, location = classification.endpoint, call.response_headers.get("location")
        if endpoint is not None and endpoint.teaches and redirected(call.status) and location:
            target = resolved(call.url, location)
            if target:
                self._learned.setdefault(endpoint.teaches, Recent())[target] = classification

    def _learn_upload_url(self, item: AnalyzedCall, session: str) -> None:
        """Where a session's next call goes, when that is not a /v2 upload URL the table knows."""
        call, repository = item.call, item.classification.repository
        location = call.response_headers.get("location")
        if not location or "/blobs/uploads/" in location or not repository or call.status != 202:
            return  # most registries: a /v2 upload URL, which the table knows (resolving it costs 10 µs a call)
        target = resolved(call.url, location)
        if target:
            self._upload_urls[target] = (repository, session)

    def _follow_location(self, item: AnalyzedCall) -> None:
        """A registry may give each answer of a session a new upload URL (the spec: clients use the most recent
        Location, as an opaque URL): the id it names is the same session."""
        self._learn_upload_url(item, item.session)
        location = (item.call.response_headers.get("location") or "").split("?", 1)[0].rstrip("/")
        named = location.rsplit("/", 1)[-1] if "/blobs/uploads/" in location else ""
        if named and named != item.session and item.call.status == 202:
            self._aliases[session_key(item.call.source, named)] = item.session

    def _opened_session(self, item: AnalyzedCall) -> str | None:
        call = item.call
        if not item.classification.opens_session(call.status):
            return None
        # The id the next calls will name is the last segment of the Location they go to.
        location = (call.response_headers.get("location") or "").split("?", 1)[0].rstrip("/")
        session = location.rsplit("/", 1)[-1] if "/" in location else None
        session = session or call.response_headers.get("docker-upload-uuid") or None
        if session:
            self.sessions.open(session_key(call.source, session), item.classification.repository, item.index)
            self._learn_upload_url(item, session)
        return session

    def _body(self, item: AnalyzedCall) -> None:
        call, classification = item.call, item.classification
        endpoint = classification.endpoint
        if endpoint is None or not endpoint.carries or call.method == "HEAD":
            return
        [(side, payload)] = endpoint.carries.items()
        if side == "response" and (classification.status_class != STATUS_SUCCESS or redirected(call.status)):
            return
        body = call.response_body if side == "response" else call.request_body
        tap = call.response_tap if side == "response" else call.request_tap
        headers = call.response_headers if side == "response" else call.request_headers
        coding = (headers.get("content-encoding") or "identity").strip().lower()
        if coding != "identity" and payload != "chunk":
            # HTTP content coding is transparent (RFC 9110 8.4): the digest covers the decoded content
            body = content_decoded(body, coding, DECODE_LIMIT) if body is not None else None
            if body is None:
                item.findings.append(Finding.of("body-encoded", encoding=coding))
                return
        aborted = tap is not None and not tap.complete
        if aborted:
            item.findings.append(Finding.of("upload-aborted" if side == "request" else "download-aborted",
                                            bytes=tap.size))
        if payload == "chunk":
            self._chunk(item, body, tap)
            return
        if payload == "token":  # what it granted; a token is no image content, nothing to check
            item.grant = decode_grant(body)
            return
        if body is None and tap is None:
            if call.status is not None and call.status != 206:
                item.findings.append(Finding.of("body-not-captured"))
            return
        if aborted:
            return
        media_type = bare_media_type(headers.get("content-type"))
        if body is not None and len(body) > DECODE_LIMIT and payload in ("manifest", "referrers"):
            # Past what a registry accepts as a manifest: checked, not decoded (decoding would cost far more).
            item.body_size, item.body_digest = len(body), self._digest_like(body, classification.digest)
            item.findings.append(Finding.of("body-too-large", bytes=len(body)))
        elif body is not None:
            item.body_size = len(body)
            if payload == "manifest":
                self._manifest(item, body, media_type)
            elif payload == "referrers":
                self._decoded(item, None, decode_manifest(body, media_type), media_type)
            else:
                self._blob(item, body)
        else:
            item.body_size, item.body_digest = tap.size, tap.digest
            if tap.captured:  # held whole by the capture, past DECODE_LIMIT: checked, not decoded, as above
                if payload in ("manifest", "referrers"):
                    item.findings.append(Finding.of("body-too-large", bytes=tap.size))
            elif payload == "manifest":
                item.findings.append(Finding.of("body-not-captured"))
        if payload != "referrers" and call.status != 206:
            if classification.status_class == STATUS_SUCCESS:
                self._check(item)
            elif side == "request":  # refused: what the client sent, against the digest it named (a registry
                self._check(item, named_only=True)  # refuses a wrong one, 400 DIGEST_INVALID: told only here)

    def _manifest(self, item: AnalyzedCall, body: bytes, media_type: str | None) -> None:
        decoded = decode_manifest(body, media_type)
        declared = media_type if isinstance(decoded, DecodeFailure) else decoded.media_type
        canonical = canonical_bytes(body, declared)
        item.body_digest = self._digest_like(canonical, item.classification.digest)
        self._decoded(item, item.body_digest, decoded, declared)

    def _blob(self, item: AnalyzedCall, body: bytes) -> None:
        item.body_digest = self._digest_like(body, item.classification.digest)
        descriptor = self._descriptors.get(item.body_digest or "")
        decoded = decode_blob(body, descriptor.media_type) if descriptor and len(body) <= DECODE_LIMIT else None
        if decoded is not None:
            self._decoded(item, item.body_digest, decoded, descriptor.media_type)

    def _chunk(self, item: AnalyzedCall, body: bytes | None, tap: BodyTap | None) -> None:
        call, session = item.call, item.session
        if body is not None:
            item.body_size = len(body)
        elif tap is not None:
            item.body_size = tap.size
        if session:
            refused = call.status is not None and item.classification.status_class != STATUS_SUCCESS
            self.sessions.chunk(session_key(call.source, session), item.index, body, streamed=tap is not None,
                                complete=tap is None or tap.complete, refused=refused)
        if not session or not item.classification.closes_session(call.status):
            return
        upload = self.sessions.close(session_key(call.source, session))
        if upload.digest is not None:
            item.body_digest, item.body_size = upload.digest, upload.size
            if upload.body is not None:
                self._uploaded[upload.digest] = (upload.body, item.index)
        elif call.session_tap is not None and call.session_tap.complete:
            # A live capture read offline: the proxy hashed the session's chunks as they passed.
            item.body_digest, item.body_size = call.session_tap.digest, call.session_tap.size
        self._check(item)

    @staticmethod
    def _digest_like(data: bytes, expected: str | None) -> str:
        """The body's digest in the algorithm the URL names (sha256 when it names none)."""
        return str(Digest.of(data, algorithm_of(expected) or "sha256"))

    def _check(self, item: AnalyzedCall, named_only: bool = False) -> None:
        """The body's digest against the URL's, the answer's Docker-Content-Digest and the size a descriptor gave;
        `named_only`: against the URL's alone."""
        if not item.body_digest:
            return
        classification, call = item.classification, item.call
        algorithm = algorithm_of(item.body_digest)
        if classification.digest and algorithm_of(classification.digest) == algorithm:
            item.checks.append(DigestCheck("url", classification.digest, item.body_digest))
        if named_only:
            return
        header = call.response_headers.get("docker-content-digest")
        if header and algorithm_of(header) == algorithm:
            item.checks.append(DigestCheck("Docker-Content-Digest", header, item.body_digest))
        descriptor = self._descriptors.get(item.body_digest)
        if descriptor is not None and item.body_size is not None:
            item.checks.append(DigestCheck("descriptor size", str(descriptor.size), str(item.body_size)))

    def _decoded(self, item: AnalyzedCall, digest: str | None, value: Decoded, media_type: str | None) -> None:
        if isinstance(value, DecodeFailure):
            item.findings.append(value.finding)
        key = digest or f"#{item.index}"
        obj = self._objects.get(key)
        if obj is None:
            obj = DecodedObject(digest, media_type, value, item.classification.repository, Runs(limit=self._runs))
            self._objects[key] = obj
            self._keep_object(obj, item.index)
        if self.retain:
            obj.calls.append(item.index)
        item.object = obj
        self._remember(value, digest)

    def _remember(self, value: Decoded, digest: str | None) -> None:
        """Keep the descriptors an index or manifest names, to check and label what is fetched next."""
        if isinstance(value, Index):
            for d in value.manifests:
                self._descriptors.setdefault(d.digest, d)
                if d.platform is not None and d.attests is None:
                    self._platforms[d.digest] = d.platform
            for d in value.attestations:
                if d.attests in self._platforms:
                    self._platforms.setdefault(d.digest, self._platforms[d.attests])
        elif isinstance(value, ImageManifest):
            for d in (value.config, *value.layers):
                self._descriptors.setdefault(d.digest, d)
                self._decode_uploaded(d)
            if digest:
                self._manifests_of_config.setdefault(value.config.digest, {})[digest] = None
                config = self._objects.get(value.config.digest)
                if config is not None and isinstance(config.value, ImageConfig):
                    self._learn_platform(digest, config.value.platform)
        elif isinstance(value, ImageConfig) and digest:
            for manifest in self._manifests_of_config.get(digest, ()):
                self._learn_platform(manifest, value.platform)

    def _decode_uploaded(self, descriptor: Descriptor) -> None:
        """A config (or attestation) pushed before the manifest that says what it is."""
        if descriptor.digest not in self._uploaded or descriptor.digest in self._objects:
            return
        body, index = self._uploaded.pop(descriptor.digest)
        decoded = decode_blob(body, descriptor.media_type)
        if decoded is None:
            return
        obj = DecodedObject(descriptor.digest, descriptor.media_type, decoded, None,
                            Runs([index] if self.retain else [], limit=self._runs))
        self._objects[descriptor.digest] = obj
        self._keep_object(obj, index)
        self._remember(decoded, descriptor.digest)

    def _keep_object(self, obj: DecodedObject, index: int) -> None:
        """Kept for the report: the first MOST_OBJECTS objects, every one first seen within the kept calls (the
        story names them: a config's diff_ids, a manifest's platform), and what a kept one names (its tree shows
        them); the others are counted."""
        if not self.retain:
            return
        if (self.keep is None or index < self.keep or len(self.analysis.objects) < MOST_OBJECTS
                or obj.digest in self._kept_names):
            self.analysis.objects.append(obj)
            value = obj.value
            if isinstance(value, Index | ImageManifest):
                self._kept_names.update(d.digest for d in (value.manifests if isinstance(value, Index)
                                                           else (value.config, *value.layers)))
        else:
            self.analysis.objects_untold += 1

    def _learn_platform(self, manifest: str, platform: Platform) -> None:
        if not platform.unknown and platform.os:
            self._platforms.setdefault(manifest, platform)

    def _link_descriptor(self, item: AnalyzedCall) -> None:
        for digest in (item.classification.digest, item.body_digest):
            if digest and item.descriptor is None:
                item.descriptor = self._descriptors.get(digest)
            if digest and item.platform is None:
                item.platform = self._platforms.get(digest)


# Decoded bodies a report tells (in the order first seen), each image a tree and a node of its graph: past them it
# counts (a fleet's day decodes thousands of images). JSON, which keeps every call, has them all.
MOST_OBJECTS = 100


# Bodies past this are let go once analysed (their sizes kept): a report needs what was learnt of them, and a
# capture of a fleet's day holds gigabytes of them.
KEPT_BODY = 4096


def _without_bodies(call: Call) -> Call:
    request, response = call.request_body, call.response_body
    if (request is None or len(request) <= KEPT_BODY) and (response is None or len(response) <= KEPT_BODY):
        return call
    changes = {}
    for side, body, tap in (("request", request, call.request_tap), ("response", response, call.response_tap)):
        if body is not None and len(body) > KEPT_BODY:
            changes[f"{side}_body"] = None
            changes[f"{side}_tap"] = tap or BodyTap(None, len(body))
    return replace(call, **changes)


def analyze(calls, keep: int | None = None) -> Analysis:
    """The analysis of `calls`, keeping the first `keep` of them whole (None: all)."""
    return Analyzer(keep=keep).add_all(calls)

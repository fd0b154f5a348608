"""Turn a sequence of Calls into what they mean: classified calls, decoded objects, digest checks.

`Analyzer` is incremental so the live proxy and `ocitrace analyze` share it: feed calls in order with
`add`, read `analysis` at any time.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

from .calls import BodyTap, Call
from .digests import UploadSessions, sha256_digest
from .endpoints import STATUS_SUCCESS, Classification, EndpointTable, default_table
from .manifests import (
    Decoded,
    DecodeFailure,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    Platform,
    bare_media_type,
    canonical_bytes,
    decode_blob,
    decode_manifest,
)

_REALM = re.compile(r'realm="([^"]+)"', re.IGNORECASE)


@dataclass(frozen=True)
class DigestCheck:
    """One comparison of a computed digest (or size) with what something else claimed."""

    against: str  # "url", "Docker-Content-Digest", "descriptor"
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
    calls: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.value.kind


@dataclass
class AnalyzedCall:
    index: int
    call: Call
    classification: Classification
    session: str | None = None
    body_digest: str | None = None
    body_size: int | None = None
    checks: list[DigestCheck] = field(default_factory=list)
    object: DecodedObject | None = None
    descriptor: Descriptor | None = None
    platform: Platform | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def endpoint_id(self) -> str | None:
        return self.classification.endpoint_id

    @property
    def digest_verified(self) -> bool | None:
        """True when every check passed, False on any mismatch, None when nothing could be checked."""
        if not self.checks:
            return None
        return all(check.ok for check in self.checks)


@dataclass
class Analysis:
    calls: list[AnalyzedCall] = field(default_factory=list)
    objects: list[DecodedObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What the whole session tells of each manifest's platform (from indexes and from configs),
    # including what was learnt after the call that carried it.
    platforms: dict[str, Platform] = field(default_factory=dict)

    def platform_of(self, item: AnalyzedCall) -> Platform | None:
        if item.platform is not None:
            return item.platform
        for digest in (item.classification.digest, item.body_digest):
            if digest in self.platforms:
                return self.platforms[digest]
        return None


def _redirect(status: int | None) -> bool:
    return status is not None and 300 <= status < 400


def _origin_and_path(url: str) -> str:
    """scheme://host[:port]/path as Call.origin + Call.path print it (no default port, no query)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _hash(data: bytes, algorithm: str) -> str | None:
    try:
        return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    except (ValueError, TypeError):
        return None


class Analyzer:
    def __init__(self, table: EndpointTable | None = None):
        self.table = table or default_table()
        self.analysis = Analysis()
        # URLs earlier answers named, by kind: token realms from 401 challenges, storage from 307s.
        self._learned: dict[str, set[str]] = {"challenge": set(), "redirect": set()}
        self._redirected: dict[str, Classification] = {}
        self._uploads = UploadSessions()
        self._descriptors: dict[str, Descriptor] = {}
        self._platforms = self.analysis.platforms
        self._objects: dict[str, DecodedObject] = {}
        self._manifests_of_config: dict[str, list[str]] = {}

    def add(self, call: Call) -> AnalyzedCall:
        self._learn_realm(call)
        url = call.origin + call.path
        classification = self.table.classify(call.method, call.path, call.query, call.status, url=url,
                                             learned=self._learned)
        if classification.endpoint_id == "blob-redirect" and url in self._redirected:
            source = self._redirected[url]
            classification = replace(classification, repository=source.repository, digest=source.digest)
        self._learn_redirect(call, classification)
        item = AnalyzedCall(index=len(self.analysis.calls), call=call, classification=classification)
        item.session = classification.session or self._opened_session(call, classification)
        for problem in classification.problems:
            item.notes.append(problem)
        if call.error:
            item.notes.append(f"error: {call.error}")
        self._body(item)
        self._link_descriptor(item)
        self._warn(item)
        self.analysis.calls.append(item)
        return item

    def add_all(self, calls) -> Analysis:
        for call in calls:
            self.add(call)
        return self.analysis

    # --- steps ---

    def _learn_realm(self, call: Call) -> None:
        if call.status != 401:
            return
        challenge = call.response_headers.get("www-authenticate") or ""
        match = _REALM.search(challenge)
        if match and challenge.lower().startswith("bearer"):
            self._learned["challenge"].add(_origin_and_path(match.group(1)))

    def _learn_redirect(self, call: Call, classification: Classification) -> None:
        location = call.response_headers.get("location")
        if classification.endpoint_id == "end-2" and _redirect(call.status) and location:
            target = _origin_and_path(urljoin(call.url, location))
            self._learned["redirect"].add(target)
            self._redirected[target] = classification

    @staticmethod
    def _opened_session(call: Call, classification: Classification) -> str | None:
        if classification.endpoint_id not in ("end-4a", "end-4b", "end-11") or call.status != 202:
            return None
        uuid = call.response_headers.get("docker-upload-uuid")
        if uuid:
            return uuid
        location = (call.response_headers.get("location") or "").split("?", 1)[0].rstrip("/")
        return location.rsplit("/", 1)[-1] or None

    def _body(self, item: AnalyzedCall) -> None:
        call, cls = item.call, item.classification
        if cls.endpoint is None or not cls.endpoint.carries or call.method == "HEAD":
            return
        [(side, kind)] = cls.endpoint.carries.items()
        if side == "response" and (cls.status_class != STATUS_SUCCESS or _redirect(call.status)):
            return
        body = call.response_body if side == "response" else call.request_body
        tap = call.response_tap if side == "response" else call.request_tap
        headers = call.response_headers if side == "response" else call.request_headers
        aborted = tap is not None and not tap.complete
        if aborted:
            item.notes.append(f"aborted after {tap.size} bytes")
        if kind == "chunk":
            self._chunk(item, body, tap)
            return
        if body is None and tap is None:
            if call.status is not None and call.status != 206:
                item.notes.append("body not captured")
            return
        if aborted:
            return
        media_type = bare_media_type(headers.get("content-type"))
        if body is not None:
            item.body_size = len(body)
            if kind == "manifest":
                self._manifest(item, body, media_type)
            elif kind == "referrers":
                self._decoded(item, None, decode_manifest(body, media_type), media_type)
            else:
                self._blob(item, body)
        else:
            item.body_size, item.body_digest = tap.size, tap.digest
            if kind == "manifest":
                item.notes.append("body not captured")
        if kind != "referrers" and cls.status_class == STATUS_SUCCESS and call.status != 206:
            self._check(item)

    def _manifest(self, item: AnalyzedCall, body: bytes, media_type: str | None) -> None:
        decoded = decode_manifest(body, media_type)
        declared = media_type if isinstance(decoded, DecodeFailure) else decoded.media_type
        canonical = canonical_bytes(body, declared)
        item.body_digest = self._digest_like(canonical, item.classification.digest)
        self._decoded(item, item.body_digest, decoded, declared)

    def _blob(self, item: AnalyzedCall, body: bytes) -> None:
        item.body_digest = self._digest_like(body, item.classification.digest)
        descriptor = self._descriptors.get(item.body_digest or "")
        decoded = decode_blob(body, descriptor.media_type) if descriptor else None
        if decoded is not None:
            self._decoded(item, item.body_digest, decoded, descriptor.media_type)

    def _chunk(self, item: AnalyzedCall, body: bytes | None, tap: BodyTap | None) -> None:
        session = item.session
        if body is not None:
            item.body_size = len(body)
        elif tap is not None:
            item.body_size = tap.size
        if session:
            self._uploads.feed(session, body)
        if not item.classification.closes_session(item.call.status):
            return
        hashed = self._uploads.close(session) if session else None
        if item.call.session_tap is not None:
            item.body_digest, item.body_size = item.call.session_tap.digest, item.call.session_tap.size
        elif hashed is not None and hashed.whole:
            item.body_digest, item.body_size = hashed.digest, hashed.size
        self._check(item)

    @staticmethod
    def _digest_like(data: bytes, expected: str | None) -> str | None:
        """The body's digest in the algorithm the URL names (sha256 when it names none)."""
        algorithm = (expected or "").partition(":")[0]
        if algorithm and algorithm != "sha256":
            return _hash(data, algorithm) or sha256_digest(data)
        return sha256_digest(data)

    def _check(self, item: AnalyzedCall) -> None:
        if not item.body_digest:
            return
        cls, call = item.classification, item.call
        if cls.digest and cls.digest.partition(":")[0] == item.body_digest.partition(":")[0]:
            item.checks.append(DigestCheck("url", cls.digest, item.body_digest))
        header = call.response_headers.get("docker-content-digest")
        if header and header.partition(":")[0] == item.body_digest.partition(":")[0]:
            item.checks.append(DigestCheck("Docker-Content-Digest", header, item.body_digest))
        descriptor = self._descriptors.get(item.body_digest)
        if descriptor is not None and item.body_size is not None:
            item.checks.append(DigestCheck("descriptor size", str(descriptor.size), str(item.body_size)))

    def _decoded(self, item: AnalyzedCall, digest: str | None, value: Decoded, media_type: str | None) -> None:
        if isinstance(value, DecodeFailure):
            item.notes.append(f"cannot decode: {value.reason}")
        key = digest or f"#{item.index}"
        obj = self._objects.get(key)
        if obj is None:
            obj = DecodedObject(digest, media_type, value, item.classification.repository)
            self._objects[key] = obj
            self.analysis.objects.append(obj)
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
            if digest:
                self._manifests_of_config.setdefault(value.config.digest, []).append(digest)
                config = self._objects.get(value.config.digest)
                if config is not None and isinstance(config.value, ImageConfig):
                    self._learn_platform(digest, config.value.platform)
        elif isinstance(value, ImageConfig) and digest:
            for manifest in self._manifests_of_config.get(digest, ()):
                self._learn_platform(manifest, value.platform)

    def _learn_platform(self, manifest: str, platform: Platform) -> None:
        if not platform.unknown and platform.os:
            self._platforms.setdefault(manifest, platform)

    def _link_descriptor(self, item: AnalyzedCall) -> None:
        for digest in (item.classification.digest, item.body_digest):
            if digest and item.descriptor is None:
                item.descriptor = self._descriptors.get(digest)
            if digest and item.platform is None:
                item.platform = self._platforms.get(digest)

    def _warn(self, item: AnalyzedCall) -> None:
        call = item.call
        where = f"call {item.index + 1} ({call.method} {call.path})"
        for check in item.checks:
            if not check.ok:
                self.analysis.warnings.append(
                    f"DIGEST MISMATCH in {where}: {check.against} says {check.expected}, body is {check.actual}"
                )
        for note in item.notes:
            if note.startswith(("invalid", "cannot decode")):
                self.analysis.warnings.append(f"{where}: {note}")


def analyze(calls) -> Analysis:
    return Analyzer().add_all(calls)

"""The rules of rules.yaml, checked passively on each side of the wire.

A rule `at: call` is decided when its call completes, from that call and what earlier calls taught (so the
live proxy logs it in the same event an offline analysis writes); a rule `at: end` needs the whole capture
(an upload never closed, a blob no manifest names) and is decided once the analysis has every call.
Each check is a function named by the table; it returns the finding's values, or None when the rule holds.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .endpoints import STATUS_OFF_SPEC, STATUS_SUCCESS
from .findings import Finding
from .manifests import ImageManifest, Index, bare_media_type
from .operations import client_key
from .recent import Recent
from .rules import Rule, rules
from .sessions import session_key
from .tokens import token_request

if TYPE_CHECKING:
    from .analysis import Analysis, AnalyzedCall

# distribution-spec v1.1 "Error Codes"
SPEC_ERROR_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
    "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
    "TAG_INVALID", "MANIFEST_UNVERIFIED"})  # legacy (schema 1): "the client MAY encounter" them
_CHUNK_RANGE = re.compile(r"^([0-9]+)-([0-9]+)$")
_LINK_VALUE = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+)*)')
_REL = re.compile(r'(?i)\brel\s*=\s*"?([^";,]+)"?')
# A chunk under this, on average, costs more in round trips than it carries (unless the registry asks for less).
SMALL_CHUNK = 1 << 20


@dataclass(frozen=True)
class CaptureFinding:
    """A finding about several calls of a capture (an `at: end` rule): 0-based call indexes and the finding."""

    calls: tuple[int, ...]
    finding: Finding


@dataclass
class _Session:
    next_start: int | None = None  # where the next chunk must start, as the last answer's Range said
    chunks: int = 0
    bytes: int = 0
    minimum: int | None = None  # OCI-Chunk-Min-Length
    registry: str = ""  # where it was opened (its Location may send its calls to another host)


# Entries of the memories kept per operation, at most (a pull of the largest image fetches a few hundred URLs; a
# fleet's clients interleave a few thousand). What an operation did is let go once no call can join it.
PER_OPERATION = 16_384


class Conformance:
    """Holds what the `at: call` rules need of earlier calls, bounded like the analysis' own memory."""

    def __init__(self) -> None:
        self.call_rules = [r for r in rules() if r.at == "call"]
        self.end_rules = [r for r in rules() if r.at == "end"]
        self._ends = {r.check: END_CHECKS[r.check]() for r in self.end_rules}
        self._applying: Recent[tuple[str | None, str, int | None], list[Rule]] = Recent(4096)
        self._sessions: Recent[str, _Session] = Recent(1024)
        # what one operation did: asked again within it, so a capture's older operations need not be remembered
        self._fetched: Recent[tuple[int | None, str], int] = Recent(PER_OPERATION)  # (operation, url) -> first call
        self._had: Recent[tuple[int | None, str], int] = Recent(PER_OPERATION)  # (operation, manifest) -> the call
        self._tokens: Recent[tuple[str, str], tuple[float, int]] = Recent(4096)  # (client, scope) -> (until, call)
        self._present: Recent[tuple[str, str, str], str] = Recent()  # (client, host, digest) -> a repository
        self._sizes: Recent[str, int] = Recent()  # digest -> its size, from a body or a descriptor

    def check(self, item: AnalyzedCall) -> list[Finding]:
        call = item.call
        key = (item.endpoint_id, call.method, call.status)
        applying = self._applying.get(key)
        if applying is None:  # which rules apply to calls like this one, decided once per kind of call
            applying = self._applying[key] = [r for r in self.call_rules if r.applies(*key)]
        found = [Finding(rule.code, values) for rule in applying
                 for values in CALL_CHECKS[rule.check](self, rule, item)]
        self._learn(item)
        return found

    def forget_operations(self, live: set[int]) -> None:
        """Let go what the operations not in `live` did: no call joins them any more, so none can repeat it."""
        for memory in (self._fetched, self._had):
            for key in [key for key in memory if key[0] not in live]:
                del memory[key]
        for check in self._ends.values():
            check.settle(live)

    def gather(self, item: AnalyzedCall) -> None:
        """Give a finished call (its findings complete) to the `at: end` rules."""
        for check in self._ends.values():
            check.add(item)

    def at_end(self, analysis: Analysis) -> list[CaptureFinding]:
        return [CaptureFinding(tuple(calls), Finding(rule.code, values)) for rule in self.end_rules
                for calls, values in self._ends[rule.check].found(analysis)]

    # --- what later calls need to know ---

    def _learn(self, item: AnalyzedCall) -> None:
        call, classification = item.call, item.classification
        client, endpoint = client_key(call), item.endpoint_id
        success = classification.status_class == STATUS_SUCCESS
        if item.session and call.status in (201, 202, 204):
            session = self._sessions.setdefault(session_key(call.source, item.session),
                                                _Session(registry=call.authority))
            if call.method == "PATCH" and call.request_size:
                session.chunks += 1
                session.bytes += call.request_size
            end = _range_end(call.response_headers.get("range"))
            sent = _CHUNK_RANGE.match((call.request_headers.get("content-range") or "").strip())
            if end is None and sent is not None and call.method == "PATCH":  # no Range: the chunk's own end
                end = int(sent.group(2))
            if end is not None:
                # `0-0` on a session that has received nothing is distribution's "empty" (the spec's own example
                # for an upload just started), not "byte 0 held"
                session.next_start = 0 if end == 0 and session.bytes == 0 else end + 1
            minimum = call.response_headers.get("oci-chunk-min-length")
            if minimum and minimum.isdigit():
                session.minimum = int(minimum)
        if call.status == 401:  # a new challenge: a new token is due
            for key in [k for k in self._tokens if k[0] == client]:
                del self._tokens[key]
        if endpoint == "token" and success and item.grant is not None and item.grant.expires_in:
            scope = " ".join(sorted(token_request(call).get("scope", [])))
            self._tokens[(client, scope)] = ((call.end or call.timestamp or 0) + item.grant.expires_in, item.index)
        if success and call.method == "GET" and endpoint in ("end-2", "end-3") and call.status != 206:
            self._fetched.setdefault((item.operation, call.url), item.index)  # a part (206) is not the whole
        if success and endpoint == "end-3" and item.body_digest:
            self._had.setdefault((item.operation, item.body_digest), item.index)
        if item.body_digest and item.body_size is not None and item.call.method != "HEAD":
            self._sizes[item.body_digest] = item.body_size
        value = item.object.value if item.object is not None else None
        if isinstance(value, Index | ImageManifest):
            for descriptor in (value.manifests if isinstance(value, Index) else (value.config, *value.layers)):
                self._sizes.setdefault(descriptor.digest, descriptor.size)
        digest = classification.digest
        mounted = endpoint != "end-11" or call.status == 201  # a 202 to a mount is an upload instead
        if success and mounted and digest and endpoint in ("end-2", "end-6", "end-4b", "end-11") \
                and classification.repository:
            self._present[(client, self.registry(item), digest)] = classification.repository

    def registry(self, item: AnalyzedCall) -> str:
        """The registry a call is made to: its upload session's, for a session's call on another host."""
        session = self._sessions.get(session_key(item.call.source, item.session)) if item.session else None
        return session.registry if session is not None and session.registry else item.call.authority


def _range_end(value: str | None) -> int | None:
    """The last byte a registry says it holds: `Range: 0-1023` (distribution) or `bytes=0-1023` (the spec)."""
    match = re.fullmatch(r"\s*(?:bytes=)?(\d+)-(\d+)\s*", value or "")
    return int(match.group(2)) if match else None


# --- checks of one call: each yields the values of its findings (none when the rule holds) ---

Check = Callable[[Conformance, Rule, "AnalyzedCall"], Iterator[dict[str, Any]]]


def _status(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    if item.classification.status_class == STATUS_OFF_SPEC:
        yield {"status": item.call.status, "endpoint": item.endpoint_id}


def _header(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    if not item.call.response_headers.get(rule.header or ""):
        yield {"header": rule.header, "status": item.call.status}


def _served_digest(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    if item.classification.endpoint is not None and "response" in item.classification.endpoint.carries:
        for check in item.checks:
            if not check.ok:
                yield {"against": check.against, "expected": check.expected, "actual": check.actual}


def _sent_digest(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    if item.classification.endpoint is not None and "request" in item.classification.endpoint.carries:
        for check in item.checks:
            if not check.ok:
                yield {"against": check.against, "expected": check.expected, "actual": check.actual}


def _declared(item: AnalyzedCall) -> str | None:
    value = item.object.value if item.object is not None else None
    return value.declared_media_type if isinstance(value, ImageManifest | Index) else None


def _served_media_type(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    declared, sent = _declared(item), bare_media_type(item.call.response_headers.get("content-type"))
    if declared and sent != declared:
        yield {"content_type": sent or "-", "media_type": declared}


def _sent_media_type(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    declared, sent = _declared(item), bare_media_type(item.call.request_headers.get("content-type"))
    if declared and sent != declared:
        yield {"content_type": sent or "-", "media_type": declared}


def _content_length(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    """A HEAD's Content-Length against the size the capture knows for that digest (a body, a descriptor)."""
    call = item.call
    digest = call.response_headers.get("docker-content-digest") or item.classification.digest or ""
    declared, known = call.response_headers.get("content-length"), state._sizes.get(digest)
    if declared and declared.strip().isdigit() and known is not None and int(declared) != known:
        yield {"declared": int(declared), "actual": known}


def _error_body(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    call = item.call
    if (item.endpoint_id in (None, "token", "blob-redirect") or call.method == "HEAD" or call.status is None
            or not 400 <= call.status < 500 or call.response_body is None):
        return  # a body the capture kept, of a /v2 error answer: HEAD answers have none
    # "A 4XX response code from the registry MAY return a body in any format. If the response body is in JSON
    # format, it MUST have the following format": only a JSON body that is not the spec's is a finding.
    if not item.registry_errors and call.response_body.lstrip()[:1] in (b"{", b"[") and _is_json(call.response_body):
        yield {"status": call.status}


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _error_code(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    if item.call.status is None or not 400 <= item.call.status < 500:
        return  # the spec's list governs 4XX bodies; a 5xx is the server's own trouble
    for error in item.registry_errors:
        if error.code not in SPEC_ERROR_CODES:
            yield {"error_code": error.code}


def _subject_header(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    value = item.object.value if item.object is not None else None
    subject = getattr(value, "subject", None)
    if subject is not None and not item.call.response_headers.get("oci-subject"):
        yield {"subject": subject.digest}


def _link(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    """RFC 8288: `<uri>; param; ...`, links separated by commas; one must have a rel naming `next`."""
    for value in item.call.response_headers.values("link"):
        links = _LINK_VALUE.findall(value)
        if not links or not any("next" in rel.lower().split() for _, params in links
                                for rel in _REL.findall(params)):
            yield {"value": value}


def _accept(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    # what the manifest is (its own mediaType when decoded): a wrong Content-Type is the registry's fault
    value = item.object.value if item.object is not None else None
    got = (value.media_type if isinstance(value, ImageManifest | Index) else None) or bare_media_type(
        item.call.response_headers.get("content-type"))
    accepted = [bare_media_type(part) for value in item.call.request_headers.values("accept")
                for part in value.split(",")]
    if not got:
        return
    if not accepted:
        yield {"media_type": got, "accept": "-"}
    elif not any(a in (got, "*/*") or (a or "").endswith("/*") and got.startswith(a[:-1]) for a in accepted):
        yield {"media_type": got, "accept": ", ".join(a for a in accepted if a)}


def _chunk_range(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    value = item.call.request_headers.get("content-range")
    if value is not None and not _CHUNK_RANGE.match(value.strip()):
        yield {"value": value}


def _content_type(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    sent = bare_media_type(item.call.response_headers.get("content-type"))
    if sent != rule.content_type:
        yield {"content_type": sent or "-", "expected": rule.content_type}


def _chunk_length(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    match = _CHUNK_RANGE.match((item.call.request_headers.get("content-range") or "").strip())
    sent = item.call.request_size
    if match and sent is not None and int(match.group(2)) - int(match.group(1)) + 1 != sent:
        yield {"range": match.group(0), "bytes": sent}


def _chunk_order(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    match = _CHUNK_RANGE.match((item.call.request_headers.get("content-range") or "").strip())
    session = state._sessions.get(session_key(item.call.source, item.session or ""))
    if match and session is not None and session.next_start is not None and int(match.group(1)) != session.next_start:
        yield {"start": int(match.group(1)), "expected": session.next_start}


def _fetched_again(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    first = state._fetched.get((item.operation, item.call.url))
    if first is not None:
        yield {"call": first + 1}


def _could_be_head(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    if item.classification.tag is None or not item.body_digest:
        return
    first = state._had.get((item.operation, item.body_digest))
    if first is not None:
        yield {"call": first + 1}


def _token_refetched(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    call = item.call
    scope = " ".join(sorted(token_request(call).get("scope", [])))
    held = state._tokens.get((client_key(call), scope))
    now = call.timestamp
    if held is not None and now is not None and now < held[0]:
        yield {"call": held[1] + 1, "seconds": int(held[0] - now)}


def _could_mount(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    digest = item.body_digest or item.classification.digest
    if not digest:
        return
    source = state._present.get((client_key(item.call), state.registry(item), digest))
    if source is not None and source != item.classification.repository:
        yield {"digest": digest, "repository": source}


def _tiny_chunks(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    session = state._sessions.get(session_key(item.call.source, item.session or ""))
    if session is None or session.chunks < 2:
        return
    average = session.bytes // session.chunks
    if average < (session.minimum or SMALL_CHUNK):
        yield {"chunks": session.chunks, "bytes": average}


def _rate_limited(state: Conformance, rule: Rule, item: AnalyzedCall) -> Iterator[dict[str, Any]]:
    yield {"retry_after": item.call.response_headers.get("retry-after") or "-"}


CALL_CHECKS: dict[str, Check] = {
    "status": _status, "header": _header, "served-digest": _served_digest, "sent-digest": _sent_digest,
    "served-media-type": _served_media_type, "sent-media-type": _sent_media_type, "content-length": _content_length,
    "error-body": _error_body, "error-code": _error_code, "subject-header": _subject_header, "link": _link,
    "accept": _accept, "chunk-range": _chunk_range, "chunk-order": _chunk_order, "content-type": _content_type,
    "chunk-length": _chunk_length, "fetched-again": _fetched_again,
    "could-be-head": _could_be_head, "token-refetched": _token_refetched, "could-mount": _could_mount,
    "tiny-chunks": _tiny_chunks, "rate-limited": _rate_limited,
}


# --- checks of the whole capture: each gathers what it needs as the calls are analysed (`add`, in call order),
# and at the end yields (the calls it is about, the finding's values) ---

class EndCheck:
    """An `at: end` rule's check: given every finished call, it tells at the end what it found."""

    def add(self, item: AnalyzedCall) -> None:
        raise NotImplementedError

    def settle(self, live: set[int]) -> None:
        """The operations not in `live` take no more calls: what is held of them only for later calls may go."""

    def found(self, analysis: Analysis) -> Iterator[tuple[list[int], dict[str, Any]]]:
        raise NotImplementedError


class _OpenUploads(EndCheck):
    """Upload sessions opened and never closed, cancelled (a DELETE tried counts, whatever its answer) or ended (a
    call answered 404: the registry has dropped it, as distribution does after a close refused, so there is nothing
    left to cancel)."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[str, list[int]]] = {}  # session -> (repository, its calls so far)
        # Ended, or first seen on a call that did not open it: never told (one id an upload; one seen again after
        # it is forgotten is settled again, as it did not open).
        self._settled: Recent[str, None] = Recent(4096)

    def add(self, item: AnalyzedCall) -> None:
        if not item.session:
            return
        session = session_key(item.call.source, item.session)
        if session in self._settled:
            return
        classification, call = item.classification, item.call
        if session not in self._open:
            if not classification.opens_session(call.status):
                self._settled[session] = None
                return
            self._open[session] = (classification.repository or "-", [])
        if classification.closes_session(call.status) or classification.ends_session(call.status) \
                or call.method == "DELETE" or call.status == 404:
            del self._open[session]
            self._settled[session] = None
            return
        self._open[session][1].append(item.index)

    def found(self, analysis: Analysis) -> Iterator[tuple[list[int], dict[str, Any]]]:
        for repository, calls in self._open.values():
            yield calls, {"repository": repository}


def _pushed_names(item: AnalyzedCall) -> list[str] | None:
    """The digests a pushed manifest names (None when its body was not decoded)."""
    value = item.object.value if item.object is not None else None
    if isinstance(value, Index):
        return [d.digest for d in value.manifests]
    if isinstance(value, ImageManifest):
        return [d.digest for d in (value.config, *value.layers)]
    return None


class _UnreferencedBlobs(EndCheck):
    """Blobs pushed to a repository that no manifest pushed there names."""

    def __init__(self) -> None:
        # (host, repo) -> blob digest -> the call: blobs no manifest pushed there has named yet (let go once one does)
        self._pushed: dict[tuple[str, str], dict[str, int]] = {}
        # what manifests pushed there named: a blob pushed again later is named still (not forgotten: a digest
        # forgotten would tell that blob unreferenced, a false warning)
        self._named: dict[tuple[str, str], set[str]] = {}
        self._unknown: set[tuple[str, str]] = set()  # a manifest pushed there was not decoded: nothing is told
        self._opened_at: Recent[tuple[str, str], str] = Recent(4096)  # (client, upload session) -> its registry

    def add(self, item: AnalyzedCall) -> None:
        if item.classification.status_class != STATUS_SUCCESS:
            return
        host = item.call.authority
        if item.session:  # a session may be closed on another host (its Location's): it is the registry's it began on
            host = self._opened_at.setdefault((client_key(item.call), item.session), host)
        where = (host, item.classification.repository or "")
        if item.endpoint_id in ("end-6", "end-4b", "end-11") and item.call.status == 201:
            digest = item.body_digest if item.endpoint_id != "end-11" else None
            digest = digest or item.classification.digest
            if digest and digest not in self._named.get(where, ()):
                self._pushed.setdefault(where, {}).setdefault(digest, item.index)
        if item.endpoint_id == "end-7" and item.call.method == "PUT":
            names = _pushed_names(item)
            if names is None:
                self._unknown.add(where)
                return
            self._named.setdefault(where, set()).update(names)
            waiting = self._pushed.get(where, {})
            for digest in names:
                waiting.pop(digest, None)
            if not waiting:
                self._pushed.pop(where, None)

    def found(self, analysis: Analysis) -> Iterator[tuple[list[int], dict[str, Any]]]:
        for where, blobs in self._pushed.items():
            if where not in self._unknown:
                for digest, index in blobs.items():
                    yield [index], {"digest": digest, "repository": where[1]}


class _ReferrersTag(EndCheck):
    """A manifest with a subject pushed where the registry has no referrers API, and no referrers tag after it."""

    def __init__(self) -> None:
        self._tagged: set[tuple[str, str, str]] = set()  # (client, repository, tag) of manifests pushed
        self._waiting: list[tuple[int, tuple[str, str, str]]] = []

    def add(self, item: AnalyzedCall) -> None:
        if item.endpoint_id != "end-7" or item.call.method != "PUT" or item.call.status != 201:
            return
        client, repository = client_key(item.call), item.classification.repository or ""
        if item.classification.tag:
            self._tagged.add((client, repository, item.classification.tag))
        subject = next((f.values["subject"] for f in item.findings if f.code == "no-oci-subject"), None)
        if subject is not None:
            self._waiting.append((item.index, (client, repository, str(subject).replace(":", "-", 1)[:128])))

    def found(self, analysis: Analysis) -> Iterator[tuple[list[int], dict[str, Any]]]:
        for index, tag in self._waiting:
            if tag not in self._tagged:
                yield [index], {"tag": tag[2]}


class _UnusedPings(EndCheck):
    """GET /v2/ asked again before the operation it began (only the last one counts), or beginning nothing."""

    def __init__(self) -> None:
        self._last: dict[int | None, int] = {}  # operation -> its last ping so far, while a call may still join it
        self._earlier = array("q")  # pings another of their operation came after: unused, whatever it went on to do
        # operation, its last ping, for operations no call joins any more: a flat array (a day's operations each
        # held a dict entry and a list)
        self._settled = array("q")

    def add(self, item: AnalyzedCall) -> None:
        if item.step == "ping" and item.reason is not None and item.reason.code == "ping":
            earlier = self._last.get(item.operation)
            if earlier is not None:
                self._earlier.append(earlier)
            self._last[item.operation] = item.index

    def settle(self, live: set[int]) -> None:
        """Set apart the operations no call can join any more: whether their last ping was used is told at the end."""
        for operation in [op for op in self._last if op is not None and op not in live]:
            self._settled.extend((operation, self._last.pop(operation)))

    def found(self, analysis: Analysis) -> Iterator[tuple[list[int], dict[str, Any]]]:
        bare, settled = analysis.bare, self._settled
        unused = [*self._earlier, *(i for op, i in self._last.items() if op in bare),
                  *(settled[k + 1] for k in range(0, len(settled), 2) if settled[k] in bare)]
        if unused:
            yield sorted(unused), {"n": len(unused)}


END_CHECKS: dict[str, Callable[[], EndCheck]] = {
    "open-uploads": _OpenUploads, "unreferenced-blobs": _UnreferencedBlobs, "referrers-tag": _ReferrersTag,
    "unused-pings": _UnusedPings,
}

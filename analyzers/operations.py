"""Operations: the calls grouped into what a client did (a pull, a push, a login), each call with its step
in the operation and, where the capture shows it, why it was made.

Grouping is decided as each call completes, so the live proxy names a call's operation in the same event
an offline analysis writes. A client is known by its User-Agent; within it, reads go to the pull of their
repository and writes to the push of theirs, so a copy that reads one repository while it writes another,
or parallel uploads, still come apart. A `GET /v2/` starts the client's next operation.

A `Reason` is data (a code and its values), put in words by the report from strings.yaml.
"""

from __future__ import annotations

import re
from bisect import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .endpoints import STATUS_ABSENT, STATUS_SUCCESS
from .manifests import ImageConfig, ImageManifest, Index, bare_media_type, media_kind
from .recent import Recent
from .runs import Runs
from .tokens import token_request

if TYPE_CHECKING:
    from .analysis import AnalyzedCall

PULL, PUSH, AUTH, PING = "pull", "push", "auth", "ping"
# Steps of a pull that moved image content; a pull with none of them only looked (an inspect).
_CONTENT = frozenset({"layer", "blob"})
# Writes to another repository than the push's: looking for a blob to mount from there.
_ELSEWHERE = "blob-elsewhere"
_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Reason:
    """Why a call was made, or what its answer meant for its operation: `why_<code>` in strings.yaml."""

    code: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"code": self.code, **self.values}


@dataclass(slots=True)
class Upload:
    """One blob pushed in an upload session: POST, PATCH..., PUT, tied by the session id."""

    session: str
    digest: str | None = None
    size: int | None = None
    chunks: int = 0
    calls: list[int] = field(default_factory=list)


@dataclass(slots=True)  # a fleet's day holds tens of thousands
class Operation:
    id: int  # 1-based, in the order operations started
    kind: str  # pull, push, auth, ping, tags, catalog, delete, referrers, other
    client: str
    repository: str | None = None
    reference: str | None = None
    calls: Runs = field(default_factory=Runs)  # 0-based call indexes
    platforms: list[str] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)  # how many calls of each step
    uploads: dict[str, Upload] = field(default_factory=dict)  # by session id
    uploaded: dict[str, int] = field(default_factory=dict)  # digest -> the call that completed its upload
    mounted: dict[str, str] = field(default_factory=dict)  # digest -> the repository it came from
    present: set[str] = field(default_factory=set)  # digests the registry already had
    manifests: list[str] = field(default_factory=list)  # digests of manifests pushed (or fetched)
    pushed: dict[str, str] = field(default_factory=dict)  # digest of a manifest the registry took -> its step
    scope: str | None = None  # what an auth operation asked for
    host: str = ""  # the registry it talked to
    who: str = ""  # the client as the grouping knows it: its name within its capture file

    @property
    def shown_kind(self) -> str:
        """`inspect` for a pull that fetched manifests (and configs) but no image content; `create-index` for a
        push of an index alone, over manifests already in the registry (`docker manifest push`)."""
        if self.kind == PULL and not _CONTENT & self.steps.keys():
            return "inspect"
        if self.kind == PUSH and set(self.steps) - {"ping", "manifest-exists"} == {"push-index"}:
            return "create-index"
        return self.kind

    @property
    def part(self) -> tuple:
        """The part of the story it is told in: operations in a row with one `part` are told as one (a login on its
        own: what each asked and was granted differs)."""
        if self.kind == AUTH:
            return (self.id,)
        return self.who, self.shown_kind, self.host, self.repository, self.reference

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"steps": dict(self.steps)}
        if self.kind == PUSH:
            uploaded = [u for u in self.uploads.values() if u.digest]
            summary.update(manifests=len(self.manifests), mounted=len(self.mounted),
                           present=len(self.present - set(self.mounted)), uploaded=len(uploaded),
                           uploaded_bytes=sum(u.size or 0 for u in uploaded))
        elif self.kind == PULL:
            summary.update(manifests=len(self.manifests), platforms=list(self.platforms))
        elif self.kind == AUTH:
            summary.update(scope=self.scope)
        return summary


# A client's name is for a heading: long User-Agents are cut here.
MOST_NAME = 80


@lru_cache(maxsize=4096)
def client_name(user_agent: str | None) -> str:
    """`skopeo/1.9.3`, `Buildah/1.28.2`, `Docker-Client/28.2.2 (linux)`: the product a User-Agent names."""
    flat = " ".join((user_agent or "").split())
    start, end = flat.rfind("UpstreamClient("), flat.rfind(")")
    if start >= 0 and end == len(flat) - 1 and end > start:  # the docker CLI names its product last
        name = flat[start + len("UpstreamClient("):end].replace("\\(", "(").replace("\\)", ")")
    else:
        name = flat.split(" ", 1)[0]
    return name[:MOST_NAME]


def client_key(call) -> str:
    """Who made a call: its client's product, and the capture file (two files are two sessions)."""
    name = client_name(call.request_headers.get("user-agent"))
    return f"{call.source}\0{name}" if call.source else name


def _challenge(header: str | None) -> dict[str, str]:
    return dict(_PARAM.findall(header or ""))


# Steps whose call asked again is not told as such (each chunk of an upload goes to its session's URL).
_NEVER_AGAIN = ("upload", "mount")

# Every this many calls, the operations past the kept calls that can take no more are counted and let go.
SWEEP = 4096


@dataclass(frozen=True, slots=True)
class Piece:
    """Operations in a row, in the order they began, as the story would tell them: where the first began, the
    first's part and the last's, and how many parts."""

    first: int
    opens: tuple
    closes: tuple
    parts: int

    def then(self, after: Piece) -> Piece:
        """This piece and the one right after it."""
        return Piece(self.first, self.opens, after.closes, self.parts + after.parts - (self.closes == after.opens))


def _add_platform(platforms: list[str], shown: str) -> None:
    """Add a platform once: a config names no variant (`linux/arm64`) where its manifest's index did
    (`linux/arm64/v8`), and the two are one platform."""
    if shown in platforms or any(p.startswith(shown + "/") for p in platforms):
        return
    base = shown.rsplit("/", 1)[0] if shown.count("/") == 2 else None
    if base in platforms:
        platforms[platforms.index(base)] = shown
        return
    platforms.append(shown)


class Operations:
    """Groups calls into operations as they complete (see the module's docstring).

    `keep`: the operations begun within the first `keep` calls are kept (`all`, for the story); those begun later
    are kept only while a call could still join them, then counted (the parts of the story) and let go, so that a
    fleet's day of operations does not fill the memory. None keeps every one (JSON lists them).
    """

    def __init__(self, retain: bool = True, runs: int | None = None, keep: int | None = None):
        self.retain = retain
        self.runs = runs  # an operation's calls: how many runs of them are kept whole (None: all)
        self.keep = keep
        self.all: list[Operation] = []
        self.clients: dict[str, None] = {}  # every operation's client, in the order their first one began
        self.count = 0
        self._at = 0  # the call being grouped
        self._later: dict[int, Operation] = {}  # begun past the kept calls, a call could still join them
        # Those that no call can join, counted as pieces of the story: operations in a row in the order they began,
        # none of those above between them. `_told`: the pieces that begin before all of those, joined.
        self._pieces: list[Piece] = []
        self._told: Piece | None = None
        self.bare: set[int] = set()  # of those let go, the ones that were a GET /v2/ and nothing else
        self._pending: Recent[str, Operation] = Recent(1024)  # a client's GET /v2/, waiting for what it starts
        self._open: Recent[tuple[str, str, str, str | None], Operation] = Recent(4096)
        self._auth: Recent[str, Operation] = Recent(1024)  # a client's challenge waiting for its token
        self._granted: Recent[str, tuple[str, ...]] = Recent(1024)  # what a client's last token granted
        self._fresh: Recent[str, bool] = Recent(1024)  # clients whose GET /v2/ was answered 401: starting anew
        self._checking: Recent[str, Operation] = Recent(1024)  # a client's login, just given its token
        self._logins: Recent[str, Operation] = Recent(1024)  # a client's last login
        self._seen: Recent[tuple[str, str, str], int] = Recent()  # (client, method, url) -> first call
        # (client, digest) -> (call that named it, how): the client's own index or manifest, else anyone's ("")
        self._named: Recent[tuple[str, str], tuple[int, str]] = Recent()
        self._touched: Recent[str, bool] = Recent()  # repositories this session read or wrote
        self._found: Recent[tuple[str, str], tuple[str, int]] = Recent()  # (client, digest) -> (repo, call)
        self._fetched: Recent[tuple[str, str], int] = Recent()  # (client, manifest digest) -> the call that read it
        # (client, an upload session still open) -> the operation it is part of
        self._sessions: Recent[tuple[str, str], Operation] = Recent(4096)

    def add(self, item: AnalyzedCall) -> Operation:
        call, classification = item.call, item.classification
        self._at = item.index
        if self._later and item.index % SWEEP == 0:
            self._sweep()
        name = client_name(call.request_headers.get("user-agent"))
        client = client_key(call)
        endpoint = classification.endpoint
        repository = classification.repository
        if endpoint is None:
            kind, step = "other", "other"
        else:
            kind, step = endpoint.operation_for(call.method), endpoint.step_for(call.method)
        if call.status == 401:
            if _challenge(call.response_headers.get("www-authenticate")).get("error") == "insufficient_scope" \
                    and kind not in (AUTH, PING, "other"):
                step = "denied"  # logged in, but the token does not allow this: a failed step of the operation
            else:
                if step == "ping":  # a GET /v2/ that asks to log in still begins the client's next operation
                    self._fresh[client] = True
                kind, step = AUTH, "challenge"
        step = self._refine(item, step)
        # An upload session's calls are the operation's that opened it, wherever its Location sends them (a call of
        # it answered 401 is a login's, as any challenge is).
        session = (client, item.session) if item.session and kind != AUTH else None
        operation = (self._sessions.get(session) if session else None) or self._operation(
            item, client, name, kind, step, repository)
        if session:
            if classification.closes_session(call.status) or classification.ends_session(call.status):
                self._sessions.pop(session, None)  # nothing joins it any more: the operation may be let go
            else:
                self._sessions.setdefault(session, operation)
        if step == "blob-exists" and repository != operation.repository:
            step = _ELSEWHERE
        item.operation, item.step = operation.id, step
        again = self._seen.get((operation.who, call.method, call.url))
        self._record(item, operation, step)
        item.reason = self._reason(item, operation, step, again)
        if not self.retain:  # live: a closed upload is told; nothing asks of it again
            if item.session and classification.closes_session(call.status):
                operation.uploads.pop(item.session, None)
            operation.uploads.pop(f"#{item.index}", None)
        return operation

    # --- which operation ---

    def _new(self, kind: str, client: str, name: str, repository: str | None, host: str) -> Operation:
        pending = self._pending.pop(client, None) if kind != "other" else None
        if kind not in (AUTH, "other"):
            self._fresh.pop(client, None)
        if pending is not None:  # the GET /v2/ that began it
            pending.kind, pending.repository = kind, repository
            operation = pending
        else:
            self.count += 1
            operation = self._begun(Operation(self.count, kind, name, repository, who=client,
                                              calls=Runs(limit=self.runs)))
        operation.host = host
        self._open[(client, kind, host, repository)] = operation
        return operation

    def _operation(self, item: AnalyzedCall, client: str, name: str, kind: str, step: str,
                   repository: str | None) -> Operation:
        host = item.call.authority
        checking = self._checking.pop(client, None)
        if step == "ping" and checking is not None:
            return checking  # `docker login`: the API asked again with the new token, to check it works
        if step == "ping":
            pending = self._pending.get(client)
            if pending is None:
                self.count += 1
                pending = self._pending[client] = self._begun(Operation(self.count, PING, name, who=client,
                                                                        calls=Runs(limit=self.runs)))
            return pending
        if kind == AUTH:
            operation = self._auth.get(client)
            if operation is None and step == "token":  # a token fetched again, without a new challenge
                operation = self._logins.get(client)
            if operation is None or (step == "challenge" and operation.steps.get("token")):
                operation = self._auth[client] = self._new(AUTH, client, name, repository, host)
                self._logins[client] = operation
            if step == "token":
                self._auth.pop(client, None)
                if item.grant is not None and item.grant.access is not None:
                    self._granted[client] = item.grant.access
                if item.classification.status_class == STATUS_SUCCESS:
                    self._checking[client] = operation
            return operation
        push = self._open.get((client, PUSH, host, repository))
        starting = client in self._pending or client in self._fresh
        if step in ("referrers-tag", "referrers") and push is not None and not starting:
            return push  # the client keeping the referrers list of what it pushes
        if kind == PULL and step == "manifest-exists" and push is not None and not starting:
            return push  # "does the target manifest exist", just before pushing it
        if kind == PUSH and step == "blob-exists" and push is None and not starting:
            # A HEAD in another repository than the one being pushed: a mount source, or the client's cache.
            elsewhere = self._last_push(client)
            if elsewhere is not None:
                return elsewhere
        endpoint = item.classification.endpoint
        if endpoint is not None and endpoint.learned_from:
            # A URL an earlier answer named (a blob's storage redirect): it goes on that call's operation,
            # whatever host it is on.
            same = [op for (c, k, _, r), op in self._open.items() if c == client and k == kind and r == repository]
            if same:
                return max(same, key=lambda op: op.id)
        if starting and kind != "other":
            return self._new(kind, client, name, repository, host)
        current = self._open.get((client, kind, host, repository))
        if current is None or (kind == PULL and self._restarts(item, step, current)):
            return self._new(kind, client, name, repository, host)
        return current

    def _begun(self, operation: Operation) -> Operation:
        if self.retain:  # (live, nothing asks for them)
            self.clients.setdefault(operation.client, None)
            if self.keep is None or self._at < self.keep:
                self.all.append(operation)
            else:
                self._later[operation.id] = operation
        return operation

    # --- the operations past the kept calls ---

    def _sweep(self, every: bool = False) -> None:
        """Count and let go the operations past the kept calls that no call can join any more (none of the
        memories that find a client's operation holds them; `every`: all of them)."""
        held = self.live()
        pieces = self._pieces
        for key, operation in list(self._later.items()):
            if every or operation.id not in held:
                del self._later[key]
                if operation.calls:
                    pieces.append(Piece(operation.calls.first, operation.part, operation.part, 1))
                if operation.kind == PING:
                    self.bare.add(operation.id)
        # One begun earlier that still takes calls may change its part: pieces join up to where it began. (An
        # operation begins at the call being grouped, after every piece: joined pieces stay joined.)
        live = sorted(op.calls.first for op in self._later.values() if op.calls)
        joined: list[tuple[int, Piece]] = []
        for piece in sorted(pieces, key=lambda p: p.first):
            before = bisect(live, piece.first)
            if before == 0:
                self._told = piece if self._told is None else self._told.then(piece)
            elif joined and joined[-1][0] == before:
                joined[-1] = (before, joined[-1][1].then(piece))
            else:
                joined.append((before, piece))
        self._pieces = [piece for _, piece in joined]

    def live(self) -> set[int]:
        """The operations a later call could still join: those a memory that finds a client's operation holds."""
        return {op.id for memory in (self._pending, self._open, self._auth, self._checking, self._logins,
                                     self._sessions) for op in memory.values()}

    def bare_pings(self) -> set[int]:
        """Every operation that was a GET /v2/ and nothing else (those let go, and those kept)."""
        return self.bare | {op.id for op in self.all if op.kind == PING}

    def parts(self) -> int:
        """How many parts the story of every operation has: operations in the order they began, one part for those
        in a row with one `part`, as the story groups them. Call it once every call is grouped."""
        self._sweep(every=True)
        count, last = 0, None
        for operation in sorted((op for op in self.all if op.calls), key=lambda op: op.calls.first):
            count += operation.part != last
            last = operation.part
        if self._told is not None:
            count += self._told.parts - (self._told.opens == last)
        return count

    def _last_push(self, client: str) -> Operation | None:
        pushes = [op for (c, kind, _, _), op in self._open.items() if c == client and kind == PUSH]
        return max(pushes, key=lambda op: op.id) if pushes else None

    @staticmethod
    def _restarts(item: AnalyzedCall, step: str, current: Operation) -> bool:
        """A manifest asked for by tag after the pull had moved on to blobs: the client reads the image anew."""
        return (item.classification.tag is not None and step in ("index", "manifest", "manifest-exists")
                and any(s not in ("ping", "index", "manifest", "manifest-exists") for s in current.steps))

    # --- the step, refined by what the call carried ---

    def _refine(self, item: AnalyzedCall, step: str) -> str:
        if item.classification.referrers_tag and step in ("manifest", "manifest-exists", "index"):
            return "referrers-tag"
        if item.classification.referrers_tag and step in ("push-manifest", "push-index"):
            return "push-referrers-tag"
        value = item.object.value if item.object is not None else None
        if value is None and step in ("manifest", "push-manifest"):
            # No body to decode (not captured, or an events file): the media type the answer or request declared.
            headers = item.call.request_headers if step == "push-manifest" else item.call.response_headers
            if media_kind(bare_media_type(headers.get("content-type"))) == "index":
                return "index" if step == "manifest" else "push-index"
        if step == "manifest":
            if isinstance(value, Index):
                return "index"
            if isinstance(value, ImageManifest) and value.kind == "attestation":
                return "attestation"
        if step == "push-manifest":
            if isinstance(value, Index):
                return "push-index"
            if isinstance(value, ImageManifest) and value.kind == "attestation":
                return "push-attestation"
        if step == "blob":
            descriptor = item.descriptor
            kind = descriptor.kind if descriptor is not None else None
            if kind == "config" or isinstance(value, ImageConfig):
                return "config"
            if kind == "layer":
                return "layer"
            if kind == "in-toto":
                return "attestation-layer"
        return step

    # --- why ---

    def _reason(self, item: AnalyzedCall, operation: Operation, step: str, again: int | None) -> Reason | None:
        call, classification = item.call, item.classification
        digest = classification.digest
        if step in ("challenge", "denied"):
            params = _challenge(call.response_headers.get("www-authenticate"))
            if step == "denied":
                granted = self._granted.get(operation.who)
                return Reason("denied", {"scope": params.get("scope", ""),
                                         "granted": " ".join(granted) if granted else "-"})
            if (call.response_headers.get("www-authenticate") or "").strip()[:6].lower() == "basic ":
                return Reason("challenge-basic", {"realm": params.get("realm", "")})
            code = "challenge-scope" if params.get("scope") else "challenge"
            return Reason(code, {k: params.get(k, "?") for k in ("realm", "service", "scope")[:3 if params.get("scope")
                                                                                             else 2]})
        if step == "referrers" and call.status == 404:
            return Reason("no-referrers-api")
        if step == "referrers-tag":
            return Reason("referrers-tag-read" if call.status == 200 else "referrers-tag-absent")
        if step == "push-referrers-tag" and isinstance(item.object.value if item.object else None, Index):
            return Reason("referrers-tag-pushed", {"n": len(item.object.value.manifests)})
        if item.registry_errors:
            error = item.registry_errors[0]
            return Reason("registry-error", {"code": error.code, "message": error.message})
        if step == "token":
            query = token_request(call)
            scope = " ".join(query.get("scope", []))
            if not scope:  # `docker login`: no repository asked, the credentials checked
                return Reason("token-account", {"account": ",".join(query.get("account", [])) or "-"})
            if item.grant is None or item.grant.access is None:
                return Reason("token", {"scope": scope})
            return Reason("token-granted", {"scope": scope, "granted": " ".join(item.grant.access) or "-",
                                            "expires": item.grant.expires_in if item.grant.expires_in else "?"})
        if step == "ping":
            return Reason("login-check" if operation.kind == AUTH else "ping")
        answer = classification.status_class  # success, absent (a HEAD's 404), failure, off-spec
        if step == _ELSEWHERE:
            repository = classification.repository
            if answer == STATUS_SUCCESS:
                return Reason("source-has", {"repository": repository})
            if answer != STATUS_ABSENT:
                return None
            if repository in self._touched:
                return Reason("source-lacks", {"repository": repository})
            return Reason("client-cache", {"repository": repository})
        if again is not None and step not in _NEVER_AGAIN:
            return Reason("again", {"call": again + 1})
        named = self._named.get((operation.who, digest or "")) or self._named.get(("", digest or ""))
        if step in ("manifest", "attestation") and named is not None:
            return Reason("named-by-index", {"call": named[0] + 1,
                                             "platform": str(item.platform) if item.platform else ""})
        if step in ("config", "layer", "blob", "attestation-layer") and named is not None:
            return Reason("named-by-manifest", {"call": named[0] + 1})
        if step == "blob-exists":
            if answer == STATUS_SUCCESS:
                if digest in operation.uploaded:
                    return Reason("present-uploaded", {"call": operation.uploaded[digest] + 1})
                return Reason("present")
            if answer != STATUS_ABSENT:
                return None
            if named is not None and named[1] == "diff_id":
                return Reason("diff-id", {"call": named[0] + 1})
            return Reason("absent")
        if step == "manifest-exists" and operation.kind == PUSH and answer in (STATUS_SUCCESS, STATUS_ABSENT):
            return Reason("target-exists" if answer == STATUS_SUCCESS else "target-absent")
        if step == "manifest-exists" and answer == STATUS_SUCCESS and classification.tag is not None:
            resolved = call.response_headers.get("docker-content-digest") or ""
            return Reason("resolve-tag", {"digest": resolved}) if resolved else None
        if step == "mount":
            source = classification.mount_from
            if classification.opens_session(call.status):  # the table's 202: no mount, an upload instead
                return Reason("mount-refused", {"repository": source}) if source else Reason("mount-refused-any")
            if answer == STATUS_SUCCESS and not source:  # OCI 1.1: `from` may be left out, the registry looks
                return Reason("mounted-any")
            if answer == STATUS_SUCCESS:
                found = self._found.get((operation.who, digest or ""))
                if found is None:
                    return Reason("mounted-from", {"repository": source})
                return Reason("mounted", {"repository": source, "call": found[1] + 1})
            return None
        if step == "upload" and item.session is None and f"#{item.index}" in operation.uploads:
            upload = operation.uploads[f"#{item.index}"]
            return Reason("uploaded", {"digest": upload.digest, "bytes": upload.size, "chunks": 1})
        if step == "upload" and classification.closes_session(call.status):
            upload = operation.uploads.get(item.session or "")
            return Reason("uploaded", {"digest": item.body_digest or digest, "bytes": item.body_size,
                                       "chunks": upload.chunks if upload else 0})
        value = item.object.value if item.object is not None else None
        if step == "index" and classification.tag is not None and isinstance(value, Index):
            return Reason("tag-names-index", {"platforms": len(value.images)})
        if step == "manifest" and classification.tag is not None and isinstance(value, ImageManifest):
            return Reason("tag-names-manifest")
        if step == "push-attestation":
            return Reason("attestation-pushed")
        if step == "push-manifest" and item.platform is not None:
            return Reason("platform-manifest", {"platform": str(item.platform)})
        if step == "push-index" and isinstance(item.object.value if item.object else None, Index):
            named = [d.digest for d in item.object.value.manifests]
            pushed_here = set(named) & set(operation.manifests)
            if pushed_here:
                return Reason("index-last", {"manifests": len(pushed_here)})
            read = sorted(self._fetched[(operation.who, d)] + 1 for d in named
                          if (operation.who, d) in self._fetched)
            if read:
                return Reason("index-of-read", {"manifests": len(named), "call": ", ".join(map(str, read))})
            return Reason("index-of-existing", {"manifests": len(named)})
        return None

    # --- what the operation learnt ---

    def _record(self, item: AnalyzedCall, operation: Operation, step: str) -> None:
        call, classification = item.call, item.classification
        if self.retain:
            operation.calls.append(item.index)
        operation.steps[step] = operation.steps.get(step, 0) + 1
        if step not in _NEVER_AGAIN:  # an upload session's URLs are its own: remembered, a day's would fill it
            self._seen.setdefault((operation.who, call.method, call.url), item.index)
        if step == "token" and operation.kind == AUTH and operation.scope is None:  # what the login asked for
            operation.scope = " ".join(token_request(call).get("scope", [])) or None
        # the image's tag; not the referrers tag of a subject (an artifact is pushed by digest, then listed there)
        if operation.reference is None and classification.tag is not None and step != "upload" \
                and not classification.referrers_tag:
            operation.reference = classification.tag
        platform = item.platform
        if step == "config" and isinstance(item.object.value if item.object else None, ImageConfig):
            platform = item.object.value.platform
        platforms = [platform] if step in ("manifest", "push-manifest", "config") else []
        if step == "push-index" and isinstance(item.object.value if item.object else None, Index):
            platforms = [d.platform for d in item.object.value.images]
        for platform in platforms:
            if platform is not None and not platform.unknown:
                _add_platform(operation.platforms, str(platform))
        success = item.classification.status_class == STATUS_SUCCESS
        if classification.repository and success and step not in ("blob-exists", _ELSEWHERE):
            self._touched[classification.repository] = True
        if step in (_ELSEWHERE, "blob-exists") and success and classification.digest:
            self._found[(operation.who, classification.digest)] = (classification.repository, item.index)
            if classification.repository == operation.repository and self.retain:  # for the summary only
                operation.present.add(classification.digest)
        if step == "mount" and success and not classification.opens_session(call.status) and classification.digest:
            if self.retain:  # for the summary only
                operation.mounted[classification.digest] = classification.mount_from or ""
        if step == "upload" and item.session is None and success and item.body_digest:
            # a blob in one POST (end-4b): a session of one call
            operation.uploads[f"#{item.index}"] = Upload(f"#{item.index}", item.body_digest, item.body_size, 1,
                                                         [item.index] if self.retain else [])
        if step == "upload" and item.session:
            upload = operation.uploads.setdefault(item.session, Upload(item.session))
            if self.retain:
                upload.calls.append(item.index)
            if call.request_size:
                upload.chunks += 1
            if classification.closes_session(call.status):
                upload.digest, upload.size = item.body_digest or classification.digest, item.body_size
                if upload.digest:
                    operation.uploaded[upload.digest] = item.index
                self._touched[classification.repository or ""] = True
        if success and step in ("manifest", "index", "attestation") and item.body_digest:
            self._fetched.setdefault((operation.who, item.body_digest), item.index)
        if success and step in ("manifest", "index", "attestation", "push-manifest", "push-attestation",
                                "push-index"):
            digest = item.body_digest or classification.digest
            if digest and digest not in operation.manifests:
                operation.manifests.append(digest)
            if digest and step.startswith("push-"):  # one manifest pushed under three tags is one manifest
                operation.pushed.setdefault(digest, step)
        self._learn_names(item, operation.who)

    def _learn_names(self, item: AnalyzedCall, client: str) -> None:
        value = item.object.value if item.object is not None else None
        if isinstance(value, Index):
            named = [(d.digest, "index") for d in value.manifests]
        elif isinstance(value, ImageManifest):
            named = [(d.digest, "manifest") for d in (value.config, *value.layers)]
        elif isinstance(value, ImageConfig):
            named = [(diff_id, "diff_id") for diff_id in value.diff_ids]
        else:
            return
        for digest, how in named:
            for who in (client, ""):
                self._named.setdefault((who, digest), (item.index, how))

"""Classify one HTTP call against the OCI endpoint table (endpoints.yaml).

The table is data; this module compiles it once and matches calls against it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs

from . import tables
from .digests import parse_digest
from .findings import Finding

TABLE_PATH = Path(__file__).with_name("endpoints.yaml")

# Placeholders of the path templates. The name is lazy so that a fixed suffix decides where it
# ends ("/v2/team/blobs/manifests/blobs/<digest>" names "team/blobs/manifests"); the others take
# one path segment, valid or not: grammar is checked after matching, so a malformed reference
# still classifies (and is flagged).
_PLACEHOLDERS = {
    "name": r"(?P<name>.+?)",
    "digest": r"(?P<digest>[^/]+)",
    "reference": r"(?P<reference>[^/]+)",
    "session": r"(?P<session>[^/]+)",
}

STATUS_SUCCESS = "success"
STATUS_FAILURE = "failure"
STATUS_OFF_SPEC = "off-spec"
# A HEAD answered 404 on a row that says so: the content is not there, which is what the client asked.
STATUS_ABSENT = "absent"


@dataclass(frozen=True)
class Endpoint:
    """One row of the endpoint table."""

    id: str
    methods: frozenset[str]
    oci: str
    success: frozenset[int]
    failure: frozenset[int]
    spec: str
    meaning: Mapping[str, str | Mapping[str, str]]
    pattern: re.Pattern[str] | None = None
    learned_from: str | None = None
    when_any: frozenset[str] = frozenset()
    when_none: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()
    carries: Mapping[str, str] = field(default_factory=dict)
    opens_session: bool = False
    closes_session: bool = False
    ends_session: bool = False
    teaches: str | None = None
    operation: str | Mapping[str, str] = "other"
    step: str | Mapping[str, str] = "other"
    absent: frozenset[str] = frozenset()  # methods whose 404 answers "not there", not a failure

    def status_class(self, status: int | None, method: str = "") -> str | None:
        """success, absent, failure (a status the spec names for this endpoint) or off-spec; None without an
        answer."""
        if status is None:
            return None
        if status == 404 and method.upper() in self.absent:
            return STATUS_ABSENT
        if status in self.success:
            return STATUS_SUCCESS
        if status in self.failure or status >= 500:
            return STATUS_FAILURE
        return STATUS_OFF_SPEC

    def operation_for(self, method: str) -> str:
        return _per_method(self.operation, method)

    def step_for(self, method: str) -> str:
        return _per_method(self.step, method)

    def describe(self, method: str, lang: str = "en") -> str:
        text = self.meaning.get(lang) or self.meaning["en"]
        if isinstance(text, Mapping):
            return text.get(method.upper()) or next(iter(text.values()))
        return text


def _per_method(value: str | Mapping[str, str], method: str) -> str:
    if isinstance(value, Mapping):
        return value.get(method.upper()) or next(iter(value.values()))
    return value


@dataclass(frozen=True)
class Classification:
    """What a call is in the spec's terms. `endpoint` is None when the call is not a registry call."""

    endpoint: Endpoint | None = None
    repository: str | None = None
    reference: str | None = None
    tag: str | None = None
    digest: str | None = None
    session: str | None = None
    mount_from: str | None = None
    status_class: str | None = None
    findings: tuple[Finding, ...] = field(default=())
    # For a tag that names another manifest (referrers tag schema, cosign): what it is, per language.
    tag_meaning: Mapping[str, str] | None = None
    referrers_tag: bool = False  # the tag is the referrers tag schema's (sha256-<hex>): a client keeping the list

    @property
    def endpoint_id(self) -> str | None:
        return self.endpoint.id if self.endpoint else None

    def answered(self, status: int | None, method: str = "") -> Classification:
        """This classification for a call (of `method`) answered with `status`."""
        if self.endpoint is None:
            return self
        # a shallow copy made by hand: copy() and dataclasses.replace cost several times more, once per call
        answered = object.__new__(Classification)
        answered.__dict__.update(self.__dict__, status_class=self.endpoint.status_class(status, method))
        return answered

    def opens_session(self, status: int | None) -> bool:
        """Whether this call, answered with `status`, opened an upload session (202 Accepted)."""
        return self.endpoint is not None and self.endpoint.opens_session and status == 202

    def ends_session(self, status: int | None) -> bool:
        """Whether this call, answered with `status`, cancelled its upload session."""
        return self.endpoint is not None and self.endpoint.ends_session and status in self.endpoint.success

    def closes_session(self, status: int | None) -> bool:
        """Whether this call, answered with `status`, completed its upload session (the blob is whole)."""
        return self.endpoint is not None and self.endpoint.closes_session and status in self.endpoint.success

    def keeps(self, side: str) -> bool:
        """Whether a live proxy should hold this side's body whole ("request" or "response")."""
        return self.endpoint is not None and side in self.endpoint.keep


class Grammar:
    """The name, tag and digest grammar of the spec."""

    def __init__(self, spec: Mapping[str, object]):
        self._name = re.compile(f"(?:{spec['name']})")
        self._tag = re.compile(f"(?:{spec['tag']})")

    def valid_name(self, name: str) -> bool:
        return self._name.fullmatch(name) is not None

    def valid_tag(self, tag: str) -> bool:
        return self._tag.fullmatch(tag) is not None

    @staticmethod
    def valid_digest(digest: str) -> bool:
        return parse_digest(digest) is not None


def _compile_path(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template.rstrip("/"))
    regex = "".join(_PLACEHOLDERS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))
    # A template ending in "/" also matches without it (the registry redirects one to the other).
    if template.endswith("/"):
        regex += "/?"
    return re.compile(f"^{regex}$")


def _endpoint(row: Mapping, any_endpoint_failures: frozenset[int]) -> Endpoint:
    query = row.get("query") or {}
    if len(row.get("carries") or {}) > 1:
        raise ValueError(f"endpoint {row['id']}: a call carries one object, in one body")
    return Endpoint(
        id=row["id"],
        methods=frozenset(m.upper() for m in row["methods"]),
        oci=row["oci"],
        success=frozenset(row["success"]),
        failure=frozenset(row["failure"]) | any_endpoint_failures,
        spec=row["spec"],
        meaning=row["meaning"],
        pattern=_compile_path(row["path"]) if row.get("path") else None,
        learned_from=row.get("learned_from"),
        when_any=frozenset(query.get("when_any", ())),
        when_none=frozenset(query.get("when_none", ())),
        keep=frozenset(row.get("keep", ())),
        carries=row.get("carries") or {},
        opens_session=bool(row.get("opens_session")),
        closes_session=bool(row.get("closes_session")),
        ends_session=bool(row.get("ends_session")),
        teaches=row.get("teaches"),
        operation=row.get("operation", "other"),
        step=row.get("step", "other"),
        absent=frozenset(m.upper() for m in row.get("absent", ())),
    )


def query_params(query: str | Mapping[str, list[str]] | Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """A query as {key: [values]}, from a raw query string or from pairs."""
    if isinstance(query, str):
        return parse_qs(query.lstrip("?"), keep_blank_values=True) if query else {}
    if isinstance(query, Mapping):
        return {k: list(v) for k, v in query.items()}
    params: dict[str, list[str]] = {}
    for key, value in query:
        params.setdefault(key, []).append(value)
    return params


class EndpointTable:
    """The compiled endpoint table. `classify` is the only thing the rest of ocitrace calls."""

    def __init__(self, spec: Mapping):
        self.grammar = Grammar(spec["grammar"])
        # Statuses any endpoint may answer with are named failures of every row.
        failures = frozenset(spec.get("any_endpoint_failures", ()))
        self.endpoints: tuple[Endpoint, ...] = tuple(_endpoint(row, failures) for row in spec["endpoints"])
        self.tag_schemas = tuple((re.compile(t["pattern"]), t["meaning"], bool(t.get("referrers")))
                                 for t in spec.get("tag_schemas", ()))
        self._by_id = {e.id: e for e in self.endpoints}
        by_method: dict[str, list[Endpoint]] = {}
        for endpoint in self.endpoints:
            for method in endpoint.methods:
                by_method.setdefault(method, []).append(endpoint)
        self._by_method = {m: tuple(rows) for m, rows in by_method.items()}

    @classmethod
    def load(cls, path: Path = TABLE_PATH) -> EndpointTable:
        with open(path, encoding="utf-8") as fh:
            return cls(tables.load(fh))

    def __getitem__(self, endpoint_id: str) -> Endpoint:
        return self._by_id[endpoint_id]

    def classify(
        self,
        method: str,
        path: str,
        query: str | Mapping[str, list[str]] | Iterable[tuple[str, str]] = "",
        status: int | None = None,
        *,
        url: str | None = None,
        learned: Mapping[str, Collection[str]] | None = None,
    ) -> Classification:
        """Classify a call by method, path (without query) and query.

        `url` is the call's scheme://host/path; `learned` holds the URLs earlier answers named, by kind
        (`challenge`: token realms, `redirect`: blob storage locations): they recognise calls on any host.
        """
        params = query_params(query)
        keys = params.keys()
        for endpoint in self._by_method.get(method.upper(), ()):
            if endpoint.pattern is None:
                if _was_named(endpoint, path, keys, url, learned or {}):
                    return Classification(endpoint=endpoint, status_class=endpoint.status_class(status, method))
                continue
            if endpoint.when_any and not endpoint.when_any & keys:
                continue
            if endpoint.when_none & keys:
                continue
            match = endpoint.pattern.match(path)
            if match:
                return self._classification(endpoint, match.groupdict(), params, status, method)
        return Classification()

    def _classification(
        self, endpoint: Endpoint, groups: Mapping[str, str | None], params: Mapping[str, list[str]],
        status: int | None, method: str,
    ) -> Classification:
        findings: list[Finding] = []
        name, reference = groups.get("name"), groups.get("reference")
        digest, session = groups.get("digest"), groups.get("session")
        tag = None
        if name is not None and not self.grammar.valid_name(name):
            findings.append(Finding.of("invalid-name", value=name))
        if reference is not None:
            if ":" in reference:
                digest = reference
            elif self.grammar.valid_tag(reference):
                tag = reference
            else:
                findings.append(Finding.of("invalid-reference", value=reference))
        for key in ("digest", "mount"):
            if digest is None and params.get(key):
                digest = params[key][0]
        if digest is not None and not self.grammar.valid_digest(digest):
            findings.append(Finding.of("invalid-digest", value=digest))
        mount_from = params["from"][0] if "mount" in params and params.get("from") else None
        # In the spec's upload templates the session id is the path's <reference>.
        reference = reference if reference is not None else session
        tag_meaning, referrers_tag = self._tag_meaning(tag)
        return Classification(
            tag_meaning=tag_meaning,
            referrers_tag=referrers_tag,
            endpoint=endpoint,
            repository=name,
            reference=reference,
            tag=tag,
            digest=digest,
            session=session,
            mount_from=mount_from,
            status_class=endpoint.status_class(status, method),
            findings=tuple(findings),
        )

    def _tag_meaning(self, tag: str | None) -> tuple[Mapping[str, str] | None, bool]:
        """What a tag that names another manifest says of it, and whether it is the referrers tag schema."""
        for pattern, meaning, referrers in self.tag_schemas if tag else ():
            match = pattern.match(tag)
            if match:
                digest = f"{match['algorithm']}:{match['encoded']}"
                return {lang: text.format(digest=digest) for lang, text in meaning.items()}, referrers
        return None, False


def _was_named(endpoint: Endpoint, path: str, keys: Iterable[str], url: str | None,
               learned: Mapping[str, Collection[str]]) -> bool:
    """A URL an earlier answer named; or, for a row with query keys, any URL carrying them that is no /v2 API path:
    outside /v2, or one segment under it (Quay's realm is /v2/auth, Artifact Registry's /v2/token)."""
    if url is not None and url in learned.get(endpoint.learned_from or "", ()):
        return True
    api = (path == "/v2" or path.startswith("/v2/")) and not _ONE_SEGMENT_UNDER_V2.fullmatch(path)
    return not api and bool(endpoint.when_any & set(keys))


_ONE_SEGMENT_UNDER_V2 = re.compile(r"/v2/(?!_catalog/?$)[^/]+/?")


@cache
def default_table() -> EndpointTable:
    """The table shipped with ocitrace, compiled once per process."""
    return EndpointTable.load()

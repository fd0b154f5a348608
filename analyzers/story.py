"""The story of a capture: what each client did, as the article tells it.

Operations that follow one another with the same client, kind and image are one section (a client that
reads its base image once per platform); within a section, calls of one step, status and reason are one
row of the folded table, with a count, whatever their order. Upload sessions (POST, PATCH..., PUT) fold
into one row that lists each blob uploaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .digests import IN_TEXT as _DIGEST
from .digests import short_digest
from .manifests import ImageConfig, ImageManifest, Index
from .operations import AUTH, PUSH, Operation, Reason
from .runs import Runs
from .strings import strings, text
from .words import cell, shorten_digests, size, table

if TYPE_CHECKING:
    from .analysis import Analysis, AnalyzedCall

# Reasons that differ call by call: each is said in full. Others are said once for the row, their values joined.
_EACH = frozenset({"uploaded", "registry-error", "challenge", "challenge-scope", "token", "token-granted", "denied"})
_MOST_REASONS = 3
MOST_SECTIONS = 200  # parts of the story told; a capture of a fleet's day has thousands of operations
# Calls the story is told from, at most: the analysis keeps these whole for it and only tallies the others, so a
# report's memory hardly grows with the capture. Of a busy capture, 200 parts hold fewer (the demo's traffic
# repeated: about 2,500), of one with long operations all of them.
STORY_CALLS = 10_000
_MOST_LISTED = 4  # values listed in full; past this many, the first two and a count
# Steps told as one row: the article's "fetch every blob the manifests name".
_ROW_STEPS = {"config": "blobs", "layer": "blobs", "blob": "blobs", "attestation-layer": "blobs"}
_MANIFEST_STEPS = frozenset({"index", "manifest", "attestation", "push-manifest", "push-attestation", "push-index"})


@dataclass
class Section:
    """Operations in a row with the same client, kind and image: one part of the story."""

    operations: list[Operation]
    items: list[AnalyzedCall] = field(default_factory=list)
    # What the whole capture tells of a digest after the call that asked for it: whose diff_id it is (the
    # call that carried that config), and which upload closed with it.
    diff_ids: dict[str, int] = field(default_factory=dict)
    uploaded: dict[str, int] = field(default_factory=dict)
    host: str = ""  # the registry, said when the capture holds more than one

    @property
    def first(self) -> Operation:
        return self.operations[0]

    @property
    def platforms(self) -> list[str]:
        seen: list[str] = []
        for operation in self.operations:
            seen += [p for p in operation.platforms if p not in seen]
        return seen


@dataclass
class Row:
    step: str
    items: list[AnalyzedCall]
    reasons: list[Reason | None] = field(default_factory=list)  # each item's, as the whole capture explains it


def sections(analysis: Analysis) -> list[Section]:
    by_id = {operation.id: operation for operation in analysis.operations}
    members: dict[int, list[AnalyzedCall]] = {}
    for item in analysis.calls:
        members.setdefault(item.operation, []).append(item)
    ordered = sorted((op for op in by_id.values() if op.id in members), key=lambda op: members[op.id][0].index)
    result: list[Section] = []
    for operation in ordered:
        if result and result[-1].operations[-1].part == operation.part:
            result[-1].operations.append(operation)
        else:
            result.append(Section([operation]))
        result[-1].items += members[operation.id]
    diff_ids: dict[str, int] = {}
    for obj in analysis.objects:
        if isinstance(obj.value, ImageConfig) and obj.calls:
            for diff_id in obj.value.diff_ids:
                diff_ids.setdefault(diff_id, obj.calls.first)
    several_hosts = len(analysis.tally.hosts) > 1
    for section in result:
        section.items.sort(key=lambda item: item.index)
        section.diff_ids = diff_ids
        section.host = section.first.host if several_hosts else ""
        section.uploaded = {u.digest: u.calls[-1] for op in section.operations for u in op.uploads.values()
                            if u.digest and u.calls}
    return result


def part_count(analysis: Analysis) -> int:
    """How many parts the story of every call has (the analysis may keep only the first calls and operations)."""
    return analysis.parts


def explained(item: AnalyzedCall, section: Section) -> Reason | None:
    """The call's reason, or a better one that only later calls could give: a blob found absent is the
    diff_id of a config pushed afterwards, or was then uploaded."""
    reason, digest = item.reason, item.classification.digest or ""
    if item.step == "blob-exists" and item.call.status == 404 and reason is not None \
            and reason.code in ("absent", "again"):
        if digest in section.uploaded:  # an uncompressed layer's diff_id is its digest: uploaded says more
            return Reason("absent-uploaded", {"call": section.uploaded[digest] + 1})
        if digest in section.diff_ids:
            return Reason("diff-id", {"call": section.diff_ids[digest] + 1})
    return reason


def fold(section: Section) -> list[Row]:
    """Calls of one step, method and status are one row, whatever their order; its why lists each reason."""
    rows: dict[tuple, Row] = {}
    for item in section.items:
        step = _ROW_STEPS.get(item.step or "other", item.step or "other")
        key: tuple = (step,) if step == "upload" else (step, item.call.method, item.call.status)
        row = rows.setdefault(key, Row(step, []))
        row.items.append(item)
        row.reasons.append(explained(item, section))
    return sorted(rows.values(), key=lambda row: row.items[0].index)


# --- words ---

def ranges(indexes: Iterable[int], most: int = 6) -> str:
    """0-based indexes as 1-based call numbers: `1, 6, 12–14`; past `most` ranges, `2, 3, 7, … 162 (48)`."""
    return Runs(sorted(set(indexes))).text(most)


def template(item: AnalyzedCall) -> str:
    """The call's path with its digests and session id left out: `/v2/app/blobs/<digest>`."""
    path = item.call.path
    session = item.classification.session
    if session and path.endswith("/" + session):
        path = path[: -len(session)] + "<session>"
    return _DIGEST.sub("<digest>", path)


def row_request(row: Row) -> str:
    items = row.items
    if row.step == "upload":
        methods = []
        for item in items:
            if item.call.method not in methods:
                methods.append(item.call.method)
        paths = sorted({template(item).split("?")[0] for item in items}, key=len)
        return f"{' → '.join(methods)} {paths[-1]}"
    paths = list(dict.fromkeys(item.call.path for item in items))
    if len(paths) == 1:
        shown = [shorten_digests(paths[0])]
    else:
        shown = list(dict.fromkeys(template(item) for item in items))
    more = f" …(+{len(shown) - 2})" if len(shown) > 2 else ""
    return f"{items[0].call.method} {' · '.join(shown[:2])}{more}"


def _status(row: Row) -> str:
    statuses = list(dict.fromkeys("—" if i.call.status is None else str(i.call.status) for i in row.items))
    return (" → " if row.step == "upload" else ", ").join(statuses)


def row_count(row: Row) -> int:
    if row.step == "upload":  # a blob a session, or a blob a POST (end-4b) where there is no session
        return len({item.session for item in row.items if item.session}) + sum(
            1 for item in row.items if not item.session and item.reason and item.reason.code == "uploaded")
    return len(row.items)


def _media_types(row: Row) -> list[str]:
    types = []
    for item in row.items:
        value = item.object.value if item.object is not None else None
        if isinstance(value, Index | ImageManifest) and value.media_type not in types:
            types.append(value.media_type)
    return types


def _meaning(row: Row, lang: str) -> str:
    one = len(row.items) == 1 and f"step_{row.step}_one" in strings()
    words = text(f"step_{row.step}_one" if one else f"step_{row.step}", lang)
    if row.step == "blobs":
        kinds = {}
        for item in row.items:
            kinds[item.step] = kinds.get(item.step, 0) + 1
        if set(kinds) == {"config"}:
            words = text("step_config", lang)
        else:
            words += " (" + ", ".join(f"{text(f'blob_kind_{kind}', lang)} ×{n}" for kind, n in kinds.items()) + ")"
    if row.step in _MANIFEST_STEPS and _media_types(row):
        words += f" ({', '.join(_media_types(row))})"
    errors = list(dict.fromkeys(f"{e.code}" for item in row.items for e in item.registry_errors))
    if errors:
        words += f" — {', '.join(errors)}"
    return words


def answer(row: Row, lang: str) -> str:
    """What the registry's answer meant, in a few words (for a picture): `404 absent`, `201 mounted`."""
    codes = {reason.code if reason else None for reason in row.reasons}
    code = next(iter(codes)) if len(codes) == 1 else None  # calls answered for different reasons: say the step
    for key in (f"answer_{code}", f"answer_step_{row.step}"):
        if key in strings():
            return f"{_status(row)} {text(key, lang)}"
    return _status(row)


def reason_text(reason: Reason, lang: str) -> str:
    values = {k: _value(k, v) for k, v in reason.values.items()}
    code = "uploaded-whole" if reason.code == "uploaded" and reason.values.get("chunks") == 1 else reason.code
    return text(f"why_{code}", lang, **values)


def _value(key: str, value: Any) -> str:
    if key == "bytes":
        return size(value) if isinstance(value, int) else "?"
    if isinstance(value, str) and _DIGEST.fullmatch(value):
        return short_digest(value)
    return str(value)


def _why(row: Row, lang: str) -> str:
    """Each reason of the row's calls; when they differ, each says which calls it is about."""
    by_code: dict[str | None, list[tuple[AnalyzedCall, Reason | None]]] = {}
    for item, reason in zip(row.items, row.reasons, strict=True):
        by_code.setdefault(reason.code if reason else None, []).append((item, reason))
    several = len([code for code in by_code if code is not None]) > 1
    said: list[str] = []
    for code, pairs in by_code.items():
        if code is None:
            continue
        items = [item for item, _ in pairs]
        reasons = [reason for _, reason in pairs]
        if code in _EACH:
            texts = list(dict.fromkeys(reason_text(r, lang) for r in reasons))
            more = len(texts) - _MOST_REASONS
            words = "; ".join(texts[:_MOST_REASONS] + ([text("and_more", lang, n=more)] if more > 0 else []))
        else:
            joined: dict[str, list[str]] = {}
            for r in reasons:
                for key, value in r.values.items():
                    shown = _value(key, value)
                    if shown and shown not in joined.setdefault(key, []):
                        joined[key].append(shown)
            values = {key: _joined(sorted(vals, key=lambda v: (len(v), v)) if key == "call" else vals, lang)
                      for key, vals in joined.items()}
            for key in reasons[0].values:
                values.setdefault(key, "")
            words = text(f"why_{code}", lang, **values)
        said.append(f"{ranges([i.index for i in items])}: {words}" if several else words)
    return "; ".join(said)


def _joined(values: list[str], lang: str) -> str:
    if len(values) > _MOST_LISTED:
        return text("n_values", lang, first=", ".join(values[:2]), n=len(values))
    return ", ".join(values)


def title(section: Section, lang: str) -> str:
    operation = section.first
    image = operation.repository or ""
    if image and operation.reference:
        image += f":{operation.reference}"
    if section.host:
        image = f"{section.host}/{image}" if image else section.host
    platforms = section.platforms
    listed = ", ".join(platforms) if len(platforms) <= _MOST_LISTED else text("n_platforms", lang, n=len(platforms))
    shown = text("for_platforms", lang, platforms=listed) if platforms and operation.kind != PUSH else ""
    # the scope the token was asked for; else the challenge's (GHCR's ping challenge names a placeholder scope)
    scopes = [(r.code == "challenge-scope", r.values.get("scope")) for i in section.items
              if (r := i.reason) and r.code in ("challenge-scope", "token", "token-granted")]
    scope = next((s for _, s in sorted(scopes, key=lambda found: found[0]) if s and s != "-"), "")
    kind = "auth-scope" if operation.kind == AUTH and scope else operation.shown_kind
    if operation.kind == AUTH and not image:  # one registry in the capture, the login names no repository
        kind += "-here"
    return text(f"op_{kind}", lang, image=image, platforms=shown, scope=scope)


def push_summary(section: Section, lang: str) -> str:
    pushed: dict[str, str] = {}  # the manifests the registry took (a refused PUT pushed nothing), each once
    mounted: set[str] = set()
    present: set[str] = set()
    uploaded: dict[str, int] = {}
    for operation in section.operations:
        for digest, step in operation.pushed.items():
            pushed.setdefault(digest, step)
        mounted |= set(operation.mounted)
        present |= operation.present
        uploaded.update({u.digest: u.size or 0 for u in operation.uploads.values() if u.digest})
    present -= mounted | set(uploaded)
    steps = Counter(pushed.values())
    summary = text("push_summary", lang, indexes=steps["push-index"], manifests=steps["push-manifest"],
                   attestations=steps["push-attestation"],
                   blobs=len(mounted) + len(present) + len(uploaded), mounted=len(mounted), present=len(present),
                   uploaded=len(uploaded), bytes=size(sum(uploaded.values())))
    return summary


def conclusion(section: Section, lang: str) -> str:
    """The article's conclusion, where this push shows it: single-arch pushes, plus one manifest, the index."""
    index = [item for item in section.items if item.step == "push-index"]
    others = [item for item in section.items if item.step not in ("push-index", "ping")]
    if not index or not others:
        return ""
    return text("push_conclusion", lang, index=ranges([i.index for i in index]),
                others=ranges([i.index for i in others], most=2))


def render_story(analysis: Analysis, lang: str, diagram=None) -> list[str]:
    """The story's markdown: a heading per section, who did it, the folded table and (optionally) a picture."""
    out: list[str] = []
    headers = [text(k, lang) for k in ("col_calls", "col_request", "col_times", "col_status", "col_meaning",
                                       "col_why")]
    pinged = False
    told = sections(analysis)[:MOST_SECTIONS]
    kept = len(analysis.calls)
    if any(op.calls.last >= kept for section in told for op in section.operations):  # a part goes on past them
        out += [text("story_told", lang, told=kept, calls=analysis.count), ""]
    for n, section in enumerate(told, 1):
        operation = section.first
        out += [f"### {n}. {cell(title(section, lang))}", ""]
        who = text("story_who", lang, client=operation.client or text("unknown_client", lang),
                    calls=ranges([item.index for item in section.items]))
        out += [cell(who), ""]
        if operation.kind == PUSH:
            out += [cell(push_summary(section, lang)), ""]
            if conclusion(section, lang):
                out += [cell(conclusion(section, lang)), ""]
        rows = fold(section)
        cells = []
        for row in rows:
            why = _why(row, lang)
            if row.step == "ping" and {r.code for r in row.reasons if r} <= {"ping"}:
                # the same reason under every part: said the first time only
                why, pinged = ("" if pinged else why), True
            cells.append([ranges([i.index for i in row.items]), row_request(row), row_count(row), _status(row),
                          _meaning(row, lang), why])
        out.append(table(headers, cells))
        out.append("")
        if diagram is not None:
            out += diagram(section, rows, lang) + [""]
    more = part_count(analysis) - len(told)
    if more > 0:  # a fleet's day: the rest is in the JSON
        out += [text("more_sections", lang, n=more), ""]
    return out

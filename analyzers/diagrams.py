"""Mermaid pictures of a capture: a sequence diagram per part of the story, the image graph, the transfers.

Every captured value goes through `_text`, which leaves Mermaid nothing to parse in it: the characters its
grammars give a meaning (`;` `#` `:` quotes, angle brackets) become entity codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .digests import short_digest
from .manifests import ImageConfig, ImageManifest, Index
from .story import answer, row_count, row_request, sections, title
from .strings import text
from .words import printable, size

if TYPE_CHECKING:
    from .analysis import Analysis, AnalyzedCall
    from .story import Row, Section

_ENTITIES = {"#": "#35;", ";": "#59;", ":": "#58;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "{": "#123;",
             "}": "#125;", "|": "#124;", "`": "#96;", "%": "#37;"}
# A gantt of more transfers than this shows the longest ones.
MOST_TRANSFERS = 40


def _text(value: object) -> str:
    flat = printable(" ".join(str(value).split()))
    return "".join(_ENTITIES.get(ch, ch) for ch in flat)


def _plain(value: object) -> str:
    """For a gantt, whose task names cannot hold entity codes: the characters it parses are left out."""
    flat = printable(" ".join(str(value).split())).replace(":", "\u2236")  # a ratio sign reads as a colon
    return "".join(ch for ch in flat if ch not in ';#%"<>{}|`')


def fenced(lines: list[str]) -> list[str]:
    return ["```mermaid", *lines, "```"]


def sequence(section: Section, rows: list[Row], lang: str) -> list[str]:
    """The section's calls as the article would draw them: one arrow a row, its answer back."""
    client = section.first.client or text("unknown_client", lang)
    hosts: dict[str, str] = {}
    for row in rows:
        host = row.items[0].call.authority
        hosts.setdefault(host, f"S{len(hosts) + 1}")
    lines = ["sequenceDiagram", f"    participant C as {_text(client)}"]
    lines += [f"    participant {alias} as {_text(host)}" for host, alias in hosts.items()]
    for row in rows:
        alias = hosts[row.items[0].call.authority]
        count = row_count(row)
        times = f" ×{count}" if count > 1 else ""
        lines.append(f"    C->>{alias}: {_text(row_request(row) + times)}")
        lines.append(f"    {alias}-->>C: {_text(answer(row, lang))}")
    return fenced(lines)


def image_graph(analysis: Analysis, lang: str = "en") -> list[str]:
    """Indexes, their manifests (attestations beside), and what each manifest names; empty when none."""
    objects = {obj.digest: obj for obj in analysis.objects if obj.digest}
    lines = ["graph LR"]
    ids: dict[str, str] = {}

    def node(digest: str, label: str, shape: str = "[]") -> str:
        if digest not in ids:
            ids[digest] = f"n{len(ids) + 1}"
            lines.append(f'    {ids[digest]}{shape[0]}"{_text(label)}"{shape[1]}')
        return ids[digest]

    def manifest(digest: str, label: str) -> str:
        name = node(digest, label)
        value = objects[digest].value if digest in objects else None
        if isinstance(value, ImageManifest):
            config = objects.get(value.config.digest)
            config_label = f"{text('config', lang)} {short_digest(value.config.digest)}"
            if config is not None and isinstance(config.value, ImageConfig) and not config.value.platform.unknown:
                config_label += f" {config.value.platform}"
            lines.append(f"    {name} --> {node(value.config.digest, config_label, '()')}")
            for layer in value.layers:
                label = f"{text('layer', lang)} {short_digest(layer.digest)} {size(layer.size)} B"
                lines.append(f"    {name} --> {node(layer.digest, label, '()')}")
            if value.subject is not None:
                subject = node(value.subject.digest, short_digest(value.subject.digest))
                lines.append(f"    {name} -. {_text(text('subject', lang))} .-> {subject}")
        return name

    told = analysis.told_objects  # the images the report's trees show
    for obj in told:
        if not isinstance(obj.value, Index) or not obj.digest:
            continue
        root = node(obj.digest, f"{text('graph_index', lang)} {short_digest(obj.digest)}", "{}")
        for d in obj.value.images:
            label = f"{d.platform or d.artifact_type or d.media_type} {short_digest(d.digest)}"
            lines.append(f"    {root} --> {manifest(d.digest, label)}")
        for d in obj.value.attestations:
            attestation = manifest(d.digest, f"{text('graph_attestation', lang)} {short_digest(d.digest)}")
            target = ids.get(d.attests or "")
            lines.append(f"    {root} --> {attestation}")
            if target:
                lines.append(f"    {attestation} -. {_text(text('graph_attests', lang))} .-> {target}")
    for obj in told:
        if isinstance(obj.value, ImageManifest) and obj.digest and obj.digest not in ids:
            manifest(obj.digest, f"{text('col_manifest', lang)} {short_digest(obj.digest)}")
    return fenced(lines) if len(lines) > 1 else []


def _moved(item: AnalyzedCall) -> int:
    """The bytes a transfer moved: the answer of a GET that gave the blob (not a redirect to storage, nor an error),
    the body of an upload."""
    call = item.call
    if call.method == "GET":
        return (call.response_size or 0) if call.status is not None and 200 <= call.status < 300 else 0
    return call.request_size or 0


def _transfers(analysis: Analysis) -> list[AnalyzedCall]:
    moved = [item for item in analysis.calls
             if item.step in ("config", "layer", "blob", "attestation-layer", "upload")
             and item.call.duration is not None and item.call.timestamp is not None and _moved(item)]
    if len(moved) > MOST_TRANSFERS:
        longest = sorted(moved, key=lambda item: item.call.duration, reverse=True)[:MOST_TRANSFERS]
        moved = sorted(longest, key=lambda item: item.index)
    return moved


def timeline(analysis: Analysis, lang: str) -> list[str]:
    """A gantt of the blob transfers: which moved in parallel, how long each took, at what rate."""
    moved = _transfers(analysis)
    if not moved:
        return []
    blobs = {session: upload.digest for op in analysis.operations for session, upload in op.uploads.items()}
    titles = {op.id: f"{n}. {title(section, lang)}" for n, section in enumerate(sections(analysis), 1)
              for op in section.operations}
    lines = ["gantt", "    dateFormat x", "    axisFormat %M:%S.%L",
             f"    title {_plain(text('timeline_title', lang))}"]
    section = None
    for item in moved:
        if titles.get(item.operation) != section:
            section = titles.get(item.operation)
            lines.append(f"    section {_plain(section)}")
        call = item.call
        moved_bytes = _moved(item)
        rate = moved_bytes / call.duration if call.duration and moved_bytes < 1 << 60 else None
        digest = item.classification.digest or blobs.get(item.session or "") or item.body_digest or ""
        name = short_digest(digest).partition(":")[2] or (item.session or "")[:12]
        label = f"{call.method} {name} {size(moved_bytes)} B"
        if rate is not None:
            label += f" {size(int(rate / 1024))} KiB/s"
        start = int(call.timestamp * 1000)
        end = max(int(call.end * 1000), start + 1)
        lines.append(f"    {_plain(label)} :c{item.index + 1}, {start}, {end}")
    return fenced(lines)

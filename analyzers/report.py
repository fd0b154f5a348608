"""Render an Analysis: the article's markdown tables (English or Chinese), JSON, JSON lines, log lines.

The report only reads the analysis. Every captured value that reaches markdown goes through `cell`,
and every header or URL through `redact`, so a hostile tag cannot break a table nor a token leak.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from . import redact
from .analysis import Analysis, AnalyzedCall, DecodedObject
from .captures import CaptureError
from .digests import short_digest
from .endpoints import STATUS_FAILURE, STATUS_OFF_SPEC, STATUS_SUCCESS
from .findings import Finding
from .manifests import (
    Decoded,
    DecodeFailure,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    InTotoStatement,
    Platform,
    Schema1Manifest,
    media_kind,
)
from .strings import LANGUAGES, os_error_text, text

FORMATS = ("markdown", "json", "jsonl")
# The version of the call record (events.jsonl, --format json/jsonl). Raised when a field changes meaning
# or goes away; new fields may be added within a version.
EVENT_VERSION = 1
_DIGEST_IN_TEXT = re.compile(r"\b([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-f0-9]{32,})")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>])")


def finding_text(finding: Finding, lang: str) -> str:
    """A finding in words: its `finding_<code>` string filled with its values."""
    values = {k: short_digest(v) if isinstance(v, str) else v for k, v in finding.values.items()}
    if "bytes" in values:
        values["bytes"] = _size(values["bytes"])
    if "against" in values:
        values["against"] = text(f"check_{values['against']}", lang)
    return text(f"finding_{finding.code}", lang, **values)


def cell(value: Any) -> str:
    """A captured value made safe for one markdown table cell."""
    flat = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def shorten_digests(value: str) -> str:
    """Digests inside a path or text, shortened as the article prints them."""
    return _DIGEST_IN_TEXT.sub(lambda m: short_digest(m.group(0)), value)


def _size(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _platform(p: Platform | None) -> str:
    return str(p) if p is not None else ""


def _count(what: str, items: Sequence[object], lang: str) -> str:
    """"1 layer", "2 layers", "2 层": the key names both forms (one_layers, n_layers)."""
    return text(("one_" if len(items) == 1 else "n_") + what, lang, n=len(items))


# --- one-line summaries (the meaning column, the live log) ---

def object_summary(value: Decoded, lang: str, platform: Platform | None = None) -> str:
    if isinstance(value, Index):
        platforms = _count("platforms", value.images, lang)
        if value.attestations:
            return text("index_summary", lang, platforms=platforms,
                        attestations=_count("attestations", value.attestations, lang))
        return text("index_summary_plain", lang, platforms=platforms)
    if isinstance(value, ImageManifest):
        kind = value.kind
        if kind == "attestation":
            return text("attestation_for", lang, platform=_platform(platform) or "?")
        if kind == "artifact":
            return text("artifact_summary", lang, artifact_type=value.effective_artifact_type,
                        layers=_count("layers", value.layers, lang))
        prefix = f"{platform} " if platform is not None else ""
        return text("manifest_summary", lang, platform=prefix, layers=_count("layers", value.layers, lang))
    if isinstance(value, Schema1Manifest):
        return text("schema1_summary", lang, architecture=value.architecture,
                    layers=_count("layers", value.layers, lang))
    if isinstance(value, ImageConfig):
        return text("config_summary", lang, platform=value.platform)
    if isinstance(value, InTotoStatement):
        return text("in_toto_summary", lang, predicate_type=value.predicate_type)
    return finding_text(value.finding, lang)


def _descriptor_summary(d: Descriptor, lang: str) -> str:
    """`layer tar+gzip 158 B`, `config 734 B`: a blob as the manifest that named it describes it."""
    kind = media_kind(d.media_type)
    if kind == "config":
        return f"{text('config', lang)} {_size(d.size)} B"
    if kind == "layer":
        return f"{text('layer', lang)} {d.media_type.rsplit('.', 1)[-1]} {_size(d.size)} B"
    return f"{d.media_type} {_size(d.size)} B"


def meaning(item: AnalyzedCall, lang: str = "en", analysis: Analysis | None = None) -> str:
    """What a call did, in words; with the whole `analysis`, also what was learnt of it later."""
    endpoint = item.classification.endpoint
    if endpoint is None:
        return text("not_registry", lang)
    platform = analysis.platform_of(item) if analysis is not None else item.platform
    parts = [endpoint.describe(item.call.method, lang)]
    if item.object is not None:
        parts.append(object_summary(item.object.value, lang, platform))
    elif platform is not None:
        parts.append(str(platform))
    elif item.descriptor is not None:
        parts.append(_descriptor_summary(item.descriptor, lang))
    tag_meaning = item.classification.tag_meaning
    if tag_meaning:
        parts.append(shorten_digests(tag_meaning.get(lang) or tag_meaning["en"]))
    if item.classification.mount_from:
        parts.append(text("from_repo", lang, repo=item.classification.mount_from))
    if endpoint.carries.get("request") in ("blob", "chunk") and item.body_size:
        parts.append(text("upload_bytes", lang, size=_size(item.body_size)))
    if item.digest_verified:
        parts.append(text("digest_ok", lang))
    decoded_failure = item.object.value if item.object and isinstance(item.object.value, DecodeFailure) else None
    for finding in item.findings:
        if decoded_failure is None or finding != decoded_failure.finding:  # already said by the summary
            parts.append(finding_text(finding, lang))
    return "; ".join(p for p in parts if p)


def call_line(item: AnalyzedCall, lang: str = "en") -> str:
    """`PUT /v2/hj-public/test1/manifests/new 201 end-7 push manifest; index: 2 platforms + ...`"""
    call = item.call
    status = call.status if call.status is not None else "ERR"
    endpoint = item.endpoint_id or "-"
    return f"{call.method} {shorten_digests(call.path)} {status} {endpoint} {meaning(item, lang)}"


# --- JSON ---

def _descriptor_record(d: Descriptor) -> dict[str, Any]:
    return {
        "digest": d.digest,
        "media_type": d.media_type,
        "size": d.size,
        "platform": str(d.platform) if d.platform is not None else None,
        "kind": d.kind,
        "attests": d.attests,
        "artifact_type": d.artifact_type,
        "annotations": dict(d.annotations),
    }


def object_record(obj: DecodedObject) -> dict[str, Any]:
    value = obj.value
    record: dict[str, Any] = {
        "digest": obj.digest,
        "media_type": obj.media_type,
        "kind": obj.kind,
        "repository": obj.repository,
        "calls": [i + 1 for i in obj.calls],
    }
    if isinstance(value, Index):
        record["manifests"] = [_descriptor_record(d) for d in value.manifests]
    if isinstance(value, ImageManifest):
        record["config"] = _descriptor_record(value.config)
        record["layers"] = [_descriptor_record(d) for d in value.layers]
    if isinstance(value, Index | ImageManifest):
        record["artifact_type"] = value.artifact_type
        record["subject"] = _descriptor_record(value.subject) if value.subject else None
        record["annotations"] = dict(value.annotations)
    if isinstance(value, Schema1Manifest):
        record.update(name=value.name, tag=value.tag, architecture=value.architecture,
                      layers=list(value.layers), history_length=value.history_length, signed=value.signed)
    if isinstance(value, ImageConfig):
        record.update(platform=str(value.platform), created=value.created, history_length=value.history_length,
                      diff_ids=list(value.diff_ids))
    if isinstance(value, InTotoStatement):
        record.update(predicate_type=value.predicate_type, subjects=list(value.subjects))
    if isinstance(value, DecodeFailure):
        record["error"] = value.finding.record()
    return record


def call_record(item: AnalyzedCall) -> dict[str, Any]:
    """A call as an event: what was known of it when it completed, the same live and offline."""
    call, classification = item.call, item.classification
    endpoint = classification.endpoint
    query = redact.query(call.query)
    return {
        "version": EVENT_VERSION,
        "index": item.index + 1,
        "timestamp": call.timestamp,
        "source": call.source,
        "method": call.method,
        "url": call.origin + call.path + (f"?{query}" if query else ""),
        "host": call.host,
        "path": call.path,
        "query": query,
        "status": call.status,
        "error": call.error,
        "endpoint": classification.endpoint_id,
        "oci": endpoint.oci if endpoint else None,
        "status_class": classification.status_class,
        "meaning": meaning(item, "en"),
        "repository": classification.repository,
        "reference": classification.reference,
        "tag": classification.tag,
        "digest": classification.digest,
        "session": item.session,
        "mount_from": classification.mount_from,
        "platform": str(item.platform) if item.platform is not None else None,
        "body_digest": item.body_digest,
        "body_bytes": item.body_size,
        "request_bytes": call.request_size,
        "response_bytes": call.response_size,
        "digest_verified": item.digest_verified,
        "checks": [{"against": c.against, "expected": c.expected, "actual": c.actual, "ok": c.ok}
                   for c in item.checks],
        "object": item.object.digest if item.object else None,
        "findings": [finding.record() for finding in item.findings],
        "request_headers": redact.headers(call.request_headers),
        "response_headers": redact.headers(call.response_headers),
        "upstream": call.upstream,
    }


def _capture_findings(errors: Sequence[CaptureError], notices: Sequence[tuple[str, Finding]]) -> list[dict]:
    return ([{"source": e.path, **e.finding.record()} for e in errors]
            + [{"source": path, **finding.record()} for path, finding in notices])


def render_json(analysis: Analysis, errors: Sequence[CaptureError] = (),
                notices: Sequence[tuple[str, Finding]] = ()) -> str:
    document = {
        "version": EVENT_VERSION,
        "calls": [call_record(item) for item in analysis.calls],
        "objects": [object_record(obj) for obj in analysis.objects],
        "findings": _capture_findings(errors, notices)
        + [{"call": item.index + 1, **finding.record()} for item, finding in analysis.warnings],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


__all__ = ["FORMATS", "LANGUAGES", "call_line", "call_record", "event_line", "os_error_text", "render",
           "render_json", "render_jsonl", "render_markdown", "text"]


def event_line(item: AnalyzedCall) -> str:
    return json.dumps(call_record(item), ensure_ascii=False) + "\n"


def render_jsonl(analysis: Analysis) -> str:
    return "".join(event_line(item) for item in analysis.calls)


# --- markdown ---

def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return tabulate([[cell(c) for c in row] for row in rows], headers=[cell(h) for h in headers],
                    tablefmt="github", disable_numparse=True)


def _calls_table(analysis: Analysis, lang: str) -> str:
    keys = ("col_index", "col_method", "col_host", "col_path", "col_status", "col_meaning", "col_oci")
    rows = []
    for item in analysis.calls:
        call = item.call
        endpoint = item.classification.endpoint
        oci = f"{endpoint.id} {endpoint.oci}" if endpoint else ""
        status = call.status if call.status is not None else "—"
        rows.append([item.index + 1, call.method, call.host, shorten_digests(call.path), status,
                     meaning(item, lang, analysis), oci])
    return _table([text(k, lang) for k in keys], rows)


def _object_section(obj: DecodedObject, analysis: Analysis, lang: str) -> str:
    value = obj.value
    digest = short_digest(obj.digest) if obj.digest else ""
    where = f" ({cell(obj.repository)})" if obj.repository else ""
    calls = ", ".join(str(i + 1) for i in obj.calls)
    platform = analysis.platforms.get(obj.digest or "")
    heading = f"### {text('kind_' + value.kind, lang)}"
    lines = [f"{heading} {cell(digest)}{where}", "",
             f"{cell(object_summary(value, lang, platform))} — {text('seen_in', lang, calls=calls)}", ""]
    if isinstance(value, Index):
        rows = []
        for d in value.images:
            attestation = value.attestation_for(d.digest)
            rows.append([_platform(d.platform) or d.artifact_type or d.media_type, short_digest(d.digest),
                         _size(d.size), short_digest(attestation.digest) if attestation else ""])
        for d in value.attestations:
            if value.platform_of(d.attests or "") is None:
                rows.append([_platform(d.platform), short_digest(d.digest), _size(d.size),
                             text("attestation_of", lang, digest=short_digest(d.attests))])
        if value.subject is not None:
            rows.append([text("subject", lang), short_digest(value.subject.digest), _size(value.subject.size), ""])
        lines.append(_table([text(k, lang) for k in ("col_platform", "col_manifest", "col_size",
                                                       "col_attestation")], rows))
    elif isinstance(value, ImageManifest):
        rows = [[text("config", lang), value.config.media_type, short_digest(value.config.digest),
                 _size(value.config.size)]]
        rows += [[text("layer", lang), d.media_type, short_digest(d.digest), _size(d.size)] for d in value.layers]
        if value.subject is not None:
            rows.append([text("subject", lang), value.subject.media_type, short_digest(value.subject.digest),
                         _size(value.subject.size)])
        lines.append(_table([text(k, lang) for k in ("col_role", "col_media_type", "col_digest", "col_size")],
                            rows))
    else:
        lines.append(_table([text("col_field", lang), text("col_value", lang)], _fields(value, lang)))
    annotations = getattr(value, "annotations", None)
    if annotations:
        lines += ["", _table(["annotation", text("col_value", lang)], sorted(annotations.items()))]
    return "\n".join(lines)


def _fields(value: Decoded, lang: str) -> list[list[Any]]:
    if isinstance(value, ImageConfig):
        return [[text("col_platform", lang), value.platform], [text("field_created", lang), value.created or ""],
                [text("field_history", lang), value.history_length],
                [text("field_diff_ids", lang), len(value.diff_ids)]]
    if isinstance(value, Schema1Manifest):
        return [[text("field_name", lang), f"{value.name}:{value.tag}"], [text("col_platform", lang),
                value.architecture], [text("layer", lang), len(value.layers)],
                [text("field_history", lang), value.history_length], [text("field_signed", lang), value.signed]]
    if isinstance(value, InTotoStatement):
        return [[text("field_predicate", lang), value.predicate_type], [text("subject", lang),
                ", ".join(value.subjects)]]
    if isinstance(value, DecodeFailure):
        return [[text("col_media_type", lang), value.media_type or ""],
                [text("field_reason", lang), finding_text(value.finding, lang)]]
    return []


def _endpoint_table(analysis: Analysis, lang: str) -> str:
    counts: dict[str, Counter] = {}
    oci: dict[str, str] = {}
    for item in analysis.calls:
        key = item.endpoint_id or "-"
        oci[key] = item.classification.endpoint.oci if item.classification.endpoint else text("not_registry", lang)
        c = counts.setdefault(key, Counter())
        c["calls"] += 1
        c[item.classification.status_class or "none"] += 1
        c["sent"] += item.call.request_size or 0
        c["received"] += item.call.response_size or 0
    rows = [[key, oci[key], c["calls"], c[STATUS_SUCCESS], c[STATUS_FAILURE], c[STATUS_OFF_SPEC],
             _size(c["sent"]), _size(c["received"])] for key, c in counts.items()]
    keys = ("col_endpoint", "col_oci", "col_count", "col_success", "col_failure", "col_off_spec", "col_sent",
            "col_received")
    return _table([text(k, lang) for k in keys], rows)


def _where(item: AnalyzedCall, lang: str) -> str:
    return text("in_call", lang, index=item.index + 1, method=item.call.method, path=shorten_digests(item.call.path))


def capture_problem(path: str, finding: Finding, lang: str) -> str:
    """`flows.mitm: truncated after 12 flows (byte 4096 of 5000)`: a capture's finding in words."""
    return f"{Path(path).name}: {finding_text(finding, lang)}"


def render_markdown(analysis: Analysis, sources: Sequence[str] = (), errors: Sequence[CaptureError] = (),
                    lang: str = "en", notices: Sequence[tuple[str, Finding]] = ()) -> str:
    registry = sum(1 for item in analysis.calls if item.endpoint_id)
    sent = sum(item.call.request_size or 0 for item in analysis.calls)
    received = sum(item.call.response_size or 0 for item in analysis.calls)
    out = [f"# {text('title', lang)}", ""]
    if sources:
        out += [f"{text('captures', lang)}: " + ", ".join(cell(Path(s).name) for s in sources), ""]
    out += [text("summary", lang, calls=len(analysis.calls), registry=registry,
                 unclassified=len(analysis.calls) - registry), ""]
    if errors or notices:
        problems = [(e.path, e.finding) for e in errors] + list(notices)
        out += [f"## {text('capture_errors_heading', lang)}", ""]
        out += [f"- {cell(capture_problem(path, finding, lang))}" for path, finding in problems] + [""]
    out += [f"## {text('calls_heading', lang)}", "", _calls_table(analysis, lang), ""]
    out += [f"## {text('objects_heading', lang)}", ""]
    if analysis.objects:
        for obj in analysis.objects:
            out += [_object_section(obj, analysis, lang), ""]
    else:
        out += [text("no_objects", lang), ""]
    out += [f"## {text('endpoints_heading', lang)}", "", _endpoint_table(analysis, lang), ""]
    out += [f"## {text('bytes_heading', lang)}", "", text("bytes_line", lang, sent=_size(sent),
                                                          received=_size(received)), ""]
    warnings = analysis.warnings
    if warnings:
        out += [f"## {text('warnings_heading', lang)}", ""]
        out += [f"- {cell(_where(item, lang))}: {cell(finding_text(finding, lang))}" for item, finding in warnings]
        out += [""]
    return "\n".join(out)


def render(analysis: Analysis, fmt: str = "markdown", lang: str = "en", sources: Sequence[str] = (),
           errors: Sequence[CaptureError] = (), notices: Sequence[tuple[str, Finding]] = ()) -> str:
    if fmt == "json":
        return render_json(analysis, errors, notices)
    if fmt == "jsonl":
        return render_jsonl(analysis)
    return render_markdown(analysis, sources, errors, lang, notices)

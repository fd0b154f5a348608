"""Render an Analysis: the article's markdown tables (English or Chinese), JSON, JSON lines, log lines.

The report only reads the analysis. Every captured value that reaches markdown goes through `cell`,
and every header or URL through `redact`, so a hostile tag cannot break a table nor a token leak.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import audit, redact
from .analysis import Analysis, AnalyzedCall, DecodedObject
from .artifacts import ArtifactConfig, config_name
from .captures import CaptureError
from .diagrams import image_graph, sequence, timeline
from .digests import short_digest
from .endpoints import STATUS_ABSENT, STATUS_FAILURE, STATUS_OFF_SPEC, STATUS_SUCCESS
from .findings import Finding
from .manifests import (
    Decoded,
    DecodeFailure,
    Descriptor,
    ImageConfig,
    ImageManifest,
    Index,
    InTotoStatement,
    Schema1Manifest,
)
from .operations import Operation
from .story import STORY_CALLS, render_story
from .strings import LANGUAGES, os_error_text, text
from .words import (
    call_line,
    cell,
    finding_text,
    meaning,
    object_summary,
    platform_text,
    shorten_digests,
    size,
    table,
)

FORMATS = ("markdown", "json", "jsonl")
# The version of the call record (events.jsonl, --format json/jsonl). Raised when a field changes meaning
# or goes away; new fields may be added within a version.
EVENT_VERSION = 1


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


def call_record(item: AnalyzedCall, said: str | None = None) -> dict[str, Any]:
    """A call as an event: what was known of it when it completed, the same live and offline. `said`: its
    `meaning` in English, when the caller has it already."""
    call, classification = item.call, item.classification
    endpoint = classification.endpoint
    query = redact.query(call.query)
    return {
        "version": EVENT_VERSION,
        "index": item.index + 1,
        "timestamp": call.timestamp,
        "duration": call.duration,
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
        "meaning": meaning(item, "en") if said is None else said,
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
        "operation": item.operation,
        "step": item.step,
        "why": item.reason.record() if item.reason is not None else None,
        "findings": [finding.record() for finding in item.findings],
        "registry_errors": [{"code": e.code, "message": e.message} for e in item.registry_errors],
        "grant": item.grant.record() if item.grant is not None else None,
        "request_headers": redact.headers(call.request_headers),
        "response_headers": redact.headers(call.response_headers),
        "upstream": call.upstream,
    }


def operation_record(operation: Operation) -> dict[str, Any]:
    return {"id": operation.id, "kind": operation.shown_kind, "client": operation.client,
            "repository": operation.repository, "reference": operation.reference,
            "platforms": list(operation.platforms), "calls": [i + 1 for i in operation.calls],
            "uploads": [{"digest": u.digest, "bytes": u.size, "chunks": u.chunks, "calls": [i + 1 for i in u.calls]}
                        for u in operation.uploads.values()],
            "summary": operation.summary()}


def _capture_findings(errors: Sequence[CaptureError], notices: Sequence[tuple[str, Finding]]) -> list[dict]:
    return ([{"source": e.path, **e.finding.record()} for e in errors]
            + [{"source": path, **finding.record()} for path, finding in notices])


def _every_call(analysis: Analysis) -> None:
    if not analysis.whole or analysis.count != len(analysis.calls):  # a caller's mistake, not a user's
        raise ValueError("JSON lists every call: it needs an analysis that kept every call (keep=None)")


def render_json(analysis: Analysis, errors: Sequence[CaptureError] = (),
                notices: Sequence[tuple[str, Finding]] = ()) -> str:
    _every_call(analysis)
    document = {
        "version": EVENT_VERSION,
        "calls": [call_record(item) for item in analysis.calls],
        "objects": [object_record(obj) for obj in analysis.objects],
        "operations": [operation_record(op) for op in analysis.operations],
        "findings": _capture_findings(errors, notices) + audit.finding_records(analysis),
        "finding_counts": audit.counts(analysis),
        "rate_limits": audit.limit_records(analysis),
        "slowest": audit.slowest(analysis),
    }
    return _json(document, indent=2) + "\n"


__all__ = ["FORMATS", "LANGUAGES", "call_line", "call_record", "event_line", "os_error_text", "render",
           "render_json", "render_jsonl", "render_markdown", "text"]


def event_line(item: AnalyzedCall, said: str | None = None) -> str:
    return _json(call_record(item, said)) + "\n"


# JSON leaves DEL and the C1 controls (0x80-0x9f: CSI, OSC...) raw: escaped, so no output drives a terminal.
_RAW_CONTROL = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def _json(value: Any, indent: int | None = None) -> str:
    return _RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, indent=indent,
                                                                            ensure_ascii=False))


def render_jsonl(analysis: Analysis) -> str:
    _every_call(analysis)
    return "".join(event_line(item) for item in analysis.calls)


# --- markdown ---

# Calls listed in the appendix: a report is read by a person; every call is in --format json/jsonl.
MOST_CALLS_LISTED = 1000

def _calls_table(analysis: Analysis, lang: str) -> str:
    """Every call, as the article tabulates them; the host only when the capture holds more than one."""
    hosts = len(analysis.tally.hosts) > 1
    keys = ("col_index", "col_method", *(("col_host",) if hosts else ()), "col_path", "col_status", "col_meaning",
            "col_oci")
    rows = []
    listed = analysis.calls[:MOST_CALLS_LISTED]
    for item in listed:
        call = item.call
        endpoint = item.classification.endpoint
        oci = f"{endpoint.id} {endpoint.oci}" if endpoint else ""
        status = call.status if call.status is not None else "—"
        rows.append([item.index + 1, call.method, *((call.authority,) if hosts else ()), shorten_digests(call.path),
                     status, meaning(item, lang, analysis), oci])
    more = analysis.count - len(listed)
    return table([text(k, lang) for k in keys], rows) + ("\n\n" + text("more_calls", lang, n=more) if more else "")


def _object_section(obj: DecodedObject, analysis: Analysis, lang: str) -> str:
    value = obj.value
    digest = short_digest(obj.digest) if obj.digest else ""
    where = f" ({cell(obj.repository)})" if obj.repository else ""
    calls = obj.calls.text()
    platform = analysis.platforms.get(obj.digest or "")
    heading = f"### {text('kind_' + value.kind, lang)}"
    lines = [f"{heading} {cell(digest)}{where}", "",
             f"{cell(object_summary(value, lang, platform))} — {text('seen_in', lang, calls=calls)}", ""]
    if isinstance(value, Index):
        rows = []
        for d in value.images:
            attestation = value.attestation_for(d.digest)
            rows.append([platform_text(d.platform) or d.artifact_type or d.media_type, short_digest(d.digest),
                         size(d.size), short_digest(attestation.digest) if attestation else ""])
        for d in value.attestations:
            if value.platform_of(d.attests or "") is None:
                rows.append([platform_text(d.platform), short_digest(d.digest), size(d.size),
                             text("attestation_of", lang, digest=short_digest(d.attests))])
        if value.subject is not None:
            rows.append([text("subject", lang), short_digest(value.subject.digest), size(value.subject.size), ""])
        first = "col_artifact_type" if value.lists_artifacts else "col_platform"
        lines.append(table([text(k, lang) for k in (first, "col_manifest", "col_size", "col_attestation")], rows))
    elif isinstance(value, ImageManifest):
        rows = [[text("config", lang), value.config.media_type, short_digest(value.config.digest),
                 size(value.config.size)]]
        rows += [[text("layer", lang), d.media_type, short_digest(d.digest), size(d.size)] for d in value.layers]
        if value.subject is not None:
            rows.append([text("subject", lang), value.subject.media_type, short_digest(value.subject.digest),
                         size(value.subject.size)])
        lines.append(table([text(k, lang) for k in ("col_role", "col_media_type", "col_digest", "col_size")],
                            rows))
    else:
        lines.append(table([text("col_field", lang), text("col_value", lang)], _fields(value, lang)))
    annotations = getattr(value, "annotations", None)
    if annotations:
        lines += ["", table(["annotation", text("col_value", lang)], sorted(annotations.items()))]
    return "\n".join(lines)


def _config_words(config: DecodedObject | None, lang: str) -> str:
    value = config.value if config is not None else None
    if isinstance(value, ArtifactConfig):  # a Helm chart's: its name and version
        return " ".join(f"{k} {v}" for k, v in value.fields.items())
    if not isinstance(value, ImageConfig) or value.platform.unknown:
        return ""  # an attestation's config names no platform: nothing to say of it
    words = [str(value.platform)]
    if value.created:
        words.append(text("tree_created", lang, created=value.created))
    return ", ".join(words)


def _manifest_branch(digest: str, label: str, objects: dict[str, DecodedObject], lang: str,
                     depth: int) -> tuple[list[str], int]:
    """A manifest and what it names, as nested list items; with the bytes it names."""
    pad = "  " * depth
    obj = objects.get(digest)
    lines = [f"{pad}- {label}"]
    if obj is None or not isinstance(obj.value, ImageManifest):
        return lines, 0
    manifest = obj.value
    config = manifest.config
    words = _config_words(objects.get(config.digest), lang)
    named = config_name(config.media_type, lang) or text("config", lang)
    lines.append(f"{pad}  - {cell(named)} {cell(short_digest(config.digest))} {size(config.size)} B"
                 + (f": {cell(words)}" if words else ""))
    for layer in manifest.layers:
        lines.append(f"{pad}  - {cell(text('layer', lang))} {cell(short_digest(layer.digest))} "
                     f"{cell(layer.media_type.rsplit('.', 1)[-1])} {size(layer.size)} B")
    return lines, config.size + sum(layer.size for layer in manifest.layers)


def _images(analysis: Analysis, lang: str) -> tuple[list[str], set[str]]:
    """One tree per image: index → platform manifests (attestations beside them) → config and layers."""
    objects = {obj.digest: obj for obj in analysis.objects if obj.digest}
    out: list[str] = []
    shown: set[str] = set()
    told = analysis.told_objects
    roots = [obj for obj in told if isinstance(obj.value, Index) and obj.digest]
    named = {d.digest for root in roots for d in root.value.manifests}
    roots += [obj for obj in told if isinstance(obj.value, ImageManifest) and obj.digest
              and obj.digest not in named]
    for root in roots:
        value = root.value
        where = f" ({cell(root.repository)})" if root.repository else ""
        calls = text("seen_in", lang, calls=root.calls.text()) if root.calls else ""
        head = (f"- **{cell(text('kind_' + value.kind, lang))}** {cell(short_digest(root.digest))}{where}: "
                f"{cell(value.media_type)}; {cell(object_summary(value, lang, analysis.platforms.get(root.digest)))}"
                f" — {calls}")
        out.append(head)
        if value.annotations:
            pairs = ", ".join(f"{k}={v}" for k, v in sorted(value.annotations.items()))
            out.append(f"  - {cell(text('tree_annotations', lang, annotations=pairs))}")
        shown.add(root.digest)
        total, manifests = 0, 0
        if isinstance(value, Index):
            for d in value.images:
                attestation = value.attestation_for(d.digest)
                label = (f"**{cell(platform_text(d.platform) or d.artifact_type or d.media_type)}** "
                         f"{cell(text('col_manifest', lang))} {cell(short_digest(d.digest))} {size(d.size)} B")
                if attestation is not None:
                    label += " — " + cell(text("tree_attested_by", lang, digest=short_digest(attestation.digest)))
                    shown |= {attestation.digest} | _named_by(objects.get(attestation.digest))
                    manifests += 1
                    total += attestation.size
                lines, named_bytes = _manifest_branch(d.digest, label, objects, lang, 1)
                out += lines
                shown |= {d.digest} | _named_by(objects.get(d.digest))
                total += d.size + named_bytes
                manifests += 1
            for d in value.attestations:
                if value.platform_of(d.attests or "") is None:
                    out.append(f"  - {cell(text('attestation_of', lang, digest=short_digest(d.attests)))} "
                               f"{cell(short_digest(d.digest))} {size(d.size)} B")
                    shown.add(d.digest)
        else:
            lines, total = _manifest_branch(root.digest, "", objects, lang, 0)
            out += [line[2:] for line in lines[1:]]
            shown |= _named_by(root)
        if manifests:
            out.append("  - " + cell(text("tree_total", lang, manifests=manifests, bytes=size(total))))
    return out, shown


def _named_by(obj: DecodedObject | None) -> set[str]:
    if obj is None or not isinstance(obj.value, ImageManifest):
        return set()
    return {obj.value.config.digest} | {layer.digest for layer in obj.value.layers}


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
    rows = []
    for (endpoint, method), tallied in analysis.tally.endpoints.items():
        c = tallied.counts
        oci = tallied.endpoint.oci if tallied.endpoint else text("not_registry", lang)
        rows.append([endpoint, method, oci, c["calls"], c[STATUS_SUCCESS], c[STATUS_ABSENT], c[STATUS_FAILURE],
                     c[STATUS_OFF_SPEC], size(c["sent"]), size(c["received"])])
    keys = ("col_endpoint", "col_method", "col_oci", "col_count", "col_success", "col_absent", "col_failure",
            "col_off_spec", "col_sent", "col_received")
    return table([text(k, lang) for k in keys], rows)


def _where(item: AnalyzedCall, lang: str) -> str:
    return text("in_call", lang, index=item.index + 1, method=item.call.method, path=shorten_digests(item.call.path))


def capture_problem(path: str, finding: Finding, lang: str) -> str:
    """`flows.mitm: truncated after 12 flows (byte 4096 of 5000)`: a capture's finding in words."""
    return f"{Path(path).name}: {finding_text(finding, lang)}"


def _names(sources: Sequence[str]) -> list[str]:
    """Each capture by its file name, or with its folder where two share a name (story/flows.mitm); a capture
    given twice, once."""
    sources = list({str(Path(s).resolve()): s for s in reversed(sources)}.values())[::-1]
    names = [Path(s).name for s in sources]
    if len(set(names)) == len(names):
        return names
    return [str(Path(Path(s).parent.name) / Path(s).name) for s in sources]


def render_markdown(analysis: Analysis, sources: Sequence[str] = (), errors: Sequence[CaptureError] = (),
                    lang: str = "en", notices: Sequence[tuple[str, Finding]] = ()) -> str:
    tally = analysis.tally
    registry, sent, received = tally.registry, tally.sent, tally.received
    out = [f"# {text('title', lang)}", ""]
    if sources:
        out += [f"{text('captures', lang)}: " + ", ".join(cell(name) for name in _names(sources)), ""]
    unclassified = tally.calls - registry
    clients = [client for client in analysis.clients if client]
    named = ", ".join(clients[:3]) + (f" (+{len(clients) - 3})" if len(clients) > 3 else "")
    key = "summary_none" if not tally.calls else "summary" if unclassified else "summary_all"
    out += [cell(text(key, lang, calls=tally.calls, registry=registry, unclassified=unclassified,
                      clients=named or text("unknown_client", lang))), ""]
    for heading, problems in (("capture_errors_heading", [(e.path, e.finding) for e in errors]),
                              ("notices_heading", list(notices))):
        if problems:
            out += [f"## {text(heading, lang)}", ""]
            out += [f"- {cell(capture_problem(path, finding, lang))}" for path, finding in problems] + [""]
    out += [f"## {text('story_heading', lang)}", ""] + render_story(analysis, lang, sequence)
    out += audit.findings_section(analysis, lang)
    out += [f"## {text('objects_heading', lang)}", ""]
    trees, shown = _images(analysis, lang)
    out += trees + [""] if trees else []
    out += image_graph(analysis, lang) + [""] if trees else []
    told = analysis.told_objects
    rest = [obj for obj in told if obj.digest not in shown]
    for obj in rest:
        out += [_object_section(obj, analysis, lang), ""]
    untold = analysis.objects_untold + sum(obj.digest not in shown for obj in analysis.objects[len(told):])
    if untold:
        out += [text("more_objects", lang, n=untold), ""]
    elif not trees and not rest:
        out += [text("no_objects", lang), ""]
    gantt = timeline(analysis, lang)
    if gantt:
        out += [f"## {text('timeline_heading', lang)}", ""] + gantt + [""]
    out += audit.slowest_section(analysis, lang)
    out += [f"## {text('endpoints_heading', lang)}", "", _endpoint_table(analysis, lang), ""]
    out += [f"## {text('bytes_heading', lang)}", "", text("bytes_line", lang, sent=size(sent),
                                                          received=size(received)), ""]
    out += [f"## {text('calls_appendix', lang)}", "", _calls_table(analysis, lang), ""]
    return "\n".join(out)


def report_of(flows: str | Path, lang: str = "en") -> str:
    """The markdown report of a recorded session, as `ocitrace analyze` writes it."""
    from .analysis import analyze
    from .captures import read_captures

    captures = read_captures([flows])
    return render_markdown(analyze(captures.calls, keep=STORY_CALLS), [str(flows)], captures.errors, lang,
                           captures.notices)


def render(analysis: Analysis, fmt: str = "markdown", lang: str = "en", sources: Sequence[str] = (),
           errors: Sequence[CaptureError] = (), notices: Sequence[tuple[str, Finding]] = ()) -> str:
    if fmt == "json":
        return render_json(analysis, errors, notices)
    if fmt == "jsonl":
        return render_jsonl(analysis)
    return render_markdown(analysis, sources, errors, lang, notices)

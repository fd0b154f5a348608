"""Captured values and analysed facts in words: one cell, one line, one summary, in the reader's language.

Every captured value that reaches markdown goes through `cell`, so a hostile tag cannot break a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from .artifacts import ArtifactConfig, config_name, identify
from .digests import IN_TEXT, short_digest
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
from .strings import text

if TYPE_CHECKING:
    from .analysis import Analysis, AnalyzedCall

_DIGEST_IN_TEXT = IN_TEXT
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>#])")
# The longest value a cell shows in full; longer ones are cut, with their length.
MOST_CELL = 400
# What makes a line a list, a quote or a heading underline: escaped where a line starts.
_MD_LEADING = re.compile(r"^(\d*)([.)+\-])(?=\s)")


def finding_text(finding: Finding, lang: str) -> str:
    """A finding in words: its `finding_<code>` string filled with its values."""
    values = {k: short_digest(v) if isinstance(v, str) else v for k, v in finding.values.items()}
    if "bytes" in values:
        values["bytes"] = size(values["bytes"])
    if "against" in values:
        values["against"] = text(f"check_{values['against']}", lang)
    return text(f"finding_{finding.code}", lang, **values)


def cell(value: Any) -> str:
    """A captured value made safe for one markdown table cell, or one line: it cannot start a heading, a list
    or a quote, nor break out of its cell."""
    flat = printable(" ".join(str(value).split()))
    if len(flat) > MOST_CELL:  # a 60 KB tag would widen every row of its table (tables pad to the widest cell)
        flat = f"{flat[:MOST_CELL]}… ({len(flat):,} characters)"
    return _MD_LEADING.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", flat))


def printable(text: str) -> str:
    """Control characters (ESC, BEL, NUL...) shown as escapes: a report or a log line never drives a terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def shorten_digests(value: str) -> str:
    """Digests inside a path or text, shortened as the article prints them."""
    return _DIGEST_IN_TEXT.sub(lambda m: short_digest(m.group(0)), value)


def size(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def platform_text(p: Platform | None) -> str:
    return str(p) if p is not None else ""


def _count(what: str, items: Sequence[object], lang: str) -> str:
    """"1 layer", "2 layers", "2 层": the key names both forms (one_layers, n_layers)."""
    return text(("one_" if len(items) == 1 else "n_") + what, lang, n=len(items))


# --- one-line summaries (the meaning column, the live log) ---

def object_summary(value: Decoded, lang: str, platform: Platform | None = None, tag: str | None = None) -> str:
    if isinstance(value, Index):
        if not value.manifests:
            return text("index_summary_empty", lang)
        if value.lists_artifacts:
            return text("index_summary_artifacts", lang, artifacts=_count("artifacts", value.images, lang))
        platforms = _count("platforms", value.images, lang)
        if value.attestations:
            return text("index_summary", lang, platforms=platforms,
                        attestations=_count("attestations", value.attestations, lang))
        return text("index_summary_plain", lang, platforms=platforms)
    if isinstance(value, ImageManifest):
        kind = value.kind
        if kind == "attestation":
            return text("attestation_for", lang, platform=platform_text(platform) or "?")
        known = identify(value, tag)
        if known is not None:
            return text("artifact_named", lang, name=known.name(lang),
                        artifact_type=value.effective_artifact_type or value.config.media_type,
                        layers=_count("layers", value.layers, lang))
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
    if isinstance(value, ArtifactConfig):
        fields = " ".join(f"{k} {v}" for k, v in value.fields.items())
        return f"{config_name(value.media_type, lang) or value.media_type}: {fields or '-'}"
    return finding_text(value.finding, lang)


def _descriptor_summary(d: Descriptor, lang: str) -> str:
    """`layer tar+gzip 158 B`, `config 734 B`: a blob as the manifest that named it describes it."""
    kind = media_kind(d.media_type)
    named = config_name(d.media_type, lang)
    if named:
        return f"{named} {size(d.size)} B"
    if kind == "config":
        return f"{text('config', lang)} {size(d.size)} B"
    if kind == "layer":
        return f"{text('layer', lang)} {d.media_type.rsplit('.', 1)[-1]} {size(d.size)} B"
    return f"{d.media_type} {size(d.size)} B"


def meaning(item: AnalyzedCall, lang: str = "en", analysis: Analysis | None = None) -> str:
    """What a call did, in words; with the whole `analysis`, also what was learnt of it later."""
    endpoint = item.classification.endpoint
    if endpoint is None:
        return text("not_registry", lang)
    platform = analysis.platform_of(item) if analysis is not None else item.platform
    parts = [endpoint.describe(item.call.method, lang)]
    if item.object is not None:
        parts.append(object_summary(item.object.value, lang, platform, item.classification.tag))
    elif platform is not None:
        parts.append(str(platform))
    elif item.descriptor is not None:
        parts.append(_descriptor_summary(item.descriptor, lang))
    for error in item.registry_errors:
        parts.append(f"{error.code}: {error.message}" if error.message else error.code)
    tag_meaning = item.classification.tag_meaning
    if tag_meaning:
        parts.append(shorten_digests(tag_meaning.get(lang) or tag_meaning["en"]))
    if item.classification.mount_from:
        parts.append(text("from_repo", lang, repo=item.classification.mount_from))
    if endpoint.carries.get("request") == "blob" and item.classification.opens_session(item.call.status):
        parts.append(text("one_post_declined", lang))  # a 202 to a blob in one POST: an upload session instead
    if endpoint.carries.get("request") in ("blob", "chunk") and item.body_size:
        parts.append(text("upload_bytes", lang, size=size(item.body_size)))
    if item.digest_verified:
        parts.append(text("digest_ok", lang))
    decoded_failure = item.object.value if item.object and isinstance(item.object.value, DecodeFailure) else None
    for finding in item.findings:
        if decoded_failure is None or finding != decoded_failure.finding:  # already said by the summary
            parts.append(finding_text(finding, lang))
    return "; ".join(p for p in parts if p)


def call_line(item: AnalyzedCall, lang: str = "en", said: str | None = None) -> str:
    """`PUT /v2/hj-public/test1/manifests/new 201 end-7 push manifest; index: 2 platforms + ...`; `said`: its
    `meaning` in `lang`, when the caller has it already."""
    call = item.call
    status = call.status if call.status is not None else "—"
    endpoint = item.endpoint_id or "-"
    said = meaning(item, lang) if said is None else said
    line = f"{call.method} {shorten_digests(call.path)} {status} {endpoint} {said}"
    # One line, printable, whatever the capture held: no control character, no byte that is not UTF-8.
    return printable(" ".join(line.split())).encode("utf-8", "backslashreplace").decode("utf-8")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return tabulate([[cell(c) for c in row] for row in rows], headers=[cell(h) for h in headers],
                    tablefmt="github", disable_numparse=True)

"""A manifest, index or config body as text, the way the report tells it: for mitmproxy's content view (mitmweb,
the console) and anything else that shows one body at a time."""

from __future__ import annotations

from .artifacts import ArtifactConfig, config_name, identify
from .digests import Digest, algorithm_of, short_digest
from .manifests import (
    DecodeFailure,
    ImageConfig,
    ImageManifest,
    Index,
    Schema1Manifest,
    bare_media_type,
    canonical_bytes,
    decode_blob,
    decode_manifest,
    media_kind,
)
from .words import object_summary, platform_text, size

# Types this view tells better than a JSON view does (the JSON view claims every `+json` type).
KINDS = frozenset({"index", "manifest", "schema1", "config", "in-toto"})


def shows(content_type: str | None) -> bool:
    """Whether a body of this content type is one the view tells (an OCI or Docker manifest, index, config)."""
    media_type = bare_media_type(content_type)
    return media_kind(media_type) in KINDS or config_name(media_type, "en") is not None


def manifest_text(body: bytes, content_type: str | None, *, url_digest: str | None = None,
                  header_digest: str | None = None, tag: str | None = None, lang: str = "en") -> str:
    """The body told: what it is, its platforms or its config and layers, and its digest checked against the URL
    and Docker-Content-Digest. Raises ValueError when the body is not one it can decode."""
    media_type = bare_media_type(content_type)
    decoded = (decode_manifest(body, media_type) if media_kind(media_type) in ("index", "manifest", "schema1")
               else decode_blob(body, media_type))
    if decoded is None or isinstance(decoded, DecodeFailure):
        raise ValueError("not a manifest, index or config ocitrace can decode")
    summary = object_summary(decoded, lang, tag=tag)
    lines = [summary[:1].upper() + summary[1:],
             f"mediaType: {getattr(decoded, 'media_type', media_type)}"]
    lines += _digest_lines(body, decoded, url_digest, header_digest)
    if isinstance(decoded, Index):
        lines += ["", "platform | manifest | size | attestation"]
        for d in decoded.images:
            attestation = decoded.attestation_for(d.digest)
            lines.append(f"{platform_text(d.platform) or d.artifact_type or d.media_type} | "
                         f"{short_digest(d.digest)} | {size(d.size)} B | "
                         f"{short_digest(attestation.digest) if attestation else '-'}")
        for d in decoded.attestations:
            if decoded.platform_of(d.attests or "") is None:
                lines.append(f"attestation of {short_digest(d.attests)} | {short_digest(d.digest)} | "
                             f"{size(d.size)} B | -")
    elif isinstance(decoded, ImageManifest):
        known = identify(decoded, tag)
        if known is not None:
            lines.append(f"artifact: {known.name(lang)}")
        config = decoded.config
        lines += ["", f"config: {config_name(config.media_type, lang) or config.media_type} {config.digest} "
                      f"{size(config.size)} B"]
        lines += [f"layer: {d.media_type} {d.digest} {size(d.size)} B" for d in decoded.layers]
        if decoded.subject is not None:
            lines.append(f"subject: {decoded.subject.digest} ({decoded.subject.media_type})")
    elif isinstance(decoded, Schema1Manifest):
        lines += [f"layer: {layer}" for layer in decoded.layers]
    elif isinstance(decoded, ImageConfig):
        lines += [f"diff_id: {d}" for d in decoded.diff_ids]
    elif isinstance(decoded, ArtifactConfig):
        lines += [f"{k}: {v}" for k, v in decoded.fields.items()]
    annotations = getattr(decoded, "annotations", None) or {}
    if annotations:
        lines += ["", *(f"annotation {k} = {v}" for k, v in sorted(annotations.items()))]
    return "\n".join(lines) + "\n"


def _digest_lines(body: bytes, decoded, url_digest: str | None, header_digest: str | None) -> list[str]:
    canonical = canonical_bytes(body, getattr(decoded, "media_type", None))
    lines = []
    lines = [f"digest: {Digest.of(canonical, 'sha256')}"]
    for against, claimed in (("URL", url_digest), ("Docker-Content-Digest", header_digest)):
        if claimed:
            actual = str(Digest.of(canonical, algorithm_of(claimed) or "sha256"))
            lines.append(f"{against}: matches" if actual == claimed else
                         f"{against}: DOES NOT MATCH, it says {claimed}")
    return lines

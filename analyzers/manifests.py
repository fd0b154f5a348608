"""The OCI and Docker object model, field by field as the specs define it, and decoding bytes into it.

Decoding never raises: a body that is not what it claims to be becomes a `DecodeFailure` that says why.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from .artifacts import ArtifactConfig, decode_artifact_config
from .findings import Finding

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
IN_TOTO = "application/vnd.in-toto+json"

# What each known media type is. A type not listed is shown as it is.
MEDIA_TYPES: Mapping[str, str] = {
    OCI_INDEX: "index",
    DOCKER_LIST: "index",
    OCI_MANIFEST: "manifest",
    DOCKER_MANIFEST: "manifest",
    SCHEMA1: "schema1",
    SCHEMA1_SIGNED: "schema1",
    OCI_CONFIG: "config",
    DOCKER_CONFIG: "config",
    "application/vnd.docker.plugin.v1+json": "config",
    OCI_EMPTY: "empty",
    "application/vnd.oci.image.layer.v1.tar": "layer",
    "application/vnd.oci.image.layer.v1.tar+gzip": "layer",
    "application/vnd.oci.image.layer.v1.tar+zstd": "layer",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "layer",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "layer",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "layer",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "layer",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "layer",
    "application/vnd.docker.image.rootfs.diff.tar": "layer",
    "application/vnd.docker.container.image.rootfs.diff+x-gtar": "layer",
    IN_TOTO: "in-toto",
}

# BuildKit's attestation manifests, as it links them from an index (moby/buildkit attestation-storage.md).
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
PREDICATE_TYPE = "in-toto.io/predicate-type"


def media_kind(media_type: str | None) -> str | None:
    return MEDIA_TYPES.get(media_type or "")


def bare_media_type(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


class ShapeError(ValueError):
    """A body whose JSON does not have the shape its media type requires; `finding` says how."""

    def __init__(self, code: str, **values: Any):
        self.finding = Finding.of(code, **values)
        super().__init__(code)


def _get(obj: Mapping[str, Any], key: str, expected: type | tuple[type, ...], where: str, required: bool = False):
    value = obj.get(key)
    if value is None:
        if required:
            raise ShapeError("decode-missing-field", where=where, field=key)
        return None
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        wanted = expected if isinstance(expected, type) else expected[0]
        raise ShapeError("decode-wrong-type", where=where, field=key, expected=_json_type_name(wanted),
                         actual=_json_type(value))
    return value


# JSON's own names for the types, the words a reader of the body knows (they are not translated).
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
               type(None): "null"}


def _json_type_name(json_type: type) -> str:
    return _JSON_TYPES.get(json_type, json_type.__name__)


def _json_type(value: Any) -> str:
    return _json_type_name(type(value))


def _str_map(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, str]:
    value = _get(obj, key, dict, where) or {}
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/arm/v7` -> Platform("linux", "arm", "v7"). Raises ValueError unless os/arch[/variant]."""
        parts = text.split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise ValueError(f"{text!r} is not os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @property
    def unknown(self) -> bool:
        return self.os == "unknown" and self.architecture == "unknown"

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> Platform:
        return cls(
            os=_get(obj, "os", str, where) or "",
            architecture=_get(obj, "architecture", str, where) or "",
            variant=_get(obj, "variant", str, where),
            os_version=_get(obj, "os.version", str, where),
            os_features=tuple(str(f) for f in _get(obj, "os.features", list, where) or ()),
        )


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()

    @property
    def attests(self) -> str | None:
        """The manifest a buildx attestation manifest attests, else None."""
        if self.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST:
            return self.annotations.get(REFERENCE_DIGEST)
        return None

    @property
    def kind(self) -> str:
        if self.attests is not None:
            return "attestation"
        if self.artifact_type:
            return "artifact"
        return media_kind(self.media_type) or self.media_type

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise ShapeError("decode-not-object", what=where, actual=_json_type(obj))
        platform = _get(obj, "platform", dict, where)
        return cls(
            media_type=_get(obj, "mediaType", str, where, required=True),
            digest=_get(obj, "digest", str, where, required=True),
            size=_get(obj, "size", int, where, required=True),
            platform=Platform.from_json(platform, f"{where}.platform") if platform is not None else None,
            annotations=_str_map(obj, "annotations", where),
            artifact_type=_get(obj, "artifactType", str, where),
            urls=tuple(str(u) for u in _get(obj, "urls", list, where) or ()),
        )


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    subject: Descriptor | None = None
    kind: str = "index"
    declared_media_type: str | None = None  # the body's own `mediaType` field, when it has one

    @property
    def images(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.manifests if d.attests is None)

    @property
    def attestations(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.manifests if d.attests is not None)

    @property
    def lists_artifacts(self) -> bool:
        """Its entries are artifacts, an artifactType each and no platform: a referrers answer (or the referrers
        tag's index), or an index of artifacts; not platforms."""
        return bool(self.images) and all(d.platform is None and d.artifact_type for d in self.images)

    def attestation_for(self, digest: str) -> Descriptor | None:
        return self._attestation_of.get(digest)

    def platform_of(self, digest: str) -> Platform | None:
        return self._platform_of.get(digest)

    @cached_property
    def _attestation_of(self) -> dict[str, Descriptor]:
        found: dict[str, Descriptor] = {}
        for d in self.attestations:
            found.setdefault(d.attests or "", d)
        return found

    @cached_property
    def _platform_of(self) -> dict[str, Platform | None]:
        found: dict[str, Platform | None] = {}
        for d in self.manifests:
            found.setdefault(d.digest, d.platform)
        return found


@dataclass(frozen=True)
class ImageManifest:
    """An OCI image manifest or a Docker image manifest v2 schema 2; an OCI artifact is one too."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    subject: Descriptor | None = None
    declared_media_type: str | None = None  # the body's own `mediaType` field, when it has one

    @property
    def kind(self) -> str:
        if self.layers and all(layer.media_type == IN_TOTO for layer in self.layers):
            return "attestation"
        if self.artifact_type or media_kind(self.config.media_type) != "config":
            return "artifact"
        return "manifest"

    @property
    def effective_artifact_type(self) -> str | None:
        """What tools list as the artifact type: artifactType, else the config's media type."""
        if self.artifact_type:
            return self.artifact_type
        return None if media_kind(self.config.media_type) == "config" else self.config.media_type


@dataclass(frozen=True)
class Schema1Manifest:
    """Docker image manifest v2 schema 1, signed (JWS) or not."""

    media_type: str
    name: str
    tag: str
    architecture: str
    layers: tuple[str, ...]
    history_length: int
    signed: bool
    kind: str = "schema1"


@dataclass(frozen=True)
class ImageConfig:
    media_type: str
    platform: Platform
    created: str | None
    history_length: int
    diff_ids: tuple[str, ...]
    kind: str = "config"


@dataclass(frozen=True)
class InTotoStatement:
    """An attestation layer: what it claims, about which subjects."""

    media_type: str
    predicate_type: str
    subjects: tuple[str, ...]
    kind: str = "in-toto"


@dataclass(frozen=True)
class DecodeFailure:
    """A body that is not what it claims to be; `finding` says why (a `decode-*` code and its values)."""

    media_type: str | None
    finding: Finding
    kind: str = "undecodable"


Decoded = Index | ImageManifest | Schema1Manifest | ImageConfig | InTotoStatement | ArtifactConfig | DecodeFailure


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ShapeError("decode-not-utf8") from None
    except json.JSONDecodeError as exc:
        raise ShapeError("decode-invalid-json", line=exc.lineno, column=exc.colno) from None
    except (RecursionError, ValueError):  # nested past the parser's depth, or an integer past its digit limit
        raise ShapeError("decode-too-complex") from None


def _infer_manifest_type(obj: Mapping[str, Any], content_type: str | None) -> str | None:
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if media_kind(content_type) in ("index", "manifest", "schema1"):
        return content_type
    if obj.get("schemaVersion") == 1:
        return SCHEMA1_SIGNED if "signatures" in obj else SCHEMA1
    if "manifests" in obj:
        return OCI_INDEX
    if "config" in obj or "layers" in obj:
        return OCI_MANIFEST
    return content_type


def _descriptors(obj: Mapping[str, Any], key: str, where: str) -> tuple[Descriptor, ...]:
    items = _get(obj, key, list, where, required=True)
    return tuple(Descriptor.from_json(item, f"{key}[{i}]") for i, item in enumerate(items))


def _subject(obj: Mapping[str, Any]) -> Descriptor | None:
    subject = obj.get("subject")
    return Descriptor.from_json(subject, "subject") if subject is not None else None


def _index(obj: Mapping[str, Any], media_type: str) -> Index:
    return Index(
        media_type=media_type,
        manifests=_descriptors(obj, "manifests", "index"),
        annotations=_str_map(obj, "annotations", "index"),
        artifact_type=_get(obj, "artifactType", str, "index"),
        subject=_subject(obj),
        declared_media_type=_get(obj, "mediaType", str, "index"),
    )


def _image_manifest(obj: Mapping[str, Any], media_type: str) -> ImageManifest:
    return ImageManifest(
        media_type=media_type,
        config=Descriptor.from_json(_get(obj, "config", dict, "manifest", required=True), "config"),
        layers=_descriptors(obj, "layers", "manifest"),
        annotations=_str_map(obj, "annotations", "manifest"),
        artifact_type=_get(obj, "artifactType", str, "manifest"),
        subject=_subject(obj),
        declared_media_type=_get(obj, "mediaType", str, "manifest"),
    )


def _schema1(obj: Mapping[str, Any], media_type: str) -> Schema1Manifest:
    layers = _get(obj, "fsLayers", list, "manifest", required=True)
    sums = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ShapeError("decode-not-object", what=f"fsLayers[{i}]", actual=_json_type(layer))
        sums.append(_get(layer, "blobSum", str, f"fsLayers[{i}]", required=True))
    return Schema1Manifest(
        media_type=media_type,
        name=_get(obj, "name", str, "manifest") or "",
        tag=_get(obj, "tag", str, "manifest") or "",
        architecture=_get(obj, "architecture", str, "manifest") or "",
        layers=tuple(sums),
        history_length=len(_get(obj, "history", list, "manifest") or ()),
        signed=bool(obj.get("signatures")),
    )


_MANIFEST_DECODERS = {"index": _index, "manifest": _image_manifest, "schema1": _schema1}


# The same manifests are fetched again and again (a fleet pulls the same base images all day): a small body decoded
# once is found again by its bytes, which cost a hash to look up against a JSON parse and the decoders' checks.
# Decoded values are frozen, so one serves every call that fetched those bytes.
MEMO_BYTES = 16 << 10
MEMO_BODIES = 128


def decode_manifest(body: bytes, content_type: str | None = None) -> Decoded:
    """Decode a manifest body (an index, an image manifest, an artifact, schema 1)."""
    if len(body) <= MEMO_BYTES:
        return _decoded_manifest(bytes(body), content_type)
    return _decode_manifest(body, content_type)


@lru_cache(maxsize=MEMO_BODIES)
def _decoded_manifest(body: bytes, content_type: str | None) -> Decoded:
    return _decode_manifest(body, content_type)


def _decode_manifest(body: bytes, content_type: str | None) -> Decoded:
    content_type = bare_media_type(content_type)
    try:
        obj = _load_json(body)
        if not isinstance(obj, dict):
            raise ShapeError("decode-not-object", what="manifest", actual=_json_type(obj))
        media_type = _infer_manifest_type(obj, content_type)
        decoder = _MANIFEST_DECODERS.get(media_kind(media_type) or "")
        if decoder is None:
            return DecodeFailure(media_type, Finding.of("decode-unknown-media-type", media_type=media_type))
        return decoder(obj, media_type)
    except ShapeError as exc:
        return DecodeFailure(content_type, exc.finding)


def decode_config(body: bytes, media_type: str | None = None) -> Decoded:
    """Decode an image config blob: its platform, creation time, history and layer diff_ids."""
    media_type = bare_media_type(media_type) or OCI_CONFIG
    try:
        obj = _load_json(body)
        if not isinstance(obj, dict):
            raise ShapeError("decode-not-object", what="config", actual=_json_type(obj))
        rootfs = _get(obj, "rootfs", dict, "config") or {}
        return ImageConfig(
            media_type=media_type,
            platform=Platform.from_json(obj, "config"),
            created=_get(obj, "created", str, "config"),
            history_length=len(_get(obj, "history", list, "config") or ()),
            diff_ids=tuple(str(d) for d in _get(rootfs, "diff_ids", list, "rootfs") or ()),
        )
    except ShapeError as exc:
        return DecodeFailure(media_type, exc.finding)


def decode_in_toto(body: bytes, media_type: str = IN_TOTO) -> Decoded:
    try:
        obj = _load_json(body)
        if not isinstance(obj, dict):
            raise ShapeError("decode-not-object", what="statement", actual=_json_type(obj))
        subjects = _get(obj, "subject", list, "statement") or []
        names = tuple(str(s.get("name", "")) for s in subjects if isinstance(s, dict))
        return InTotoStatement(media_type, _get(obj, "predicateType", str, "statement") or "", names)
    except ShapeError as exc:
        return DecodeFailure(media_type, exc.finding)


_BLOB_DECODERS = {"config": decode_config, "in-toto": decode_in_toto}


def decode_blob(body: bytes, media_type: str | None) -> Decoded | None:
    """Decode a blob whose media type ocitrace understands (configs, attestations, the configs of known
    artifacts: artifacts.yaml); else None."""
    if len(body) <= MEMO_BYTES:  # an image's config, fetched by every pull of it (see MEMO_BYTES)
        return _decoded_blob(bytes(body), media_type)
    return _decode_blob(body, media_type)


@lru_cache(maxsize=MEMO_BODIES)
def _decoded_blob(body: bytes, media_type: str | None) -> Decoded | None:
    return _decode_blob(body, media_type)


def _decode_blob(body: bytes, media_type: str | None) -> Decoded | None:
    decoder = _BLOB_DECODERS.get(media_kind(media_type) or "")
    return decoder(body, media_type) if decoder else decode_artifact_config(body, media_type)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_bytes(body: bytes, media_type: str | None) -> bytes:
    """The bytes a manifest's digest is taken over.

    A signed schema-1 manifest's digest covers its JWS payload, not the body with the signatures:
    the payload is the body up to `formatLength` plus `formatTail`, both named in the protected header.
    """
    if bare_media_type(media_type) != SCHEMA1_SIGNED:
        return body
    try:
        signatures = json.loads(body).get("signatures") or []
        protected = json.loads(_b64url(signatures[0]["protected"]))
        return body[: int(protected["formatLength"])] + _b64url(protected["formatTail"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError, binascii.Error):
        return body


@dataclass(frozen=True)
class RegistryError:
    """One entry of an error answer's body (distribution-spec "Error Codes"): `{"errors": [{code, message}]}`."""

    code: str
    message: str


def decode_errors(body: bytes | None) -> tuple[RegistryError, ...]:
    """The errors an answer's body names; () when it is not the spec's error body."""
    if not body or len(body) > 1 << 16:
        return ()
    try:
        errors = _load_json(body).get("errors")
    except (ShapeError, AttributeError):
        return ()
    if not isinstance(errors, list):
        return ()
    return tuple(RegistryError(str(e.get("code") or ""), str(e.get("message") or ""))
                 for e in errors[:8] if isinstance(e, dict) and e.get("code"))

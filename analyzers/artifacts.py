"""Artifacts by name (artifacts.yaml): a manifest said to be a cosign signature, a Helm chart, an SBOM, not only
its media types; and the fields of an artifact's config worth telling (a chart's name and version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from . import tables
from .calls import json_object


@dataclass(frozen=True)
class Artifact:
    id: str
    names: Mapping[str, str]
    match: Mapping[str, Any]
    config: tuple[str, ...] = ()

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["en"]


@dataclass(frozen=True)
class ArtifactConfig:
    """The config blob of a known artifact: the fields its table row names, as the blob gave them."""

    media_type: str
    artifact: str  # the table's id
    fields: Mapping[str, str] = field(default_factory=dict)
    kind: str = "artifact-config"


@cache
def _table() -> tuple[tuple[Artifact, ...], Mapping[str, Mapping[str, str]]]:
    text = resources.files(__package__).joinpath("artifacts.yaml").read_text(encoding="utf-8")
    data = tables.load(text)
    rows = tuple(Artifact(r["id"], r["name"], r["match"], tuple(r.get("config") or ())) for r in data["artifacts"])
    return rows, data["configs"]


def artifacts() -> tuple[Artifact, ...]:
    return _table()[0]


def _matches(match: Mapping[str, Any], artifact_type: str, layers: list, annotations: list, tag: str) -> bool:
    for key, want in match.items():
        if key == "artifact_type" and not artifact_type.startswith(want):
            return False
        if key == "layer" and not any(media_type.startswith(want) for media_type in layers):
            return False
        if key == "tag_suffix" and not tag.endswith(want):
            return False
        if key == "annotation" and not all(any(a.get(k, "").startswith(v) for a in annotations)
                                           for k, v in want.items()):
            return False
    return True


def identify(manifest, tag: str | None = None) -> Artifact | None:
    """What kind of artifact an image manifest is (analyzers.manifests.ImageManifest), or None."""
    artifact_type = manifest.artifact_type or manifest.config.media_type
    layers = [d.media_type for d in manifest.layers]
    annotations = [manifest.annotations, *(d.annotations for d in manifest.layers)]
    return next((a for a in artifacts() if _matches(a.match, artifact_type, layers, annotations, tag or "")), None)


def config_name(media_type: str | None, lang: str) -> str | None:
    """How reports call a config by its media type (the OCI empty config, a Helm chart's), or None."""
    names = _table()[1].get(media_type or "")
    return (names.get(lang) or names["en"]) if names else None


def decode_artifact_config(body: bytes, media_type: str | None) -> ArtifactConfig | None:
    """The config of an artifact whose row names fields to tell; None for any other blob."""
    row = next((a for a in artifacts() if a.config and a.match.get("artifact_type") == media_type), None)
    if row is None:
        return None
    obj = json_object(body)
    if obj is None:
        return None
    fields = {k: str(obj[k]) for k in row.config if isinstance(obj.get(k), str | int | float)}
    return ArtifactConfig(media_type or "", row.id, fields)

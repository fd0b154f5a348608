"""Write small but real multi-platform images as OCI image layouts, the way buildx lays them out.

The demo's base image `hj-public/debian` is made here: one image per platform (a gzip layer, an OCI
config) and, for each, a buildx-style attestation manifest (an in-toto layer, platform unknown/unknown,
linked by the `vnd.docker.reference.*` annotations) — the shape of the article's appendix index.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from ocitrace.analyzers.manifests import IN_TOTO, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, PREDICATE_TYPE

# The article's eight platforms.
ARTICLE_PLATFORMS = ("linux/386", "linux/amd64", "linux/arm/v5", "linux/arm/v7", "linux/arm64",
                     "linux/mips64le", "linux/ppc64le", "linux/s390x")
CREATED = "2024-10-18T06:59:31Z"


class Layout:
    """An OCI image layout folder being written: blobs by digest, an index.json naming the images."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data), **extra}

    def json_blob(self, obj: dict, media_type: str, **extra) -> dict:
        return self.blob(json.dumps(obj, indent=2).encode(), media_type, **extra)

    def tag(self, name: str, descriptor: dict) -> None:
        entry = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": name}}
        index_path = self.root / "index.json"
        index = json.loads(index_path.read_text()) if index_path.exists() else {
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name]
        index["manifests"].append(entry)
        index_path.write_text(json.dumps(index, indent=2))


def _platform(text: str) -> dict:
    os_, arch, *variant = text.split("/")
    return {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A reproducible gzip tar layer and its diff_id (digest of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def image(layout: Layout, platform: str, files: dict[str, bytes]) -> dict:
    """One platform's image: a layer, a config, a manifest. Returns the manifest's descriptor."""
    layer, diff_id = _layer(files)
    config = {**_platform(platform), "created": CREATED,
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": ["bash"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created": CREATED, "created_by": f"ocitrace demo base for {platform}"}]}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": layout.json_blob(config, OCI_CONFIG),
                "layers": [layout.blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")]}
    return layout.json_blob(manifest, OCI_MANIFEST, platform=_platform(platform))


def attestation(layout: Layout, subject: dict, platform: str) -> dict:
    """A buildx attestation manifest for `subject`: an in-toto SLSA provenance statement."""
    statement = {"_type": "https://in-toto.io/Statement/v0.1",
                 "predicateType": "https://slsa.dev/provenance/v0.2",
                 "subject": [{"name": f"pkg:docker/hj-public/debian@latest?platform={platform.replace('/', '%2F')}",
                              "digest": {"sha256": subject["digest"].split(":", 1)[1]}}],
                 "predicate": {"builder": {"id": "ocitrace-demo"}, "buildType": "https://mobyproject.org/buildkit@v1"}}
    layer = layout.json_blob(statement, IN_TOTO, annotations={PREDICATE_TYPE: statement["predicateType"]})
    config = {"architecture": "unknown", "os": "unknown", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": layout.json_blob(config, OCI_CONFIG), "layers": [layer]}
    return layout.json_blob(manifest, OCI_MANIFEST, platform={"architecture": "unknown", "os": "unknown"},
                            annotations={"vnd.docker.reference.digest": subject["digest"],
                                         "vnd.docker.reference.type": "attestation-manifest"})


def write_base_image(root: Path, tag: str = "latest", platforms=ARTICLE_PLATFORMS) -> Path:
    """The demo's `hj-public/debian`: an index of `platforms`, each with its attestation, as buildx pushes it."""
    layout = Layout(root)
    images = [image(layout, p, {"etc/os-release": f'PRETTY_NAME="ocitrace demo debian ({p})"\n'.encode()})
              for p in platforms]
    attestations = [attestation(layout, d, p) for d, p in zip(images, platforms, strict=True)]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": images + attestations}
    layout.tag(tag, layout.json_blob(index, OCI_INDEX))
    return root

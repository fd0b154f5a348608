"""Shared helpers: build real mitmproxy flows and write them as mitmdump would."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from mitmproxy import http, io
from mitmproxy.test import tflow, tutils

DATA = Path(__file__).with_name("data")
ARTICLE_INDEX = (DATA / "article-index.json").read_bytes()
ARTICLE_MANIFEST = (DATA / "article-manifest.json").read_bytes()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_flow(method: str, url: str, status: int | None = 200, *, req_body: bytes = b"", resp_body: bytes = b"",
              req_headers: dict | None = None, resp_headers: dict | None = None, error: str | None = None,
              timestamp: float | None = None, metadata: dict | None = None) -> http.HTTPFlow:
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    host, _, port = authority.partition(":")
    port_n = int(port) if port else (443 if scheme == "https" else 80)
    headers = [(b"host", authority.encode())]
    headers += [(k.encode(), v.encode()) for k, v in (req_headers or {}).items()]
    req = tutils.treq(method=method.encode(), scheme=scheme.encode(), host=host, port=port_n,
                      path=("/" + path).encode(), headers=http.Headers(headers), content=req_body)
    resp = False
    if status is not None:
        resp = tutils.tresp(status_code=status, content=resp_body,
                            headers=http.Headers([(k.encode(), v.encode()) for k, v in (resp_headers or {}).items()]))
    flow = tflow.tflow(req=req, resp=resp, err=bool(error))
    if error:
        flow.error.msg = error
    if timestamp is not None:
        flow.request.timestamp_start = timestamp
    if metadata:
        flow.metadata.update(metadata)
    return flow


def write_flows(path: Path, flows) -> Path:
    with open(path, "wb") as fh:
        writer = io.FlowWriter(fh)
        for flow in flows:
            writer.add(flow)
    return path


@pytest.fixture
def flow_file(tmp_path):
    def write(*flows, name="capture.mitm"):
        return write_flows(tmp_path / name, flows)
    return write


def index_body(*platforms: str, attest: bool = False) -> bytes:
    """A small OCI index naming one manifest per platform (and buildx attestations)."""
    manifests = []
    for i, platform in enumerate(platforms):
        os_, arch, *variant = platform.split("/")
        p = {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": f"sha256:{i:064x}", "size": 400 + i, "platform": p})
    if attest:
        for i in range(len(platforms)):
            manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": f"sha256:{0xa0 + i:064x}", "size": 566,
                              "platform": {"os": "unknown", "architecture": "unknown"},
                              "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                              "vnd.docker.reference.digest": f"sha256:{i:064x}"}})
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": manifests}).encode()


# Words of an English sentence. Terms the article keeps in English (manifest, blob, digest, index, tag,
# config, platform names, media types) are not among them.
_ENGLISH = re.compile(r"\b(the|is|are|was|not|no|of|after|before|with|from|for|and|or|this|that|fetch|push|"
                      r"upload|download|report|call|calls|body|bodies|cannot|invalid|check|does|exist|list|open|"
                      r"close|seen|bytes|failed|answer|verified|mismatch|captured|layer|layers|attestation)\b",
                      re.IGNORECASE)
# Captured values and names: paths, URLs, digests, media types, identifiers.
_VALUE = re.compile(r"\S*[/.:_\\=@\d]\S*|`[^`]*`")


def english_in(text: str) -> list[str]:
    """English words in `text`, outside paths, URLs, digests and other captured values."""
    return _ENGLISH.findall(_VALUE.sub(" ", text))

"""A small OCI client that attaches artifacts to an image and keeps the referrers tag itself, as the
distribution-spec asks of a client when the registry has no referrers API ("Pushing Manifests with Subject",
"Unavailable Referrers API"). No client on this machine does this; the demo uses it to record what it looks like.

For each artifact: push its blobs and its manifest (with `subject`); when the answer has no `OCI-Subject`, ask the
referrers API, and on its 404 fetch the referrers tag (`sha256-<hex>`, a 404 for the first: start from an empty
index), add the artifact's descriptor, and push the index back to the tag.

Run: python -m ocitrace.referrers_client REGISTRY REPOSITORY SUBJECT_DIGEST (through HTTPS_PROXY, trusting
SSL_CERT_FILE), or `attach(...)` from Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
USER_AGENT = "ocitrace-referrers-client/1"


@dataclass(frozen=True)
class Artifact:
    artifact_type: str
    layer_type: str
    content: bytes
    annotations: dict[str, str]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    def __init__(self, registry: str, repository: str):
        self.base = f"https://{registry}/v2/{repository}"
        context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
        proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
        handlers = [urllib.request.HTTPSHandler(context=context)]
        if proxy:
            handlers.append(urllib.request.ProxyHandler({"https": proxy}))
        self.opener = urllib.request.build_opener(*handlers)

    def call(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, body) of one call; a 4xx is an answer, not an error."""
        request = urllib.request.Request(url if url.startswith("https://") else self.base.split("/v2/")[0] + url,
                                         data=body, method=method,
                                         headers={"User-Agent": USER_AGENT, **(headers or {})})
        try:
            with self.opener.open(request, timeout=60) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def push_blob(self, data: bytes) -> dict:
        digest = _digest(data)
        status, _, _ = self.call("HEAD", f"{self.base}/blobs/{digest}")
        if status != 200:
            status, headers, _ = self.call("POST", f"{self.base}/blobs/uploads/", b"", {"Content-Length": "0"})
            location = headers["Location"]
            sep = "&" if "?" in location else "?"
            status, _, _ = self.call("PUT", f"{location}{sep}digest={digest}", data,
                                     {"Content-Type": "application/octet-stream"})
            if status != 201:
                raise RuntimeError(f"blob upload answered {status}")
        return {"digest": digest, "size": len(data)}

    def attach(self, subject: dict, artifact: Artifact) -> None:
        config, layer = self.push_blob(b"{}"), self.push_blob(artifact.content)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact.artifact_type,
            "config": {"mediaType": EMPTY, **config}, "layers": [{"mediaType": artifact.layer_type, **layer}],
            "subject": subject, "annotations": artifact.annotations}, indent=2).encode()
        digest = _digest(manifest)
        status, headers, _ = self.call("PUT", f"{self.base}/manifests/{digest}", manifest,
                                       {"Content-Type": OCI_MANIFEST})
        if status != 201:
            raise RuntimeError(f"manifest push answered {status}")
        if headers.get("OCI-Subject"):
            return  # the registry keeps the referrers itself
        status, _, _ = self.call("GET", f"{self.base}/referrers/{subject['digest']}", headers={"Accept": OCI_INDEX})
        if status == 200:
            return
        self._keep_tag(subject, {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                                 "artifactType": artifact.artifact_type, "annotations": artifact.annotations})

    def _keep_tag(self, subject: dict, descriptor: dict) -> None:
        algorithm, _, encoded = subject["digest"].partition(":")
        tag = f"{algorithm}-{encoded}"[:128]
        status, _, body = self.call("GET", f"{self.base}/manifests/{tag}", headers={"Accept": OCI_INDEX})
        index = json.loads(body) if status == 200 else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        if any(d.get("digest") == descriptor["digest"] for d in index["manifests"]):
            return
        index["manifests"].append(descriptor)
        status, _, _ = self.call("PUT", f"{self.base}/manifests/{tag}", json.dumps(index, indent=2).encode(),
                                 {"Content-Type": OCI_INDEX})
        if status != 201:
            raise RuntimeError(f"referrers tag push answered {status}")


ARTIFACTS = (
    Artifact("application/spdx+json", "application/spdx+json",
             json.dumps({"spdxVersion": "SPDX-2.3", "name": "hj-test1"}).encode(),
             {"org.opencontainers.image.description": "SBOM"}),
    Artifact("application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.dev.cosign.simplesigning.v1+json",
             json.dumps({"critical": {"type": "cosign container image signature"}}).encode(),
             {"org.opencontainers.image.description": "signature"}),
)


def attach(registry: str, repository: str, subject: dict, artifacts=ARTIFACTS) -> None:
    client = Client(registry, repository)
    for artifact in artifacts:
        client.attach(subject, artifact)


def main(argv: list[str]) -> int:
    registry, repository, digest = argv
    client = Client(registry, repository)
    status, headers, body = client.call("GET", f"{client.base}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    if status != 200:
        print(f"referrers_client: the subject {digest} answered {status}", file=sys.stderr)
        return 1
    subject = {"mediaType": headers.get("Content-Type", OCI_MANIFEST), "digest": digest, "size": len(body)}
    for artifact in ARTIFACTS:
        client.attach(subject, artifact)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Artifacts by name (artifacts.yaml): one case per row, and a Helm chart's push told by its name and version."""

import json

import pytest
from conftest import make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.artifacts import artifacts, config_name, identify
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.manifests import OCI_MANIFEST, decode_manifest
from ocitrace.analyzers.report import render

EMPTY = "application/vnd.oci.empty.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"


def manifest(config=EMPTY, layers=(), artifact_type=None, annotations=None):
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config, "digest": sha256(b"{}"), "size": 2},
            "layers": [{"mediaType": media_type, "digest": sha256(media_type.encode()), "size": 1,
                        **({"annotations": layer_annotations} if layer_annotations else {})}
                       for media_type, layer_annotations in layers]}
    if artifact_type:
        body["artifactType"] = artifact_type
    if annotations:
        body["annotations"] = annotations
    return decode_manifest(json.dumps(body).encode(), OCI_MANIFEST)


INTOTO = "application/vnd.in-toto+json"
# One case per row of the table, in its order: the manifest, the tag it came by, the artifact it is.
CASES = [
    (manifest(layers=[("application/vnd.dev.cosign.simplesigning.v1+json", None)]), None, "cosign-signature"),
    (manifest(layers=[("application/octet-stream", None)]), f"sha256-{'a' * 64}.sig", "cosign-signature"),
    (manifest(layers=[("application/vnd.dsse.envelope.v1+json", None)]), None, "cosign-attestation"),
    (manifest(layers=[("application/octet-stream", None)]), f"sha256-{'a' * 64}.att", "cosign-attestation"),
    (manifest(layers=[("text/spdx", None)]), f"sha256-{'a' * 64}.sbom", "cosign-sbom"),
    (manifest(artifact_type="application/vnd.cncf.notary.signature", layers=[("application/jose+json", None)]),
     None, "notation-signature"),
    (manifest(config=HELM_CONFIG, layers=[("application/vnd.cncf.helm.chart.content.v1.tar+gzip", None)]), None,
     "helm-chart"),
    (manifest(layers=[(INTOTO, {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})]), None,
     "in-toto-provenance"),
    (manifest(layers=[(INTOTO, {"in-toto.io/predicate-type": "https://spdx.dev/Document"})]), None, "in-toto-sbom"),
    (manifest(layers=[(INTOTO, {"in-toto.io/predicate-type": "https://cyclonedx.org/bom"})]), None, "in-toto-sbom"),
    (manifest(artifact_type="application/spdx+json", layers=[("application/spdx+json", None)]), None, "sbom-spdx"),
    (manifest(artifact_type="text/spdx", layers=[("text/spdx", None)]), None, "sbom-spdx"),
    (manifest(artifact_type="application/vnd.cyclonedx+json"), None, "sbom-cyclonedx"),
    (manifest(config="application/vnd.unknown.config.v1+json", layers=[("application/spdx+json", None)]), None,
     "sbom-spdx"),
    (manifest(config="application/vnd.unknown.config.v1+json", layers=[("application/vnd.cyclonedx+json", None)]),
     None, "sbom-cyclonedx"),
    (manifest(config="application/vnd.sylabs.sif.config.v1+json",
              layers=[("application/vnd.sylabs.sif.layer.v1.sif", None)]), None, "singularity-image"),
    (manifest(config="application/vnd.wasm.config.v0+json",
              layers=[("application/vnd.wasm.content.layer.v1+wasm", None)]), None, "wasm-module"),
    (manifest(config="application/vnd.oci.image.config.v1+json", layers=[("application/wasm", None)]), None,
     "wasm-module"),
]


def test_every_row_of_the_table_has_its_case():
    assert len(CASES) == len(artifacts())


@pytest.mark.parametrize("value, tag, expected", CASES, ids=[f"{n}-{c[2]}" for n, c in enumerate(CASES)])
def test_a_manifest_is_named_by_the_first_row_it_matches(value, tag, expected):
    assert identify(value, tag).id == expected


def test_an_image_is_no_artifact():
    assert identify(manifest(config="application/vnd.oci.image.config.v1+json",
                             layers=[("application/vnd.oci.image.layer.v1.tar+gzip", None)])) is None


def test_the_oci_empty_config_is_named():
    assert config_name(EMPTY, "en") == "OCI empty config" and config_name("x/y", "en") is None


def test_a_helm_chart_push_is_told_by_its_name_and_version():
    config = json.dumps({"name": "mychart", "version": "0.1.0", "appVersion": "1.16.0", "apiVersion": "v2"}).encode()
    chart = b"chart-tarball" * 10
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": HELM_CONFIG, "digest": sha256(config), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                                   "digest": sha256(chart), "size": len(chart)}]}).encode()
    r = "https://registry.test/v2/charts/mychart"
    flows = []
    for n, blob in enumerate((config, chart)):
        up = f"{r}/blobs/uploads/s{n}"
        flows += [make_flow("POST", f"{r}/blobs/uploads/", 202, resp_headers={"Location": up, "Range": "0-0"}),
                  make_flow("PUT", f"{up}?digest={sha256(blob)}", 201, req_body=blob,
                            resp_headers={"Location": f"{r}/blobs/{sha256(blob)}"})]
    flows.append(make_flow("PUT", f"{r}/manifests/0.1.0", 201, req_body=body,
                           req_headers={"Content-Type": OCI_MANIFEST}, resp_headers={"Location": f"{r}/manifests/x"}))
    report = render(analyze([call_from_state(f.get_state()) for f in flows]), "markdown")
    assert f"Helm chart ({HELM_CONFIG})" in report
    assert "Helm chart config sha256:04bb0bf8d... 83 B: name mychart version 0.1.0 appVersion 1.16.0" in report
    assert "**Artifact manifest** sha256:cd13e9e3e... (charts/mychart)" in report  # the README's example

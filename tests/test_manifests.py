"""Decoding each media type of the OCI image spec and the Docker registry into the object model."""

import base64
import json
from pathlib import Path

import pytest
from conftest import ARTICLE_INDEX, ARTICLE_MANIFEST, sha256
from ocitrace.analyzers import manifests as m

D = "sha256:" + "1" * 64
CFG = {"mediaType": m.OCI_CONFIG, "digest": "sha256:" + "c" * 64, "size": 579}
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "d" * 64, "size": 100}


def body(obj) -> bytes:
    return json.dumps(obj).encode()


ARTICLE = Path(__file__).resolve().parents[2] / "shared" / "article" / "article-zh.txt"


@pytest.mark.skipif(not ARTICLE.exists(), reason="the article is beside the project only in its workplace")
def test_the_fixtures_are_the_article_appendix_bodies():
    article = ARTICLE.read_text(encoding="utf-8")
    bodies = [json.loads(article[article.index("{", article.index(title)):]
                         .split("\n}\n", 1)[0] + "\n}") for title in ("多架构manifest\n{", "镜像manifests\n{")]
    assert bodies == [json.loads(ARTICLE_INDEX), json.loads(ARTICLE_MANIFEST)]


def test_article_index_is_eight_platforms_each_with_its_attestation():
    index = m.decode_manifest(ARTICLE_INDEX, m.OCI_INDEX)
    assert isinstance(index, m.Index) and len(index.manifests) == 16
    assert [str(d.platform) for d in index.images] == [
        "linux/386", "linux/amd64", "linux/arm/v5", "linux/arm/v7", "linux/arm64", "linux/mips64le",
        "linux/ppc64le", "linux/s390x"]
    for image in index.images:
        attestation = index.attestation_for(image.digest)
        assert attestation is not None and attestation.platform.unknown and attestation.kind == "attestation"
    arm64 = next(d for d in index.images if str(d.platform) == "linux/arm64")
    assert index.attestation_for(arm64.digest).digest.startswith("sha256:fe2aa90b")


def test_article_manifest_is_one_config_and_one_gzip_layer():
    manifest = m.decode_manifest(ARTICLE_MANIFEST, None)
    assert isinstance(manifest, m.ImageManifest) and manifest.kind == "manifest"
    assert manifest.config.media_type == m.OCI_CONFIG and manifest.config.size == 579
    assert [(layer.media_type, layer.size) for layer in manifest.layers] == [
        ("application/vnd.oci.image.layer.v1.tar+gzip", 49_584_978)]


@pytest.mark.parametrize("media_type", [m.OCI_INDEX, m.DOCKER_LIST])
def test_index_and_manifest_list(media_type):
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [
        {"mediaType": m.DOCKER_MANIFEST, "digest": D, "size": 528,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}]}
    index = m.decode_manifest(body(doc), media_type)
    assert isinstance(index, m.Index) and index.media_type == media_type
    assert str(index.manifests[0].platform) == "linux/arm/v7"


@pytest.mark.parametrize("media_type,config_type", [(m.OCI_MANIFEST, m.OCI_CONFIG),
                                                    (m.DOCKER_MANIFEST, m.DOCKER_CONFIG)])
def test_image_manifest(media_type, config_type):
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": {**CFG, "mediaType": config_type},
           "layers": [LAYER, LAYER]}
    manifest = m.decode_manifest(body(doc), media_type)
    assert isinstance(manifest, m.ImageManifest) and manifest.kind == "manifest"
    assert manifest.media_type == media_type and len(manifest.layers) == 2


def test_media_type_comes_from_the_content_type_when_the_body_has_none():
    doc = {"schemaVersion": 2, "config": CFG, "layers": []}
    assert m.decode_manifest(body(doc), m.DOCKER_MANIFEST + "; charset=utf-8").media_type == m.DOCKER_MANIFEST


def test_oci_artifact_with_empty_config_and_subject():
    doc = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
           "config": {"mediaType": m.OCI_EMPTY, "digest": sha256(b"{}"), "size": 2},
           "layers": [{**LAYER, "mediaType": "application/spdx+json"}],
           "subject": {"mediaType": m.OCI_MANIFEST, "digest": D, "size": 481}}
    artifact = m.decode_manifest(body(doc))
    assert artifact.kind == "artifact" and artifact.effective_artifact_type == "application/vnd.example.sbom"
    assert artifact.subject.digest == D


def test_artifact_type_falls_back_to_the_config_media_type():
    doc = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST,
           "config": {**CFG, "mediaType": "application/vnd.cncf.helm.config.v1+json"}, "layers": []}
    assert m.decode_manifest(body(doc)).effective_artifact_type == "application/vnd.cncf.helm.config.v1+json"


def test_buildx_attestation_manifest_is_recognised_by_its_in_toto_layers():
    doc = {"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": CFG,
           "layers": [{**LAYER, "mediaType": m.IN_TOTO,
                       "annotations": {m.PREDICATE_TYPE: "https://slsa.dev/provenance/v0.2"}}]}
    assert m.decode_manifest(body(doc)).kind == "attestation"


def test_index_with_subject_and_artifact_type():
    doc = {"schemaVersion": 2, "mediaType": m.OCI_INDEX, "artifactType": "application/vnd.example",
           "manifests": [], "subject": {"mediaType": m.OCI_MANIFEST, "digest": D, "size": 1}}
    index = m.decode_manifest(body(doc))
    assert index.artifact_type == "application/vnd.example" and index.subject.digest == D


SCHEMA1 = {"schemaVersion": 1, "name": "team/app", "tag": "v1", "architecture": "amd64",
           "fsLayers": [{"blobSum": D}, {"blobSum": D}], "history": [{"v1Compatibility": "{}"}] * 2}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_schema1() -> tuple[bytes, bytes]:
    """A schema-1 manifest signed the libtrust way: (signed body, JWS payload the digest covers)."""
    payload = json.dumps(SCHEMA1, indent=3).encode()
    cut = len(payload) - 2  # before "\n}"
    protected = _b64url(json.dumps({"formatLength": cut, "formatTail": _b64url(payload[cut:])}).encode())
    signatures = {"signatures": [{"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected}]}
    signed = payload[:cut] + b',\n   "signatures": ' + json.dumps(signatures["signatures"]).encode() + payload[cut:]
    return signed, payload


def test_schema1_unsigned():
    manifest = m.decode_manifest(body(SCHEMA1), m.SCHEMA1)
    assert isinstance(manifest, m.Schema1Manifest) and not manifest.signed
    assert (manifest.name, manifest.tag, manifest.architecture, len(manifest.layers)) == ("team/app", "v1", "amd64", 2)


def test_schema1_signed_and_its_digest_covers_the_payload_only():
    signed, payload = signed_schema1()
    manifest = m.decode_manifest(signed, m.SCHEMA1_SIGNED)
    assert manifest.signed and manifest.media_type == m.SCHEMA1_SIGNED
    assert m.canonical_bytes(signed, m.SCHEMA1_SIGNED) == payload


def test_schema1_is_recognised_without_a_content_type():
    signed, _ = signed_schema1()
    assert m.decode_manifest(signed).media_type == m.SCHEMA1_SIGNED
    assert m.decode_manifest(body(SCHEMA1)).media_type == m.SCHEMA1


def test_image_config_blob():
    config = {"architecture": "arm", "os": "linux", "variant": "v7", "created": "2024-10-18T06:00:00Z",
              "history": [{}, {}, {}], "rootfs": {"type": "layers", "diff_ids": [D]}}
    decoded = m.decode_blob(body(config), m.OCI_CONFIG)
    assert isinstance(decoded, m.ImageConfig)
    assert (str(decoded.platform), decoded.created, decoded.history_length, decoded.diff_ids) == (
        "linux/arm/v7", "2024-10-18T06:00:00Z", 3, (D,))
    assert m.decode_blob(body(config), m.DOCKER_CONFIG).kind == "config"


def test_in_toto_attestation_layer():
    statement = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
                 "subject": [{"name": "pkg:docker/app", "digest": {"sha256": "1" * 64}}], "predicate": {}}
    decoded = m.decode_blob(body(statement), m.IN_TOTO)
    assert decoded.predicate_type == "https://slsa.dev/provenance/v0.2" and decoded.subjects == ("pkg:docker/app",)


@pytest.mark.parametrize("media_type", [
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.container.image.rootfs.diff+x-gtar"])
def test_layer_media_types_are_known_layers_and_not_decoded(media_type):
    assert m.media_kind(media_type) == "layer"
    assert m.decode_blob(b"\x1f\x8b binary", media_type) is None


@pytest.mark.parametrize("raw,code,values", [
    (b"{not json", "decode-invalid-json", {"line": 1, "column": 2}),
    (b"\xff\xfe", "decode-not-utf8", {}),
    (b"[1, 2]", "decode-not-object", {"what": "manifest", "actual": "array"}),
    (body({"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": "none"}), "decode-wrong-type",
     {"where": "index", "field": "manifests", "expected": "array", "actual": "string"}),
    (body({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": CFG, "layers": [{**LAYER, "size": "9"}]}),
     "decode-wrong-type", {"where": "layers[0]", "field": "size", "expected": "integer", "actual": "string"}),
    (body({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "layers": []}), "decode-missing-field",
     {"where": "manifest", "field": "config"}),
    (body({"schemaVersion": 2, "mediaType": "application/vnd.example.unknown+json"}), "decode-unknown-media-type",
     {"media_type": "application/vnd.example.unknown+json"}),
    (b"[" * 100_000 + b"]" * 100_000, "decode-too-complex", {}),
    (b'{"schemaVersion": ' + b"9" * 5000 + b"}", "decode-too-complex", {}),
])
def test_bad_bodies_decode_to_a_failure_that_says_why(raw, code, values):
    decoded = m.decode_manifest(raw, None)
    assert isinstance(decoded, m.DecodeFailure)
    assert (decoded.finding.code, dict(decoded.finding.values)) == (code, values)


@pytest.mark.parametrize("text,platform", [
    ("linux/amd64", m.Platform("linux", "amd64")),
    ("linux/arm/v7", m.Platform("linux", "arm", "v7")),
    ("windows/amd64", m.Platform("windows", "amd64")),
])
def test_a_platform_parses_from_and_prints_as_os_arch_variant(text, platform):
    assert m.Platform.parse(text) == platform and str(platform) == text


@pytest.mark.parametrize("text", ["linux", "linux//v7", "a/b/c/d", ""])
def test_a_platform_that_is_not_os_arch_variant_is_refused(text):
    with pytest.raises(ValueError):
        m.Platform.parse(text)


def test_unknown_media_type_is_kept_as_it_is():
    decoded = m.decode_manifest(body({"mediaType": "application/x-weird"}), None)
    assert decoded.media_type == "application/x-weird"
    d = m.Descriptor.from_json({"mediaType": "application/x-weird", "digest": D, "size": 1}, "d")
    assert d.kind == "application/x-weird"


def test_platform_prints_like_a_platform_string():
    assert str(m.Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(m.Platform("windows", "amd64", os_version="10.0.17763")) == "windows/amd64"


def test_the_same_small_body_is_decoded_once_and_serves_every_call_that_fetched_it():
    """A fleet fetches the same manifests and configs all day: the bytes decoded once are found again by their bytes;
    other bytes, another media type, or a body past MEMO_BYTES are decoded anew."""
    manifest = body({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": CFG, "layers": [LAYER]})
    first = m.decode_manifest(manifest, m.OCI_MANIFEST)
    assert isinstance(first, m.ImageManifest)
    assert m.decode_manifest(bytearray(manifest), m.OCI_MANIFEST) is first  # equal bytes, however they came
    assert m.decode_manifest(manifest, m.DOCKER_MANIFEST) is not first  # what a header says is part of it
    padded = body({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST, "config": CFG, "layers": [LAYER],
                   "annotations": {"x": "y" * m.MEMO_BYTES}})
    assert m.decode_manifest(padded, m.OCI_MANIFEST) == m.decode_manifest(padded, m.OCI_MANIFEST)
    assert m.decode_manifest(padded, m.OCI_MANIFEST) is not m.decode_manifest(padded, m.OCI_MANIFEST)
    config = body({"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [D]}})
    assert m.decode_blob(config, m.OCI_CONFIG) is m.decode_blob(bytes(config), m.OCI_CONFIG)
    assert m.decode_blob(config, m.OCI_CONFIG).diff_ids == (D,)

"""The report: the article's table from real calls, in English and Chinese, JSON for machines, no secrets."""

import base64
import json
import re

import pytest
from conftest import ARTICLE_INDEX, english_in, index_body, make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.manifests import OCI_INDEX
from ocitrace.analyzers.report import call_line, cell, render

R = "https://hub.example"
ARM64 = "sha256:d15e83b3662501593be46a5a2aef02c2f5b4a1826aa5bef8cd21e7047a497af8"


def analysis_of(*flows):
    return analyze([call_from_state(f.get_state()) for f in flows])


def article_session():
    idx = sha256(ARTICLE_INDEX)
    return analysis_of(
        make_flow("HEAD", f"{R}/v2/hj-public/debian/manifests/latest", 200,
                  resp_headers={"Docker-Content-Digest": idx, "Content-Type": OCI_INDEX}),
        make_flow("GET", f"{R}/v2/hj-public/debian/manifests/{idx}", 200, resp_body=ARTICLE_INDEX,
                  resp_headers={"Docker-Content-Digest": idx, "Content-Type": OCI_INDEX}),
        make_flow("GET", f"{R}/v2/hj-public/debian/manifests/{ARM64}", 404),
        make_flow("GET", f"{R}/favicon.ico", 404),
    )


def test_markdown_has_the_article_table_row_per_call_with_host_and_short_digests():
    md = render(article_session(), "markdown")
    assert "| method" in md and "| OCI endpoint" in md
    assert f"/v2/hj-public/debian/manifests/{sha256(ARTICLE_INDEX)[:16]}..." in md
    assert "hub.example" in md
    assert "end-3 /v2/\\<name\\>/manifests/\\<reference\\>" in md
    assert "index: 8 platforms + 8 attestations" in md
    assert "not a registry call" in md


def test_markdown_shows_the_index_as_a_platform_table_with_attestations():
    md = render(article_session(), "markdown")
    for platform in ("linux/386", "linux/arm/v5", "linux/arm64", "linux/s390x"):
        assert f"  - **{platform}** manifest " in md
    [arm64] = [line for line in md.splitlines() if line.startswith("  - **linux/arm64**")]
    assert arm64.endswith("attestation sha256:fe2aa90b2...")  # the attestation beside its platform
    assert call_line(article_session().calls[2]).endswith("404 end-3 fetch manifest; linux/arm64")


def test_markdown_counts_calls_per_endpoint_and_bytes_each_way():
    md = render(article_session(), "markdown")
    assert "## Calls per endpoint" in md and "## Bytes each way" in md
    assert f"registry to client: {len(ARTICLE_INDEX):,} bytes" in md


def test_chinese_report_uses_the_article_wording():
    md = render(article_session(), "markdown", "zh")
    assert "| 说明" in md and "| OCI 对应" in md and "判断 manifest 是否存在" in md
    assert "多架构manifest: 8 个平台 + 8 个证明文件" in md


def test_hostile_values_cannot_break_a_table():
    index = json.loads(index_body("linux/amd64"))
    index["annotations"] = {"org.opencontainers.image.title": "x | y\n| injected | row |"}
    body = json.dumps(index).encode()
    md = render(analysis_of(make_flow("PUT", f"{R}/v2/app/manifests/a|b<script>", 201, req_body=body,
                                      req_headers={"Content-Type": OCI_INDEX})), "markdown")
    assert "\n| injected" not in md and "<script>" not in md
    assert cell("a|b\nc") == "a\\|b c"
    appendix = md.split("## All calls", 1)[1]
    [row] = [line for line in appendix.splitlines() if line.startswith("| 1 ")]
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six columns, whatever the values held
    assert "x \\| y \\| injected \\| row \\|" in md  # the annotation, shown, in its cell


def test_json_lists_every_http_flow_with_the_public_fields():
    doc = json.loads(render(article_session(), "json"))
    assert set(doc) == {"version", "calls", "objects", "operations", "findings", "finding_counts", "rate_limits",
                        "slowest"}
    assert [c["endpoint"] for c in doc["calls"]] == ["end-3", "end-3", "end-3", None]
    required = {"method", "url", "host", "path", "status", "endpoint", "repository", "reference", "digest",
                "digest_verified"}
    assert all(required <= set(c) for c in doc["calls"])
    assert doc["calls"][1]["digest_verified"] is True and doc["calls"][0]["digest_verified"] is None
    assert doc["calls"][0]["reference"] == "latest" and doc["calls"][0]["repository"] == "hj-public/debian"


def test_json_index_object_lists_platforms_and_attestation_links():
    [index] = json.loads(render(article_session(), "json"))["objects"]
    assert index["kind"] == "index" and index["media_type"] == OCI_INDEX and index["digest"] == sha256(ARTICLE_INDEX)
    entries = {e["digest"]: e for e in index["manifests"]}
    arm64 = "sha256:d15e83b3662501593be46a5a2aef02c2f5b4a1826aa5bef8cd21e7047a497af8"
    assert entries[arm64]["platform"] == "linux/arm64" and entries[arm64]["attests"] is None
    attestation = [e for e in index["manifests"] if e["attests"] == arm64]
    assert len(attestation) == 1 and attestation[0]["kind"] == "attestation"
    assert attestation[0]["platform"] == "unknown/unknown"


def test_jsonl_is_one_call_per_line_with_the_same_fields():
    a = article_session()
    lines = render(a, "jsonl").splitlines()
    assert len(lines) == 4
    assert json.loads(lines[1]) == json.loads(render(a, "json"))["calls"][1]


SECRET = "c2VjcmV0LXZhbHVl"


def secret_session():
    return analysis_of(
        make_flow("GET", f"{R}/v2/", 401, resp_headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token"'}),
        make_flow("GET", "https://auth.example/token?scope=repository:a:pull&service=hub", 200,
                  req_headers={"Authorization": f"Basic {SECRET}", "Cookie": f"session={SECRET}"},
                  resp_body=json.dumps({"token": SECRET, "access_token": SECRET}).encode(),
                  resp_headers={"Set-Cookie": f"id={SECRET}"}),
        make_flow("POST", "https://auth.example/token?access_token=" + SECRET, 200,
                  req_body=f"grant_type=password&password={SECRET}".encode()),
        make_flow("GET", f"{R}/v2/a/manifests/v1", 404,
                  req_headers={"Authorization": f"Bearer {SECRET}", "Proxy-Authorization": f"Basic {SECRET}"}),
        make_flow("GET", f"{R}/v2/a/blobs/sha256:{'1' * 64}", 307,
                  resp_headers={"Location": f"https://cdn.example/blob?X-Amz-Signature={SECRET}"}),
        make_flow("GET", f"https://cdn.example/blob?X-Amz-Credential={SECRET}&X-Amz-Signature={SECRET}", 200,
                  req_headers={"X-Registry-Auth": SECRET}),
        # Vendors' own credential headers and query keys, which no list names: redaction keeps only what is
        # known to be harmless.
        make_flow("GET", f"{R}/v2/a/tags/list?api_key={SECRET}&jwt={SECRET}&key={SECRET}&id_token={SECRET}"
                         f"&%61pi_key={SECRET}&n=10", 200,
                  req_headers={"X-Docker-Token": SECRET, "X-JFrog-Art-Api": SECRET, "X-Api-Key": SECRET,
                               "Api-Key": SECRET, "X-Some-New-Token": SECRET}),
    )


@pytest.mark.parametrize("fmt,lang", [("markdown", "en"), ("markdown", "zh"), ("json", "en"), ("jsonl", "en")])
def test_no_output_holds_a_credential(fmt, lang):
    out = render(secret_session(), fmt, lang)
    assert SECRET not in out


def test_redacted_headers_keep_their_scheme():
    doc = json.loads(render(secret_session(), "json"))
    headers = dict(doc["calls"][3]["request_headers"])
    assert headers["Authorization"] == "Bearer <redacted>"
    assert doc["calls"][1]["endpoint"] == "token"


def test_referrers_list_shows_artifact_types_and_an_index_its_subject():
    subject = "sha256:" + "5" * 64
    referrers = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "6" * 64, "size": 700,
         "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 9}})
    md = render(analysis_of(make_flow("GET", f"{R}/v2/app/referrers/{subject}", 200, resp_body=referrers.encode(),
                                      resp_headers={"Content-Type": OCI_INDEX})), "markdown")
    assert "application/vnd.dev.sigstore.bundle.v0.3+json" in md
    assert "| subject " in md and "sha256:555555555..." in md


def test_every_finding_code_has_words_in_each_language_and_a_row_in_the_readme():
    from pathlib import Path

    from ocitrace.analyzers.findings import SEVERITIES
    from ocitrace.analyzers.strings import LANGUAGES, strings

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in SEVERITIES:
        assert all(strings()[f"finding_{code}"].get(lang) for lang in LANGUAGES), code
        assert f"`{code}`" in readme, code


def test_a_chinese_report_of_a_troubled_session_holds_no_english_sentence():
    d = sha256(b"blob")
    troubled = [
        make_flow("GET", f"{R}/v2/app/manifests/sha256:{'0' * 64}", 200, resp_body=ARTICLE_INDEX,
                  resp_headers={"Content-Type": OCI_INDEX}),  # digest mismatch
        make_flow("GET", f"{R}/v2/app/manifests/.bad", 400),  # malformed reference
        make_flow("PATCH", f"{R}/v2/app/blobs/uploads/u-1", None, error="client disconnected",
                  metadata={"ocitrace": {"request": {"digest": None, "size": 5000, "complete": False}}}),
        make_flow("PUT", f"{R}/v2/app/manifests/v1", 201, req_body=b"{oops", req_headers={"Content-Type": OCI_INDEX}),
        make_flow("GET", f"{R}/v2/app/blobs/{d}", 200, resp_headers={"Docker-Content-Digest": d}),
    ]
    troubled[-1].response.raw_content = None
    analysis = analyze([call_from_state(f.get_state()) for f in troubled])
    codes = {finding.code for item in analysis.calls for finding in item.findings}
    assert {"digest-mismatch", "invalid-reference", "upload-aborted", "call-failed", "decode-invalid-json",
            "body-not-captured"} <= codes
    md = render(analysis, "markdown", "zh")
    for line in md.splitlines():
        assert english_in(line) == [], line
    assert "DIGEST 不一致" in md and "上传在 5,000 字节后中断" in md


def test_control_characters_never_reach_a_report_or_a_log_line():
    hostile = "x\x1b]0;owned\x07\x00\x1b[31m"
    index = json.loads(index_body("linux/amd64"))
    index["artifactType"] = hostile
    body = json.dumps(index).encode()
    a = analysis_of(make_flow("PUT", f"{R}/v2/app/manifests/v1", 201, req_body=body,
                              req_headers={"Content-Type": OCI_INDEX, "User-Agent": hostile}))
    for lang in ("en", "zh"):
        md = render(a, "markdown", lang)
        assert not any(ch in md for ch in "\x1b\x07\x00") and "\\x1b" in md
    line = call_line(a.calls[0])
    assert line.isprintable()


def test_basic_credentials_keep_the_user_name_never_the_password():
    from ocitrace.analyzers import redact

    basic = "Basic " + base64.b64encode(b"alice:" + SECRET.encode()).decode()
    assert redact.header_value("Authorization", basic) == "Basic alice:<redacted>"
    assert redact.header_value("Authorization", "Basic alice:<redacted>") == "Basic alice:<redacted>"  # again
    assert redact.header_value("X-Anything-New", SECRET) == "<redacted>"
    assert redact.header_value("Docker-Content-Digest", "sha256:ab") == "sha256:ab"
    shown = redact.query("n=10&last=v1&_state=" + "s" * 40 + "&sig=x")
    assert shown == "n=10&last=v1&_state=ssssssssssss...&sig=<redacted>"


def test_a_huge_value_cannot_widen_every_row_of_a_table():
    huge = "t" * 60_000
    flows = [make_flow("HEAD", f"{R}/v2/app/blobs/sha256:{i:064x}", 404) for i in range(300)]
    flows.append(make_flow("GET", f"{R}/v2/app/manifests/{huge}", 404))
    md = render(analysis_of(*flows), "markdown")
    assert len(md) < 1_000_000 and re.search(r"… \(60,0\d\d characters\)", md)  # not 300 rows × 60 KB


@pytest.mark.parametrize("lang,words", [("en", ("index of artifacts: 1 artifact", "| artifact type", "index: empty")),
                                        ("zh", ("制品索引: 1 个制品", "| 制品类型", "多架构manifest: 空"))])
def test_a_referrers_answer_lists_artifacts_not_platforms(lang, words):
    """The spec's "Listing Referrers": an image index of descriptors with an artifactType each (no platform)."""
    subject = sha256(b"subject")
    sbom = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(b"sbom"), "size": 690,
            "artifactType": "application/spdx+json"}
    answer = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sbom]}).encode()
    empty = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    flows = [make_flow("GET", f"https://registry.test/v2/app/referrers/{subject}", 200, resp_body=body,
                       resp_headers={"Content-Type": OCI_INDEX}) for body in (answer, empty)]
    report = render(analyze([call_from_state(f.get_state()) for f in flows]), "markdown", lang)
    assert all(w in report for w in words)
    assert not re.search(r"\d (platform|个平台)", report)  # "1 platform", "0 platforms": none here


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_blob_in_one_post_answered_202_says_the_registry_opened_a_session_instead(lang):
    """The spec: a registry that does not take a blob in one POST answers 202 and a Location, as to a POST that opens
    an upload session; the client then goes on as in a session."""
    from ocitrace.analyzers.strings import text

    blob = b"x" * 1000
    flows = [make_flow("POST", f"https://registry.test/v2/app/blobs/uploads/?digest={sha256(blob)}", status,
                       req_body=blob, resp_headers={"Location": "/v2/app/blobs/uploads/s1"}) for status in (202, 201)]
    declined, taken = (call_line(item, lang) for item in analyze([call_from_state(f.get_state()) for f in flows]).calls)
    assert text("one_post_declined", lang) in declined and text("one_post_declined", lang) not in taken

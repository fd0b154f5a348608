"""Digest checks, decoded objects and their links, as a session of calls unfolds."""

import hashlib
import json

import pytest
from conftest import ARTICLE_INDEX, index_body, make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.calls import METADATA_KEY
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.endpoints import default_table
from ocitrace.analyzers.findings import Finding
from ocitrace.analyzers.manifests import OCI_INDEX, OCI_MANIFEST, SCHEMA1_SIGNED
from ocitrace.analyzers.rules import rule
from test_manifests import signed_schema1

R = "https://registry.test"
CONFIG = json.dumps({"architecture": "arm64", "os": "linux", "rootfs": {"diff_ids": []}}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": sha256(CONFIG), "size": len(CONFIG)},
                       "layers": []}).encode()


# These tests are about digests, sessions and decoding: the rest of the rules table (headers these crafted
# answers leave out, an Accept header) is tests/test_rules.py's concern.
def own(findings):
    return [f for f in findings if rule(f.code) is None or f.code in ("digest-mismatch", "sent-digest-mismatch")]


def analysis_own(warnings):
    return [(item, f) for item, f in warnings if own([f])]


def calls(*flows):
    return [call_from_state(f.get_state()) for f in flows]


def run(*flows):
    return analyze(calls(*flows))


def test_manifest_digest_checked_against_url_and_header():
    a = run(make_flow("GET", f"{R}/v2/app/manifests/{sha256(ARTICLE_INDEX)}", 200, resp_body=ARTICLE_INDEX,
                      resp_headers={"Content-Type": OCI_INDEX, "Docker-Content-Digest": sha256(ARTICLE_INDEX)}))
    [item] = a.calls
    assert item.digest_verified is True
    assert {c.against for c in item.checks} == {"url", "Docker-Content-Digest"}
    assert analysis_own(a.warnings) == []


def test_a_mismatch_is_reported_loudly():
    a = run(make_flow("GET", f"{R}/v2/app/manifests/sha256:{'0' * 64}", 200, resp_body=MANIFEST,
                      resp_headers={"Content-Type": OCI_MANIFEST}))
    assert a.calls[0].digest_verified is False
    [(item, finding)] = analysis_own(a.warnings)
    assert finding.code == "digest-mismatch" and finding.severity == "error"
    assert finding.values == {"against": "url", "expected": f"sha256:{'0' * 64}", "actual": sha256(MANIFEST)}


def test_manifest_by_tag_is_checked_against_docker_content_digest_only():
    a = run(make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_body=MANIFEST,
                      resp_headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256(MANIFEST)}))
    assert [c.against for c in a.calls[0].checks] == ["Docker-Content-Digest"]


def test_a_blob_is_checked_against_the_descriptor_that_named_it_and_decoded_as_a_config():
    a = run(make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_body=MANIFEST,
                      resp_headers={"Content-Type": OCI_MANIFEST}),
            make_flow("GET", f"{R}/v2/app/blobs/{sha256(CONFIG)}", 200, resp_body=CONFIG))
    blob = a.calls[1]
    assert {c.against for c in blob.checks} == {"url", "descriptor size"} and blob.digest_verified
    assert blob.object.kind == "config" and str(blob.object.value.platform) == "linux/arm64"


def test_platform_of_a_manifest_comes_from_the_index_that_named_it():
    index = index_body("linux/amd64", "linux/arm64", attest=True)
    a = run(make_flow("GET", f"{R}/v2/app/manifests/new", 200, resp_body=index,
                      resp_headers={"Content-Type": OCI_INDEX}),
            make_flow("HEAD", f"{R}/v2/app/manifests/sha256:{1:064x}", 200),
            make_flow("GET", f"{R}/v2/app/manifests/sha256:{0xa1:064x}", 404))
    assert str(a.calls[1].platform) == "linux/arm64"
    assert str(a.calls[2].platform) == "linux/arm64"  # the attestation of linux/arm64


def test_chunked_upload_session_is_verified_at_the_closing_put():
    blob = b"x" * 1000
    d = sha256(blob)
    up = f"{R}/v2/app/blobs/uploads/u-1"
    a = run(make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202,
                      resp_headers={"Location": "/v2/app/blobs/uploads/u-1?_state=s", "Docker-Upload-UUID": "u-1"}),
            make_flow("PATCH", f"{up}?_state=s", 202, req_body=blob[:600]),
            make_flow("PATCH", f"{up}?_state=t", 202, req_body=blob[600:]),
            make_flow("PUT", f"{up}?_state=u&digest={d}", 201, resp_headers={"Docker-Content-Digest": d}))
    assert [c.session for c in a.calls] == ["u-1"] * 4
    put = a.calls[3]
    assert put.body_digest == d and put.body_size == 1000 and put.digest_verified is True


OPENERS = [e for e in default_table().endpoints if e.opens_session]


@pytest.mark.parametrize("endpoint", OPENERS, ids=[e.id for e in OPENERS])
def test_a_202_from_every_row_that_opens_a_session_opens_one(endpoint):
    query = {"end-11": f"mount={sha256(b'm')}&from=base", "end-4b": f"digest={sha256(b'm')}",
             "end-4c": "digest-algorithm=sha512"}.get(endpoint.id, "")
    flow = make_flow("POST", f"{R}/v2/app/blobs/uploads/?{query}".rstrip("?"), 202,
                     resp_headers={"Location": f"{R}/v2/app/blobs/uploads/s-9?_state=x"})
    [item] = run(flow).calls
    assert item.endpoint_id == endpoint.id and item.session == "s-9"
    assert run(make_flow("POST", f"{R}/v2/app/blobs/uploads/?{query}".rstrip("?"), 404)).calls[0].session is None


def test_a_session_in_another_algorithm_is_not_checked_against_sha256():
    d512 = "sha512:" + hashlib.sha512(b"abc").hexdigest()
    up = f"{R}/v2/app/blobs/uploads/s-5"
    a = run(make_flow("POST", f"{R}/v2/app/blobs/uploads/?digest-algorithm=sha512", 202,
                      resp_headers={"Location": f"{up}?_state=x"}),
            make_flow("PATCH", f"{up}?_state=x", 202, req_body=b"abc"),
            make_flow("PUT", f"{up}?_state=y&digest={d512}", 201, resp_headers={"Docker-Content-Digest": d512}))
    assert [c.session for c in a.calls] == ["s-5"] * 3
    assert a.calls[2].digest_verified is None and analysis_own(a.warnings) == []


def test_streamed_upload_uses_the_digest_the_live_proxy_measured():
    d = sha256(b"blob")
    put = make_flow("PUT", f"{R}/v2/app/blobs/uploads/u-2?digest={d}", 201,
                    metadata={METADATA_KEY: {"session": {"digest": d, "size": 4}}})
    patch = make_flow("PATCH", f"{R}/v2/app/blobs/uploads/u-2", 202,
                      metadata={METADATA_KEY: {"request": {"digest": d, "size": 4}}})
    patch.request.raw_content = None
    a = run(patch, put)
    assert a.calls[0].body_size == 4 and a.calls[1].digest_verified is True


def test_streamed_blob_download_is_checked_with_the_tap_digest():
    d = sha256(b"layer-bytes")
    flow = make_flow("GET", f"{R}/v2/app/blobs/{d}", 200, resp_headers={"Docker-Content-Digest": d},
                     metadata={METADATA_KEY: {"response": {"digest": d, "size": 11}}})
    flow.response.raw_content = None
    [item] = run(flow).calls
    assert item.digest_verified is True and item.body_size == 11


def test_aborted_stream_is_recorded_with_the_bytes_seen():
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(b'z')}", 200, error="client disconnected",
                     metadata={METADATA_KEY: {"response": {"digest": None, "size": 512, "complete": False}}})
    flow.response.raw_content = None
    [item] = run(flow).calls
    assert Finding.of("download-aborted", bytes=512) in item.findings and item.digest_verified is None


def test_body_not_captured_still_classifies():
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_headers={"Content-Type": OCI_MANIFEST})
    flow.response.raw_content = None
    [item] = run(flow).calls
    assert item.endpoint_id == "end-3" and item.object is None
    assert [f.code for f in own(item.findings)] == ["body-not-captured"]


def test_undecodable_manifest_still_classifies_and_says_why():
    [item] = run(make_flow("PUT", f"{R}/v2/app/manifests/v1", 201, req_body=b"{oops",
                           req_headers={"Content-Type": OCI_MANIFEST})).calls
    assert item.endpoint_id == "end-7" and item.object.kind == "undecodable"
    assert own(item.findings) == [Finding.of("decode-invalid-json", line=1, column=2)]


def test_pushed_index_is_decoded_from_the_request_body():
    index = index_body("linux/amd64", "linux/arm64", attest=True)
    a = run(make_flow("PUT", f"{R}/v2/hj-public/test1/manifests/new", 201, req_body=index,
                      req_headers={"Content-Type": OCI_INDEX}, resp_headers={"Docker-Content-Digest": sha256(index)}))
    assert a.calls[0].object.kind == "index" and a.calls[0].digest_verified
    assert len(a.objects) == 1


def test_same_object_twice_is_one_object_seen_in_two_calls():
    a = run(*[make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_body=MANIFEST,
                        resp_headers={"Content-Type": OCI_MANIFEST}) for _ in range(2)])
    assert len(a.objects) == 1 and a.objects[0].calls == [0, 1]


def test_signed_schema1_digest_is_over_the_payload():
    signed, payload = signed_schema1()
    [item] = run(make_flow("GET", f"{R}/v2/app/manifests/{sha256(payload)}", 200, resp_body=signed,
                           resp_headers={"Content-Type": SCHEMA1_SIGNED})).calls
    assert item.digest_verified is True and item.object.kind == "schema1"


def test_token_realm_learned_from_a_challenge_classifies_the_token_fetch():
    a = run(make_flow("GET", f"{R}/v2/", 401,
                      resp_headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/issue",service="r"'}),
            make_flow("GET", "https://auth.test/issue", 200, resp_body=b'{"token": "t"}'))
    assert a.calls[1].endpoint_id == "token"


def test_failed_calls_are_not_checked():
    [item] = run(make_flow("GET", f"{R}/v2/app/manifests/sha256:{'0' * 64}", 404,
                           resp_body=b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')).calls
    assert item.digest_verified is None and item.object is None


def test_a_manifest_learns_its_platform_from_a_config_fetched_later():
    a = run(make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_body=MANIFEST,
                      resp_headers={"Content-Type": OCI_MANIFEST}),
            make_flow("GET", f"{R}/v2/app/blobs/{sha256(CONFIG)}", 200, resp_body=CONFIG))
    assert a.calls[0].platform is None  # not known when the manifest passed
    assert str(a.platform_of(a.calls[0])) == "linux/arm64"


def test_a_blob_redirected_to_storage_is_fetched_there_and_verified_against_the_digest_asked_for():
    blob = b"layer from the CDN"
    d = sha256(blob)
    a = run(make_flow("GET", f"{R}/v2/library/debian/blobs/{d}", 307,
                      resp_headers={"Location": "https://cdn.example.net/registry-v2/blobs/x/data?sig=1"}),
            make_flow("GET", "https://cdn.example.net/registry-v2/blobs/x/data?sig=1", 200, resp_body=blob))
    fetch = a.calls[1]
    assert fetch.endpoint_id == "blob-redirect" and fetch.classification.repository == "library/debian"
    assert fetch.digest_verified is True and fetch.checks[0].against == "url"


def test_a_redirected_blob_with_other_bytes_is_a_mismatch():
    d = sha256(b"expected")
    a = run(make_flow("GET", f"{R}/v2/app/blobs/{d}", 307, resp_headers={"Location": "/storage/x"}),
            make_flow("GET", f"{R}/storage/x", 200, resp_body=b"tampered"))
    assert a.calls[1].endpoint_id == "blob-redirect" and a.calls[1].digest_verified is False


def test_an_upload_whose_location_is_not_under_v2_is_its_session_all_the_same():
    """The spec's upload Location is opaque (<blob-push-location>): Google Artifact Registry answers the POST with
    /artifacts-uploads/namespaces/<project>/repositories/<repo>/uploads/<id>, and the client goes there."""
    gar, blob = "https://us-docker.pkg.dev", b"layer bytes"
    where = "/artifacts-uploads/namespaces/proj/repositories/repo/uploads/AHf3x9"
    a = run(make_flow("POST", f"{gar}/v2/proj/repo/app/blobs/uploads/", 202, resp_headers={"Location": where}),
            make_flow("PATCH", f"{gar}{where}", 202, req_body=blob, resp_headers={"Location": where + "?part=2"}),
            make_flow("PUT", f"{gar}{where}?part=2&digest={sha256(blob)}", 201))
    assert [i.endpoint_id for i in a.calls] == ["end-4a", "end-5", "end-6"]
    assert {(i.session, i.classification.repository) for i in a.calls} == {("AHf3x9", "proj/repo/app")}
    assert a.calls[2].digest_verified is True


def test_a_registry_at_an_ipv6_address_is_written_in_brackets_and_its_relative_redirect_followed():
    """RFC 3986 3.2.2: an IPv6 literal is bracketed in a URL (without, `/storage/x` read against it lost the host)."""
    from ocitrace.analyzers.calls import Call, Headers

    blob = b"layer"
    a = analyze([Call("GET", "http", "2001:db8::10", 5000, f"/v2/app/blobs/{sha256(blob)}", status=307,
                      response_headers=Headers([("Location", "/storage/x?sig=1")])),
                 Call("GET", "http", "2001:db8::10", 5000, "/storage/x", "sig=1", status=200, response_body=blob)])
    assert a.calls[0].call.url == f"http://[2001:db8::10]:5000/v2/app/blobs/{sha256(blob)}"
    assert a.calls[1].endpoint_id == "blob-redirect" and a.calls[1].digest_verified is True


def test_a_docker_hub_shaped_pull_is_classified_end_to_end():
    hub, auth, cdn = "https://registry-1.docker.io", "https://auth.docker.io", "https://production.cloudflare.docker.com"
    index = index_body("linux/amd64", "linux/arm64")
    layer = b"\x1f\x8b layer"
    a = run(
        make_flow("GET", f"{hub}/v2/", 401, resp_headers={
            "WWW-Authenticate": 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'}),
        make_flow("GET", f"{auth}/token?scope=repository%3Alibrary%2Falpine%3Apull&service=registry.docker.io", 200,
                  resp_body=b'{"token": "t"}'),
        make_flow("HEAD", f"{hub}/v2/library/alpine/manifests/latest", 200,
                  resp_headers={"Docker-Content-Digest": sha256(index)}),
        make_flow("GET", f"{hub}/v2/library/alpine/manifests/{sha256(index)}", 200, resp_body=index,
                  resp_headers={"Content-Type": OCI_INDEX, "Docker-Content-Digest": sha256(index)}),
        make_flow("GET", f"{hub}/v2/library/alpine/blobs/{sha256(layer)}", 307,
                  resp_headers={"Location": f"{cdn}/registry-v2/docker/registry/v2/blobs/sha256/ab/x/data?verify=1"}),
        make_flow("GET", f"{cdn}/registry-v2/docker/registry/v2/blobs/sha256/ab/x/data?verify=1", 200, resp_body=layer),
    )
    assert [c.endpoint_id for c in a.calls] == ["end-1", "token", "end-3", "end-3", "end-2", "blob-redirect"]
    assert [c.digest_verified for c in a.calls] == [None, None, None, True, None, True]


def test_a_registry_error_body_is_read_for_its_code_and_message():
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9"}}]}'
    [item] = run(make_flow("GET", f"{R}/v2/app/manifests/v9", 404, resp_body=body,
                           resp_headers={"Content-Type": "application/json"})).calls
    assert [(e.code, e.message) for e in item.registry_errors] == [("MANIFEST_UNKNOWN", "manifest unknown")]
    assert run(make_flow("GET", f"{R}/v2/app/manifests/v9", 404, resp_body=b"<html>")).calls[0].registry_errors == ()


@pytest.mark.parametrize("refusal", [416, 401, 500])
def test_a_chunk_the_registry_refused_and_that_was_sent_again_is_hashed_once(refusal):
    """A chunk refused (out of order, a token expired, distribution's 500 for a wrong Content-Type) leaves the session
    as it was: the blob is the chunks the registry took."""
    blob = b"x" * 1000
    up = f"{R}/v2/app/blobs/uploads/u-3"
    a = run(make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, resp_headers={"Location": f"{up}?_state=s"}),
            make_flow("PATCH", f"{up}?_state=s", refusal, req_body=blob[:600]),
            make_flow("PATCH", f"{up}?_state=s", 202, req_body=blob[:600]),
            make_flow("PATCH", f"{up}?_state=t", 202, req_body=blob[600:]),
            make_flow("PUT", f"{up}?_state=u&digest={sha256(blob)}", 201))
    assert analysis_own(a.warnings) == [] and (a.calls[-1].digest_verified, a.calls[-1].body_size) == (True, 1000)


def test_a_chunk_the_live_proxy_hashed_and_the_registry_refused_is_taken_out_of_the_session_s_hash():
    """Live, the tap hashes a chunk as it passes: refused after (a token expired mid-upload), the session's hash goes
    back to what it was before that chunk, and the blob is verified."""
    from ocitrace.analyzers.analysis import Analyzer
    from ocitrace.analyzers.calls import BodyTap

    blob, up = b"z" * 1000, f"{R}/v2/app/blobs/uploads/u-5"
    analyzer = Analyzer(retain=False)
    calls = [call_from_state(f.get_state()) for f in (
        make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, resp_headers={"Location": up}),
        make_flow("PATCH", up, 401, req_body=b""), make_flow("PATCH", up, 202, req_body=b""),
        make_flow("PUT", f"{up}?digest={sha256(blob)}", 201))]
    for call, fed in zip(calls, (b"", blob[:400], blob, b""), strict=True):
        classification = analyzer.classify(call)
        hasher = analyzer.session_hash(classification)
        if hasher is not None:
            hasher.update(fed)  # what the tap saw pass
            call.request_tap = BodyTap(None, len(fed))
        session = analyzer.follow_sessions(call, classification)
    assert session == BodyTap(sha256(blob), len(blob))  # what the closing call's session hashed to


def test_a_session_first_seen_part_way_verifies_nothing_and_says_no_mismatch():
    blob = b"y" * 100
    up = f"{R}/v2/app/blobs/uploads/u-4"
    a = run(make_flow("PATCH", f"{up}?_state=t", 202, req_body=blob[50:]),
            make_flow("PUT", f"{up}?_state=u&digest={sha256(blob)}", 201))
    assert analysis_own(a.warnings) == [] and a.calls[-1].digest_verified is None


def test_a_cancelled_session_is_forgotten():
    from ocitrace.analyzers.analysis import Analyzer

    up = f"{R}/v2/app/blobs/uploads/u-5"
    analyzer = Analyzer()
    for flow in (make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, resp_headers={"Location": up}),
                 make_flow("PATCH", up, 202, req_body=b"z"), make_flow("DELETE", up, 204)):
        analyzer.add(call_from_state(flow.get_state()))
    assert len(analyzer.sessions) == 0


def test_a_docker_hub_shaped_pull_is_one_login_then_one_pull_with_its_redirected_blob():
    hub, auth, cdn = "https://registry-1.docker.io", "https://auth.docker.io", "https://production.cloudflare.docker.com"
    ua = {"User-Agent": "containerd/1.7"}
    index = index_body("linux/amd64", "linux/arm64")
    layer = b"\x1f\x8b layer"
    challenge = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'
    a = run(
        make_flow("GET", f"{hub}/v2/", 401, req_headers=ua, resp_headers={"WWW-Authenticate": challenge}),
        make_flow("GET", f"{auth}/token?scope=repository%3Alibrary%2Falpine%3Apull&service=registry.docker.io", 200,
                  req_headers=ua, resp_body=b'{"token": "t"}'),
        make_flow("GET", f"{hub}/v2/library/alpine/manifests/{sha256(index)}", 200, resp_body=index, req_headers=ua,
                  resp_headers={"Content-Type": OCI_INDEX, "Docker-Content-Digest": sha256(index)}),
        make_flow("GET", f"{hub}/v2/library/alpine/blobs/{sha256(layer)}", 307, req_headers=ua,
                  resp_headers={"Location": f"{cdn}/registry-v2/blobs/sha256/ab/x/data?verify=1"}),
        make_flow("GET", f"{cdn}/registry-v2/blobs/sha256/ab/x/data?verify=1", 200, resp_body=layer, req_headers=ua),
    )
    assert [(op.kind, [i + 1 for i in op.calls]) for op in a.operations] == [("auth", [1, 2]), ("pull", [3, 4, 5])]


def test_a_fault_of_the_analysis_is_told_on_its_call_never_a_lost_call(monkeypatch):
    from ocitrace.analyzers import analysis

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(analysis, "decode_manifest", broken)
    a = run(make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_body=MANIFEST,
                      resp_headers={"Content-Type": OCI_MANIFEST}), make_flow("GET", f"{R}/v2/", 200))
    assert len(a.calls) == 2 and [f.code for f in own(a.calls[0].findings)] == ["analysis-failed"]
    assert a.calls[0].endpoint_id == "end-3" and a.calls[0].operation is not None


def test_a_manifest_past_the_decode_limit_is_checked_not_decoded():
    big = b'{"schemaVersion": 2, "manifests": [' + b'{"a": 1},' * 1_000_000 + b'{}]}'
    [item] = run(make_flow("GET", f"{R}/v2/app/manifests/{sha256(big)}", 200, resp_body=big,
                           resp_headers={"Content-Type": OCI_INDEX})).calls
    assert item.object is None and item.digest_verified is True
    assert [f.code for f in own(item.findings)] == ["body-too-large"]


@pytest.mark.parametrize("shape", ["manifest PUT", "blob in one POST"])
def test_a_wrong_digest_the_registry_refuses_is_the_client_s_mismatch_all_the_same(shape):
    """A conforming registry answers 400 DIGEST_INVALID, never success: the client's wrong digest is told only if
    what it sent is checked whatever the answer. Against the digest it named only: no answer to check it by."""
    body, named = MANIFEST, sha256(b"not these bytes")
    refused = {"resp_body": b'{"errors": [{"code": "DIGEST_INVALID", "message": "provided digest did not match"}]}'}
    flow = (make_flow("PUT", f"{R}/v2/app/manifests/{named}", 400, req_body=body,
                      req_headers={"Content-Type": OCI_MANIFEST}, **refused) if shape == "manifest PUT" else
            make_flow("POST", f"{R}/v2/app/blobs/uploads/?digest={named}", 400, req_body=body, **refused))
    [item] = run(flow).calls
    assert [(c.against, c.expected, c.ok) for c in item.checks] == [("url", named, False)]
    assert "sent-digest-mismatch" in [f.code for f in item.findings]

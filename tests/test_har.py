"""HAR both ways: `ocitrace export --har` writes what DevTools, Charles and Fiddler import, and `ocitrace
analyze` reads the HAR they write."""

import base64
import json
from pathlib import Path

import pytest
from conftest import ARTICLE_INDEX, ARTICLE_MANIFEST, make_flow, sha256, write_flows
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import read_captures
from ocitrace.analyzers.manifests import OCI_INDEX, OCI_MANIFEST

from ocitrace.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEMO = sorted(ROOT.glob("captures/demo/*/flows.mitm"))
SECRET = "s3cr3t-Pa55w0rd-71c"
# HAR 1.2's required fields (http://www.softwareishard.com/blog/har-12-spec/)
REQUIRED = {
    "entry": {"startedDateTime", "time", "request", "response", "cache", "timings"},
    "request": {"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"},
    "response": {"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL",
                 "headersSize", "bodySize"},
    "content": {"size", "mimeType"}, "timings": {"send", "wait", "receive"},
}


def shape(analysis):
    return [(i.call.method, i.call.path, i.call.status, i.endpoint_id, i.digest_verified, i.step)
            for i in analysis.calls]


@pytest.mark.parametrize("flows", DEMO, ids=lambda p: p.parent.name)
def test_an_exported_har_is_valid_and_reads_back_as_the_same_session(flows, tmp_path):
    out = tmp_path / "session.har"
    assert main(["export", "--har", str(out), str(flows)]) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["log"]["version"] == "1.2" and document["log"]["creator"]["name"] == "ocitrace"
    for entry in document["log"]["entries"]:
        assert REQUIRED["entry"] <= entry.keys() and REQUIRED["request"] <= entry["request"].keys()
        assert REQUIRED["response"] <= entry["response"].keys() and REQUIRED["timings"] <= entry["timings"].keys()
        assert REQUIRED["content"] <= entry["response"]["content"].keys()
    assert shape(analyze(read_captures([out]).calls)) == shape(analyze(read_captures([flows]).calls))


def test_an_exported_har_holds_no_credential(tmp_path):
    basic = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    capture = write_flows(tmp_path / "c.mitm", [
        make_flow("GET", "https://registry.test/v2/", 200, req_headers={"Authorization": basic}),
        make_flow("GET", f"https://auth.test/token?scope=repository:app:pull&api_key={SECRET}", 200,
                  req_headers={"Cookie": f"session={SECRET}"},
                  resp_body=json.dumps({"token": SECRET, "expires_in": 300}).encode()),
        make_flow("GET", "https://registry.test/v2/app/manifests/v1", 200,
                  req_headers={"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET})])
    out = tmp_path / "shared.har"
    assert main(["export", "--har", str(out), str(capture)]) == 0
    assert SECRET not in out.read_text() and "alice" in out.read_text()


def har(entries, creator):
    return {"log": {"version": "1.2", "creator": {"name": creator, "version": "1"}, "entries": entries}}


def entry(method, url, status, *, started="2024-10-18T06:59:31.123Z", body=None, base64_body=False,
          content_type="", request=None, timings=True, response_headers=(), size=None):
    content = {"size": len(body or b"") if size is None else size, "mimeType": content_type}
    if body is not None:
        content.update({"text": base64.b64encode(body).decode(), "encoding": "base64"} if base64_body
                       else {"text": body.decode()})
    e = {"startedDateTime": started, "time": 12.5,
         "request": {"method": method, "url": url, "httpVersion": "HTTP/2", "cookies": [], "queryString": [],
                     "headers": [{"name": "User-Agent", "value": "docker/28.2.2"}], "headersSize": -1,
                     "bodySize": 0, **(request or {})},
         "response": {"status": status, "statusText": "", "httpVersion": "HTTP/2", "cookies": [],
                      "headers": [{"name": "Content-Type", "value": content_type}, *response_headers],
                      "content": content, "redirectURL": "", "headersSize": -1, "bodySize": len(body or b"")},
         "cache": {}}
    if timings:
        e["timings"] = {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": 12, "receive": 0.5}
    return e


R = "https://registry.test/v2/app"
BLOB = bytes(range(256)) * 4  # binary: HAR tools keep it as base64
TOOLS = {
    # Chrome "Save all as HAR with content": binary bodies base64, HTTP/2, -1 timings, no serverIPAddress
    "Chrome": [entry("GET", f"{R}/manifests/v1", 200, body=ARTICLE_INDEX, content_type=OCI_INDEX),
               entry("GET", f"{R}/blobs/{sha256(BLOB)}", 200, body=BLOB, base64_body=True,
                     content_type="application/octet-stream")],
    # Firefox: a local time with its offset, and no timings at all
    "Firefox": [entry("GET", f"{R}/manifests/v1", 200, body=ARTICLE_INDEX, content_type=OCI_INDEX,
                      started="2024-10-18T14:59:31.123+08:00", timings=False),
                entry("GET", f"{R}/blobs/{sha256(BLOB)}", 200, body=BLOB, base64_body=True,
                      content_type="application/octet-stream", timings=False)],
    # Charles: a request body in base64 (postData.encoding), the upload's digest in its URL
    "Charles Proxy": [entry("PUT", f"{R}/manifests/{sha256(ARTICLE_MANIFEST)}", 201, request={
        "bodySize": len(ARTICLE_MANIFEST), "postData": {"mimeType": OCI_MANIFEST, "encoding": "base64",
                                                        "text": base64.b64encode(ARTICLE_MANIFEST).decode()}},
        response_headers=[{"name": "Location", "value": "/v2/app/manifests/x"}])],
    # Fiddler: bodies as text, no timings, a missing response body for a streamed blob (size only)
    "Fiddler": [entry("GET", f"{R}/manifests/v1", 200, body=ARTICLE_INDEX, content_type=OCI_INDEX, timings=False),
                entry("GET", f"{R}/blobs/{sha256(BLOB)}", 200, content_type="application/octet-stream",
                      timings=False, size=len(BLOB))],
}


@pytest.mark.parametrize("tool", TOOLS)
def test_analyze_reads_the_har_each_tool_writes(tool, tmp_path):
    path = tmp_path / f"{tool}.har"
    path.write_text(json.dumps(har(TOOLS[tool], tool)))
    analysis = analyze(read_captures([path]).calls)
    assert [i.endpoint_id for i in analysis.calls] == [
        "end-7" if e["request"]["method"] == "PUT" else ("end-3" if "/manifests/" in e["request"]["url"] else "end-2")
        for e in TOOLS[tool]]
    verified = [i.digest_verified for i in analysis.calls]
    # a body the tool kept is checked against its digest; Fiddler's streamed blob kept none, and says so
    assert verified == ([None, None] if tool == "Fiddler" else [None, True] if len(verified) == 2 else [True])
    if tool == "Fiddler":
        assert "body-not-captured" in [f.code for f in analysis.calls[1].findings]
    assert all(i.call.timestamp is not None for i in analysis.calls)
    assert analysis.calls[0].call.timestamp == 1729234771.123  # 06:59:31.123 UTC, however the tool wrote it


def test_a_gzip_encoded_answer_is_exported_decoded(tmp_path):
    import gzip

    flow = make_flow("GET", f"https://registry.test/v2/app/manifests/{sha256(ARTICLE_MANIFEST)}", 200,
                     resp_headers={"Content-Type": OCI_MANIFEST, "Content-Encoding": "gzip"})
    flow.response.raw_content = gzip.compress(ARTICLE_MANIFEST)
    capture = write_flows(tmp_path / "c.mitm", [flow])
    assert main(["export", "--har", str(tmp_path / "out.har"), str(capture)]) == 0
    [entry] = json.loads((tmp_path / "out.har").read_text())["log"]["entries"]
    assert entry["response"]["content"]["text"].encode() == ARTICLE_MANIFEST
    assert "content-encoding" not in {h["name"].lower() for h in entry["response"]["headers"]}
    [item] = analyze(read_captures([tmp_path / "out.har"]).calls).calls
    assert item.digest_verified is True


@pytest.mark.parametrize("writer", ["mitmproxy", "raw gzip kept"])
def test_a_gzip_encoded_answer_in_a_har_is_read_as_har_keeps_it(tmp_path, writer):
    """HAR 1.2's text is "HTTP decoded text": mitmproxy's own HAR export (and DevTools) write the body decoded but keep
    its Content-Encoding header. A tool that keeps the gzip bytes (base64) is read too."""
    import gzip

    from mitmproxy.addons.savehar import SaveHar

    flow = make_flow("GET", f"https://registry.test/v2/app/manifests/{sha256(ARTICLE_MANIFEST)}", 200,
                     resp_headers={"Content-Type": OCI_MANIFEST, "Content-Encoding": "gzip"})
    flow.response.raw_content = gzip.compress(ARTICLE_MANIFEST)
    har = SaveHar().make_har([flow])
    content = har["log"]["entries"][0]["response"]["content"]
    if writer == "mitmproxy":
        assert content["text"].encode() == ARTICLE_MANIFEST  # decoded, the header kept
    else:
        content.update(text=base64.b64encode(flow.response.raw_content).decode(), encoding="base64")
    (tmp_path / "c.har").write_text(json.dumps(har))
    [item] = analyze(read_captures([tmp_path / "c.har"]).calls).calls
    assert item.digest_verified is True and item.object is not None
    assert "body-encoded" not in [f.code for f in item.findings]

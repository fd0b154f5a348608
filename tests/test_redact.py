"""Redaction, held to secrets where real registries put them (found by an adversarial review): every file written
is searched, byte for byte, for the secret."""

import base64
import gzip
import json

import pytest
from conftest import make_flow, write_flows

from ocitrace.cli import main

SECRET = "s3cr3t-7Yq2-Zp9"
TOKEN_URL = "https://auth.test/token?service=registry.test&scope=repository:app:pull"


def gzipped_token():
    flow = make_flow("GET", TOKEN_URL, 200, resp_headers={"Content-Type": "application/json",
                                                          "Content-Encoding": "gzip"})
    flow.response.raw_content = gzip.compress(json.dumps({"token": SECRET, "expires_in": 60}).encode())
    return flow


LEAKS = {
    "a token nested in the answer": lambda: make_flow("GET", TOKEN_URL, 200, resp_body=json.dumps(
        {"data": {"token": SECRET, "refresh_token": SECRET}}).encode()),
    "ECR's GetAuthorizationToken": lambda: make_flow("POST", "https://api.ecr.test/", 200, resp_body=json.dumps(
        {"authorizationData": [{"authorizationToken": base64.b64encode(f"AWS:{SECRET}".encode()).decode()}]}
    ).encode()),
    "a token answer with a leading newline, keys in another case": lambda: make_flow(
        "GET", TOKEN_URL, 200, resp_body=b"\n" + json.dumps({"Token": SECRET}).encode()),
    "a gzip-encoded token answer": gzipped_token,
    "a form body without its Content-Type": lambda: make_flow(
        "POST", "https://auth.test/token", 200, req_body=f"grant_type=password&username=u&password={SECRET}".encode()),
    "a Basic credential without a colon": lambda: make_flow("GET", "https://registry.test/v2/", 200, req_headers={
        "Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()}),
    "a Link header with a signed query": lambda: make_flow(
        "GET", "https://registry.test/v2/app/tags/list", 200, resp_body=b'{"name":"app","tags":[]}',
        resp_headers={"Link": f'</v2/app/tags/list?last=a&X-Amz-Signature={SECRET}>; rel="next"'}),
}


@pytest.mark.parametrize("case", LEAKS)
def test_no_output_holds_the_secret(case, tmp_path):
    capture = write_flows(tmp_path / "c.mitm", [LEAKS[case]()])
    outputs = {"redacted.mitm": ["redact", str(capture), str(tmp_path / "redacted.mitm")],
               "export.har": ["export", "--har", str(tmp_path / "export.har"), str(capture)],
               "report.json": ["analyze", "--format", "json", "-o", str(tmp_path / "report.json"), str(capture)]}
    for name, argv in outputs.items():
        assert main(argv) == 0, name
        data = (tmp_path / name).read_bytes()
        assert SECRET.encode() not in data and base64.b64encode(SECRET.encode()) not in data, name
        assert base64.b64encode(f"AWS:{SECRET}".encode()) not in data, name
    # and a HAR that keeps the body in base64 (Charles) is redacted as well
    har = json.loads((tmp_path / "export.har").read_text())
    for entry in har["log"]["entries"]:
        for body in (entry["response"]["content"], entry["request"].get("postData") or {}):
            if "text" in body and body.get("encoding") != "base64":
                body.update(text=base64.b64encode(body["text"].encode()).decode(), encoding="base64")
    raw = tmp_path / "raw.har"
    raw.write_text(json.dumps(har).replace("<redacted>", SECRET))  # as if it had never been redacted
    assert main(["redact", str(raw), str(tmp_path / "again.har")]) == 0
    assert SECRET.encode() not in (tmp_path / "again.har").read_bytes()


@pytest.mark.parametrize("command", [["redact", "{c}", "{c}"], ["export", "--har", "{c}", "{c}"]])
def test_writing_over_the_capture_read_is_refused(command, tmp_path, capsys):
    capture = write_flows(tmp_path / "c.mitm", [make_flow("GET", "https://registry.test/v2/", 200)])
    before = capture.read_bytes()
    assert main([part.format(c=capture) for part in command]) == 2
    assert capture.read_bytes() == before and "is also the capture read" in capsys.readouterr().err


def test_a_time_past_year_9999_is_no_crash_of_the_export(tmp_path):
    capture = write_flows(tmp_path / "c.mitm", [make_flow("GET", "https://registry.test/v2/", 200, timestamp=1.7e12)])
    assert main(["export", "--har", str(tmp_path / "out.har"), str(capture)]) == 0


@pytest.mark.parametrize("field", ["headers", "cookies", "queryString"])
def test_a_har_with_a_field_of_the_wrong_type_is_redacted_without_a_traceback(field, tmp_path):
    entry = {"startedDateTime": "2024-10-18T06:59:31Z", "time": 1, "request": {
        "method": "GET", "url": "https://registry.test/v2/", "httpVersion": "HTTP/1.1", "headers": [], "cookies": [],
        "queryString": [], "headersSize": -1, "bodySize": 0, field: 5},
        "response": {"status": 200, "statusText": "", "httpVersion": "HTTP/1.1", "headers": [], "cookies": [],
                     "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1, "bodySize": 0},
        "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}
    har = tmp_path / "odd.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "x", "version": "1"},
                                       "entries": [entry]}}))
    assert main(["redact", str(har), str(tmp_path / "out.har")]) == 0

"""Reading captures: mitmproxy flow files and HAR, by content, several as one session, damage reported."""

import json

import pytest
from conftest import make_flow
from mitmproxy.addons.savehar import SaveHar
from ocitrace.analyzers.captures import CaptureError, capture_format, read_capture, read_captures

D = "sha256:" + "a" * 64


def test_flow_file_calls_keep_method_host_path_query_status_and_bodies(flow_file):
    path = flow_file(make_flow("PUT", f"https://registry.test/v2/app/blobs/uploads/u1?_state=x&digest={D}", 201,
                               req_body=b"layer", resp_headers={"Docker-Content-Digest": D}))
    [call] = read_capture(path)
    assert (call.method, call.host, call.path, call.query, call.status) == (
        "PUT", "registry.test", "/v2/app/blobs/uploads/u1", f"_state=x&digest={D}", 201)
    assert call.request_body == b"layer" and call.response_headers.get("docker-content-digest") == D


def test_streamed_bodies_read_as_not_captured(flow_file):
    flow = make_flow("GET", f"https://registry.test/v2/app/blobs/{D}", 200)
    flow.response.raw_content = None
    [call] = read_capture(flow_file(flow))
    assert call.response_body is None


def test_har_written_by_mitmproxy_is_read(tmp_path):
    flows = [make_flow("GET", "https://registry.test/v2/", 200),
             make_flow("GET", "https://registry.test/v2/app/manifests/v1", 200, resp_body=b'{"schemaVersion":2}',
                       resp_headers={"content-type": "application/vnd.oci.image.manifest.v1+json"})]
    har = tmp_path / "session.har"
    har.write_text(json.dumps(SaveHar().make_har(flows)))
    calls = list(read_capture(har))
    assert [(c.method, c.path, c.status) for c in calls] == [("GET", "/v2/", 200), ("GET", "/v2/app/manifests/v1", 200)]
    assert calls[1].response_body == b'{"schemaVersion":2}'


def test_har_with_base64_body_and_a_failed_entry(tmp_path):
    har = {"log": {"entries": [
        {"startedDateTime": "2024-10-18T06:59:31.000Z",
         "request": {"method": "GET", "url": f"https://hub.example/v2/app/blobs/{D}", "headers": []},
         "response": {"status": 200, "headers": [], "content": {"size": 3, "text": "AAEC", "encoding": "base64"}}},
        {"startedDateTime": "2024-10-18T06:59:32.000Z",
         "request": {"method": "GET", "url": "https://hub.example/v2/", "headers": []},
         "response": {"status": 0, "headers": [], "content": {"size": 0}, "_error": "connection refused"}},
    ]}}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(har))
    blob, failed = read_capture(path)
    assert blob.response_body == b"\x00\x01\x02"
    assert failed.status is None and failed.error == "connection refused"


def test_format_is_told_by_content_not_extension(tmp_path, flow_file):
    har_named_mitm = tmp_path / "really-har.mitm"
    har_named_mitm.write_text('\ufeff  {"log": {"entries": []}}', encoding="utf-8")
    flows_named_har = flow_file(make_flow("GET", "https://r.test/v2/", 200), name="really-flows.har")
    assert capture_format(har_named_mitm) == "har"
    assert capture_format(flows_named_har) == "flows"


def test_several_captures_are_one_session_in_time_order(tmp_path, flow_file):
    late = flow_file(make_flow("GET", "https://r.test/v2/late/tags/list", 200, timestamp=2000.0), name="a.mitm")
    early = flow_file(make_flow("GET", "https://r.test/v2/early/tags/list", 200, timestamp=1000.0),
                      make_flow("GET", "https://r.test/v2/middle/tags/list", 200, timestamp=1500.0), name="b.mitm")
    calls = read_captures([late, early]).calls
    assert [c.path.split("/")[2] for c in calls] == ["early", "middle", "late"]


def test_truncated_flow_file_names_how_far_it_got(flow_file):
    path = flow_file(*[make_flow("GET", f"https://r.test/v2/app{i}/tags/list", 200) for i in range(3)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    result = read_captures([path])
    [error] = result.errors
    assert error.path == str(path) and error.finding.code == "capture-truncated"
    assert error.finding.values["flows"] == 2 and error.finding.values["size"] == len(data) - 40
    assert len(result.calls) == 2


def test_corrupt_flow_file_keeps_what_came_before(flow_file):
    path = flow_file(make_flow("GET", "https://r.test/v2/", 200))
    path.write_bytes(path.read_bytes() + b"12x:garbage")
    result = read_captures([path])
    [error] = result.errors
    assert len(result.calls) == 1 and error.finding.code == "capture-damaged" and error.finding.values["flows"] == 1


@pytest.mark.parametrize("content,code", [
    (b"\x89PNG\r\n", "capture-unknown-format"),
    (b'{"log": ', "capture-invalid-json"),
    (b'{"entries": []}', "capture-not-har"),
    (b'{"log": {"entries": 5}}', "capture-not-har"),
    (b'{"log": {"entries": null}}', "capture-not-har"),
    (b'{"log": {"entries": [{"request": 3}]}}', "capture-bad-entry"),
    (b'{"method": "GET"}\n[1]\n', "capture-bad-entry"),
])
def test_unreadable_captures_say_what_they_are_not(tmp_path, content, code):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as caught:
        list(read_capture(path))
    assert caught.value.finding.code == code


def test_empty_capture_has_no_calls_and_says_so(tmp_path):
    path = tmp_path / "empty.mitm"
    path.write_bytes(b"")
    result = read_captures([path])
    assert result.calls == [] and result.errors == []
    assert [(p, f.code) for p, f in result.notices] == [(str(path), "capture-empty")]


def test_a_capture_given_twice_is_read_once_and_says_so(flow_file):
    path = flow_file(make_flow("GET", "https://r.test/v2/", 200))
    result = read_captures([path, path.parent / ".." / path.parent.name / path.name])
    assert len(result.calls) == 1 and [f.code for _, f in result.notices] == ["capture-given-twice"]


def test_non_http_flows_are_skipped(flow_file):
    from mitmproxy.test import tflow
    path = flow_file(tflow.ttcpflow(), make_flow("GET", "https://r.test/v2/", 200))
    assert [c.path for c in read_capture(path)] == ["/v2/"]


def test_one_capture_keeps_its_own_order_even_when_calls_overlap(flow_file):
    # Concurrent calls complete (and are written) in another order than they started.
    path = flow_file(make_flow("GET", "https://r.test/v2/slow/tags/list", 200, timestamp=1000.0),
                     make_flow("GET", "https://r.test/v2/fast/tags/list", 200, timestamp=900.0))
    assert [c.path.split("/")[2] for c in read_captures([path]).calls] == ["slow", "fast"]


def test_a_call_remapped_by_plain_map_remote_shows_the_host_the_client_asked_for(flow_file):
    flow = make_flow("GET", "http://127.0.0.1:5055/v2/", 200)
    flow.client_conn.sni, flow.client_conn.tls = "registry.test", True
    [call] = read_capture(flow_file(flow))
    assert (call.host, call.scheme, call.upstream) == ("registry.test", "https", "http://127.0.0.1:5055")


def test_a_har_body_saved_empty_but_sized_was_not_recorded(tmp_path):
    flows = [make_flow("GET", f"https://registry.test/v2/app/blobs/{D}", 200, resp_body=b"",
                       resp_headers={"Content-Length": "1048576"})]
    har = tmp_path / "streamed.har"
    har.write_text(json.dumps(SaveHar().make_har(flows)))
    [call] = read_capture(har)
    assert call.response_body is None

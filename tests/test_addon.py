"""The live addons, driven by mitmproxy's own test helpers: streaming taps, events, report, faults."""

import json

import pytest
from conftest import index_body, make_flow, sha256
from mitmproxy import exceptions
from mitmproxy.test import taddons

from addons.registry_trace import EVENTS_FILE, FLOWS_FILE, REPORT_FILE, RegistryTrace, Tap
from addons.upstream_map import UpstreamMap, parse_map_spec
from analyzers.analysis import analyze
from analyzers.captures import call_from_state, read_captures
from analyzers.manifests import OCI_INDEX
from analyzers.report import render_markdown

R = "https://registry.test"


@pytest.fixture
def trace(tmp_path):
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, ocitrace_out=str(tmp_path / "out"))
        yield addon
    addon.close()


def events(addon):
    return [json.loads(line) for line in (addon.out / EVENTS_FILE).read_text().splitlines()]


def stream(tap, data: bytes, chunk: int = 7, finish: bool = True) -> bytes:
    out = b"".join(tap(data[i:i + chunk]) for i in range(0, len(data), chunk))
    if finish:
        tap(b"")
    return out


def test_blob_download_streams_through_untouched_and_is_verified(trace):
    blob = b"layer bytes " * 10_000
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(blob)}", 200,
                     resp_headers={"Docker-Content-Digest": sha256(blob)})
    flow.response.content = None
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert isinstance(flow.response.stream, Tap)
    assert stream(flow.response.stream, blob) == blob
    trace.response(flow)
    [event] = events(trace)
    assert event["endpoint"] == "end-2" and event["digest_verified"] is True and event["response_bytes"] == len(blob)
    assert flow.response.raw_content is None  # a large blob is never kept


def test_manifests_are_kept_whole_for_decoding(trace):
    index = index_body("linux/amd64", "linux/arm64")
    flow = make_flow("PUT", f"{R}/v2/hj-public/test1/manifests/new", 201, req_body=index,
                     req_headers={"Content-Type": OCI_INDEX}, resp_headers={"Docker-Content-Digest": sha256(index)})
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert not flow.request.stream and not flow.response.stream
    trace.response(flow)
    [event] = events(trace)
    assert event["digest_verified"] is True and "index: 2 platforms" in event["meaning"]


def test_chunked_upload_is_hashed_across_the_session(trace):
    blob = b"z" * 100_000
    d = sha256(blob)
    up = f"{R}/v2/app/blobs/uploads/u-7"
    parts = [make_flow("PATCH", f"{up}?_state=a", 202), make_flow("PATCH", f"{up}?_state=b", 202),
             make_flow("PUT", f"{up}?_state=c&digest={d}", 201, resp_headers={"Docker-Content-Digest": d})]
    for flow, body in zip(parts, (blob[:60_000], blob[60_000:], b""), strict=True):
        flow.request.content = None
        trace.requestheaders(flow)
        assert stream(flow.request.stream, body) == body
        trace.responseheaders(flow)
        trace.response(flow)
    put = events(trace)[-1]
    assert put["endpoint"] == "end-6" and put["body_digest"] == d and put["digest_verified"] is True


def test_small_streamed_bodies_are_kept(trace):
    config = b'{"architecture": "arm64", "os": "linux"}'
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(config)}", 200)
    flow.response.content = None
    trace.responseheaders(flow)
    stream(flow.response.stream, config)
    trace.response(flow)
    assert flow.response.raw_content == config


def test_registry_down_is_recorded_with_the_error(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", None, error="Connection refused")
    trace.requestheaders(flow)
    trace.error(flow)
    [event] = events(trace)
    assert event["status"] is None and event["error"] == "Connection refused" and event["endpoint"] == "end-3"


def test_client_abort_mid_upload_is_recorded_with_the_bytes_seen(trace):
    flow = make_flow("PATCH", f"{R}/v2/app/blobs/uploads/u-9", None, error="client disconnected")
    flow.request.content = None
    trace.requestheaders(flow)
    stream(flow.request.stream, b"q" * 5000, finish=False)
    trace.error(flow)
    [event] = events(trace)
    assert "aborted after 5000 bytes" in event["notes"] and event["request_bytes"] == 5000


def test_flow_file_and_report_at_shutdown_match_an_offline_analysis(trace):
    index = index_body("linux/amd64")
    for flow in (make_flow("GET", f"{R}/v2/", 200),
                 make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_body=index,
                           resp_headers={"Content-Type": OCI_INDEX})):
        trace.requestheaders(flow)
        trace.responseheaders(flow)
        trace.response(flow)
    out = trace.out
    trace.done()
    captures = read_captures([out / FLOWS_FILE])
    offline = render_markdown(analyze(captures.calls), [str(out / FLOWS_FILE)])
    assert (out / REPORT_FILE).read_text() == offline


def test_an_unwritable_output_folder_fails_at_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cannot write to"):
            tctx.configure(addon, ocitrace_out=str(blocker / "out"))


def test_no_credential_reaches_the_events(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", 401, req_headers={"Authorization": "Bearer s3cr3t-t0ken"})
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    trace.response(flow)
    assert "s3cr3t-t0ken" not in (trace.out / EVENTS_FILE).read_text()


def test_upstream_map_picks_the_upstream_before_the_body_and_keeps_the_host():
    addon = UpstreamMap()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, ocitrace_map=["registry.test=http://127.0.0.1:5999"])
        flow = make_flow("PATCH", "https://registry.test/v2/app/blobs/uploads/u", 202)
        addon.requestheaders(flow)
        assert (flow.request.scheme, flow.request.host, flow.request.port) == ("http", "127.0.0.1", 5999)
        assert flow.request.host_header == "registry.test"
        assert flow.metadata["ocitrace"]["client_host"] == "registry.test"
        call = call_from_state(flow.get_state())
        assert call.url == "https://registry.test/v2/app/blobs/uploads/u"
        assert call.upstream == "http://127.0.0.1:5999"
        other = make_flow("GET", "https://elsewhere.test/v2/", 200)
        addon.requestheaders(other)
        assert other.request.host == "elsewhere.test"


@pytest.mark.parametrize("spec", ["registry.test", "=http://x", "registry.test=ftp://x", "registry.test=http://"])
def test_bad_map_specs_are_refused_with_a_reason(spec):
    with pytest.raises(ValueError):
        parse_map_spec(spec)
    addon = UpstreamMap()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="ocitrace_map"):
            tctx.configure(addon, ocitrace_map=[spec])


def test_the_addon_loads_as_a_mitmproxy_script(tmp_path):
    from pathlib import Path

    import addons
    script = Path(addons.__file__).with_name("registry_trace.py")
    with taddons.context() as tctx:
        loaded = tctx.script(str(script))
        assert {type(a).__name__ for a in loaded.addons} == {"UpstreamMap", "RegistryTrace"}


def test_an_oversized_manifest_answer_streams_instead_of_being_held(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_headers={"Content-Length": str(64 << 20)})
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert isinstance(flow.response.stream, Tap)


def test_a_blob_larger_than_a_hashing_batch_is_hashed_in_order(trace):
    from addons.registry_trace import BATCH
    blob = bytes(range(256)) * ((2 * BATCH + 12345) // 256)
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(blob)}", 200)
    flow.response.content = None
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert stream(flow.response.stream, blob, chunk=65535) == blob
    trace.response(flow)
    [event] = events(trace)
    assert event["body_digest"] == sha256(blob) and event["digest_verified"] is True

"""The live addons, driven by mitmproxy's own test helpers: streaming taps, events, report, faults."""

import asyncio
import json
import logging
import os
import shutil
from collections import deque
from io import BytesIO
from pathlib import Path

import pytest
from conftest import ARTICLE_MANIFEST, english_in, index_body, make_flow, sha256
from mitmproxy import exceptions, io
from mitmproxy.proxy import server
from mitmproxy.test import taddons
from ocitrace.addons.reads import READ_AT_ONCE, Reader, read_more
from ocitrace.addons.recorder import Recorder, records
from ocitrace.addons.recording import (
    DRAIN,
    EARLIER,
    EVENTS_FILE,
    FLOWS_FILE,
    MARSHAL,
    PICKLE,
    RECORD,
    REPORT_FILE,
    encoded,
)
from ocitrace.addons.registry_trace import RECORD_AFTER, RegistryTrace
from ocitrace.addons.tap import BATCH, IN_FLIGHT, Tap
from ocitrace.addons.upstream_map import UpstreamMap, parse_map_spec
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.calls import BodyTap
from ocitrace.analyzers.captures import call_from_state, read_captures
from ocitrace.analyzers.digests import Hasher
from ocitrace.analyzers.manifests import DOCKER_CONFIG, OCI_INDEX, OCI_MANIFEST
from ocitrace.analyzers.report import render_jsonl, render_markdown

R = "https://registry.test"


def start(addon, tctx, out, **options):
    tctx.configure(addon, ocitrace_out=str(out), **options)
    addon.running()
    return addon


@pytest.fixture
def trace(tmp_path):
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        yield start(addon, tctx, tmp_path / "out")
    if addon.recording is not None:
        addon.recording.close()


def events(addon):
    if addon.recording is not None:
        addon.recording.drain()  # written behind the proxy: wait for what was handed over
    return [json.loads(line) for line in (addon.out / EVENTS_FILE).read_text().splitlines()]


def stream(tap, data: bytes, chunk: int = 7, finish: bool = True) -> bytes:
    out = b"".join(tap(data[i:i + chunk]) for i in range(0, len(data), chunk))
    if finish:
        tap(b"")
    return out


def exchange(addon, flow, request_body: bytes | None = None, response_body: bytes | None = None):
    """Drive one flow through the hooks as mitmproxy would: bodies given here pass through the taps."""
    if request_body is not None and "content-length" not in flow.request.headers:
        flow.request.headers["transfer-encoding"] = "chunked"  # as a client streaming a body says
    addon.requestheaders(flow)
    if request_body is not None:
        flow.request.content = None
        assert stream(flow.request.stream, request_body) == request_body
    if flow.response is not None:
        addon.responseheaders(flow)
    if response_body is not None:
        flow.response.content = None
        assert stream(flow.response.stream, response_body) == response_body
    (addon.error if flow.error else addon.response)(flow)
    return flow


def test_blob_download_streams_through_untouched_and_is_verified(trace):
    blob = b"layer bytes " * 10_000
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(blob)}", 200,
                     resp_headers={"Docker-Content-Digest": sha256(blob)})
    exchange(trace, flow, response_body=blob)
    [event] = events(trace)
    assert event["endpoint"] == "end-2" and event["digest_verified"] is True and event["response_bytes"] == len(blob)
    assert flow.response.raw_content is None  # a large blob is never kept


def test_manifests_are_kept_whole_for_decoding(trace):
    index = index_body("linux/amd64", "linux/arm64")
    flow = make_flow("PUT", f"{R}/v2/hj-public/test1/manifests/new", 201, req_body=index,
                     req_headers={"Content-Type": OCI_INDEX, "Content-Length": str(len(index))},
                     resp_headers={"Docker-Content-Digest": sha256(index)})
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert not flow.request.stream
    trace.response(flow)
    [event] = events(trace)
    assert event["digest_verified"] is True and "index: 2 platforms" in event["meaning"]


def test_a_manifest_answer_of_unknown_length_streams_and_is_still_decoded(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/{sha256(ARTICLE_MANIFEST)}", 200,
                     resp_headers={"Content-Type": OCI_MANIFEST})
    assert "content-length" not in flow.response.headers
    exchange(trace, flow, response_body=ARTICLE_MANIFEST)
    [event] = events(trace)
    assert event["object"] == sha256(ARTICLE_MANIFEST) and event["digest_verified"] is True


def chunked_upload(addon, blob: bytes, session: str = "u-7"):
    d = sha256(blob)
    up = f"{R}/v2/app/blobs/uploads/{session}"
    half = len(blob) // 2 if len(blob) > 1 << 21 else 60_000
    exchange(addon, make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, resp_headers={
        "Location": f"{up}?_state=a", "Range": "0-0", "Docker-Upload-UUID": session}))
    exchange(addon, make_flow("PATCH", f"{up}?_state=a", 202, resp_headers={
        "Location": f"{up}?_state=b", "Range": f"0-{half - 1}"}), request_body=blob[:half])
    exchange(addon, make_flow("PATCH", f"{up}?_state=b", 202, resp_headers={
        "Location": f"{up}?_state=c", "Range": f"0-{len(blob) - 1}"}), request_body=blob[half:])
    # The closing PUT has no body: mitmproxy reads it with the headers and never calls the tap.
    exchange(addon, make_flow("PUT", f"{up}?_state=c&digest={d}", 201, resp_headers={
        "Location": f"/v2/app/blobs/{d}", "Docker-Content-Digest": d}))
    return d


def test_chunked_upload_is_hashed_across_the_session(trace):
    d = chunked_upload(trace, b"z" * 100_000)
    put = events(trace)[-1]
    assert put["endpoint"] == "end-6" and put["body_digest"] == d and put["digest_verified"] is True
    assert put["body_bytes"] == 100_000


def test_a_sessions_first_chunk_is_hashed_once():
    session = Hasher()
    first = Tap(1 << 16, also=session)
    stream(first, b"a" * 1000)
    assert len(first.hashers) == 1 and first.measure().digest == session.digest == sha256(b"a" * 1000)
    second = Tap(1 << 16, also=session)
    stream(second, b"b" * 10)
    assert len(second.hashers) == 2 and second.measure().digest == sha256(b"b" * 10)
    assert session.digest == sha256(b"a" * 1000 + b"b" * 10)


@pytest.mark.parametrize("size", [1, 100, 101, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH + 12345])
@pytest.mark.parametrize("chunk", [65535, 262144, 5 << 20])
def test_a_streamed_body_is_forwarded_as_it_is_and_hashed_whole(size, chunk):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    tap = Tap(keep_limit=100)
    assert stream(tap, body, chunk=chunk) == body
    assert tap.measure() == BodyTap(sha256(body), size) and tap.small_body() == (body if size <= 100 else None)


def test_a_long_body_fills_the_same_few_buffers():
    tap = Tap(keep_limit=0)
    block = b"y" * 65536
    for _ in range(10 * BATCH // len(block)):
        tap(block)
    assert len(tap._spare) + len(tap._in_flight) + (tap._buffer is not None) <= IN_FLIGHT + 1
    tap(b"")
    assert tap.measure().digest == sha256(block * (10 * BATCH // len(block)))


def test_a_body_shorter_than_a_batch_takes_no_batch_buffer():
    tap = Tap(keep_limit=65536)
    stream(tap, b"m" * 100_000, chunk=65535, finish=False)
    assert tap._buffer is None and not tap._spare
    tap(b"")
    assert tap.measure().digest == sha256(b"m" * 100_000)


def test_a_hash_counts_a_chunk_before_it_hashes_it():
    # What the shared-hash check rests on: a digest read before the size holds no byte the size does not count.
    hasher, counted = Hasher(), []

    class Sha:
        def update(self, chunk):
            counted.append(hasher.size)

    hasher._sha = Sha()
    hasher.update(b"abc")
    assert counted == [3]


def test_a_body_cut_short_has_its_size_and_no_digest():
    tap = Tap(keep_limit=100)
    stream(tap, b"z" * 1000, finish=False)
    assert tap.measure() == BodyTap(None, 1000, complete=False)


def test_a_read_of_64_kib_takes_all_that_has_arrived_up_to_256_kib():
    async def reads():
        arrived = asyncio.StreamReader()
        arrived.feed_data(b"a" * (300 << 10))
        arrived.feed_eof()
        reader = Reader(arrived)
        return [len(await reader.read(65535)) for _ in range(3)]

    assert asyncio.run(reads()) == [READ_AT_ONCE, (300 << 10) - READ_AT_ONCE, 0]


def test_the_proxys_connections_are_made_with_readers_that_take_all_that_has_arrived(monkeypatch):
    original = server.ConnectionIO
    monkeypatch.setattr(server, "ConnectionIO", original)  # put back after the test

    async def made():
        return server.ConnectionIO(reader=asyncio.StreamReader()), server.ConnectionIO()

    assert read_more() and read_more()
    connection, bare = asyncio.run(made())
    assert isinstance(connection.reader, Reader) and bare.reader is None
    assert server.ConnectionIO.__bases__[0] is original  # made once, not wrapped again


def test_two_bodies_feeding_one_fresh_session_at_once_tell_no_body_digest():
    session = Hasher()
    one, other = Tap(1 << 16, also=session), Tap(1 << 16, also=session)
    stream(one, b"a" * 100)
    stream(other, b"b" * 100)
    assert (one.measure().digest, one.measure().size) == (None, 100)
    assert other.measure().digest is None


def test_a_clean_upload_has_no_finding_on_any_call(trace):
    chunked_upload(trace, b"z" * (3 << 20))  # chunks of 1.5 MiB: none too small
    assert [e["findings"] for e in events(trace)] == [[], [], [], []]
    assert all("aborted" not in e["meaning"] for e in events(trace))


def test_small_streamed_bodies_are_kept(trace):
    config = b'{"architecture": "arm64", "os": "linux"}'
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(config)}", 200)
    exchange(trace, flow, response_body=config)
    assert flow.response.raw_content == config


def test_registry_down_is_recorded_with_the_error(trace):
    exchange(trace, make_flow("GET", f"{R}/v2/app/manifests/v1", None, error="Connection refused"))
    [event] = events(trace)
    assert event["status"] is None and event["error"] == "Connection refused" and event["endpoint"] == "end-3"
    assert event["findings"] == [{"code": "call-failed", "severity": "warning", "error": "Connection refused"}]


def test_client_abort_mid_upload_is_recorded_with_the_bytes_seen(trace):
    flow = make_flow("PATCH", f"{R}/v2/app/blobs/uploads/u-9", None, error="client disconnected",
                     req_headers={"Transfer-Encoding": "chunked"})
    flow.request.content = None
    trace.requestheaders(flow)
    stream(flow.request.stream, b"q" * 5000, finish=False)
    trace.error(flow)
    [event] = events(trace)
    assert {"code": "upload-aborted", "severity": "warning", "bytes": 5000} in event["findings"]
    assert event["request_bytes"] == 5000


def test_an_upload_answered_before_its_body_ends_keeps_every_byte_it_goes_on_to_hash(trace):
    flow = make_flow("PATCH", f"{R}/v2/app/blobs/uploads/u-7", 400, req_headers={"Transfer-Encoding": "chunked"})
    flow.request.content = None
    trace.requestheaders(flow)
    tap = flow.request.stream
    stream(tap, b"a" * 3000, finish=False)
    trace.responseheaders(flow)
    trace.response(flow)  # measured and recorded now, the body still coming: not complete, no digest
    [event] = events(trace)
    assert event["request_bytes"] == 3000
    stream(tap, b"b" * 2000)
    body = b"a" * 3000 + b"b" * 2000
    assert tap.small_body() == body and tap.measure() == BodyTap(sha256(body), 5000)  # every byte hashed, in order


def a_session(addon):
    """What a client pulling one platform and pushing a chunked blob does, through the hooks."""
    config = json.dumps({"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    config = config.encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)},
                           "layers": []}).encode()
    exchange(addon, make_flow("GET", f"{R}/v2/", 200))
    exchange(addon, make_flow("GET", f"{R}/v2/app/manifests/{sha256(manifest)}", 200, resp_body=manifest,
                              resp_headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(len(manifest))}))
    exchange(addon, make_flow("GET", f"{R}/v2/app/blobs/{sha256(config)}", 200), response_body=config)
    chunked_upload(addon, b"y" * 70_000)
    exchange(addon, make_flow("HEAD", f"{R}/v2/app/blobs/{sha256(b'x')}", 404))


def test_events_are_what_an_offline_analysis_of_the_flow_file_says_line_for_line(trace):
    a_session(trace)
    trace.recording.drain()
    live = (trace.out / EVENTS_FILE).read_text()
    offline = render_jsonl(analyze(read_captures([trace.out / FLOWS_FILE]).calls))
    assert live.splitlines() == offline.splitlines() and len(live.splitlines()) == 8


def test_the_live_analysis_keeps_no_call(trace, tmp_path):
    for _ in range(3):
        a_session(trace)
    assert trace.analyzer.analysis.calls == [] and trace.analyzer.analysis.objects == []
    assert trace.in_flight == {} and len(trace.analyzer.sessions) == 0
    # The recorder, fed the same flows, keeps none either.
    recorder = a_recorder(tmp_path / "again")
    for state in recorded_states(trace):
        recorder.add(state)
    assert recorder.analyzer.analysis.calls == [] and recorder.analyzer.analysis.objects == []
    live = list(recorder.analyzer.operations._open.values())
    assert live and all(not op.uploads and not op.present and not op.mounted and not op.calls for op in live)


def a_recorder(out, events: str | None = None) -> Recorder:
    """The recorder's work, in this process: what `recorder.main` does with each state the proxy hands over."""
    out.mkdir()
    flows = os.open(out / FLOWS_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    events_fd = os.open(events or out / EVENTS_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    return Recorder(out, flows, events_fd, "en", keep_secrets=False)


def recorded_states(addon) -> list[dict]:
    addon.recording.drain()
    return [flow.get_state() for flow in io.FlowReader(open(addon.out / FLOWS_FILE, "rb")).stream()]


def test_flow_file_and_report_at_shutdown_match_an_offline_analysis(trace):
    a_session(trace)
    assert not (trace.out / REPORT_FILE).exists()  # never an empty report while the proxy runs
    trace.done()
    captures = read_captures([trace.out / FLOWS_FILE])
    offline = render_markdown(analyze(captures.calls), [str(trace.out / FLOWS_FILE)])
    assert (trace.out / REPORT_FILE).read_text() == offline


def printed(capfd) -> list[str]:
    """The lines the recorder printed (on the proxy's standard output), without their time."""
    return [line.split("] ", 1)[1] for line in capfd.readouterr().out.splitlines() if line.startswith("[")]


def test_log_lines_and_report_in_chinese_hold_no_english_sentence(tmp_path, capfd):
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        start(addon, tctx, tmp_path / "out", ocitrace_lang="zh")
        a_session(addon)
        exchange(addon, make_flow("GET", f"{R}/v2/app/manifests/.bad", None, error="Connection refused"))
        addon.done()
    lines = printed(capfd)
    assert len(lines) == 10  # nine calls and where the report is
    for line in lines + (tmp_path / "out" / REPORT_FILE).read_text().splitlines():
        assert english_in(line) == [], line


def test_a_new_run_keeps_the_earlier_session(tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        addon = RegistryTrace()
        with taddons.context(addon) as tctx:
            start(addon, tctx, out)
            exchange(addon, make_flow("GET", f"{R}/v2/", 200))
            addon.done()
    [earlier] = (out / EARLIER).iterdir()
    assert sorted(p.name for p in earlier.iterdir()) == [EVENTS_FILE, FLOWS_FILE, REPORT_FILE]
    assert len(read_captures([earlier / FLOWS_FILE]).calls) == 1
    assert len(read_captures([out / FLOWS_FILE]).calls) == 1


def test_configuring_touches_no_file(tmp_path):
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, ocitrace_out=str(tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()


def test_a_folder_another_run_holds_fails_at_start_before_the_proxy_listens(tmp_path):
    """Whatever the command line checked first: a run that took the folder meanwhile is found here."""
    from ocitrace.addons.recording import lock_folder

    held = lock_folder(tmp_path)
    try:
        addon = RegistryTrace()
        with taddons.context(addon) as tctx:
            with pytest.raises(exceptions.OptionsError, match=f"process {os.getpid()}"):
                tctx.configure(addon, ocitrace_out=str(tmp_path))
    finally:
        held.release()


def test_an_unwritable_output_folder_fails_at_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cannot write to"):
            tctx.configure(addon, ocitrace_out=str(blocker / "out"))


def test_a_full_disk_stops_the_recording_once_and_the_lines_go_on(trace, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(3):
        exchange(trace, make_flow("GET", f"{R}/v2/", 200))
    recorder = a_recorder(tmp_path / "full", events="/dev/full")  # every write fails with ENOSPC
    for state in recorded_states(trace):
        recorder.add(state)
    said = [r.getMessage() for r in caplog.records if r.name == "ocitrace.recorder"]
    assert len(said) == 4 and "stopped" in said[1] and "no space left" in said[1]  # once, after the first call
    assert all(line.startswith("GET /v2/ 200 end-1") for line in said[:1] + said[2:])


def test_a_removed_output_folder_stops_the_recording_once_and_traffic_goes_on(tmp_path, capfd):
    addon = RegistryTrace()  # made here, not by a fixture: its recorder prints where capfd reads
    with taddons.context(addon) as tctx:
        start(addon, tctx, tmp_path / "out")
        exchange(addon, make_flow("GET", f"{R}/v2/", 200))
        addon.recording.drain()
        shutil.rmtree(addon.out)
        for _ in range(2):
            exchange(addon, make_flow("GET", f"{R}/v2/", 200))
        addon.done()
    lines = printed(capfd)
    assert len(lines) == 4 and "stopped" in lines[2] and "no such file or folder" in lines[2]
    assert lines[3].startswith("GET /v2/ 200 end-1")


def test_a_recorder_gone_stops_the_recording_once_and_traffic_goes_on(trace, caplog):
    caplog.set_level(logging.INFO)
    exchange(trace, make_flow("GET", f"{R}/v2/", 200))
    trace.recording.process.kill()
    trace.recording.process.wait()
    for _ in range(2):
        exchange(trace, make_flow("GET", f"{R}/v2/", 200))
    stopped = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and "broken pipe" in stopped[0].lower()
    assert trace.recording is None


def test_no_credential_reaches_the_events(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", 401, req_headers={"Authorization": "Bearer s3cr3t-t0ken"})
    exchange(trace, flow)
    assert "s3cr3t-t0ken" not in "".join(json.dumps(e) for e in events(trace)) and events(trace)


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


def test_a_call_with_nothing_measured_keeps_only_the_name_the_client_asked_for(trace):
    mapped = make_flow("GET", "http://127.0.0.1:5999/v2/", 200, metadata={"ocitrace": {
        "client_host": "registry.test", "client_scheme": "https", "client_port": 443}})
    plain, measured = make_flow("HEAD", f"{R}/v2/app/manifests/v1", 200), trace_blob_download(trace)
    for flow in (mapped, plain):
        exchange(trace, flow)
    states = {state["id"]: state["metadata"]["ocitrace"] for state in recorded_states(trace)}
    assert states[mapped.id] == {"client_host": "registry.test", "client_scheme": "https", "client_port": 443}
    assert states[plain.id] == {}
    assert states[measured.id]["response"]["size"] == 3 << 20


def trace_blob_download(addon):
    blob = os.urandom(3 << 20)
    return exchange(addon, make_flow("GET", f"{R}/v2/app/blobs/{sha256(blob)}", 200), response_body=blob)


def test_a_flow_state_reaches_the_recorder_as_it_was_whatever_it_holds(tmp_path):
    from fractions import Fraction

    plain = make_flow("GET", f"{R}/v2/", 200).get_state()
    odd = make_flow("GET", f"{R}/v2/", 200, metadata={"another addon": Fraction(1, 3)}).get_state()
    acks_read, acks = os.pipe()
    assert [encoded(state)[RECORD.size - 1:RECORD.size] for state in (plain, odd)] == [MARSHAL, PICKLE]
    stream = BytesIO(encoded(plain) + RECORD.pack(0, DRAIN) + encoded(odd))
    assert list(records(stream, acks)) == [plain, odd]
    assert os.read(acks_read, 1) == b"."  # the drain between them was answered
    os.close(acks_read), os.close(acks)


@pytest.mark.parametrize("spec", ["registry.test", "=http://x", "registry.test=ftp://x", "registry.test=http://"])
def test_bad_map_specs_are_refused_with_a_reason(spec):
    with pytest.raises(ValueError):
        parse_map_spec(spec)
    addon = UpstreamMap()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="ocitrace_map"):
            tctx.configure(addon, ocitrace_map=[spec])


def test_the_addons_load_as_a_mitmproxy_script_and_write_where_told(tmp_path, monkeypatch):
    import ocitrace.addons as addons

    monkeypatch.chdir(tmp_path)  # the default output folder is relative: it must not land in the repository
    script = Path(addons.__file__).with_name("script.py")
    with taddons.context() as tctx:
        loaded = tctx.script(str(script))
        assert [type(a).__name__ for a in loaded.addons] == ["UpstreamMap", "RegistryTrace"]
    assert list(tmp_path.iterdir()) == []


def test_an_oversized_manifest_answer_streams_instead_of_being_held(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", 200, resp_headers={"Content-Length": str(64 << 20)})
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert isinstance(flow.response.stream, Tap)


def test_a_blob_larger_than_a_hashing_batch_is_hashed_in_order(trace):
    blob = bytes(range(256)) * ((2 * BATCH + 12345) // 256)
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(blob)}", 200)
    flow.response.content = None
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    assert stream(flow.response.stream, blob, chunk=65535) == blob
    trace.response(flow)
    [event] = events(trace)
    assert event["body_digest"] == sha256(blob) and event["digest_verified"] is True



def test_an_earlier_session_is_named_by_its_first_call(tmp_path):
    out = tmp_path / "out"
    for when in (1_700_000_000.0, 1_800_000_000.0):
        addon = RegistryTrace()
        with taddons.context(addon) as tctx:
            start(addon, tctx, out)
            exchange(addon, make_flow("GET", f"{R}/v2/", 200, timestamp=when))
            addon.done()
    assert [p.name for p in (out / EARLIER).iterdir()] == ["20231114T221320Z"]


def test_a_call_in_flight_when_the_proxy_stops_is_recorded_as_ended_without_answer(trace):
    blob = b"z" * 1000
    flow = make_flow("GET", f"{R}/v2/app/blobs/{sha256(blob)}", 200)
    flow.response.content = None
    trace.requestheaders(flow)
    trace.responseheaders(flow)
    stream(flow.response.stream, blob[:300], finish=False)
    trace.done()
    [event] = events(trace)
    assert event["endpoint"] == "end-2" and event["error"] == "proxy stopped before the call ended"
    assert {"code": "download-aborted", "severity": "warning", "bytes": 300} in event["findings"]


def test_calls_that_end_close_together_are_recorded_together_within_a_quarter_second(trace, monkeypatch):
    sent = []
    send = trace.recording._send
    monkeypatch.setattr(trace.recording, "_send", lambda *parts: sent.append(parts) or send(*parts))

    async def three_calls() -> float:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            exchange(trace, make_flow("GET", f"{R}/v2/", 200))
        assert sent == []  # the answers went out; the recording waits a moment
        started = loop.time()
        while not sent:
            await asyncio.sleep(0.01)
        return loop.time() - started

    assert RECORD_AFTER / 2 < asyncio.run(three_calls()) < RECORD_AFTER + 1
    assert len(sent) == 1 and len(events(trace)) == 3  # one write for the three


def test_a_burst_of_calls_is_recorded_once_a_run_is_full_not_a_quarter_second_later(trace, monkeypatch):
    import ocitrace.addons.registry_trace as registry_trace

    monkeypatch.setattr(registry_trace, "RECORD_RUN", 5)

    async def burst() -> int:
        for _ in range(5):
            exchange(trace, make_flow("GET", f"{R}/v2/", 200))
        await asyncio.sleep(0.01)  # far less than RECORD_AFTER
        return len(trace._finished)

    assert asyncio.run(burst()) == 0 and len(events(trace)) == 5


def test_a_call_whose_recording_fails_holds_back_none_of_the_others(trace, monkeypatch):
    import ocitrace.addons.registry_trace as registry_trace

    flows = [make_flow("GET", f"{R}/v2/", 200) for _ in range(3)]
    state = registry_trace.flow_state
    monkeypatch.setattr(registry_trace, "flow_state", lambda flow: 1 / 0 if flow is flows[1] else state(flow))

    async def three_calls() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the failure: mitmproxy's loop logs it
        for flow in flows:
            exchange(trace, flow)
        await asyncio.sleep(RECORD_AFTER + 0.3)

    asyncio.run(three_calls())
    assert trace._finished == deque() and trace.recording._batch == bytearray()  # sent, not waiting for a next call
    assert len(events(trace)) == 2


def test_what_another_addon_leaves_on_a_flow_that_no_flow_file_holds_is_left_out_and_the_call_recorded(trace):
    from fractions import Fraction

    odd = [{"a function": lambda: None, "kept": "yes"}, {"a fraction": Fraction(1, 3), "kept": "yes"}, {}]
    for metadata in odd:
        exchange(trace, make_flow("GET", f"{R}/v2/", 200, metadata=metadata))
    assert len(events(trace)) == 3
    written = [flow.metadata for flow in io.FlowReader(open(trace.out / FLOWS_FILE, "rb")).stream()]
    assert [{k: v for k, v in m.items() if k != "ocitrace"} for m in written] == [{"kept": "yes"}] * 2 + [{}]


def test_bytes_that_are_not_utf8_never_lose_an_event(trace):
    flow = make_flow("GET", f"{R}/v2/app/manifests/v1", 404)
    flow.request.headers.fields += ((b"User-Agent", b"ev\xfeil"),)
    flow.response.headers.fields += ((b"Content-Type", b"application/x\xff"),)
    exchange(trace, flow)
    [event] = events(trace)
    assert event["endpoint"] == "end-3" and ["User-Agent", "ev\udcfeil"] in event["request_headers"]
    trace.done()
    assert (trace.out / REPORT_FILE).read_bytes().decode("utf-8")


SECRET = "s3cr3t-Tok3n-value"


def secret_session(addon):
    token = json.dumps({"token": SECRET, "access_token": SECRET, "expires_in": 300}).encode()
    exchange(addon, make_flow("GET", f"https://auth.test/token?scope=repository:app:pull&api_key={SECRET}", 200,
                              req_headers={"Authorization": f"Basic {SECRET}", "Cookie": f"s={SECRET}"},
                              resp_body=token, resp_headers={"Set-Cookie": f"id={SECRET}"}))
    exchange(addon, make_flow("POST", "https://auth.test/token", 200, req_body=f"grant_type=password&password="
                              f"{SECRET}&service=registry.test".encode(),
                              req_headers={"Content-Type": "application/x-www-form-urlencoded"}))
    exchange(addon, make_flow("GET", f"{R}/v2/app/manifests/v1", 404,
                              req_headers={"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET}))
    exchange(addon, make_flow("GET", f"{R}/v2/app/blobs/{sha256(b'x')}", 307,
                              resp_headers={"Location": f"https://cdn.test/blob?X-Amz-Signature={SECRET}"}))


def test_no_file_the_proxy_writes_holds_a_credential(trace):
    secret_session(trace)
    trace.done()
    for name in (FLOWS_FILE, EVENTS_FILE, REPORT_FILE):
        assert SECRET.encode() not in (trace.out / name).read_bytes(), name
    # The redacted flow file still tells the same story, call for call.
    live = (trace.out / EVENTS_FILE).read_text().splitlines()
    assert live == render_jsonl(analyze(read_captures([trace.out / FLOWS_FILE]).calls)).splitlines()


def test_keep_secrets_writes_the_flow_file_as_it_passed(tmp_path):
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        start(addon, tctx, tmp_path / "out", ocitrace_keep_secrets=True)
        secret_session(addon)
        addon.done()
    assert SECRET.encode() in (tmp_path / "out" / FLOWS_FILE).read_bytes()
    assert SECRET.encode() not in (tmp_path / "out" / EVENTS_FILE).read_bytes()


def test_every_file_of_a_session_is_readable_by_its_owner_only(trace):
    exchange(trace, make_flow("GET", f"{R}/v2/", 200))
    trace.done()
    for name in (FLOWS_FILE, EVENTS_FILE, REPORT_FILE):
        assert (trace.out / name).stat().st_mode & 0o777 == 0o600, name


def test_a_recorder_that_cannot_start_is_told_once_and_traffic_goes_on(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr("sys.executable", "/bin/false")  # the recorder's interpreter: exits at once
    addon = RegistryTrace()
    with taddons.context(addon) as tctx:
        start(addon, tctx, tmp_path / "out")
        flow = exchange(addon, make_flow("GET", f"{R}/v2/", 200))
        addon.done()
    stopped = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and "the recorder did not start" in stopped[0]
    assert addon.recording is None and flow.response.status_code == 200


def test_the_recorder_writes_each_flow_as_mitmproxy_would_with_connections_reused_or_not(trace, tmp_path):
    from mitmproxy.io import tnetstring
    from ocitrace.analyzers import redact

    a_session(trace)
    states = recorded_states(trace)
    # One keep-alive connection for every call, whose state changes half-way (it ended).
    for n, state in enumerate(states):
        state["client_conn"] = {**states[0]["client_conn"], "timestamp_end": 1.0 if n > len(states) // 2 else None}
    recorder = a_recorder(tmp_path / "again")
    for state in states:
        recorder.add(state)
    recorder.finish()
    written = (tmp_path / "again" / FLOWS_FILE).read_bytes()
    assert written == b"".join(tnetstring.dumps(redact.flow_state(state)) for state in states)

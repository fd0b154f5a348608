"""The fast flow-file reader (tnetstrings.py, read in parallel for large files) reads what mitmproxy's own
FlowReader reads: the same calls, the same report, line for line."""

import sys
from pathlib import Path

import pytest
from mitmproxy import io
from ocitrace.analyzers import captures, tnetstrings
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import CaptureError, call_from_state, read_captures, read_flow_file
from ocitrace.analyzers.report import render

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from make_capture import write  # noqa: E402

DEMO = sorted(ROOT.glob("captures/demo/*/flows.mitm"))


def through_flowreader(path):
    with open(path, "rb") as fh:
        states = [flow.get_state() for flow in io.FlowReader(fh).stream()]
    return [call for call in (call_from_state(state, str(path)) for state in states) if call is not None]


def same_reports(fast, slow):
    a, b = analyze(fast), analyze(slow)
    assert render(a, "jsonl") == render(b, "jsonl")
    assert render(a, "markdown") == render(b, "markdown")


@pytest.mark.parametrize("path", DEMO, ids=lambda p: p.parent.name)
def test_the_fast_reader_gives_what_flowreader_gives_on_real_captures(path):
    same_reports(list(read_flow_file(path)), through_flowreader(path))


@pytest.fixture
def large(tmp_path, monkeypatch):
    """A capture of 6,000 flows of the demo's traffic, read by two worker processes in chunks of 500."""
    monkeypatch.setattr(captures, "PARALLEL_FROM", 0)
    monkeypatch.setattr(captures, "CHUNK_FLOWS", 500)
    path = tmp_path / "large.mitm"
    write(path, 6000)
    return path


def test_a_large_capture_read_by_worker_processes_gives_what_flowreader_gives(large):
    fast = list(read_flow_file(large, workers=2))
    assert len(fast) == 6000
    same_reports(fast, through_flowreader(large))


@pytest.mark.parametrize("headers", [
    [("User-Agent", "skopeo/1.9.3"), ("Accept", "application/vnd.oci.image.index.v1+json")],
    [],
    [("X-Odd", "a\0b"), ("X-\0", "")],  # a NUL inside a name or value: sent as pairs, not split wrong
    [("", ""), ("Empty", "")],
])
def test_a_call_comes_back_from_a_worker_as_it_was_read(headers):
    import pickle

    from ocitrace.analyzers.calls import BodyTap, Call, Headers

    call = Call("PUT", "https", "registry.test", 443, "/v2/a/blobs/uploads/1", "digest=sha256:00", 201,
                Headers(headers), Headers(headers[::-1]), b"body", None, 1.5, 2.5, None, "f.mitm",
                BodyTap("sha256:00", 4), None, BodyTap(None, 9, complete=False), "http://127.0.0.1:5000")
    assert captures._unpacked(pickle.loads(pickle.dumps(captures._packed(call)))) == call


def flow_starts(buf):
    starts, pos = [], 0
    while pos < len(buf):
        starts.append(pos)
        pos = tnetstrings.skip(buf, pos)
    return starts


def test_the_workers_chunks_are_small_at_first_then_even_and_hold_every_flow(large):
    with tnetstrings.mapped(large) as buf:
        chunks, starts, size = list(captures._chunks(buf)), flow_starts(buf), len(buf)
    firsts = [first for _, _, first in chunks]
    sizes = [b - a for a, b in zip(firsts, firsts[1:] + [len(starts)], strict=True)]
    assert sizes[:len(captures.FIRST_CHUNKS)] == list(captures.FIRST_CHUNKS)
    assert set(sizes[len(captures.FIRST_CHUNKS):-1]) == {captures.CHUNK_FLOWS}
    assert [(start, end) for start, end, _ in chunks] == [(starts[a], (starts + [size])[a + n])
                                                          for a, n in zip(firsts, sizes, strict=True)]


def test_pages_let_go_behind_the_reader_are_read_again_alike(large, monkeypatch):
    """The reader gives up the pages it has read (so a large file does not count whole in its memory): letting
    go after every flow changes nothing read, in order or in parallel."""
    in_order = list(read_flow_file(large))
    with tnetstrings.mapped(large) as buf:
        chunks = list(captures._chunks(buf))
    monkeypatch.setattr(tnetstrings, "LET_GO_EVERY", 1)
    assert list(read_flow_file(large)) == in_order
    assert list(read_flow_file(large, workers=2)) == in_order
    with tnetstrings.mapped(large) as buf:
        assert list(captures._chunks(buf)) == chunks


@pytest.mark.parametrize("where", ["between flows", "inside a flow"])
def test_damage_in_a_large_capture_read_in_parallel_is_told_where_it_is(large, where):
    data = bytearray(large.read_bytes())
    flow = flow_starts(data)[3210]
    if where == "between flows":
        data[flow:flow + 3] = b"x:]"  # flow 3211's length prefix: the flows after it cannot be found
    else:  # its first key's length prefix: the flow's own length holds, a worker meets the damage
        inner = data.index(b":", flow) + 1
        data[inner] = ord("x")
    large.write_bytes(bytes(data))
    for workers in (1, 2):
        read = []
        with pytest.raises(CaptureError) as caught:
            read.extend(read_flow_file(large, workers=workers))
        assert len(read) == 3210 and caught.value.finding.values["flows"] == 3210


@pytest.mark.parametrize("length, negative", [
    (b"17:timestamp_created;", b"-7:timestamp_created;"),  # a key's
    (b"11:server_conn;451:", b"11:server_conn;-51:"),  # a value stepped over
    (b"4:host;9:", b"4:host;-9:"),  # a value read
    (b":10:User-Agent,", b":-1:User-Agent,"),  # a header's name, in its pair
], ids=["key", "value stepped over", "value read", "header name"])
def test_a_negative_length_is_damage_not_a_reader_that_steps_back_for_ever(tmp_path, monkeypatch, length, negative):
    """int() reads "-7" as well as "17": a length that steps back would read the same bytes for ever."""
    monkeypatch.setattr(captures, "PARALLEL_FROM", 0)
    good = DEMO[0].read_bytes()
    first = tnetstrings.skip(good, 0)
    assert length in good[:first]
    path = tmp_path / "negative.mitm"
    path.write_bytes(good[:first].replace(length, negative, 1) + good[first:])
    for workers in (1, 2):
        with pytest.raises(CaptureError) as caught:
            list(read_flow_file(path, workers=workers))
        assert caught.value.finding.code == "capture-damaged"
        assert caught.value.finding.values["flows"] == 0


@pytest.mark.parametrize("copy_up_to", [tnetstrings.COPY_UP_TO, 0], ids=["read from a copy", "read in place"])
def test_a_value_running_past_its_flow_is_damage_not_a_cut_file(tmp_path, monkeypatch, copy_up_to):
    """A value inside a flow that says it runs past the flow's end (and past the file's) is damage of that flow,
    told as such, not a file cut short: whether the flow is read from a copy of its bytes or in place (large)."""
    monkeypatch.setattr(tnetstrings, "COPY_UP_TO", copy_up_to)
    state, _ = tnetstrings.parse(DEMO[0].read_bytes(), 0)
    state["request"]["host"] = "h" * 1000
    flow = tnetstrings.dumps(state)
    assert len(flow) < 9999
    path = tmp_path / "overrun.mitm"
    path.write_bytes(flow.replace(b"4:host;1000:hhhh", b"4:host;9999:hhhh", 1))
    with pytest.raises(CaptureError) as caught:
        list(read_flow_file(path))
    assert caught.value.finding.code == "capture-damaged"
    assert caught.value.finding.values["flows"] == 0


def test_streamed_captures_tell_their_errors_once_read(large):
    data = large.read_bytes()
    large.write_bytes(data[: len(data) - 100])  # truncated
    streamed = read_captures([large], workers=2, stream=True)
    assert streamed.errors == []
    calls = list(streamed.calls)
    assert len(calls) == 5999 and [e.finding.code for e in streamed.errors] == ["capture-truncated"]


@pytest.mark.parametrize("path", DEMO, ids=lambda p: p.parent.name)
def test_the_fast_writer_writes_what_mitmproxys_writer_writes(path):
    from mitmproxy.io import tnetstring
    from ocitrace.analyzers.tnetstrings import dumps

    with open(path, "rb") as fh:
        states = [flow.get_state() for flow in io.FlowReader(fh).stream()]
    assert [dumps(state) for state in states] == [tnetstring.dumps(state) for state in states]


def test_a_body_past_the_decode_limit_is_measured_by_the_reader_and_checked_as_the_body(tmp_path):
    """A capture's layers (mitmdump -w keeps them) are hashed where they are read and let go: the same report."""
    import gzip
    import hashlib

    from conftest import make_flow
    from ocitrace.analyzers.calls import DECODE_LIMIT

    layer = bytes(range(256)) * (DECODE_LIMIT // 256 + 1)
    sha256 = "sha256:" + hashlib.sha256(layer).hexdigest()
    sha512 = "sha512:" + hashlib.sha512(layer).hexdigest()
    big_manifest = b'{"schemaVersion": 2, "layers": [], "x": "' + b"a" * DECODE_LIMIT + b'"}'
    flows = [
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256}", resp_body=layer,
                  resp_headers={"Docker-Content-Digest": sha256}),
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha512}", resp_body=layer),
        make_flow("GET", f"https://registry.test/v2/app/blobs/sha256:{'0' * 64}", resp_body=layer),  # mismatch
        make_flow("GET", "https://registry.test/v2/app/manifests/v1", resp_body=big_manifest,
                  resp_headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
        make_flow("GET", "https://registry.test/v2/app/manifests/sha256:" + hashlib.sha256(big_manifest).hexdigest(),
                  resp_body=big_manifest, resp_headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256}", resp_body=gzip.compress(layer, 1),
                  resp_headers={"Content-Encoding": "gzip"}),  # its digest is of the content decoded
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256}", 500, resp_body=b'{"errors": [{"code": '
                  b'"UNKNOWN", "message": "' + b"x" * DECODE_LIMIT + b'"}]}'),  # read for its error codes
        # a storage URL names no digest: the redirect just read names it (sha512 here, a wrong body; then sha256)
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha512}", 307,
                  resp_headers={"Location": "https://storage.test/data?sig=1"}),
        make_flow("GET", "https://storage.test/data?sig=1", resp_body=layer[:-1] + b"!"),
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256}", 307,
                  resp_headers={"Location": "/storage/blob"}),  # relative: read against the call's URL
        make_flow("GET", "https://registry.test/storage/blob", resp_body=layer),
        # no redirect read led here: the body goes to the analysis whole, as the capture holds it
        make_flow("GET", "https://storage.test/other", resp_body=layer),
        # what the analysis learns, no more: a blob's redirect (a manifest's teaches nothing), to a URL no row knows
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256}", 307,
                  resp_headers={"Location": "https://storage.test/mixed"}),
        make_flow("GET", f"https://registry.test/v2/app/manifests/{sha512}", 307,
                  resp_headers={"Location": "https://storage.test/mixed"}),
        make_flow("GET", "https://storage.test/mixed", resp_body=layer[:-1] + b"?"),
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha512}", 307,
                  resp_headers={"Location": "/v2/app/manifests/latest"}),
        make_flow("GET", "https://registry.test/v2/app/manifests/latest", resp_body=big_manifest,
                  resp_headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
        make_flow("GET", f"https://registry.test/v2/app/blobs/{sha512}", 307,
                  resp_headers={"Location": f"https://storage.test/sha256:{'1' * 64}"}),
        make_flow("GET", f"https://storage.test/sha256:{'1' * 64}", resp_body=layer),  # the redirect's sha512
    ]
    path = tmp_path / "layers.mitm"
    with open(path, "wb") as fh:
        writer = io.FlowWriter(fh)
        for flow in flows:
            writer.add(flow)
    fast = list(read_flow_file(path))
    measured = [call.response_tap is not None and call.response_tap.captured for call in fast]
    # 2xx, past the limit, not content-coded, with a URL naming its digest or a redirect read just before that did
    assert measured == [True, True, True, False, True, False, False, False, True, False, True, False,
                        False, False, True, False, False, False, True]
    assert not any(call.response_body for call, taken in zip(fast, measured, strict=True) if taken)
    assert fast[0].response_tap.captured and fast[0].response_tap.digest == sha256
    assert fast[1].response_tap.digest == sha512
    assert fast[8].response_tap.digest == "sha512:" + hashlib.sha512(layer[:-1] + b"!").hexdigest()
    assert fast[10].response_tap.digest == sha256 and fast[11].response_body == layer
    assert fast[14].response_tap.digest.startswith("sha256:") and fast[18].response_tap.digest == sha512
    same_reports(fast, through_flowreader(path))
    codes = analyze(fast).tally.codes
    assert codes["body-too-large"] == 3 and codes["digest-mismatch"] == 3 and "body-not-captured" not in codes
    assert [call.response_body for call in read_flow_file(path, bodies=True)] == [
        flow.response.raw_content for flow in flows]  # a HAR export writes them all

    from ocitrace.cli import main

    har = tmp_path / "layers.har"
    assert main(["export", "--har", str(har), str(path)]) == 0
    exported = [call.response_body for call in read_captures([har]).calls]
    assert exported[:5] == [layer, layer, layer, big_manifest, big_manifest]

"""Hostile input, generated: whatever a capture, a client or a registry sends, ocitrace reads it, tells it,
and raises nothing but its own one-sentence errors (CaptureError)."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.io import tnetstring
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.calls import Call, Headers
from ocitrace.analyzers.captures import CaptureError, read_flow_file, read_har_file
from ocitrace.analyzers.endpoints import default_table
from ocitrace.analyzers.manifests import OCI_INDEX, OCI_MANIFEST, DecodeFailure, decode_manifest
from ocitrace.analyzers.report import render
from ocitrace.analyzers.words import MOST_CELL, cell

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

# JSON values of any shape, nesting included.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30)
# tnetstring values of any shape (what a flow file holds): bytes, text, numbers, lists, dicts.
tnet_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.binary(max_size=20)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=10) | st.text(max_size=10), inner,
                                                                max_size=6),
    max_leaves=30)
FLOW_KEYS = ["request", "response", "error", "type", "version", "metadata", "client_conn", "server_conn", "id"]
MESSAGE_KEYS = ["method", "scheme", "host", "port", "path", "authority", "http_version", "headers", "content",
                "status_code", "reason", "timestamp_start", "timestamp_end", "trailers"]
# A flow-shaped dictionary whose fields hold values of any type.
flow_like = st.fixed_dictionaries({}, optional={
    **{k: tnet_values for k in FLOW_KEYS},
    "request": st.fixed_dictionaries({}, optional={k: tnet_values for k in MESSAGE_KEYS}),
    "response": st.none() | st.fixed_dictionaries({}, optional={k: tnet_values for k in MESSAGE_KEYS}),
})


def read_all(reader, path):
    try:
        return list(reader(path))
    except CaptureError as exc:
        assert exc.finding.code.startswith("capture-")
        return exc.calls


@FUZZ
@given(data=st.binary(max_size=400))
def test_the_flow_reader_takes_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.mitm"
    path.write_bytes(data)
    read_all(read_flow_file, path)


@FUZZ
@given(flows=st.lists(flow_like, min_size=1, max_size=3))
def test_the_flow_reader_takes_flows_with_fields_of_any_type_and_the_analysis_tells_them(tmp_path_factory, flows):
    path = tmp_path_factory.mktemp("fuzz") / "f.mitm"
    path.write_bytes(b"".join(tnetstring.dumps(flow) for flow in flows))
    calls = read_all(read_flow_file, path)
    checked_outputs(analyze(calls))


@FUZZ
@given(document=json_values | st.fixed_dictionaries({"log": st.fixed_dictionaries({"entries": st.lists(
    st.fixed_dictionaries({}, optional={"request": json_values, "response": json_values, "startedDateTime":
                                         json_values, "time": json_values, "timings": json_values}),
    max_size=3)})}))
def test_the_har_reader_takes_any_json(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("fuzz") / "f.har"
    path.write_text(json.dumps(document))
    checked_outputs(analyze(read_all(read_har_file, path)))


segment = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True).filter(lambda s: len(s) < 30)
names = st.lists(segment, min_size=1, max_size=3).map("/".join)
digests = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True)


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "G\x00T"]),
       path=st.text(max_size=80) | st.builds(lambda n, s: f"/v2/{n}/{s}", names, st.text(max_size=40)),
       query=st.text(max_size=40), status=st.none() | st.integers(min_value=100, max_value=599))
def test_the_classifier_takes_any_request(method, path, query, status):
    classification = default_table().classify(method, path, query, status)
    assert classification.endpoint is None or classification.endpoint.id


@FUZZ
@given(name=names, reference=tags | digests)
def test_every_name_and_reference_of_the_grammar_is_a_manifest_call(name, reference):
    for method, endpoint in (("GET", "end-3"), ("HEAD", "end-3"), ("PUT", "end-7"), ("DELETE", "end-9")):
        classification = default_table().classify(method, f"/v2/{name}/manifests/{reference}")
        assert (classification.endpoint_id, classification.repository) == (endpoint, name)


@FUZZ
@given(name=names, digest=digests)
def test_every_blob_of_the_grammar_is_a_blob_call(name, digest):
    classification = default_table().classify("GET", f"/v2/{name}/blobs/{digest}")
    assert (classification.endpoint_id, classification.repository, classification.digest) == ("end-2", name, digest)


@FUZZ
@given(document=json_values, media_type=st.sampled_from([None, OCI_INDEX, OCI_MANIFEST, "application/json", "x"]))
def test_the_decoder_takes_any_json(document, media_type):
    decoded = decode_manifest(json.dumps(document).encode(), media_type)
    assert isinstance(decoded, DecodeFailure) or decoded.media_type


@FUZZ
@given(body=st.binary(max_size=200))
def test_the_decoder_takes_any_bytes(body):
    decode_manifest(body, OCI_MANIFEST)


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@FUZZ
@given(value=st.text(max_size=600))
def test_a_cell_is_one_printable_line_that_cannot_leave_its_cell(value):
    shown = cell(value)
    assert "\n" not in shown and "\r" not in shown and shown.isprintable()
    assert not _UNESCAPED_PIPE.search(shown.replace("\\\\", ""))
    assert len(shown) <= 2 * MOST_CELL + 40  # escapes at most double it; a long value is cut, with its length


header_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH"]), name=names,
       tail=st.sampled_from(["manifests/v1", "blobs/uploads/", "tags/list", "referrers/x"]),
       headers=st.lists(st.tuples(header_text, header_text), max_size=4), body=st.binary(max_size=300),
       status=st.integers(min_value=100, max_value=599))
def test_any_call_is_analysed_and_told_in_every_format(method, name, tail, headers, body, status):
    call = Call(method, "https", "registry.test", 443, f"/v2/{name}/{tail}", status=status,
                request_headers=Headers(headers), response_headers=Headers(headers), request_body=body,
                response_body=body, timestamp=1.0, end=2.0)
    checked_outputs(analyze([call]))


def checked_outputs(analysis):
    """Every format renders; each is valid UTF-8 with no control character but newlines (and tabs in JSON)."""
    for fmt in ("markdown", "json", "jsonl"):
        for lang in ("en", "zh"):
            text = render(analysis, fmt, lang)
            text.encode("utf-8")
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), fmt
    return analysis


@pytest.mark.parametrize("depth", [50, 5000])
def test_deep_nesting_is_a_capture_error_not_a_crash(tmp_path, depth):
    path = tmp_path / "deep.mitm"
    path.write_bytes(f"{depth * 3 + 3}:".encode() + b"0:]" * depth + b"]")
    read_all(read_flow_file, path)

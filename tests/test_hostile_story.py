"""The story, its pictures and the diff hold against captures made to break them."""

import json
import math

import pytest
from conftest import make_flow, sha256
from ocitrace.analyzers.captures import read_captures
from ocitrace.analyzers.diff import render_diff, shape
from ocitrace.analyzers.report import render
from ocitrace.analyzers.story import fold, sections
from test_operations import SKOPEO, get, head, run, upload

from ocitrace.cli import main

R = "https://registry.test"


def event(**fields):
    base = {"method": "GET", "url": f"{R}/v2/app/blobs/{sha256(b'x')}", "host": "registry.test",
            "path": f"/v2/app/blobs/{sha256(b'x')}", "status": 200, "response_bytes": 10}
    return json.dumps({**base, **fields})


@pytest.mark.parametrize("timestamp,duration", [(math.nan, 1), (1000, math.inf), (10 ** 400, 1), (1e308, 1e308)])
def test_times_that_are_no_numbers_are_unknown_not_a_crash(tmp_path, timestamp, duration):
    path = tmp_path / "events.jsonl"
    path.write_text(event(timestamp=timestamp, duration=duration) + "\n")
    calls = read_captures([path]).calls
    assert calls[0].timestamp is None or math.isfinite(calls[0].timestamp)
    assert calls[0].duration is None or math.isfinite(calls[0].duration)
    md = render(run_calls(calls), "markdown")  # the timeline reads these times: no crash, no NaN bar
    assert "| GET " in md.split("## All calls")[1] and "nan" not in md.split("```mermaid")[-1].lower()


def run_calls(calls):
    from ocitrace.analyzers.analysis import analyze
    return analyze(calls)


@pytest.mark.parametrize("header,value", [("WWW-Authenticate", 'Bearer realm="https://[oops]/token"'),
                                          ("Location", "https://[oops]/blob")])
def test_a_url_that_cannot_be_one_is_ignored(header, value):
    status = 401 if header == "WWW-Authenticate" else 307
    a = run(make_flow("GET", f"{R}/v2/app/blobs/{sha256(b'x')}", status, resp_headers={header: value}))
    assert len(a.calls) == 1 and a.calls[0].operation == 1


def test_a_short_session_id_is_replaced_only_where_it_is_the_session():
    a = run(*upload("lib/a", "a", b"blob"))
    [row] = [row for section in sections(a) for row in fold(section) if row.step == "upload"]
    md = render(a, "markdown")
    assert "/v2/lib/a/blobs/uploads/\\<session\\>" in md and "uplo\\<session\\>ds" not in md
    assert shape(a.calls[1]) == ("PATCH", "/v2/<name>/blobs/uploads/<session>", "upload", "202")


@pytest.mark.parametrize("status", [500, 403, None])
def test_a_head_not_answered_404_is_not_said_absent(status):
    [item] = run(head(f"/v2/app/blobs/{sha256(b'x')}", status)).calls
    assert item.reason is None


def test_a_mount_with_no_head_before_it_names_no_call():
    a = run(make_flow("POST", f"{R}/v2/app/blobs/uploads/?mount={sha256(b'x')}&from=base", 201,
                      req_headers=SKOPEO))
    assert (a.calls[0].reason.code, dict(a.calls[0].reason.values)) == ("mounted-from", {"repository": "base"})


def test_a_call_that_is_not_a_registry_call_does_not_take_the_api_check():
    a = run(get("/v2/"), make_flow("GET", f"{R}/favicon.ico", 404, req_headers=SKOPEO))
    assert [op.kind for op in a.operations] == ["ping", "other"]


def test_two_registries_are_two_operations_named_by_host():
    one = make_flow("GET", "https://one.example/v2/lib/a/manifests/latest", 200, req_headers=SKOPEO)
    two = make_flow("GET", "https://two.example/v2/lib/a/manifests/latest", 200, req_headers=SKOPEO)
    a = run(one, two)
    assert len(a.operations) == 2
    md = render(a, "markdown")
    assert "one.example/lib/a:latest" in md and "two.example/lib/a:latest" in md


@pytest.mark.parametrize("agent", ["evil\n\n#\tInjected", "x UpstreamClient(# Injected heading)", "1. numbered",
                                   "+ plus", "a|b<b>`c`"])
def test_a_user_agent_cannot_make_a_heading_a_list_or_a_cell(agent):
    md = render(run(make_flow("GET", f"{R}/v2/", 200, req_headers={"User-Agent": agent})), "markdown")
    for line in md.splitlines():
        assert not line.startswith(("# I", "#\t", "1. ", "+ ")) and "<b>" not in line


def test_diff_names_and_platforms_are_escaped_once(tmp_path, capsys):
    from conftest import write_flows
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(b"m"), "size": 1,
         "platform": {"os": "linux\n\n# Injected\n| x |", "architecture": "amd64"}}]}).encode()
    flows = [make_flow("PUT", f"{R}/v2/app/manifests/v1", 201, req_body=index,
                       req_headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})]
    a = write_flows(tmp_path / "a_side.mitm", flows)
    b = write_flows(tmp_path / "b_side.mitm", [get("/v2/")])
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "\n# Injected" not in out and "\n| x |" not in out and "a\\\\\\_side" not in out
    assert render_diff(run(get("/v2/")), run(get("/v2/")), ("a_b", "c")).count("a\\_b") >= 1

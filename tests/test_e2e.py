"""End to end: a real registry, `ocitrace proxy`, and real clients (buildah, skopeo, the docker CLI).

The demo's scenarios run once for the module; each test reads what they captured.
"""

import hashlib
import http.client
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import english_in
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import read_captures
from ocitrace.analyzers.report import render_json, render_jsonl, render_markdown

from ocitrace.demo import SCENARIOS, SECURE_NAME, run_scenarios, write_index
from ocitrace.lab import REGISTRY_NAME, LabError, Proxy, Registry, free_port, port_open, run_client
from ocitrace.layout import write_base_image
from ocitrace.token_server import TOKEN_NAME

pytestmark = pytest.mark.e2e
# The token registry's users' passwords: no file a capture writes may hold them.
PASSWORDS = {"alice": "alice-Pa55-8d2f", "bob": "bob-Pa55-1c7e", "carol": "carol-Pa55-44b0"}
LIVE = [s.name for s in SCENARIOS if not s.plain]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("captures")
    folders = run_scenarios(out, tmp_path_factory.mktemp("work"), progress=lambda _: None, passwords=PASSWORDS)
    write_index(out, folders)
    return folders


def events(folder):
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("scenario", LIVE)
def test_every_call_is_classified(demo, scenario):
    calls = events(demo[scenario])
    assert calls, "the scenario made no call through the proxy"
    assert [c for c in calls if c["endpoint"] is None] == []
    assert {c["host"] for c in calls} <= {REGISTRY_NAME, SECURE_NAME, TOKEN_NAME}


@pytest.mark.parametrize("scenario", LIVE)
def test_every_blob_that_passed_has_a_verified_digest(demo, scenario):
    for call in events(demo[scenario]):
        moved = (call["endpoint"] == "end-2" and call["method"] == "GET" and call["status"] == 200) or (
            call["endpoint"] == "end-6" and call["status"] == 201)
        if moved:
            assert call["digest_verified"] is True, call["path"]
        assert call["digest_verified"] is not False, call["path"]


@pytest.mark.parametrize("scenario", ["seed", "build-push"])
def test_a_new_blob_is_checked_then_uploaded_in_a_session(demo, scenario):
    calls = events(demo[scenario])
    closed = [c for c in calls if c["endpoint"] == "end-6" and c["status"] == 201]
    assert closed
    checked_first = []
    for put in closed:
        before = calls[: put["index"] - 1]
        session = [c["endpoint"] for c in before if c["session"] == put["session"]]
        assert session[:1] == ["end-4a"] and "end-5" in session
        checked_first.append(any(c["endpoint"] == "end-2" and c["method"] == "HEAD" and c["status"] == 404
                                 and c["digest"] == put["digest"] for c in before))
    # buildah recompresses a layer while pushing, so it asks for the digest it had, then sends another;
    # skopeo copies blobs as they are and asks for each one first.
    assert all(checked_first) if scenario == "seed" else any(checked_first)


def test_build_push_fetches_the_base_index_each_platform_and_its_blobs(demo):
    calls = events(demo["build-push"])
    base = [c for c in calls if c["repository"] == "hj-public/debian"]
    assert any(c["endpoint"] == "end-3" and "index: 8 platforms + 8 attestations" in c["meaning"] for c in base)
    fetched = {c["platform"] for c in base if c["endpoint"] == "end-3" and c["reference"].startswith("sha256:")}
    assert fetched == {"linux/amd64", "linux/arm64"}
    assert any(c["endpoint"] == "end-2" and c["method"] == "GET" for c in base)


def test_build_push_mounts_the_base_layers_and_puts_the_index_last(demo):
    calls = events(demo["build-push"])
    assert any(c["endpoint"] == "end-11" and c["status"] == 201 and c["mount_from"] == "hj-public/debian"
               for c in calls)
    last = calls[-1]
    assert (last["method"], last["endpoint"], last["path"]) == ("PUT", "end-7", "/v2/hj-public/test1/manifests/new")
    assert "index: 2 platforms" in last["meaning"]
    pushed = [c for c in calls if c["endpoint"] == "end-7"]
    assert len(pushed) == 3  # two platform manifests, then the index


def test_seed_index_decodes_as_platforms_with_their_attestations(demo):
    folder = demo["seed"]
    doc = json.loads(render_json_of(folder))
    [index] = [o for o in doc["objects"] if o["kind"] == "index"]
    images = [m for m in index["manifests"] if m["kind"] != "attestation"]
    attestations = [m for m in index["manifests"] if m["kind"] == "attestation"]
    assert len(images) == 8 and len(attestations) == 8
    assert {m["platform"] for m in images} >= {"linux/arm/v7", "linux/arm64", "linux/s390x"}
    assert {a["attests"] for a in attestations} == {m["digest"] for m in images}


def render_json_of(folder):
    return render_json(analyze(read_captures([folder / "flows.mitm"]).calls))


def test_manual_index_push_ends_with_the_index_of_the_annotated_platforms(demo):
    calls = events(demo["manual"])
    last = calls[-1]
    assert (last["method"], last["endpoint"], last["status"]) == ("PUT", "end-7", 201)
    doc = json.loads(render_json_of(demo["manual"]))
    [index] = [o for o in doc["objects"] if o["kind"] == "index"]
    assert sorted(m["platform"] for m in index["manifests"]) == ["linux/amd64", "linux/arm64"]


def test_pull_one_platform_fetches_only_that_platform(demo):
    calls = events(demo["pull"])
    manifests = [c for c in calls if c["endpoint"] == "end-3"]
    assert "index" in manifests[0]["meaning"]
    assert [c["platform"] for c in manifests[1:]] == ["linux/arm64"]
    blobs = [c for c in calls if c["endpoint"] == "end-2" and c["method"] == "GET"]
    assert blobs and all(c["digest_verified"] for c in blobs)


@pytest.mark.parametrize("scenario", LIVE)
def test_events_are_the_offline_analysis_of_the_flow_file_line_for_line(demo, scenario):
    flows = demo[scenario] / "flows.mitm"
    offline = [json.loads(line) for line in render_jsonl(analyze(read_captures([flows]).calls)).splitlines()]
    live = events(demo[scenario])
    assert len(live) == len(offline) > 0
    for a, b in zip(live, offline, strict=True):
        assert {**a, "source": "", "timestamp": 0} == {**b, "source": "", "timestamp": 0}


@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS])
def test_a_clean_session_has_no_warning_and_nothing_aborted(demo, scenario):
    analysis = analyze(read_captures([demo[scenario] / "flows.mitm"]).calls)
    assert analysis.warnings == []
    for name in ("report.md", "report.zh.md"):
        report = (demo[scenario] / name).read_text()
        assert "aborted" not in report and "中断" not in report
    assert "## Warnings" not in (demo[scenario] / "report.md").read_text()


@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS])
def test_a_chinese_report_holds_no_english_sentence(demo, scenario):
    for line in (demo[scenario] / "report.zh.md").read_text().splitlines():
        assert english_in(line) == [], line


@pytest.mark.parametrize("scenario", LIVE)
def test_live_report_is_the_offline_report(demo, scenario):
    folder = demo[scenario]
    captures = read_captures([folder / "flows.mitm"])
    assert captures.errors == []
    assert (folder / "report.md").read_text() == render_markdown(analyze(captures.calls), [str(folder / "flows.mitm")])
    assert "## 客户端做了什么" in (folder / "report.zh.md").read_text()


def test_a_plain_mitmdump_capture_is_classified_decoded_and_verified(demo):
    doc = json.loads(render_json_of(demo["mitmdump-w"]))
    calls = doc["calls"]
    assert calls and [c for c in calls if c["endpoint"] is None] == []
    assert {c["host"] for c in calls} == {REGISTRY_NAME}
    blobs = [c for c in calls if c["endpoint"] == "end-2" and c["method"] == "GET" and c["status"] == 200]
    assert blobs and all(c["digest_verified"] for c in blobs)
    kinds = {o["kind"] for o in doc["objects"]}
    assert {"index", "manifest", "config"} <= kinds
    assert any(c["platform"] == "linux/arm/v7" for c in calls if c["endpoint"] == "end-3")
    assert "## 客户端做了什么" in (demo["mitmdump-w"] / "report.zh.md").read_text()


def test_flow_files_hold_no_large_blob_bodies(demo):
    for name in LIVE:
        folder = demo[name]
        for call in read_captures([folder / "flows.mitm"]).calls:
            for body in (call.request_body, call.response_body):
                assert body is None or len(body) <= 65536


def test_registry_down_is_recorded_and_the_proxy_keeps_serving(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    with Proxy(tmp_path / "out", {REGISTRY_NAME: dead}, tmp_path / "conf") as proxy:
        for _ in range(2):
            with pytest.raises(LabError):
                run_client(["skopeo", "inspect", "--retry-times", "0", f"docker://{REGISTRY_NAME}/app:v1"],
                           proxy.env(), timeout=60)
    calls = events(tmp_path / "out")
    assert len([c for c in calls if c["endpoint"] == "end-1"]) >= 2
    assert all(c["endpoint"] in ("end-1", "v1-ping") and c["host"] == REGISTRY_NAME for c in calls)
    assert all(c["status"] is None and "Connect call failed" in c["error"] for c in calls)


def test_proxy_refuses_an_unwritable_output_folder_before_any_traffic(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "ocitrace", "proxy", "--port", str(free_port()),
                           "--out", str(blocker / "out"), "--confdir", str(tmp_path / "conf")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("ocitrace: cannot write to")


def test_plain_mitmdump_loads_the_addons_from_the_script(tmp_path):
    import ocitrace.addons

    script = Path(ocitrace.addons.__file__).with_name("script.py")
    out, port = tmp_path / "out", free_port()
    with Registry(tmp_path / "registry") as registry:
        argv = [str(Path(sys.executable).with_name("mitmdump")), "--listen-host", "127.0.0.1", "--listen-port",
                str(port), "-s", str(script), "--set", f"ocitrace_out={out}", "--set", f"confdir={tmp_path / 'conf'}",
                "--set", "connection_strategy=lazy", "--set", f"ocitrace_map={REGISTRY_NAME}={registry.upstream}"]
        with open(tmp_path / "mitmdump.log", "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: port_open(port), what="mitmdump to listen")
            opened = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            opened.request("GET", f"http://{REGISTRY_NAME}/v2/")
            assert opened.getresponse().status == 200
            wait_for(lambda: (out / "events.jsonl").exists() and events(out))
        finally:
            process.terminate()
            process.wait(timeout=30)
    [call] = events(out)
    assert (call["endpoint"], call["host"], call["upstream"]) == ("end-1", REGISTRY_NAME, registry.upstream)
    assert "end-1" in (out / "report.md").read_text()


def test_a_proxy_that_cannot_listen_fails_before_touching_the_earlier_session(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name, content in (("flows.mitm", b"earlier flows"), ("events.jsonl", b"{}\n"), ("report.md", b"# r\n")):
        (out / name).write_bytes(content)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "ocitrace", "proxy", "--port", str(taken.getsockname()[1]),
                               "--out", str(out), "--confdir", str(tmp_path / "conf")],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--port" in done.stderr
    assert "already in use" in done.stderr and "--mode" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "flows.mitm", "report.md"]
    assert (out / "flows.mitm").read_bytes() == b"earlier flows"


def test_a_client_aborting_mid_upload_is_recorded_as_aborted_with_the_bytes_seen(tmp_path):
    with Registry(tmp_path / "registry") as registry, \
            Proxy(tmp_path / "out", {REGISTRY_NAME: registry.upstream}, tmp_path / "conf") as proxy:
        opened = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        opened.request("POST", f"http://{REGISTRY_NAME}/v2/abort/blobs/uploads/", b"", {"Content-Length": "0"})
        answer = opened.getresponse()
        answer.read()
        location = urlsplit(answer.getheader("Location"))
        with socket.create_connection(("127.0.0.1", proxy.port)) as raw:
            raw.sendall(f"PATCH http://{REGISTRY_NAME}{location.path}?{location.query} HTTP/1.1\r\n"
                        f"Host: {REGISTRY_NAME}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            for _ in range(4):
                raw.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
            # Cut off once the upload is under way (the registry has bytes of it): a client gone before the proxy
            # even reached the registry has nothing streamed to tell.
            uploads = tmp_path / "registry" / "storage" / "docker" / "registry" / "v2" / "repositories" / "abort"
            wait_for(lambda: any(f.stat().st_size for f in uploads.glob("_uploads/*/data")), what="upload bytes")
        wait_for(lambda: len(events(tmp_path / "out")) == 2)
    patch = events(tmp_path / "out")[1]
    assert (patch["method"], patch["endpoint"], patch["status"]) == ("PATCH", "end-5", None)
    assert patch["request_bytes"] == 4 * 0x10000
    assert {"code": "upload-aborted", "severity": "warning", "bytes": 4 * 0x10000} in patch["findings"]


def test_a_blob_of_many_batches_streams_both_ways_intact_and_verified(tmp_path):
    blob = bytes(range(256)) * (24 << 12) + b"tail"  # 24 MiB and 4 bytes: six hashing batches, ~100 reads
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()

    def call(method, target, body=b"", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
        streamed = not isinstance(body, bytes)
        conn.request(method, f"http://{REGISTRY_NAME}{target}", body=body, headers=headers or {},
                     encode_chunked=streamed)
        answer = conn.getresponse()
        return answer, answer.read()

    def where(answer):
        location = urlsplit(answer.getheader("Location"))
        return f"{location.path}?{location.query}"

    with Registry(tmp_path / "registry") as registry, \
            Proxy(tmp_path / "out", {REGISTRY_NAME: registry.upstream}, tmp_path / "conf") as proxy:
        opened, _ = call("POST", "/v2/big/blob/blobs/uploads/", headers={"Content-Length": "0"})
        pieces = (blob[i:i + (1 << 20)] for i in range(0, len(blob), 1 << 20))  # docker's shape: one chunked PATCH
        patched, _ = call("PATCH", where(opened), pieces, {"Content-Type": "application/octet-stream"})
        closed, _ = call("PUT", f"{where(patched)}&digest={digest}", headers={"Content-Length": "0"})
        pulled, body = call("GET", f"/v2/big/blob/blobs/{digest}")
        assert (opened.status, patched.status, closed.status, pulled.status) == (202, 202, 201, 200)
        assert body == blob
        wait_for(lambda: len(events(tmp_path / "out")) == 4)
    post, patch, put, get = events(tmp_path / "out")
    assert (patch["endpoint"], patch["request_bytes"]) == ("end-5", len(blob))
    assert (put["endpoint"], put["body_digest"], put["digest_verified"]) == ("end-6", digest, True)
    assert (get["endpoint"], get["body_digest"], get["digest_verified"]) == ("end-2", digest, True)
    assert get["response_bytes"] == len(blob)


def wait_for(condition, timeout=20.0, what="the proxy to record the call"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.05)


def story_rows(report: str) -> list[str]:
    story = report.split("## What the clients did", 1)[1].split("\n## ", 1)[0]
    return [line for line in story.splitlines() if re.match(r"\| \d", line)]


@pytest.mark.parametrize("scenario", ["build-push", "manual", "pull"])
def test_the_article_stories_open_with_a_folded_story_of_about_ten_rows(demo, scenario):
    report = (demo[scenario] / "report.md").read_text()
    assert report.index("## What the clients did") < report.index("## All calls")
    assert 0 < len(story_rows(report)) <= 12


@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS])
def test_every_call_belongs_to_exactly_one_operation_with_its_client(demo, scenario):
    doc = json.loads(render_json_of(demo[scenario]))
    members = sorted(n for op in doc["operations"] for n in op["calls"])
    assert members == [c["index"] for c in doc["calls"]]
    assert all(op["client"] for op in doc["operations"])
    assert all(c["operation"] in {op["id"] for op in doc["operations"]} for c in doc["calls"])


def test_the_build_push_story_says_why(demo):
    doc = json.loads(render_json_of(demo["build-push"]))
    why = {c["why"]["code"] for c in doc["calls"] if c["why"]}
    assert {"ping", "named-by-index", "named-by-manifest", "diff-id", "absent", "source-has", "mounted",
            "uploaded", "platform-manifest", "index-last"} <= why
    [push] = [op for op in doc["operations"] if op["kind"] == "push"]
    assert (push["repository"], push["reference"], push["summary"]["mounted"]) == ("hj-public/test1", "new", 2)
    assert sorted(push["platforms"]) == ["linux/amd64", "linux/arm64"]


def test_the_diff_of_build_push_and_manual_names_what_only_build_push_did(demo):
    from ocitrace.analyzers.diff import Diff

    a, b = (analyze(read_captures([demo[name] / "flows.mitm"]).calls) for name in ("build-push", "manual"))
    only_a = {(method, step) for (method, _, step, _), na, nb in Diff(a, b).calls() if nb == 0}
    assert {("HEAD", "blob-exists"), ("POST", "mount"), ("PATCH", "upload"), ("PUT", "push-manifest")} <= only_a


def test_token_auth_shows_each_challenge_the_grant_of_each_token_and_both_refusals(demo):
    doc = json.loads(render_json_of(demo["auth"]))
    whys = [(c["method"], c["status"], c["why"]) for c in doc["calls"] if c["why"]]
    challenges = [w for m, s, w in whys if w["code"] == "challenge"]
    assert challenges and all(w["realm"] == "https://auth.test/token" and w["service"] == "secure.test"
                              for w in challenges)
    grants = {(w["scope"], w["granted"]) for m, s, w in whys if w["code"] == "token-granted"}
    assert ("repository:team/app:pull,push", "repository:team/app:pull,push") in grants  # alice
    assert ("repository:team/app:pull,push", "repository:team/app:pull") in grants  # bob may only pull
    denied = [(m, w["granted"]) for m, s, w in whys if w["code"] == "denied"]
    # bob's manifest PUT; carol's mount from team/app, which she may not read
    assert ("PUT", "repository:team/app:pull") in denied
    assert ("POST", "repository:other/idx:pull,push") in denied
    assert {w["code"] for m, s, w in whys} >= {"token-account", "login-check"}  # docker login
    report = (demo["auth"] / "report.md").read_text()
    assert "Log in to secure.test for repository:team/app:pull,push" in report


@pytest.mark.parametrize("scenario", LIVE)
def test_no_file_written_holds_a_password_or_a_usable_token(demo, scenario):
    """The bytes of every file, not parsed fields: passwords, Basic credentials, signed JWTs."""
    import base64

    secrets = [p.encode() for p in PASSWORDS.values()]
    secrets += [base64.b64encode(f"{user}:{p}".encode()) for user, p in PASSWORDS.items()]
    signed = re.compile(rb"eyJ[\w-]+\.eyJ[\w-]+\.(?!redacted\b)[\w-]{16,}")
    for path in demo[scenario].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s in data], path
            assert not signed.search(data), path


def test_basic_auth_with_htpasswd_is_told_and_its_password_never_written(tmp_path):
    import bcrypt

    password = "dave-Pa55-90ac"
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(b"dave:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)) + b"\n")
    auth = {"htpasswd": {"realm": "ocitrace basic", "path": str(htpasswd)}}
    layout = write_base_image(tmp_path / "layout")
    with Registry(tmp_path / "registry", auth=auth) as registry, \
            Proxy(tmp_path / "out", {REGISTRY_NAME: registry.upstream}, tmp_path / "conf") as proxy:
        env = proxy.env()
        run_client(["skopeo", "copy", "--dest-creds", f"dave:{password}", f"oci:{layout}:latest",
                    f"docker://{REGISTRY_NAME}/basic/app:v1"], env)
        run_client(["skopeo", "inspect", "--creds", f"dave:{password}", f"docker://{REGISTRY_NAME}/basic/app:v1"],
                   env)
        refused = run_client(["skopeo", "inspect", "--creds", "dave:wrong", f"docker://{REGISTRY_NAME}/basic/app:v1"],
                             env, fails=True)
    assert "unauthorized" in refused.lower() or "401" in refused
    records = events(tmp_path / "out")
    basic = [r for r in records if r["why"] and r["why"]["code"] == "challenge-basic"]
    assert basic and all(r["why"]["realm"] == "ocitrace basic" for r in basic)
    assert any(r["method"] == "PUT" and r["status"] == 201 and r["endpoint"] == "end-7" for r in records)
    for path in (tmp_path / "out").rglob("*"):
        data = path.read_bytes()
        assert password.encode() not in data and base64_of(f"dave:{password}") not in data, path
    report = (tmp_path / "out" / "report.md").read_text()
    assert "user name and password are needed (Basic, realm ocitrace basic)" in report


def base64_of(text: str) -> bytes:
    import base64

    return base64.b64encode(text.encode())


@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS])
def test_real_clients_and_the_real_registry_break_no_conformance_rule_today(demo, scenario):
    """The rules hold still on real traffic (the committed captures are checked in test_rules.py; this is a
    fresh recording, with today's clients)."""
    from ocitrace.analyzers import audit
    from ocitrace.analyzers.rules import rule

    analysis = analyze(read_captures([demo[scenario] / "flows.mitm"]).calls)
    broken = {code for code in audit.counts(analysis)
              if rule(code) and rule(code).kind == "conformance" and rule(code).severity != "info"}
    # oras-py attaches an SBOM to an image on a registry without a referrers API, and keeps no referrers tag
    assert broken == ({"referrers-tag-not-kept"} if scenario == "referrers" else set())


def test_an_artifact_is_linked_to_its_subject_and_the_referrers_tag_kept_by_the_client_that_does(demo):
    records = events(demo["referrers"])
    report = (demo["referrers"] / "report.md").read_text()
    assert " .-> " in report and "subject" in report  # the image graph links each artifact to its subject
    assert [r["status"] for r in records if r["endpoint"] == "end-12a"] == [404, 404]  # no referrers API
    pushed = [r for r in records if r["step"] == "push-referrers-tag"]
    assert [r["why"]["n"] for r in pushed] == [1, 2]  # the list fetched, an artifact added, pushed back
    [oras] = [r for r in records if r["method"] == "PUT" and r["tag"] == "sbom"]
    assert any(f["code"] == "no-oci-subject" for f in oras["findings"])
    doc = json.loads(render_json_of(demo["referrers"]))
    assert [f for f in doc["findings"] if f["code"] == "referrers-tag-not-kept"][0]["call"] == oras["index"]


def test_mitmweb_shows_a_recorded_index_with_the_oci_view_drawn_by_chromium(demo, tmp_path):
    from ocitrace.mitmweb import screenshot

    png = tmp_path / "view.png"
    shown = screenshot(demo["mitmdump-w"] / "flows.mitm", png)
    assert shown["view_name"] == "OCI" and "Index: 8 platforms + 8 attestations" in shown["text"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

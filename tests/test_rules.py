"""The rules table (rules.yaml): each rule fires on traffic that breaks it, and holds still on real traffic."""

import json
from pathlib import Path

import pytest
from conftest import make_flow, sha256
from ocitrace.analyzers import audit
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import call_from_state, read_captures
from ocitrace.analyzers.conformance import CALL_CHECKS, END_CHECKS
from ocitrace.analyzers.limits import accounts
from ocitrace.analyzers.manifests import DOCKER_CONFIG, OCI_INDEX, OCI_MANIFEST
from ocitrace.analyzers.report import render
from ocitrace.analyzers.rules import README_START, rules, rules_markdown, with_rules
from ocitrace.analyzers.strings import strings

R = "https://registry.test"
UA = {"User-Agent": "skopeo/1.9.3"}
ACCEPT = {**UA, "Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
LAYER = b"layer" * 100
CONFIG = json.dumps({"architecture": "amd64", "os": "linux"}).encode()


def manifest(subject: bytes | None = None, media_type: str | None = OCI_MANIFEST) -> bytes:
    body = {"schemaVersion": 2, **({"mediaType": media_type} if media_type else {}),
            "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(CONFIG), "size": len(CONFIG)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(LAYER),
                        "size": len(LAYER)}]}
    if subject is not None:
        body["subject"] = {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)}
    return json.dumps(body).encode()


MANIFEST = manifest()


def get(path, status=200, body=b"", req=ACCEPT, **headers):
    return make_flow("GET", f"{R}{path}", status, resp_body=body, req_headers=req, resp_headers=headers)


def head(path, status=200, **headers):
    return make_flow("HEAD", f"{R}{path}", status, req_headers=ACCEPT, resp_headers=headers)


def manifest_get(body=MANIFEST, path="/v2/app/manifests/v1", req=ACCEPT, **headers):
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256(body), **headers}
    return get(path, body=body, req=req, **headers)


def blob_get(body=LAYER, repo="app"):
    return get(f"/v2/{repo}/blobs/{sha256(body)}", body=body, **{"Docker-Content-Digest": sha256(body)})


def put_manifest(body=MANIFEST, reference="v1", content_type=OCI_MANIFEST, status=201, **headers):
    answer = {"Location": f"/v2/app/manifests/{sha256(body)}", "Docker-Content-Digest": sha256(body), **headers}
    return make_flow("PUT", f"{R}/v2/app/manifests/{reference}", status, req_body=body,
                     req_headers={**UA, "Content-Type": content_type}, resp_headers=answer)


def upload(blob=LAYER, repo="app", session="s1", chunks=(None,), post=None, patch=None, close=None):
    """POST, PATCH per chunk (with its Content-Range when given), PUT ?digest=: a blob in one session."""
    up = f"/v2/{repo}/blobs/uploads/{session}"
    flows = [make_flow("POST", f"{R}/v2/{repo}/blobs/uploads/", 202, req_headers=UA, resp_headers=post or {
        "Location": up, "Range": "0-0", "Docker-Upload-UUID": session})]
    start = 0
    parts = [blob] if chunks == (None,) else [blob[a:b] for a, b in chunks]
    ranges = [None] if chunks == (None,) else [f"{a}-{b - 1}" for a, b in chunks]
    for part, content_range in zip(parts, ranges, strict=True):
        start += len(part)
        flows.append(make_flow("PATCH", f"{R}{up}", 202, req_body=part,
                               req_headers={**UA, **({"Content-Range": content_range} if content_range else {})},
                               resp_headers=patch or {"Location": up, "Range": f"0-{start - 1}"}))
    flows.append(make_flow("PUT", f"{R}{up}?digest={sha256(blob)}", 201, req_headers=UA, resp_headers=close or {
        "Location": f"/v2/{repo}/blobs/{sha256(blob)}", "Docker-Content-Digest": sha256(blob)}))
    return flows


def token(scope="repository:app:pull", expires=300):
    return make_flow("GET", f"https://auth.test/token?service=registry.test&scope={scope}", 200, req_headers=UA,
                     resp_body=json.dumps({"token": "opaque", "expires_in": expires}).encode())


def ping():
    return get("/v2/", req=UA, **{"Docker-Distribution-API-Version": "registry/2.0"})


# One case per rule: the calls that break it, as a client or a registry would make them.
FIRES = {
    "status-off-spec": lambda: [get("/v2/app/manifests/v1", 418)],
    "no-digest-header": lambda: [get("/v2/app/manifests/v1", body=MANIFEST, **{"Content-Type": OCI_MANIFEST})],
    "no-location": lambda: upload(post={"Range": "0-0"}),
    "no-range": lambda: upload(patch={"Location": "/v2/app/blobs/uploads/s1"}),
    "no-api-version": lambda: [get("/v2/", req=UA)],
    "digest-mismatch": lambda: [get(f"/v2/app/blobs/{sha256(b'promised')}", body=b"other",
                                    **{"Docker-Content-Digest": sha256(b"promised")})],
    "content-type-not-media-type": lambda: [manifest_get(**{"Content-Type": "application/json"})],
    "content-length-wrong": lambda: [manifest_get(), head("/v2/app/manifests/v1", **{
        "Docker-Content-Digest": sha256(MANIFEST), "Content-Length": str(len(MANIFEST) + 1)})],
    "error-body-malformed": lambda: [get("/v2/app/manifests/v9", 404, body=b'{"error": "not found"}')],
    "error-code-unknown": lambda: [get("/v2/app/manifests/v9", 404, body=b'{"errors": [{"code": "NOPE"}]}')],
    "no-oci-subject": lambda: [put_manifest(manifest(subject=MANIFEST), reference=sha256(manifest(MANIFEST)))],
    "link-malformed": lambda: [get("/v2/app/tags/list", body=b'{"name":"app","tags":["a"]}',
                                   Link="/v2/app/tags/list?n=1&last=a")],
    "sent-digest-mismatch": lambda: [put_manifest(reference=sha256(b"not this manifest"))],
    "put-media-type-mismatch": lambda: [put_manifest(content_type="application/json")],
    "accept-missing": lambda: [manifest_get(req=UA)],
    "chunk-range-malformed": lambda: upload(chunks=((0, 500),))[:1] + [make_flow(
        "PATCH", f"{R}/v2/app/blobs/uploads/s1", 202, req_body=LAYER,
        req_headers={**UA, "Content-Range": "bytes 0-499"},
        resp_headers={"Location": "/v2/app/blobs/uploads/s1", "Range": "0-499"})],
    "chunk-out-of-order": lambda: upload(chunks=((0, 200), (100, 500))),
    "chunk-length-mismatch": lambda: upload(chunks=((0, 200),))[:1] + [make_flow(
        "PATCH", f"{R}/v2/app/blobs/uploads/s1", 202, req_body=LAYER[:100],
        req_headers={**UA, "Content-Range": "0-199"},
        resp_headers={"Location": "/v2/app/blobs/uploads/s1", "Range": "0-99"})],
    "referrers-content-type": lambda: [get(f"/v2/app/referrers/{sha256(MANIFEST)}", body=json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
        **{"Content-Type": "application/json"})],
    "upload-left-open": lambda: upload()[:2],
    "blob-unreferenced": lambda: [*upload(blob=b"orphan"), put_manifest()],
    "referrers-tag-not-kept": lambda: [put_manifest(manifest(subject=MANIFEST), reference=sha256(manifest(MANIFEST)))],
    "fetched-again": lambda: [ping(), blob_get(), blob_get()],
    "get-could-be-head": lambda: [ping(), manifest_get(), manifest_get()],
    "token-refetched": lambda: [token(), token()],
    "could-mount": lambda: [ping(), blob_get(repo="base"), *upload(repo="app")],
    "tiny-chunks": lambda: upload(chunks=((0, 200), (200, 500))),
    "ping-unused": lambda: [ping(), ping(), manifest_get()],
    "rate-limited": lambda: [get("/v2/app/manifests/v1", 429, body=b'{"errors":[{"code":"TOOMANYREQUESTS"}]}',
                                 **{"Retry-After": "60"})],
}


def run(flows):
    return analyze([call_from_state(f.get_state()) for f in flows])


def test_every_rule_has_its_case_its_words_and_its_check():
    codes = [r.code for r in rules()]
    assert len(codes) == len(set(codes)) and set(FIRES) == set(codes)
    for r in rules():
        for key in (f"finding_{r.code}", f"rule_{r.code}"):
            assert set(strings()[key]) >= {"en", "zh"}, key
        assert r.check in (CALL_CHECKS if r.at == "call" else END_CHECKS), r.code


@pytest.mark.parametrize("code", FIRES)
def test_each_rule_fires_on_traffic_that_breaks_it(code):
    analysis = run(FIRES[code]())
    assert code in audit.counts(analysis)
    for lang, heading in (("en", "## Findings"), ("zh", "## 发现的问题")):
        section = render(analysis, "markdown", lang).split(heading, 1)[1].split("\n## ", 1)[0]
        assert f"{code}:" in section


def test_a_conforming_push_and_pull_hold_every_rule():
    analysis = run([ping(), *upload(blob=LAYER), *upload(blob=CONFIG, session="s2"), put_manifest(),
                    ping(), manifest_get(), blob_get(CONFIG), blob_get(LAYER)])
    assert audit.counts(analysis) == {}
    assert "None: every rule of the table held" in render(analysis, "markdown")


CAPTURES = sorted(Path(__file__).parent.parent.glob("captures/*/*/flows.mitm"))
# What the demo's real clients do wastefully, as the capture shows it (each checked by hand): skopeo fetches
# a second token for the same scope at once; copying within one registry, skopeo uploads what it just read.
KNOWN_WASTE = {"auth": {"token-refetched"}, "mitmdump-w": {"could-mount"}}


# What the demo's real clients break, checked by hand: oras-py pushes an artifact with a subject to a registry
# without a referrers API, and never pushes the referrers tag the spec then asks of it.
KNOWN_BROKEN = {"referrers": {"referrers-tag-not-kept"}}
# Told, not broken: distribution 2.8 has no referrers API, so it sends no OCI-Subject (its right).
KNOWN_TOLD = {"referrers": {"no-oci-subject"}}


@pytest.mark.parametrize("flows", CAPTURES, ids=lambda p: p.parent.name)
def test_real_clients_and_a_real_registry_break_no_rule_but_the_known_ones(flows):
    analysis = analyze(read_captures([flows]).calls)
    found = set(audit.counts(analysis))
    kinds = {code: next(r for r in rules() if r.code == code) for code in found}
    broken = {code for code, r in kinds.items() if r.kind == "conformance" and r.severity != "info"}
    told = {code for code, r in kinds.items() if r.kind == "conformance" and r.severity == "info"}
    name = flows.parent.name
    assert broken == KNOWN_BROKEN.get(name, set()) and told == KNOWN_TOLD.get(name, set())
    assert found - broken - told == KNOWN_WASTE.get(name, set())


def test_findings_are_counted_in_json_with_their_side_and_kind():
    doc = json.loads(render(run(FIRES["digest-mismatch"]()), "json"))
    assert doc["finding_counts"] == {"digest-mismatch": 2}  # against the URL, and against Docker-Content-Digest
    found = [f for f in doc["findings"] if f["code"] == "digest-mismatch"]
    assert {f["against"] for f in found} == {"url", "Docker-Content-Digest"}
    assert {(f["call"], f["severity"], f["side"], f["kind"]) for f in found} == {(1, "error", "registry",
                                                                                  "conformance")}


def test_the_readme_lists_the_rules_as_the_table_says():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert README_START in readme and rules_markdown() in readme
    assert with_rules(readme) == readme, "renew it: python -m ocitrace.analyzers.rules README.md"


# --- rate limits, on answers shaped like Docker Hub's ---

def hub(method, path, remaining, status=200, body=b""):
    headers = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": f"{remaining};w=21600",
               "docker-ratelimit-source": "203.0.113.7", "Content-Type": OCI_INDEX,
               "Docker-Content-Digest": sha256(body or b"x")}
    return make_flow(method, f"https://registry-1.docker.io{path}", status, resp_body=body, req_headers=ACCEPT,
                     resp_headers=headers)


def test_a_docker_hub_session_counts_manifest_gets_not_heads_and_what_remained():
    flows = [hub("HEAD", "/v2/library/debian/manifests/latest", 76),
             hub("GET", "/v2/library/debian/manifests/latest", 75, body=MANIFEST),
             hub("GET", f"/v2/library/debian/manifests/{sha256(MANIFEST)}", 74, body=MANIFEST),
             hub("GET", "/v2/library/debian/manifests/latest", 0, status=429,
                 body=b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}')]
    flows[-1].response.headers["Retry-After"] = "3600"
    analysis = run(flows)
    [account] = accounts(analysis.calls)
    assert (account.limit, account.window, account.first_remaining, account.last_remaining) == (100, 21600, 76, 0)
    assert (account.manifest_gets, account.manifest_heads, account.limited, account.retry_after) == (2, 1, 1, "3600")
    assert account.counted_by == "address"
    report = render(analysis, "markdown")
    assert "100 per 6 h" in report and "76 → 0" in report and "IP address" in report
    assert "203.0.113.7" not in report + render(analysis, "json")  # who is counted, never the address
    assert audit.counts(analysis)["rate-limited"] == 1


@pytest.mark.parametrize("headers, expected", [
    ({"RateLimit-Limit": "60", "RateLimit-Remaining": "59", "RateLimit-Reset": "30"}, (60, 59, None)),
    ({"RateLimit": "limit=10, remaining=3, reset=5", "RateLimit-Policy": "10;w=60"}, (10, 3, 60)),
    ({"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999"}, (5000, 4999, None)),
])
def test_the_rate_limit_header_families_are_read(headers, expected):
    [account] = accounts(run([get("/v2/app/manifests/v1", body=MANIFEST, **{"Content-Type": OCI_MANIFEST,
                                                                             **headers})]).calls)
    assert (account.limit, account.last_remaining, account.window) == expected



# --- a registry that misbehaves on purpose, behind the real proxy: every registry rule fires ---

class Misbehaving:
    """Answers each registry call the spec's way but for one thing, a different one per path."""

    BLOB = b"the blob the registry promised"
    PUSHED = manifest(subject=MANIFEST)

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bad = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                bad.answer(self)

            do_HEAD = do_POST = do_PATCH = do_PUT = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def answer(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        version = {"Docker-Distribution-API-Version": "registry/2.0"}
        digest = {"Docker-Content-Digest": sha256(MANIFEST)}
        routes = {
            ("GET", "/v2/"): (200, {}, b"{}"),  # no-api-version
            ("GET", "/v2/bad/manifests/v1"): (200, {"Content-Type": "application/json"}, MANIFEST),
            ("HEAD", "/v2/bad/manifests/v1"): (200, {**digest, "Content-Type": OCI_MANIFEST,
                                                     "Content-Length": str(len(MANIFEST) + 5)}, b""),
            ("GET", f"/v2/bad/blobs/{sha256(self.BLOB)}"): (200, {"Docker-Content-Digest": sha256(self.BLOB)},
                                                            b"another blob altogether"),
            ("GET", "/v2/bad/manifests/missing"): (404, {"Content-Type": "application/json"}, b'{"error": "nope"}'),
            ("GET", "/v2/bad/manifests/gone"): (404, {"Content-Type": "application/json"},
                                                b'{"errors": [{"code": "GONE_AWAY", "message": "gone"}]}'),
            ("GET", "/v2/bad/tags/list"): (200, {"Link": "/v2/bad/tags/list?last=a"}, b'{"name":"bad","tags":["a"]}'),
            ("POST", "/v2/bad/blobs/uploads/"): (202, {"Range": "0-0"}, b""),  # no Location
            ("PATCH", "/v2/bad/blobs/uploads/u1"): (202, {"Location": "/v2/bad/blobs/uploads/u1"}, b""),  # no Range
            ("PUT", "/v2/bad/manifests/v2"): (201, {"Location": "/v2/bad/manifests/v2",
                                                    "Docker-Content-Digest": sha256(self.PUSHED)}, b""),
            ("GET", "/v2/bad/manifests/teapot"): (418, {}, b""),
            ("GET", f"/v2/bad/referrers/{sha256(MANIFEST)}"): (200, {"Content-Type": "application/json"}, json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()),
            ("GET", "/v2/bad/manifests/busy"): (429, {"Retry-After": "30", "Content-Type": "application/json"},
                                                b'{"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}'),
        }
        status, headers, body = routes.get((h.command, h.path.split("?")[0]), (404, {}, b""))
        h.send_response(status)
        for name, value in {**(version if h.path != "/v2/" else {}), **headers}.items():
            h.send_header(name, value)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)


REGISTRY_RULES = {r.code for r in rules() if r.side == "registry"}


@pytest.mark.e2e
def test_a_misbehaving_registry_behind_the_proxy_breaks_every_registry_rule(tmp_path):
    import http.client
    import threading

    from ocitrace.lab import Proxy

    bad = Misbehaving()
    threading.Thread(target=bad.server.serve_forever, daemon=True).start()
    try:
        with Proxy(tmp_path / "out", {"bad.test": f"http://127.0.0.1:{bad.port}"}, tmp_path / "conf") as proxy:
            calls = [("GET", "/v2/", b""), ("GET", "/v2/bad/manifests/v1", b""), ("HEAD", "/v2/bad/manifests/v1", b""),
                     ("GET", f"/v2/bad/blobs/{sha256(Misbehaving.BLOB)}", b""),
                     ("GET", "/v2/bad/manifests/missing", b""), ("GET", "/v2/bad/manifests/gone", b""),
                     ("GET", "/v2/bad/tags/list", b""), ("POST", "/v2/bad/blobs/uploads/", b""),
                     ("PATCH", "/v2/bad/blobs/uploads/u1", b"chunk"),
                     ("PUT", "/v2/bad/manifests/v2", Misbehaving.PUSHED),
                     ("GET", "/v2/bad/manifests/teapot", b""), ("GET", "/v2/bad/manifests/busy", b""),
                     ("GET", f"/v2/bad/referrers/{sha256(MANIFEST)}", b"")]
            for method, path, body in calls:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
                headers = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}", "User-Agent": "ocitrace-test/1"}
                if method == "PUT":
                    headers["Content-Type"] = OCI_MANIFEST
                conn.request(method, f"http://bad.test{path}", body=body or None, headers=headers)
                conn.getresponse().read()
                conn.close()
    finally:
        bad.server.shutdown()
    records = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert len(records) == 13
    fired = {f["code"] for r in records for f in r["findings"]}
    assert REGISTRY_RULES <= fired, REGISTRY_RULES - fired
    client_rules = {r.code for r in rules() if r.side == "client" and r.kind == "conformance"}
    assert not fired & client_rules  # this client keeps to the spec
    report = (tmp_path / "out" / "report.md").read_text()
    findings = report.split("## Findings", 1)[1].split("\n## ", 1)[0]
    assert all(f"{code}:" in findings for code in REGISTRY_RULES)


# --- and hold still where real registries and clients do what the spec allows ---

def gzipped_manifest():
    import gzip

    flow = manifest_get(path=f"/v2/app/manifests/{sha256(MANIFEST)}", **{"Content-Encoding": "gzip"})
    flow.response.raw_content = gzip.compress(MANIFEST)  # nginx `gzip on` before a registry
    return [flow]


def redirect(status):
    return [get(f"/v2/app/blobs/{sha256(LAYER)}", status, Location=f"https://cdn.test/blob/{sha256(LAYER)}"),
            make_flow("GET", f"https://cdn.test/blob/{sha256(LAYER)}", 200, resp_body=LAYER, req_headers=UA)]


def link(value):
    return [get("/v2/app/tags/list?n=1", body=b'{"name":"app","tags":["a"]}', Link=value)]


ERROR = b'{"errors": [{"code": "%s", "message": "m"}]}'
HOLDS = {
    # distribution answers an empty session's POST with `Range: 0-0`; the first chunk then starts at 0
    "content-range chunks after Range 0-0": (lambda: upload(chunks=((0, 200), (200, 500))), "chunk-out-of-order"),
    "a gzip-encoded manifest": (gzipped_manifest, "digest-mismatch"),
    "a blob redirected with 302 (Quay, GCR)": (lambda: redirect(302), "status-off-spec"),
    "a manifest refused with 400 MANIFEST_INVALID": (lambda: [put_manifest(status=400, **{
        "Content-Type": "application/json"})], "status-off-spec"),
    "a push refused with 405 UNSUPPORTED (pull-through cache)": (lambda: [make_flow(
        "POST", f"{R}/v2/app/blobs/uploads/", 405, req_headers=UA, resp_body=ERROR % b"UNSUPPORTED")],
        "status-off-spec"),
    "a 500 with distribution's UNKNOWN": (lambda: [get("/v2/app/manifests/v1", 500, body=ERROR % b"UNKNOWN")],
                                          "error-code-unknown"),
    "a Link with a type param": (lambda: link('</v2/app/tags/list?n=1&last=a>; rel="next"; type="application/json"'),
                                 "link-malformed"),
    "a Link with rel last and in capitals": (lambda: link('</v2/app/tags/list?last=a>; type="x"; REL="next"'),
                                             "link-malformed"),
    "two Links": (lambda: link('</v2/app/tags/list?last=z>; rel="prev", </v2/app/tags/list?last=a>; rel="next"'),
                  "link-malformed"),
    "a mount refused (202) then cancelled, the blob uploaded elsewhere": (lambda: [
        make_flow("POST", f"{R}/v2/app/blobs/uploads/?mount={sha256(LAYER)}&from=base", 202, req_headers=UA,
                  resp_headers={"Location": "/v2/app/blobs/uploads/m1", "Range": "0-0"}),
        make_flow("DELETE", f"{R}/v2/app/blobs/uploads/m1", 204, req_headers=UA),
        *upload(repo="other")], "could-mount"),
    "chunks with Content-Range and no Range in the answers": (lambda: upload(
        chunks=((0, 200), (200, 500)), patch={"Location": "/v2/app/blobs/uploads/s1"}), "chunk-out-of-order"),
    "a session whose Location changes with each chunk": (lambda: [
        make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, req_headers=UA, resp_headers={
            "Location": "/v2/app/blobs/uploads/AAA1", "Range": "0-0"}),
        make_flow("PATCH", f"{R}/v2/app/blobs/uploads/AAA1", 202, req_body=LAYER[:200], req_headers=UA,
                  resp_headers={"Location": "/v2/app/blobs/uploads/BBB2", "Range": "0-199"}),
        make_flow("PATCH", f"{R}/v2/app/blobs/uploads/BBB2", 202, req_body=LAYER[200:], req_headers=UA,
                  resp_headers={"Location": "/v2/app/blobs/uploads/CCC3", "Range": f"0-{len(LAYER) - 1}"}),
        make_flow("PUT", f"{R}/v2/app/blobs/uploads/CCC3?digest={sha256(LAYER)}", 201, req_headers=UA,
                  resp_headers={"Location": f"/v2/app/blobs/{sha256(LAYER)}"})], "upload-left-open"),
    "a cancel answered 404": (lambda: [*upload()[:2], make_flow("DELETE", f"{R}/v2/app/blobs/uploads/s1", 404,
                                                                req_headers=UA)], "upload-left-open"),
    "a range of a blob, then the whole of it": (lambda: [
        make_flow("GET", f"{R}/v2/app/blobs/{sha256(LAYER)}", 206, resp_body=LAYER[:10],
                  req_headers={**UA, "Range": "bytes=0-9"}, resp_headers={"Content-Range": f"bytes 0-9/{len(LAYER)}"}),
        make_flow("GET", f"{R}/v2/app/blobs/{sha256(LAYER)}", 200, resp_body=LAYER, req_headers=UA)],
        "fetched-again"),
    "a session the registry dropped after a refused close (distribution: its next call answered 404)": (lambda: [
        *upload()[:2], make_flow("PUT", f"{R}/v2/app/blobs/uploads/s1?digest={sha256(b'wrong')}", 400,
                                 req_headers=UA, resp_body=b'{"errors": [{"code": "DIGEST_INVALID"}]}'),
        make_flow("GET", f"{R}/v2/app/blobs/uploads/s1", 404, req_headers=UA,
                  resp_body=b'{"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]}')], "upload-left-open"),
    "a blob pushed again after the manifest that names it": (lambda: [*upload(), put_manifest(),
                                                                     *upload(session="s2")], "blob-unreferenced"),
}


@pytest.mark.parametrize("case", HOLDS)
def test_each_rule_holds_still_on_what_the_spec_allows(case):
    flows, code = HOLDS[case]
    assert code not in audit.counts(run(flows()))


def test_a_session_whose_location_changes_is_one_session_and_its_blob_verified():
    calls = run(HOLDS["a session whose Location changes with each chunk"][0]()).calls
    assert {item.session for item in calls} == {"AAA1"} and calls[-1].digest_verified is True


def test_a_gzip_encoded_manifest_is_decoded_and_verified():
    [item] = run(gzipped_manifest()).calls
    assert item.digest_verified is True and item.object is not None


def test_the_newest_ratelimit_draft_and_two_counters_are_read_apart():
    newest = get("/v2/app/manifests/v1", body=MANIFEST, **{"Content-Type": OCI_MANIFEST,
                                                           "RateLimit": '"default";r=50;t=30',
                                                           "RateLimit-Policy": '"default";q=100;w=3600'})
    [account] = accounts(run([newest]).calls)
    assert (account.limit, account.last_remaining, account.window) == (100, 50, 3600)
    anonymous = hub("GET", "/v2/library/debian/manifests/latest", 3, body=MANIFEST)
    logged_in = hub("GET", "/v2/library/debian/manifests/latest", 149, body=MANIFEST)
    logged_in.response.headers["docker-ratelimit-source"] = "6f1e0c3a-account-id"
    counters = {a.counted_by: a.last_remaining for a in accounts(run([anonymous, logged_in]).calls)}
    assert counters == {"address": 3, "account": 149}

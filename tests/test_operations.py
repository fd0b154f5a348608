"""Operations: calls grouped into what a client did, each call's step and the why of it, folded as the story."""

import base64
import json

import pytest
from conftest import english_in, make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.manifests import DOCKER_CONFIG, OCI_INDEX, OCI_MANIFEST
from ocitrace.analyzers.operations import client_name
from ocitrace.analyzers.report import render
from ocitrace.analyzers.story import fold, ranges, sections

R = "https://registry.test"
SKOPEO = {"User-Agent": "skopeo/1.9.3"}
BUILDAH = {"User-Agent": "Buildah/1.28.2"}
DOCKER = {"User-Agent": "docker/28.2.2 go/go1.24.3 UpstreamClient(Docker-Client/28.2.2 \\(linux\\))"}
LAYER = b"layer-bytes" * 50
CONFIG = json.dumps({"architecture": "arm64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [sha256(b"uncompressed")]}}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(CONFIG), "size": len(CONFIG)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": sha256(LAYER), "size": len(LAYER)}]}).encode()
INDEX = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    {"mediaType": OCI_MANIFEST, "digest": sha256(MANIFEST), "size": len(MANIFEST),
     "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()


def run(*flows):
    return analyze([call_from_state(f.get_state()) for f in flows])


def get(path, status=200, body=b"", ua=SKOPEO, **headers):
    return make_flow("GET", f"{R}{path}", status, resp_body=body, req_headers=ua, resp_headers=headers)


def head(path, status, ua=SKOPEO):
    return make_flow("HEAD", f"{R}{path}", status, req_headers=ua)


def upload(repo, session, blob, ua=SKOPEO):
    """POST, PATCH, PUT of one blob: three flows."""
    up = f"{R}/v2/{repo}/blobs/uploads/{session}"
    return (make_flow("POST", f"{R}/v2/{repo}/blobs/uploads/", 202, req_headers=ua,
                      resp_headers={"Location": f"{up}?_state=a", "Docker-Upload-UUID": session}),
            make_flow("PATCH", f"{up}?_state=a", 202, req_body=blob, req_headers=ua),
            make_flow("PUT", f"{up}?_state=b&digest={sha256(blob)}", 201, req_headers=ua,
                      resp_headers={"Docker-Content-Digest": sha256(blob)}))


def put_manifest(repo, reference, body, media_type, ua=SKOPEO):
    return make_flow("PUT", f"{R}/v2/{repo}/manifests/{reference}", 201, req_body=body, req_headers={
        **ua, "Content-Type": media_type}, resp_headers={"Docker-Content-Digest": sha256(body)})


def pull_one_platform(ua=SKOPEO):
    return (get("/v2/", ua=ua), get("/v2/app/manifests/v1", body=INDEX, ua=ua, **{"Content-Type": OCI_INDEX}),
            get(f"/v2/app/manifests/{sha256(MANIFEST)}", body=MANIFEST, ua=ua, **{"Content-Type": OCI_MANIFEST}),
            get(f"/v2/app/blobs/{sha256(CONFIG)}", body=CONFIG, ua=ua),
            get(f"/v2/app/blobs/{sha256(LAYER)}", body=LAYER, ua=ua))


def reasons(analysis):
    return [(item.step, item.reason.code if item.reason else None) for item in analysis.calls]


def test_a_pull_of_one_platform_is_one_operation_that_says_why_each_call_was_made():
    a = run(*pull_one_platform())
    [op] = a.operations
    assert (op.shown_kind, op.client, op.repository, op.reference, op.platforms) == (
        "pull", "skopeo/1.9.3", "app", "v1", ["linux/arm64"])
    assert reasons(a) == [("ping", "ping"), ("index", "tag-names-index"), ("manifest", "named-by-index"),
                          ("config", "named-by-manifest"), ("layer", "named-by-manifest")]
    assert dict(a.calls[2].reason.values) == {"call": 2, "platform": "linux/arm64"}
    assert [item.operation for item in a.calls] == [1] * 5


def test_manifests_and_configs_without_layers_are_an_inspect():
    a = run(*pull_one_platform()[:4])
    assert a.operations[0].shown_kind == "inspect"


def test_a_push_counts_what_it_mounted_found_and_uploaded_and_says_why():
    config = CONFIG
    flows = [get("/v2/"), head(f"/v2/app/blobs/{sha256(config)}", 404), *upload("app", "s-1", config),
             head(f"/v2/base/blobs/{sha256(LAYER)}", 200),
             make_flow("POST", f"{R}/v2/app/blobs/uploads/?mount={sha256(LAYER)}&from=base", 201, req_headers=SKOPEO),
             put_manifest("app", sha256(MANIFEST), MANIFEST, OCI_MANIFEST),
             put_manifest("app", "v1", INDEX, OCI_INDEX)]
    a = run(*flows)
    [op] = a.operations
    assert op.kind == "push" and op.reference == "v1"
    assert op.summary() | {"steps": None} == {"steps": None, "manifests": 2, "mounted": 1, "present": 0,
                                               "uploaded": 1, "uploaded_bytes": len(config)}
    assert reasons(a) == [("ping", "ping"), ("blob-exists", "absent"), ("upload", None), ("upload", None),
                          ("upload", "uploaded"), ("blob-elsewhere", "source-has"), ("mount", "mounted"),
                          ("push-manifest", "platform-manifest"), ("push-index", "index-last")]
    assert dict(a.calls[4].reason.values) == {"digest": sha256(config), "bytes": len(config), "chunks": 1}
    assert dict(a.calls[6].reason.values) == {"repository": "base", "call": 6}
    assert a.calls[7].platform is not None  # the pushed config was decoded: the manifest's platform is known
    assert dict(a.calls[8].reason.values) == {"manifests": 1}


def test_interleaved_uploads_to_two_repositories_come_apart():
    one, two = b"first blob" * 10, b"second blob" * 10
    a1, a2, a3 = upload("one", "s-a", one)
    b1, b2, b3 = upload("two", "s-b", two)
    a = run(a1, b1, a2, b2, b3, a3)
    by_repo = {op.repository: op for op in a.operations}
    assert set(by_repo) == {"one", "two"}
    assert [u.digest for u in by_repo["one"].uploads.values()] == [sha256(one)]
    assert [u.digest for u in by_repo["two"].uploads.values()] == [sha256(two)]
    assert all(item.digest_verified for item in a.calls if item.call.method == "PUT")


def test_two_clients_at_once_are_two_operations():
    skopeo, buildah = pull_one_platform(SKOPEO), pull_one_platform(BUILDAH)
    mixed = [flow for pair in zip(skopeo, buildah, strict=True) for flow in pair]
    a = run(*mixed)
    assert sorted((op.client, len(op.calls)) for op in a.operations) == [("Buildah/1.28.2", 5), ("skopeo/1.9.3", 5)]


def test_a_token_exchange_is_its_own_operation_and_names_what_was_asked():
    challenge = 'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:app:pull"'
    a = run(get("/v2/app/manifests/v1", 401, **{"WWW-Authenticate": challenge}),
            make_flow("GET", "https://auth.test/token?service=registry.test&scope=repository:app:pull", 200,
                      req_headers=SKOPEO),
            get("/v2/app/manifests/v1", body=INDEX, **{"Content-Type": OCI_INDEX}))
    auth, pull = a.operations
    assert (auth.kind, [i + 1 for i in auth.calls], pull.kind, [i + 1 for i in pull.calls]) == (
        "auth", [1, 2], "pull", [3])
    assert (a.calls[0].reason.code, dict(a.calls[0].reason.values)) == ("challenge-scope", {
        "realm": "https://auth.test/token", "service": "registry.test", "scope": "repository:app:pull"})
    assert (a.calls[1].reason.code, dict(a.calls[1].reason.values)) == ("token", {"scope": "repository:app:pull"})


def jwt(access, sub="alice"):
    """A token as Docker token servers sign them: the grant in the `access` claim (the signature is not read)."""
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256'})}.{part({'sub': sub, 'access': access, 'iat': 1, 'exp': 301})}.c2lnbmF0dXJl"


def token_answer(*access, expires=300):
    grants = [{"type": "repository", "name": name, "actions": actions.split(",")} for name, actions in access]
    return json.dumps({"token": jwt(grants), "expires_in": expires}).encode()


def login(scope, *granted, ua=SKOPEO):
    """GET /v2/ answered 401 (Docker token auth), then the token fetch for `scope`."""
    return (get("/v2/", 401, ua=ua, **{"WWW-Authenticate": 'Bearer realm="https://auth.test/token",'
                                                           'service="registry.test"'}),
            make_flow("GET", f"https://auth.test/token?service=registry.test&scope={scope}", 200,
                      req_headers=ua, resp_body=token_answer(*granted)))


def test_a_token_answer_says_what_it_granted_and_for_how_long():
    a = run(*login("repository:app:pull,push", ("app", "pull")))
    assert (a.calls[1].reason.code, dict(a.calls[1].reason.values)) == (
        "token-granted", {"scope": "repository:app:pull,push", "granted": "repository:app:pull", "expires": 300})
    assert render(a, "markdown").count("Log in to registry.test for repository:app:pull,push") == 1
    assert a.operations[0].summary()["scope"] == "repository:app:pull,push"  # as JSON says it


def test_a_refusal_for_insufficient_scope_is_a_failed_step_of_the_push_naming_what_the_token_granted():
    denied = 'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:app:pull,push",' \
             'error="insufficient_scope"'
    a = run(*login("repository:app:pull,push", ("app", "pull")), head(f"/v2/app/blobs/{sha256(LAYER)}", 200),
            make_flow("POST", f"{R}/v2/app/blobs/uploads/", 401, req_headers=SKOPEO,
                      resp_headers={"WWW-Authenticate": denied}))
    auth, push = a.operations
    assert (auth.kind, push.kind, a.calls[-1].step) == ("auth", "push", "denied")
    assert dict(a.calls[-1].reason.values) == {"scope": "repository:app:pull,push", "granted": "repository:app:pull"}


def test_docker_login_is_one_operation_ending_with_its_check_and_the_next_login_is_another():
    a = run(*login("", ua=DOCKER), get("/v2/", ua=DOCKER), *login("repository:app:pull", ("app", "pull"), ua=DOCKER),
            get("/v2/app/manifests/v1", body=MANIFEST, ua=DOCKER, **{"Content-Type": OCI_MANIFEST}))
    assert [(op.kind, [i + 1 for i in op.calls]) for op in a.operations] == [
        ("auth", [1, 2, 3]), ("auth", [4, 5]), ("pull", [6])]
    assert [len(section.operations) for section in sections(a)] == [1, 1, 1]


def test_a_token_fetched_again_without_a_challenge_belongs_to_the_login_before_it():
    again = make_flow("GET", "https://auth.test/token?service=registry.test&scope=repository:app:pull,push", 200,
                      req_headers=SKOPEO, resp_body=token_answer(("app", "pull,push")))
    a = run(*login("repository:app:pull,push", ("app", "pull,push")), again, *upload("app", "s1", LAYER))
    assert [(op.kind, [i + 1 for i in op.calls]) for op in a.operations] == [("auth", [1, 2, 3]),
                                                                           ("push", [4, 5, 6])]
    assert "Log in to registry.test" in render(a, "markdown")


def test_a_login_at_the_api_check_begins_a_new_operation_after_it():
    a = run(*login("repository:app:pull,push", ("app", "pull,push")), *upload("app", "s1", LAYER),
            *login("repository:app:pull,push", ("app", "pull,push")), *upload("app", "s2", LAYER))
    assert [op.kind for op in a.operations] == ["auth", "push", "auth", "push"]


def test_a_head_of_a_diff_id_is_said_to_be_one():
    a = run(*pull_one_platform(BUILDAH), get("/v2/", ua=BUILDAH),
            head(f"/v2/target/blobs/{sha256(b'uncompressed')}", 404, ua=BUILDAH))
    assert (a.calls[-1].step, a.calls[-1].reason.code, dict(a.calls[-1].reason.values)) == (
        "blob-exists", "diff-id", {"call": 4})


def test_a_head_to_a_repository_the_session_never_used_is_the_client_cache():
    a = run(get("/v2/"), head(f"/v2/app/blobs/{sha256(b'x')}", 404), head(f"/v2/elsewhere/blobs/{sha256(b'x')}", 404))
    assert reasons(a)[-1] == ("blob-elsewhere", "client-cache")
    assert len(a.operations) == 1


def test_a_second_ask_folds_with_the_first_and_says_so():
    flows = list(pull_one_platform())
    a = run(*flows, get("/v2/", ua=SKOPEO), *flows[1:])
    [section] = sections(a)  # the same pull twice: one part of the story
    rows = fold(section)
    assert [(row.step, ranges([i.index for i in row.items])) for row in rows] == [
        ("ping", "1, 6"), ("index", "2, 7"), ("manifest", "3, 8"), ("blobs", "4–5, 9–10")]
    assert [item.reason.code for item in rows[1].items] == ["tag-names-index", "again"]


def test_the_story_of_a_push_is_a_few_rows_whatever_the_number_of_blobs():
    blobs = [f"blob {n}".encode() * 20 for n in range(12)]
    flows = [get("/v2/")]
    for n, blob in enumerate(blobs):
        flows += [head(f"/v2/app/blobs/{sha256(blob)}", 404), *upload("app", f"s-{n}", blob)]
    md = render(run(*flows, put_manifest("app", "v1", MANIFEST, OCI_MANIFEST)), "markdown")
    story = md.split("## What the clients did")[1].split("\n## ")[0]
    table = [line for line in story.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + 4  # header, then: ping, HEADs, uploads, the manifest
    assert "| 12 " in story  # twelve uploads in one row


def test_the_story_in_chinese_holds_no_english_sentence():
    md = render(run(*pull_one_platform(), get("/v2/"), head(f"/v2/other/blobs/{sha256(b'x')}", 404)), "markdown",
                "zh")
    for line in md.split("## 内容解析")[0].splitlines():
        assert english_in(line) == [], line
    assert "获取镜像 manifest" in md and "获取多架构manifest" in md


def test_every_call_record_names_its_operation_step_and_why():
    doc = json.loads(render(run(*pull_one_platform()), "json"))
    assert [c["operation"] for c in doc["calls"]] == [1] * 5
    assert doc["calls"][2]["why"] == {"code": "named-by-index", "call": 2, "platform": "linux/arm64"}
    [op] = doc["operations"]
    assert (op["kind"], op["client"], op["calls"]) == ("pull", "skopeo/1.9.3", [1, 2, 3, 4, 5])


def test_a_client_is_named_by_its_product():
    assert client_name("skopeo/1.9.3") == "skopeo/1.9.3"
    docker = ("docker/28.2.2 go/go1.24.3 git-commit/e6534b4 kernel/6.1.0 os/linux arch/amd64 "
              "UpstreamClient(Docker-Client/28.2.2 \\(linux\\))")
    assert client_name(docker) == "Docker-Client/28.2.2 (linux)"
    assert client_name(None) == ""


def _attestation_manifest():
    statement = b'{"_type": "https://in-toto.io/Statement/v0.1"}'
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"{}"),
                                  "size": 2},
                       "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": sha256(statement),
                                   "size": len(statement)}]}).encode()


def _push_with_config():
    return [get("/v2/"), *upload("app", "c-1", CONFIG), put_manifest("app", sha256(MANIFEST), MANIFEST, OCI_MANIFEST)]


def _mount(status, head_first=True, source="base"):
    flows = [get("/v2/"), head(f"/v2/app/blobs/{sha256(LAYER)}", 404)]
    if head_first:  # as skopeo and buildah do: the target first, then where it could come from
        flows.append(head(f"/v2/base/blobs/{sha256(LAYER)}", 200))
    query = f"mount={sha256(LAYER)}" + (f"&from={source}" if source else "")  # OCI 1.1: `from` may be left out
    return flows + [make_flow("POST", f"{R}/v2/app/blobs/uploads/?{query}", status,
                              req_headers=SKOPEO, resp_headers={"Location": f"{R}/v2/app/blobs/uploads/m-1"})]


REFERRERS_TAG = "sha256-" + sha256(MANIFEST).split(":")[1]  # the referrers tag schema's tag of the manifest
CHALLENGE = 'Bearer realm="https://auth.test/token",service="registry.test",scope="repository:app:pull"'
ERROR = b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}'
# One case per reason the story gives: the calls that make it, as a client makes them.
REASONS = {
    "ping": lambda: pull_one_platform(),
    "tag-names-index": lambda: pull_one_platform(),
    "named-by-index": lambda: pull_one_platform(),
    "named-by-manifest": lambda: pull_one_platform(),
    "again": lambda: [get("/v2/app/manifests/v1"), get("/v2/app/manifests/v1")],
    "tag-names-manifest": lambda: [get("/v2/app/manifests/v1", body=MANIFEST, **{"Content-Type": OCI_MANIFEST})],
    "challenge": lambda: login("repository:app:pull", ("app", "pull"))[:1],
    "challenge-scope": lambda: [get("/v2/app/manifests/v1", 401, **{"WWW-Authenticate": CHALLENGE})],
    "token": lambda: [get("/v2/app/manifests/v1", 401, **{"WWW-Authenticate": CHALLENGE}),
                      make_flow("GET", "https://auth.test/token?scope=repository:app:pull", 200, req_headers=SKOPEO)],
    "token-granted": lambda: login("repository:app:pull", ("app", "pull")),
    "login-check": lambda: [*login("", ua=DOCKER), get("/v2/", ua=DOCKER)],
    "token-account": lambda: [*login("", ua=DOCKER)],
    "no-referrers-api": lambda: [get("/v2/"), get(f"/v2/app/referrers/{sha256(MANIFEST)}", 404)],
    "referrers-tag-absent": lambda: [get("/v2/"), get(f"/v2/app/manifests/{REFERRERS_TAG}", 404)],
    "referrers-tag-read": lambda: [get("/v2/"), get(f"/v2/app/manifests/{REFERRERS_TAG}", body=INDEX,
                                                    **{"Content-Type": OCI_INDEX})],
    "referrers-tag-pushed": lambda: [get("/v2/"), put_manifest("app", REFERRERS_TAG, INDEX, OCI_INDEX)],
    "challenge-basic": lambda: [get("/v2/", 401, **{"WWW-Authenticate": 'Basic realm="Registry Realm"'})],
    "denied": lambda: [*login("repository:app:push", ("app", "pull")), make_flow(
        "PUT", f"{R}/v2/app/manifests/v1", 401, req_headers=SKOPEO, resp_headers={"WWW-Authenticate": CHALLENGE
                                                                                    + ',error="insufficient_scope"'})],
    "absent": lambda: [get("/v2/"), head(f"/v2/app/blobs/{sha256(b'never sent')}", 404)],
    "absent-uploaded": lambda: [get("/v2/"), head(f"/v2/app/blobs/{sha256(LAYER)}", 404), *upload("app", "s", LAYER)],
    "present": lambda: [get("/v2/"), head(f"/v2/app/blobs/{sha256(LAYER)}", 200)],
    "present-uploaded": lambda: [get("/v2/"), *upload("app", "s", LAYER), head(f"/v2/app/blobs/{sha256(LAYER)}", 200)],
    "diff-id": lambda: [*pull_one_platform(), get("/v2/"), head(f"/v2/app2/blobs/{sha256(b'uncompressed')}", 404)],
    "source-has": lambda: _mount(201),
    "source-lacks": lambda: [*pull_one_platform(), get("/v2/"), head(f"/v2/dest/blobs/{sha256(b'x')}", 404),
                             head(f"/v2/app/blobs/{sha256(b'x')}", 404)],
    "client-cache": lambda: [get("/v2/"), head(f"/v2/app/blobs/{sha256(b'x')}", 404),
                             head(f"/v2/elsewhere/blobs/{sha256(b'x')}", 404)],
    "mounted": lambda: _mount(201),
    "mounted-from": lambda: _mount(201, head_first=False),
    "mount-refused": lambda: _mount(202),
    "mounted-any": lambda: _mount(201, source=None),
    "mount-refused-any": lambda: _mount(202, source=None),
    "uploaded": lambda: [get("/v2/"), *upload("app", "s", LAYER)],
    "platform-manifest": _push_with_config,
    "attestation-pushed": lambda: [get("/v2/"), put_manifest("app", sha256(_attestation_manifest()),
                                                             _attestation_manifest(), OCI_MANIFEST)],
    "index-last": lambda: [*_push_with_config(), put_manifest("app", "v1", INDEX, OCI_INDEX)],
    "index-of-read": lambda: [*pull_one_platform(), get("/v2/"), put_manifest("app", "v2", INDEX, OCI_INDEX)],
    "index-of-existing": lambda: [get("/v2/"), put_manifest("app", "v2", INDEX, OCI_INDEX)],
    "target-exists": lambda: [get("/v2/"), *upload("app", "s", LAYER), head("/v2/app/manifests/v1", 200)],
    "target-absent": lambda: [get("/v2/"), *upload("app", "s", LAYER), head("/v2/app/manifests/v1", 404)],
    "resolve-tag": lambda: [make_flow("HEAD", f"{R}/v2/app/manifests/v1", 200, req_headers=SKOPEO,
                                      resp_headers={"Docker-Content-Digest": sha256(INDEX)})],
    "registry-error": lambda: [get("/v2/app/manifests/v9", 404, body=ERROR, **{"Content-Type": "application/json"})],
}


@pytest.mark.parametrize("code", REASONS)
def test_each_reason_of_the_story_is_given_where_the_calls_show_it(code):
    a = run(*REASONS[code]())
    given = {reason.code for section in sections(a) for row in fold(section) for reason in row.reasons if reason}
    assert code in given
    md = render(a, "markdown") + render(a, "markdown", "zh")
    story = md.split("```mermaid")[0].split("## Decoded bodies")[0]
    assert "why_" not in md and "{" not in story and "None" not in story  # every value given, none missing


def test_every_reason_in_the_strings_has_its_case():
    from ocitrace.analyzers.strings import strings

    words = {key[len("why_"):] for key in strings() if key.startswith("why_")}
    assert words - {"uploaded-whole"} == set(REASONS)  # uploaded-whole: how "uploaded" reads for one chunk


def test_a_login_on_the_one_registry_of_a_capture_is_titled_by_what_it_asked_for():
    """Harbor, Artifact Registry: the realm is on the registry's own host, which one-host titles leave out."""
    here = 'Bearer realm="https://registry.test/service/token",service="harbor-registry"'
    a = run(get("/v2/", 401, **{"WWW-Authenticate": here}),
            make_flow("GET", f"{R}/service/token?service=harbor-registry&scope=repository:app:pull", 200,
                      req_headers=SKOPEO, resp_body=token_answer(("app", "pull"))))
    assert "### 1. Log in for repository:app:pull\n" in render(a, "markdown")
    assert "### 1. 登录, 请求 repository:app:pull\n" in render(a, "markdown", "zh")


def test_a_login_is_titled_by_the_scope_the_token_was_asked_for_not_the_challenge_s():
    """GHCR's ping challenge names a placeholder scope (repository:user/image:pull) whatever the client wants."""
    ghcr = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull"'
    a = run(make_flow("GET", "https://ghcr.io/v2/", 401, req_headers=SKOPEO, resp_headers={"WWW-Authenticate": ghcr}),
            make_flow("GET", "https://ghcr.io/token?scope=repository:acme/app:pull&service=ghcr.io", 200,
                      req_headers=SKOPEO, resp_body=token_answer(("acme/app", "pull"))))
    assert "Log in for repository:acme/app:pull" in render(a, "markdown")


def test_an_oauth2_token_request_posts_its_scope_in_a_form():
    """distribution's oauth.md: POST /token with grant_type, service, scope (containerd with credentials, ACR). The
    scope is the form's: the login asked for it, and a second token for it while the first holds is fetched again."""
    form = {"Content-Type": "application/x-www-form-urlencoded", **SKOPEO}

    def post(at):
        return make_flow("POST", "https://auth.test/token", 200, req_headers=form, timestamp=at,
                         req_body=b"grant_type=password&service=registry.test&scope=repository%3Aapp%3Apull"
                                  b"&username=alice&password=s3cret", resp_body=token_answer(("app", "pull")))

    challenge = get("/v2/app/manifests/v1", 401, **{"WWW-Authenticate": CHALLENGE})
    a = run(challenge, post(100.0), post(110.0))
    assert (a.calls[1].reason.code, a.calls[1].reason.values["scope"]) == ("token-granted", "repository:app:pull")
    assert [f.code for f in a.calls[2].findings if f.code == "token-refetched"] == ["token-refetched"]


def test_two_ports_of_one_host_are_two_registries():
    """skopeo copy from registry.lab:5000 to registry.lab:5001: a mount works within one registry only, and an image
    reference names the port."""
    src, dst, d = "https://registry.lab:5000", "https://registry.lab:5001", sha256(LAYER)
    a = run(make_flow("GET", f"{src}/v2/library/alpine/blobs/{d}", 200, resp_body=LAYER, req_headers=SKOPEO),
            make_flow("HEAD", f"{dst}/v2/mirror/alpine/blobs/{d}", 404, req_headers=SKOPEO),
            make_flow("POST", f"{dst}/v2/mirror/alpine/blobs/uploads/?digest={d}", 201, req_body=LAYER,
                      req_headers=SKOPEO, resp_headers={"Location": f"{dst}/v2/mirror/alpine/blobs/{d}"}))
    assert "could-mount" not in [f.code for item in a.calls for f in item.findings]
    assert list(a.tally.hosts) == ["registry.lab:5000", "registry.lab:5001"]
    titles = [line for line in render(a, "markdown").splitlines() if line.startswith("### ")]
    assert titles[:2] == ["### 1. Pull registry.lab:5000/library/alpine", "### 2. Push registry.lab:5001/mirror/alpine"]


def test_an_upload_closed_on_the_host_its_location_names_is_part_of_the_push_that_opened_it():
    """The spec's Location is opaque: a registry may send the session's calls to another host (an upload service)."""
    up = "https://uploads.example.net/v2/app/blobs/uploads/s1"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(config), "size": len(config)}}).encode()
    a = run(make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, req_headers=SKOPEO,
                      resp_headers={"Location": f"{up}?_state=a"}),
            make_flow("PUT", f"{up}?_state=a&digest={sha256(config)}", 201, req_body=config, req_headers=SKOPEO),
            put_manifest("app", "v1", manifest, OCI_MANIFEST))
    assert [op.kind for op in a.operations] == ["push"] and list(a.operations[0].calls) == [0, 1, 2]
    assert a.operations[0].summary()["uploaded"] == 1
    assert "blob-unreferenced" not in [f.finding.code for f in a.findings]


def test_a_push_that_keeps_the_referrers_tag_is_not_titled_by_it():
    """The referrers tag schema's tag (sha256-<hex>) lists a subject's artifacts; it names no image of the push."""
    a = run(get("/v2/"), put_manifest("app", sha256(MANIFEST), MANIFEST, OCI_MANIFEST),
            put_manifest("app", REFERRERS_TAG, INDEX, OCI_INDEX))
    assert a.operations[0].reference is None and "### 1. Push app\n" in render(a, "markdown")


def test_the_push_summary_counts_the_manifests_the_registry_took_each_once():
    """One manifest under three tags is one manifest pushed; a PUT answered 400 (DIGEST_INVALID) pushed nothing."""
    refused = make_flow("PUT", f"{R}/v2/app/manifests/{sha256(b'other')}", 400, req_body=MANIFEST, req_headers={
        **SKOPEO, "Content-Type": OCI_MANIFEST}, resp_body=b'{"errors": [{"code": "DIGEST_INVALID"}]}')
    a = run(get("/v2/"), *(put_manifest("app", tag, MANIFEST, OCI_MANIFEST) for tag in ("v1", "v1.0", "latest")),
            refused, refused)
    assert "pushed: index 0, manifests 1, attestations 0;" in render(a, "markdown")


def test_a_config_without_the_variant_its_index_named_is_the_same_platform():
    """docker manifest annotate --variant v8: the index says linux/arm64/v8, the image config linux/arm64."""
    config = json.dumps({"architecture": "arm64", "os": "linux", "rootfs": {"diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(config), "size": len(config)}}).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}).encode()
    a = run(get("/v2/"), get("/v2/app/manifests/v1", body=index, **{"Content-Type": OCI_INDEX}),
            get(f"/v2/app/manifests/{sha256(manifest)}", body=manifest, **{"Content-Type": OCI_MANIFEST}),
            get(f"/v2/app/blobs/{sha256(config)}", body=config))
    assert a.operations[0].platforms == ["linux/arm64/v8"]


def test_a_token_that_expires_during_an_upload_is_a_login_between_its_calls():
    """Docker Hub's tokens last 300 s: a PATCH answered 401, a new token, the PATCH again. The challenge and the token
    are a login of their own; the session's other calls stay in the push."""
    up = f"{R}/v2/app/blobs/uploads/s1"
    challenge = {"WWW-Authenticate": CHALLENGE}
    a = run(*login("repository:app:pull,push", ("app", "pull,push")),
            make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, req_headers=SKOPEO, resp_headers={"Location": up}),
            make_flow("PATCH", up, 401, req_body=LAYER, req_headers=SKOPEO, resp_headers=challenge),
            *login("repository:app:pull,push", ("app", "pull,push"))[1:],
            make_flow("PATCH", up, 202, req_body=LAYER, req_headers=SKOPEO, resp_headers={"Location": up}),
            make_flow("PUT", f"{up}?digest={sha256(LAYER)}", 201, req_headers=SKOPEO))
    assert [(op.kind, list(op.calls)) for op in a.operations] == [("auth", [0, 1]), ("push", [2, 5, 6]),
                                                                  ("auth", [3, 4])]


def test_two_capture_files_with_the_same_upload_ids_are_two_sessions():
    """Two files are two sessions (a registry may hand out the same ids again, a capture may be given twice)."""
    from dataclasses import replace

    flows = [get("/v2/"), *upload("app", "s1", LAYER)]
    calls = [call_from_state(f.get_state()) for f in flows]
    # a file and its copy, read together: their calls come in the order of their times, the two interleaved
    a = analyze([replace(c, source=name) for c in calls for name in ("a.mitm", "b.mitm")])
    pushes = [op for op in a.operations if op.kind == "push"]
    assert [op.summary()["uploaded"] for op in pushes] == [1, 1]
    closes = [item for item in a.calls if item.call.method == "PUT"]
    assert [(item.digest_verified, item.body_size) for item in closes] == [(True, len(LAYER))] * 2
    assert not [f for item in a.calls for f in item.findings if f.code in ("sent-digest-mismatch", "tiny-chunks")]


def test_a_blob_uploaded_on_another_host_that_the_registry_had_elsewhere_could_have_been_mounted():
    up = "https://uploads.example.net/v2/app/blobs/uploads/s1"
    a = run(head(f"/v2/base/blobs/{sha256(LAYER)}", 200),
            make_flow("POST", f"{R}/v2/app/blobs/uploads/", 202, req_headers=SKOPEO, resp_headers={"Location": up}),
            make_flow("PUT", f"{up}?digest={sha256(LAYER)}", 201, req_body=LAYER, req_headers=SKOPEO))
    assert [dict(f.values) for f in a.calls[2].findings if f.code == "could-mount"] == [
        {"digest": sha256(LAYER), "repository": "base"}]

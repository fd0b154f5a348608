"""The endpoint table, one spec row per case (distribution-spec v1.1.1 and the Docker extras)."""

import pytest
from ocitrace.analyzers.endpoints import EndpointTable, default_table

D = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
UP = "/v2/team/app/blobs/uploads/5f3c-uuid"

# method, path, query, success status, a failure status the spec names, expected endpoint id
ROWS = [
    ("GET", "/v2/", "", 200, 401, "end-1"),
    ("GET", "/v2/team/app/blobs/" + D, "", 200, 404, "end-2"),
    ("HEAD", "/v2/team/app/blobs/" + D, "", 200, 404, "end-2"),
    ("GET", "/v2/team/app/manifests/latest", "", 200, 404, "end-3"),
    ("HEAD", "/v2/team/app/manifests/" + D, "", 200, 404, "end-3"),
    ("POST", "/v2/team/app/blobs/uploads/", "", 202, 404, "end-4a"),
    ("POST", "/v2/team/app/blobs/uploads/", "digest=" + D, 201, 400, "end-4b"),
    ("POST", "/v2/team/app/blobs/uploads/", "digest-algorithm=sha512", 202, 400, "end-4c"),
    ("PATCH", UP, "", 202, 416, "end-5"),
    ("PUT", UP, "digest=" + D, 201, 400, "end-6"),
    ("PUT", "/v2/team/app/manifests/new", "", 201, 413, "end-7"),
    ("GET", "/v2/team/app/tags/list", "", 200, 404, "end-8a"),
    ("GET", "/v2/team/app/tags/list", "n=10&last=v1", 200, 404, "end-8b"),
    ("DELETE", "/v2/team/app/manifests/" + D, "", 202, 405, "end-9"),
    ("DELETE", "/v2/team/app/blobs/" + D, "", 202, 405, "end-10"),
    ("POST", "/v2/team/app/blobs/uploads/", f"mount={D}&from=team/base", 201, 404, "end-11"),
    ("GET", "/v2/team/app/referrers/" + D, "", 200, 400, "end-12a"),
    ("GET", "/v2/team/app/referrers/" + D, "artifactType=application/vnd.example", 200, 400, "end-12b"),
    ("GET", UP, "", 204, 404, "end-13"),
    ("DELETE", UP, "", 204, 404, "end-14"),
    ("GET", "/v2/team/app/blobs/" + D, "", 206, 416, "end-2"),  # a Range request, and one it cannot satisfy
    ("PUT", UP, "digest=" + D, 201, 416, "end-6"),  # a last chunk out of order
    ("GET", "/v2/_catalog", "n=100", 200, 404, "catalog"),
    ("GET", "/v1/_ping", "", 200, 404, "v1-ping"),
    ("GET", "/token", "service=registry.test&scope=repository:team/app:pull", 200, 401, "token"),
    # realms one segment under /v2, no API path (a capture that starts after the challenge): Quay, Artifact Registry
    ("GET", "/v2/auth", "service=quay.io&scope=repository:team/app:pull", 200, 401, "token"),
    ("GET", "/v2/token", "scope=repository:proj/repo/app:pull", 200, 403, "token"),
]


@pytest.mark.parametrize("method,path,query,ok,bad,endpoint", ROWS, ids=[f"{r[5]}-{r[0]}" for r in ROWS])
def test_each_endpoint_is_classified_with_its_success_and_failure_status(method, path, query, ok, bad, endpoint):
    table = default_table()
    success = table.classify(method, path, query, ok)
    failure = table.classify(method, path, query, bad)
    assert success.endpoint_id == endpoint and failure.endpoint_id == endpoint
    assert success.status_class == "success"
    assert failure.status_class == ("absent" if method == "HEAD" and bad == 404 else "failure")


@pytest.mark.parametrize("path", ["/v2/a/blobs/" + D, "/v2/a/manifests/latest"])
def test_a_head_answered_404_is_absent_an_answer_not_a_failure(path):
    table = default_table()
    assert table.classify("HEAD", path, "", 404).status_class == "absent"
    assert table.classify("GET", path, "", 404).status_class == "failure"


def test_a_status_the_spec_does_not_name_is_off_spec():
    assert default_table().classify("PUT", "/v2/a/manifests/t", "", 200).status_class == "off-spec"


def test_an_auth_challenge_on_any_endpoint_is_a_named_failure():
    assert default_table().classify("HEAD", "/v2/a/blobs/" + D, "", 401).status_class == "failure"


def test_every_row_has_english_and_chinese_meaning_and_spec_codes():
    for endpoint in default_table().endpoints:
        assert endpoint.describe("GET", "en") and endpoint.describe("GET", "zh")
        assert endpoint.success and endpoint.failure and endpoint.oci


def test_names_may_hold_blobs_and_manifests_as_components():
    c = default_table().classify("HEAD", f"/v2/team/blobs/manifests/blobs/{D}")
    assert (c.endpoint_id, c.repository, c.digest) == ("end-2", "team/blobs/manifests", D)
    c = default_table().classify("GET", "/v2/x/manifests/tags/manifests/v1")
    assert (c.endpoint_id, c.repository, c.tag) == ("end-3", "x/manifests/tags", "v1")
    c = default_table().classify("PATCH", "/v2/uploads/blobs/uploads/blobs/uploads/abc")
    assert (c.endpoint_id, c.repository, c.session) == ("end-5", "uploads/blobs/uploads", "abc")


@pytest.mark.parametrize("reference,code", [
    (".INVALID_MANIFEST_NAME", "invalid-reference"),
    ("sha256:totallywrong", "invalid-digest"),
    ("sha256:" + "A" * 64, "invalid-digest"),
    ("t" * 129, "invalid-reference"),
])
def test_malformed_references_are_still_end_3_and_flagged(reference, code):
    c = default_table().classify("GET", f"/v2/app/manifests/{reference}", "", 400)
    assert c.endpoint_id == "end-3"
    assert [(f.code, f.values["value"]) for f in c.findings] == [(code, reference)]


def test_invalid_repository_name_is_flagged():
    c = default_table().classify("GET", "/v2/Team/App/manifests/latest")
    assert c.endpoint_id == "end-3" and [(f.code, f.values["value"]) for f in c.findings] == [("invalid-name",
                                                                                               "Team/App")]


def test_valid_references_have_no_findings():
    for ref in ("latest", "v1.2.3-rc_1", D, "sha512:" + "c" * 128):
        assert default_table().classify("GET", f"/v2/app/manifests/{ref}").findings == ()


@pytest.mark.parametrize("method,query,endpoint", [
    ("PATCH", "_state=abc%3D%3D", "end-5"),
    ("PUT", f"_state=abc&digest={D}", "end-6"),
    ("GET", "_state=abc&ns=docker.io", "end-13"),
    ("DELETE", "_state=abc", "end-14"),
])
def test_upload_location_is_recognised_whatever_its_query(method, query, endpoint):
    c = default_table().classify(method, UP, query)
    assert c.endpoint_id == endpoint and c.session == c.reference == "5f3c-uuid"


def test_extra_query_keys_are_tolerated():
    assert default_table().classify("GET", f"/v2/app/blobs/{D}", "ns=docker.io").endpoint_id == "end-2"


def test_upload_and_mount_queries_name_the_digest():
    table = default_table()
    assert table.classify("PUT", UP, f"digest={D}").digest == D
    mount = table.classify("POST", "/v2/app/blobs/uploads/", f"mount={D2}&from=base")
    assert (mount.digest, mount.mount_from) == (D2, "base")


def test_the_v2_root_without_slash_is_end_1():
    assert default_table().classify("GET", "/v2").endpoint_id == "end-1"


# Rows matched by a URL an earlier answer named: kind learned, URL, query, expected endpoint id.
LEARNED = [
    ("challenge", "https://auth.example.com/oauth/issue", "", "token"),
    ("redirect", "https://cdn.example.net/blobs/abc", "X-Amz-Signature=s", "blob-redirect"),
]


@pytest.mark.parametrize("kind,url,query,endpoint", LEARNED, ids=[r[3] for r in LEARNED])
def test_a_url_an_earlier_answer_named_is_recognised_on_any_host(kind, url, query, endpoint):
    table = default_table()
    path = "/" + url.split("/", 3)[3]
    c = table.classify("GET", path, query, 200, url=url, learned={kind: {url}})
    assert c.endpoint_id == endpoint and c.status_class == "success"
    assert table.classify("GET", path, "", 200, url=url).endpoint_id is None


def test_every_row_of_the_table_has_a_classification_case():
    cased = {row[5] for row in ROWS} | {row[3] for row in LEARNED}
    assert cased == {endpoint.id for endpoint in default_table().endpoints}


@pytest.mark.parametrize("method,path", [("GET", "/"), ("GET", "/index.html"), ("POST", "/v2/app/tags/list"),
                                         ("GET", "/v3/app/manifests/x"), ("GET", "/v2/app/unknown/x")])
def test_non_registry_calls_have_no_endpoint(method, path):
    c = default_table().classify(method, path, "", 200)
    assert c.endpoint is None and c.repository is None


def test_adding_an_endpoint_is_adding_a_row():
    import yaml
    from ocitrace.analyzers.endpoints import TABLE_PATH
    spec = yaml.safe_load(TABLE_PATH.read_text())
    spec["endpoints"].insert(0, {"id": "x-health", "methods": ["GET"], "path": "/v2/_health", "oci": "/v2/_health",
                                 "success": [200], "failure": [503], "spec": "test",
                                 "meaning": {"en": "health", "zh": "健康"}})
    assert EndpointTable(spec).classify("GET", "/v2/_health", "", 503).status_class == "failure"


@pytest.mark.parametrize("tag,meaning", [
    ("sha256-" + "a" * 64, "referrers tag of " + D),
    ("sha256-" + "a" * 64 + ".sig", "cosign signature of " + D),
    ("sha256-" + "a" * 64 + ".att", "cosign attestation of " + D),
    ("sha256-" + "a" * 64 + ".sbom", "cosign SBOM of " + D),
])
def test_tags_that_name_another_manifest_say_which(tag, meaning):
    c = default_table().classify("GET", f"/v2/app/manifests/{tag}")
    assert c.endpoint_id == "end-3" and c.tag == tag and c.tag_meaning["en"] == meaning
    assert default_table().classify("GET", "/v2/app/manifests/v1.2").tag_meaning is None


@pytest.mark.parametrize("path,query", [("/v2/team/app/tags/list", "scope=x"), ("/v2/_catalog", "service=x"),
                                        ("/v2/", "service=x")])
def test_an_api_path_asking_for_a_service_or_scope_is_still_its_own_row(path, query):
    assert default_table().classify("GET", path, query, 200).endpoint_id != "token"

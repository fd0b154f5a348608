"""The OCI content view, through mitmproxy's own content-view API (what mitmweb and the console call)."""

import json

import pytest
from conftest import ARTICLE_INDEX, ARTICLE_MANIFEST, make_flow, sha256
from mitmproxy import contentviews
from mitmproxy.test import taddons
from ocitrace.addons.contentview import register
from ocitrace.analyzers.manifests import OCI_INDEX, OCI_MANIFEST

R = "https://registry.test/v2/app"


@pytest.fixture(autouse=True)
def view():
    register()
    with taddons.context():
        yield


def answer(body, content_type, url, **headers):
    flow = make_flow("GET", url, 200, resp_body=body, resp_headers={"Content-Type": content_type, **headers})
    return contentviews.prettify_message(flow.response, flow)


def test_an_index_is_told_as_the_report_tells_it_and_wins_over_the_json_view():
    shown = answer(ARTICLE_INDEX, OCI_INDEX, f"{R}/manifests/latest",
                   **{"Docker-Content-Digest": sha256(ARTICLE_INDEX)})
    assert shown.view_name == "OCI"
    assert "Index: 8 platforms + 8 attestations" in shown.text
    assert "Docker-Content-Digest: matches" in shown.text
    assert shown.text.count("linux/") >= 8 and "platform | manifest | size | attestation" in shown.text


def test_a_body_that_is_not_what_its_digest_says_is_told_loudly():
    shown = answer(ARTICLE_MANIFEST, OCI_MANIFEST, f"{R}/manifests/{sha256(b'another')}")
    assert shown.view_name == "OCI" and f"URL: DOES NOT MATCH, it says {sha256(b'another')}" in shown.text


@pytest.mark.parametrize("body, content_type", [(b'{"not": "a manifest"}', OCI_INDEX),
                                                 (b'{"tags": ["a"]}', "application/json")])
def test_what_it_cannot_decode_goes_to_the_json_view(body, content_type):
    assert answer(body, content_type, f"{R}/manifests/v1").view_name == "JSON"


def test_a_pushed_manifest_is_checked_against_the_url_it_is_pushed_to():
    flow = make_flow("PUT", f"{R}/manifests/{sha256(ARTICLE_MANIFEST)}", 201, req_body=ARTICLE_MANIFEST,
                     req_headers={"Content-Type": OCI_MANIFEST})
    shown = contentviews.prettify_message(flow.request, flow)
    assert shown.view_name == "OCI" and "URL: matches" in shown.text and "config: " in shown.text


def test_a_helm_chart_is_named():
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": sha256(b"c"),
                                  "size": 1},
                       "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                                   "digest": sha256(b"l"), "size": 1}]}).encode()
    shown = answer(body, OCI_MANIFEST, f"{R}/manifests/0.1.0")
    assert shown.view_name == "OCI" and "artifact: Helm chart" in shown.text

"""The reports' Mermaid pictures: valid for Mermaid whatever the capture held, and drawn by a real browser."""

import os
import re
from pathlib import Path

import pytest
from conftest import index_body, make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.diagrams import _plain, _text
from ocitrace.analyzers.manifests import OCI_INDEX
from ocitrace.analyzers.report import render

from ocitrace import mermaid

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
REPORTS = sorted(CAPTURES.rglob("report*.md"))
HOSTILE = 'x"; end\n#quot; :::|<script>{}` %% -->>C: forged'


def hostile_report(lang: str) -> str:
    ua = {"User-Agent": HOSTILE}
    index = index_body("linux/amd64")
    flows = [make_flow("GET", "https://registry.test/v2/", 200, req_headers=ua),
             make_flow("PUT", "https://registry.test/v2/app/manifests/v1", 201, req_body=index,
                       req_headers={**ua, "Content-Type": OCI_INDEX}),
             make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256(b'x')}", 200, resp_body=b"x" * 100,
                       req_headers=ua)]
    return render(analyze([call_from_state(f.get_state()) for f in flows]), "markdown", lang)


def browser_or_skip():
    try:
        mermaid.browser() and mermaid._mermaid_js()
    except mermaid.BrowserMissing as exc:
        if os.environ.get("CI"):  # make test installs both: in CI a missing browser is a failure
            raise
        pytest.skip(str(exc))


@pytest.mark.parametrize("value", [HOSTILE, "sha256:abc;#x", 'a"b'])
def test_captured_values_leave_mermaid_nothing_to_parse(value):
    special = set('"#:;<>{}|`%\n')
    assert not set(re.sub(r"#\w+;", "", _text(value))) & special  # only entity codes are left
    assert not set(_plain(value)) & special


def test_every_report_has_its_pictures():
    md = (CAPTURES / "demo" / "build-push" / "report.md").read_text()
    kinds = [d.split("\n", 1)[0] for d in mermaid.diagrams(md)]
    assert kinds.count("sequenceDiagram") == 2 and "graph LR" in kinds and "gantt" in kinds


def test_every_diagram_of_every_committed_report_renders_in_chromium():
    browser_or_skip()
    sources = [(report, d) for report in REPORTS for d in mermaid.diagrams(report.read_text(encoding="utf-8"))]
    assert len(sources) > 20
    results = mermaid.check([d for _, d in sources])
    failed = [(str(sources[r["index"]][0].relative_to(CAPTURES)), r["error"]) for r in results if not r["ok"]]
    assert failed == [] and len(results) == len(sources)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_diagrams_of_hostile_values_still_render(lang):
    browser_or_skip()
    sources = mermaid.diagrams(hostile_report(lang))
    assert len(sources) >= 3
    assert [r["error"] for r in mermaid.check(sources) if not r["ok"]] == []


def test_a_broken_diagram_is_reported_not_passed():
    browser_or_skip()
    [result] = mermaid.check(["sequenceDiagram\n    C->>: broken"])
    assert result["ok"] is False and "Parse error" in result["error"]


def test_a_blob_redirected_to_storage_is_one_transfer_the_storage_answer():
    """distribution's API: a blob GET "may answer 307, a redirect to storage"; the 307's own body (a line of HTML) is
    no blob moving."""
    from ocitrace.analyzers.diagrams import timeline

    blob = b"x" * 5000
    storage = "https://storage.test/blobs/1?sig=abc"
    flows = [make_flow("GET", f"https://registry.test/v2/app/blobs/{sha256(blob)}", 307,
                       resp_body=b'<a href="https://storage.test/blobs/1">Temporary Redirect</a>.',
                       resp_headers={"Location": storage}, timestamp=100.0),
             make_flow("GET", storage, 200, resp_body=blob, timestamp=100.1)]
    analysis = analyze([call_from_state(f.get_state()) for f in flows])
    assert [item.endpoint_id for item in analysis.calls] == ["end-2", "blob-redirect"]
    bars = [line for line in timeline(analysis, "en") if ":c" in line]
    assert len(bars) == 1 and ":c2," in bars[0] and "5,000 B" in bars[0]

"""A fleet's logs in SQL: the README's DuckDB queries over events.jsonl give ocitrace's own counts."""

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from conftest import make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import call_from_state, read_captures
from ocitrace.analyzers.report import render

ROOT = Path(__file__).resolve().parent.parent
RUNNERS = sorted(ROOT.glob("captures/demo/*/events.jsonl"))


def readme_queries() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- fleet-queries -->", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    return [q.strip() for q in block.split(";") if q.strip()]


@pytest.fixture
def fleet(tmp_path):
    """Each demo session's events.jsonl as one CI runner's log, plus a runner that received a corrupt blob."""
    for n, events in enumerate(RUNNERS):
        (tmp_path / f"runner-{n}").mkdir()
        shutil.copy(events, tmp_path / f"runner-{n}" / "events.jsonl")
    promised = sha256(b"the layer")
    corrupt = make_flow("GET", f"https://registry.test/v2/app/blobs/{promised}", 200, resp_body=b"not the layer",
                        resp_headers={"Docker-Content-Digest": promised})
    (tmp_path / "runner-bad").mkdir()
    (tmp_path / "runner-bad" / "events.jsonl").write_text(
        render(analyze([call_from_state(corrupt.get_state(), "runner-bad")]), "jsonl"))
    return tmp_path


def run(query: str, fleet: Path):
    return duckdb.sql(query.replace("'fleet/*/events.jsonl'", f"'{fleet}/*/events.jsonl'")).fetchall()


def test_the_readme_has_the_three_queries():
    assert len(readme_queries()) == 3


def test_calls_per_endpoint_are_the_reports(fleet):
    analysis = analyze(read_captures(sorted(fleet.glob("*/events.jsonl"))).calls)
    expected = Counter((item.endpoint_id, item.call.method) for item in analysis.calls)
    assert {(e, m): n for e, m, n in run(readme_queries()[0], fleet)} == dict(expected)


def test_bytes_per_repository_are_the_reports(fleet):
    doc = json.loads(render(analyze(read_captures(sorted(fleet.glob("*/events.jsonl"))).calls), "json"))
    expected: dict[str, list[int]] = {}
    for call in doc["calls"]:
        if call["repository"] is not None:
            sums = expected.setdefault(call["repository"], [0, 0])
            sums[0] += call["request_bytes"] or 0
            sums[1] += call["response_bytes"] or 0
    assert {repo: [sent, received] for repo, sent, received in run(readme_queries()[1], fleet)} == expected


def test_digest_failures_are_the_reports(fleet):
    analysis = analyze(read_captures(sorted(fleet.glob("*/events.jsonl"))).calls)
    failed = [item for item in analysis.calls if item.digest_verified is False]
    rows = run(readme_queries()[2], fleet)
    assert len(rows) == len(failed) == 1
    assert re.search(r"runner-bad", rows[0][0]) and rows[0][2] == "GET"

"""A report counts every call whatever the analysis keeps: the story tells the first calls (`keep`), and every
other section is the same as when every call is kept."""

import re
from pathlib import Path

import pytest
from ocitrace.analyzers import audit, story
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import read_captures
from ocitrace.analyzers.conformance import CaptureFinding
from ocitrace.analyzers.findings import Finding
from ocitrace.analyzers.report import render
from ocitrace.analyzers.runs import KEPT
from ocitrace.analyzers.strings import text
from ocitrace.analyzers.tally import Tally
from ocitrace.analyzers.words import finding_text

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "captures" / "demo"


def sections(markdown: str) -> dict[str, str]:
    """The report's `## ` sections by heading; what comes before the first, under ''."""
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = line[3:]
            found[current] = []
        found[current].append(line)
    return {heading: "\n".join(lines) for heading, lines in found.items()}


@pytest.fixture(scope="module")
def calls():
    captures = read_captures(sorted(DEMO.glob("*/flows.mitm")))
    assert not captures.errors and len(captures.calls) > 100
    return captures.calls


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_what_is_counted_does_not_depend_on_what_is_kept(calls, lang):
    whole, kept = analyze(calls), analyze(calls, keep=7)
    assert len(kept.calls) == 7 and kept.count == whole.count == len(calls)
    a, b = sections(render(whole, "markdown", lang)), sections(render(kept, "markdown", lang))
    told = {text(k, lang) for k in ("story_heading", "timeline_heading", "calls_appendix")}
    counted = [heading for heading in a if heading not in told]
    assert len(counted) >= 6  # the summary, findings, bodies, slowest, endpoints, bytes
    assert [heading for heading in b if heading not in told] == counted
    for heading in counted:
        assert a[heading] == b[heading], heading
    assert audit.counts(kept) == audit.counts(whole) and audit.errors(kept) == audit.errors(whole)


def test_the_story_says_how_many_calls_it_tells(calls):
    report = render(analyze(calls, keep=7), "markdown")
    assert text("story_told", "en", told=7, calls=len(calls)) in report
    assert text("more_calls", "en", n=len(calls) - 7) in report  # the calls listed: the seven kept


def test_a_capture_within_the_story_is_told_whole(calls):
    assert render(analyze(calls, keep=len(calls)), "markdown") == render(analyze(calls), "markdown")


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("keep", [7, 10_000])  # 10,000: every call, but objects' calls only as a report says them
def test_json_is_never_written_from_an_analysis_that_kept_only_some_calls(calls, fmt, keep):
    with pytest.raises(ValueError, match="keep=None"):
        render(analyze(calls, keep=keep), fmt)


def test_a_report_tells_the_first_bodies_decoded_and_counts_the_rest(calls, monkeypatch):
    from ocitrace.analyzers import analysis

    whole = analyze(calls)
    monkeypatch.setattr(analysis, "MOST_OBJECTS", 5)  # a fleet's day decodes thousands of images
    kept = analyze(calls, keep=7)
    # kept: the first five, and those the story's calls decoded (it names their diff_ids and platforms)
    assert [o.digest for o in kept.objects[:5]] == [o.digest for o in whole.objects[:5]]
    assert 5 <= len(kept.objects) < len(whole.objects) == len(kept.objects) + kept.objects_untold
    assert {o.digest for o in whole.objects if o.calls.first < 7} <= {o.digest for o in kept.objects}
    for lang in ("en", "zh"):
        told = sections(render(whole, "markdown", lang))[text("objects_heading", lang)]
        assert sections(render(kept, "markdown", lang))[text("objects_heading", lang)] == told
        more = re.search(re.escape(text("more_objects", lang, n=123456789)).replace("123456789", r"(\d+)"), told)
        assert more and 0 < int(more.group(1)) <= len(whole.objects) - 5


def test_the_story_says_how_many_parts_it_leaves_out(calls, monkeypatch):
    analysis = analyze(calls)
    parts = len(story.sections(analysis))
    monkeypatch.setattr(story, "MOST_SECTIONS", 2)
    report = render(analysis, "markdown")
    assert len(re.findall(r"(?m)^### \d+\. ", report)) == 2 < parts
    assert text("more_sections", "en", n=parts - 2) in report


def test_the_slowest_calls_are_the_longest_and_of_two_as_long_the_earlier_first():
    from ocitrace.analyzers.calls import Call

    seconds = [0.5, 2.0, 1.0, 2.0, 0.1, 3.0, 1.0, 2.0]
    timed = [Call("GET", "https", "registry.test", 443, "/v2/", status=200, timestamp=100.0, end=100.0 + s)
             for s in seconds]
    assert [item.index for item in analyze(timed, keep=0).tally.slowest] == [5, 1, 3, 7, 2]


def test_the_parts_of_the_story_are_counted_from_every_operation(calls):
    whole = analyze(calls)
    assert story.part_count(whole) == len(story.sections(whole)) > 3
    assert story.part_count(analyze(calls, keep=7)) == story.part_count(whole)


def test_a_story_whose_parts_end_within_the_kept_calls_says_nothing_of_them(calls, monkeypatch):
    """Two parts told, both over before the calls kept end: the story is whole as far as it goes, and the parts
    after it are counted over the whole capture."""
    whole = analyze(calls)
    first_two = story.sections(whole)[:2]
    kept = 1 + max(op.calls.last for section in first_two for op in section.operations)
    monkeypatch.setattr(story, "MOST_SECTIONS", 2)
    report = render(analyze(calls, keep=kept), "markdown")
    assert text("story_told", "en", told=kept, calls=len(calls)) not in report
    assert text("more_sections", "en", n=story.part_count(whole) - 2) in report


@pytest.mark.parametrize("keep", [0, 7, 300])
def test_operations_past_the_kept_calls_are_let_go_as_they_end_and_counted_alike(calls, keep, monkeypatch):
    from ocitrace.analyzers import operations
    from ocitrace.analyzers.analysis import Analyzer

    day = calls * 4  # the demo's traffic four times over: its operations end, others like them begin
    whole = analyze(day)
    at_end = render(analyze(day, keep=keep), "markdown")
    monkeypatch.setattr(operations, "SWEEP", 1)  # look for operations that have ended after every call
    analyzer = Analyzer(keep=keep)
    for call in day:
        analyzer.add(call)
    begun_later = analyzer.operations.count - len(analyzer.analysis.operations)
    assert len(analyzer.operations._later) < begun_later / 3  # let go on the way, not kept to the end
    assert len(analyzer.operations._pieces) <= len(analyzer.operations._later) + 1  # counted, not listed
    swept = analyzer.finish()
    assert all(op.calls.first < keep for op in swept.operations)
    assert swept.parts == whole.parts == len(story.sections(whole))
    assert swept.clients == whole.clients and swept.bare == whole.bare
    assert render(swept, "markdown") == at_end


def test_what_an_ended_operation_did_is_let_go_and_its_findings_stay_the_same(calls, monkeypatch):
    from ocitrace.analyzers import analysis
    from ocitrace.analyzers.analysis import Analyzer

    # the demo's operations end, others like them fetch the same URLs; each GET /v2/ asked twice (one unused)
    day = [twice for call in calls * 3 for twice in ([call, call] if call.path == "/v2/" else [call])]
    whole = analyze(day)
    assert {"fetched-again", "get-could-be-head"} <= set(whole.tally.codes)  # what the memories are for
    monkeypatch.setattr(analysis, "SWEEP", 1)  # let go after every call
    analyzer = Analyzer()
    swept = analyzer.add_all(day)
    live, conformance = analyzer.operations.live(), analyzer.conformance
    assert {op for op, _ in [*conformance._fetched, *conformance._had]} <= live and len(live) < 30
    assert [item.findings for item in swept.calls] == [item.findings for item in whole.calls]
    pings = conformance._ends["unused-pings"]
    assert set(pings._last) <= live | {None} and pings._settled  # the operations ended are set apart
    assert "ping-unused" in {f.finding.code for f in whole.findings}
    assert swept.findings == whole.findings  # and what is told at the end is told alike


def test_an_upload_sessions_urls_are_not_remembered_as_asked(calls):
    """Each chunk goes to its session's URL, never told as asked again: a day of sessions would fill the memory."""
    from ocitrace.analyzers.analysis import Analyzer

    analyzer = Analyzer()
    analysis = analyzer.add_all(calls)
    sessions = {item.session for item in analysis.calls if item.session and item.session in item.call.url}
    assert len(sessions) > 10
    assert not [url for _, _, url in analyzer.operations._seen if any(s in url for s in sessions)]


@pytest.mark.parametrize("runs", [None, KEPT], ids=["every call kept", "bounded"])
def test_findings_told_in_the_same_words_are_one_row_whose_calls_are_counted_once(calls, runs):
    """Two findings whose digests shorten alike fill each other's gaps: one row, calls 1–40, each call once."""
    a, b = (Finding.of("could-mount", digest="sha256:" + "ab" * 31 + end, repository="app") for end in ("01", "02"))
    assert finding_text(a, "en") == finding_text(b, "en") and a != b
    tally = Tally(runs=runs)
    for item in analyze(calls[:40]).calls:
        item.findings = [a] if item.index % 2 == 0 else [b]
        if item.index == 5:
            item.findings = [a, b]
        tally.add(item)
    for lang in ("en", "zh"):
        [(row, told)] = tally.told[lang].items()
        assert row == ("could-mount", finding_text(a, lang)) and told.text() == "1–40" and len(told) == 40
    assert tally.codes == {"could-mount": 41}  # how many times it was found: the counts of the JSON


def test_an_analysis_failing_at_the_end_as_on_a_call_is_one_row(calls, monkeypatch):
    from ocitrace.analyzers import conformance
    from ocitrace.analyzers.analysis import Analyzer

    analyzer = Analyzer()
    analyse = analyzer._analyse
    monkeypatch.setattr(analyzer, "_analyse", lambda item: 1 / 0 if item.index == 2 else analyse(item))
    monkeypatch.setattr(conformance.Conformance, "at_end", lambda self, analysis: 1 / 0)
    analysis = analyzer.add_all(calls[:10])
    section = "\n".join(audit.findings_section(analysis, "en")).splitlines()
    rows = [line for line in section if "analysis-failed" in line]
    assert len(rows) == 1 and "| 3 " in rows[0]  # the call's, and the end's, told once


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_findings_table_is_the_same_when_only_the_rows_a_report_shows_are_kept(calls, lang, monkeypatch):
    """A report orders rows by severity, then first call, and rows begin in call order: past the first MOST_ROWS of a
    severity, a finding is only counted. Warnings found last still come before every info row; a row kept keeps its
    later calls; what the table leaves out is counted as findings, a call's told alike once."""
    from ocitrace.analyzers.analysis import Analysis

    monkeypatch.setattr(audit, "MOST_ROWS", 4)
    whole, bounded = Tally(), Tally(runs=KEPT, rows=4)
    token = Finding.of("token-refetched", call=1, seconds=300)
    for item in analyze(calls[:40]).calls:
        i = item.index
        item.findings = [Finding.of("fetched-again", call=i)]  # words naming the call: a row of its own
        if i in (1, 30):  # a row kept, found again long after
            item.findings.append(token)
        if i == 20:  # told alike twice on one call, past the rows kept: one finding
            item.findings += [Finding.of("fetched-again", call=99)] * 2
        if i >= 36:  # warnings, on the last calls only
            item.findings.append(Finding.of("call-failed", error=f"reset {i % 2}"))
        if i == 39:
            item.findings += [Finding.of("call-failed", error="late")] * 2
        if i in (6, 7, 8, 9, 10):  # errors past the rows kept, one of them the capture's too
            item.findings.append(Finding.of("analysis-failed", error="KeyError" if i == 10 else f"E{i}"))
        whole.add(item)
        bounded.add(item)
    assert len(whole.told[lang]) == 40 + 1 + 1 + 3 + 5
    # fetched-again 0 to 2 and the token's; the three warnings; errors: four, and the one the capture has too
    assert len(bounded.told[lang]) == 4 + 3 + 4 + 1
    assert bounded.told[lang][(token.code, finding_text(token, lang))].text() == "2, 31"
    assert bounded.untold[lang] == 37 + 1  # fetched-again 3 to 39, and 99 once
    at_end = [CaptureFinding((), Finding.of("analysis-failed", error="KeyError"))]  # joins the row of call 11's
    table = [audit.findings_section(Analysis(tally=tally, findings=at_end), lang) for tally in (whole, bounded)]
    assert table[0] == table[1]
    rows = [line for line in "\n".join(table[0]).splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == [text(f"severity_{s}", lang) for s in ("error",) * 4]
    # not shown: the fifth error's call; the warnings' calls (2 + 2 + 1); the info rows' (40 + 1 + the token's 2)
    assert text("more_findings", lang, n=1 + 5 + 43) in table[0]

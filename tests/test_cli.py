"""`ocitrace analyze` as a user runs it: formats, output file, damaged captures, no tracebacks."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ARTICLE_INDEX, make_flow, sha256, write_flows
from ocitrace.analyzers.manifests import OCI_INDEX

from ocitrace.cli import main


@pytest.fixture
def capture(flow_file):
    return flow_file(
        make_flow("GET", "https://registry.test/v2/", 200),
        make_flow("GET", f"https://registry.test/v2/hj-public/debian/manifests/{sha256(ARTICLE_INDEX)}", 200,
                  resp_body=ARTICLE_INDEX, resp_headers={"Content-Type": OCI_INDEX}),
    )


def test_analyze_prints_markdown_by_default(capture, capsys):
    assert main(["analyze", str(capture)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# ocitrace report") and "linux/mips64le" in out


def test_analyze_writes_json_to_a_file(capture, tmp_path):
    out = tmp_path / "report.json"
    assert main(["analyze", str(capture), "--format", "json", "-o", str(out)]) == 0
    assert [c["endpoint"] for c in json.loads(out.read_text())["calls"]] == ["end-1", "end-3"]


def test_analyze_in_chinese(capture, capsys):
    assert main(["analyze", str(capture), "--lang", "zh"]) == 0
    assert "接口调用" in capsys.readouterr().out


def test_truncated_capture_exits_2_with_one_line_and_still_reports(capture, capsys):
    capture.write_bytes(capture.read_bytes()[:-100])
    assert main(["analyze", str(capture), "--format", "jsonl"]) == 2
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"ocitrace: {capture.name}: truncated after 1 flows")


@pytest.mark.parametrize("content", [b"", b"garbage that is no capture", b'{"log": {'])
def test_bad_input_never_shows_a_traceback(tmp_path, content):
    path = tmp_path / "bad.mitm"
    path.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "ocitrace", "analyze", str(path)], capture_output=True, text=True)
    assert "Traceback" not in result.stderr
    assert result.returncode == (0 if not content else 2)


def test_missing_file_is_one_sentence(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ocitrace", "analyze", str(tmp_path / "nope.mitm")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"ocitrace: {tmp_path / 'nope.mitm'}: no such capture file or folder"


def test_a_folder_the_proxy_wrote_can_be_analysed_by_its_name(capture, capsys):
    capture.rename(capture.with_name("flows.mitm"))
    assert main(["analyze", str(capture.parent), "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_folder_of_session_folders_is_searched(capture, tmp_path, capsys):
    for name in ("a", "b/c"):
        (tmp_path / "tree" / name).mkdir(parents=True)
        (tmp_path / "tree" / name / "flows.mitm").write_bytes(capture.read_bytes())
        (tmp_path / "tree" / name / "events.jsonl").write_text("not read: the flow file says more\n")
    assert main(["analyze", str(tmp_path / "tree"), "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 4 and {r["source"].split("tree/")[1] for r in records} == {"a/flows.mitm",
                                                                                     "b/c/flows.mitm"}


def test_a_folder_without_captures_says_so(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"ocitrace: {tmp_path}: no capture in this folder")


def test_the_proxy_events_can_be_analysed_again(capture, tmp_path, capsys):
    assert main(["analyze", str(capture), "--format", "jsonl"]) == 0
    events = tmp_path / "events.jsonl"
    events.write_text(capsys.readouterr().out)
    assert main(["analyze", str(events), "--format", "jsonl"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first = [json.loads(line) for line in events.read_text().splitlines()]
    keys = ("method", "url", "status", "endpoint", "repository", "reference", "body_digest", "request_bytes",
            "response_bytes")
    assert [[r[k] for k in keys] for r in again] == [[r[k] for k in keys] for r in first]


def test_an_empty_capture_says_it_holds_no_calls(tmp_path, capsys):
    empty = tmp_path / "empty.mitm"
    empty.write_bytes(b"")
    assert main(["analyze", str(empty)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "ocitrace: empty.mitm: holds no calls\n" and "holds no calls" in captured.out


def test_the_same_capture_given_twice_is_counted_once_and_said(capture, capsys):
    assert main(["analyze", str(capture), str(capture), "--format", "jsonl"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "given more than once" in captured.err


def test_errors_speak_the_chosen_language(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ocitrace", "analyze", "--lang", "zh", str(tmp_path / "x")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr == f"ocitrace: {tmp_path / 'x'}: 没有这个抓包文件或目录\n"


def test_bytes_that_are_not_utf8_come_out_escaped_never_raw(tmp_path):
    bad = make_flow("GET", "https://registry.test/v2/", 200, resp_headers={"Content-Type": "x"})
    bad.request.headers["User-Agent"] = b"ev\xfeil".decode("utf-8", "surrogateescape")
    path = write_flows(tmp_path / "c.mitm", [bad])
    for fmt in ("markdown", "json", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        assert main(["analyze", str(path), "--format", fmt, "-o", str(out)]) == 0
        text = out.read_bytes().decode("utf-8")  # valid UTF-8, or this raises
        assert fmt == "markdown" or "ev\\udcfeil" in text


@pytest.mark.parametrize("command,default", [("analyze", "default markdown"), ("proxy", "default 8080"),
                                             ("demo", "default captures/demo"), ("diff", "default en"),
                                             ("run", "default ./ocitrace-out"), ("redact", "default en")])
def test_help_of_every_command_shows_defaults_and_an_example(command, default):
    result = subprocess.run([sys.executable, "-m", "ocitrace", command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and default in result.stdout and "example" in result.stdout
    assert f"ocitrace {command} " in result.stdout.split("example", 1)[1]


def test_version_and_analyze_do_not_load_the_proxy():
    code = ("import sys; from ocitrace.cli import main\n"
            "try: main(['--version'])\nexcept SystemExit: pass\n"
            "main(['analyze', '--format', 'jsonl', sys.argv[1]])\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mitmproxy'}))")
    with tempfile.NamedTemporaryFile(suffix=".mitm") as fh:
        result = subprocess.run([sys.executable, "-c", code, fh.name], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("port", ["0", "99999", "-1", "http"])
def test_a_port_that_is_not_one_is_refused_in_one_line(port):
    result = subprocess.run([sys.executable, "-m", "ocitrace", "proxy", "--port", port], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "is not a port" in result.stderr


def test_events_read_back_keep_indexes_and_registry_errors(tmp_path, capsys):
    error = b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}'
    flows = write_flows(tmp_path / "c.mitm", [
        make_flow("GET", "https://registry.test/v2/app/manifests/v1", 200, resp_body=ARTICLE_INDEX,
                  resp_headers={"Content-Type": OCI_INDEX}),
        make_flow("GET", "https://registry.test/v2/app/manifests/v9", 404, resp_body=error,
                  resp_headers={"Content-Type": "application/json"})])
    assert main(["analyze", str(flows), "--format", "jsonl"]) == 0
    events = tmp_path / "events.jsonl"
    events.write_text(capsys.readouterr().out)
    assert main(["analyze", str(events), "--format", "jsonl"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [c["step"] for c in again] == ["index", "manifest"]
    assert again[1]["registry_errors"] == [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]


REDACT_SECRET = "s3cr3t-Tok3n-value"


def secret_flows():
    token = json.dumps({"token": REDACT_SECRET, "expires_in": 300}).encode()
    return [make_flow("GET", f"https://auth.test/token?scope=repository:app:pull&api_key={REDACT_SECRET}", 200,
                      req_headers={"Authorization": f"Bearer {REDACT_SECRET}", "X-Api-Key": REDACT_SECRET},
                      resp_body=token),
            make_flow("GET", f"https://registry.test/v2/hj-public/debian/manifests/{sha256(ARTICLE_INDEX)}", 200,
                      resp_body=ARTICLE_INDEX, resp_headers={"Content-Type": OCI_INDEX},
                      req_headers={"Cookie": f"s={REDACT_SECRET}"})]


def test_redact_makes_a_flow_file_safe_to_share_that_reads_the_same(tmp_path, capsys):
    source = write_flows(tmp_path / "in.mitm", secret_flows())
    assert REDACT_SECRET.encode() in source.read_bytes()
    assert main(["redact", str(source), str(tmp_path / "out.mitm")]) == 0
    assert REDACT_SECRET.encode() not in (tmp_path / "out.mitm").read_bytes()
    outputs = []
    for path in (source, tmp_path / "out.mitm"):
        assert main(["analyze", str(path), "--format", "jsonl"]) == 0
        outputs.append([{**json.loads(line), "source": ""} for line in capsys.readouterr().out.splitlines()])
    assert outputs[0] == outputs[1] and "index: 8 platforms" in outputs[1][1]["meaning"]


def test_redact_makes_a_har_file_safe_to_share(tmp_path):
    from mitmproxy.addons.savehar import SaveHar

    har = SaveHar().make_har(secret_flows())
    (tmp_path / "in.har").write_text(json.dumps(har))
    assert main(["redact", str(tmp_path / "in.har"), str(tmp_path / "out.har")]) == 0
    assert REDACT_SECRET not in (tmp_path / "out.har").read_text()
    assert json.loads((tmp_path / "out.har").read_text())["log"]["entries"][1]["response"]["content"]["text"]


def test_redact_refuses_a_damaged_capture_before_writing(tmp_path, capsys):
    source = write_flows(tmp_path / "in.mitm", secret_flows())
    source.write_bytes(source.read_bytes()[:-50])
    assert main(["redact", str(source), str(tmp_path / "out.mitm")]) == 2
    assert not (tmp_path / "out.mitm").exists() and "truncated" in capsys.readouterr().err


@pytest.mark.parametrize("served, status", [(b"the promised layer", 0), (b"another layer", 1)])
def test_strict_is_a_ci_gate_exit_1_on_an_error_finding_0_otherwise(flow_file, capsys, served, status):
    promised = sha256(b"the promised layer")
    path = flow_file(make_flow("GET", f"https://registry.test/v2/app/blobs/{promised}", 200, resp_body=served,
                               resp_headers={"Docker-Content-Digest": promised}))
    assert main(["analyze", str(path), "-o", str(path.with_suffix(".md"))]) == 0  # without --strict: a report
    assert main(["analyze", "--strict", str(path), "-o", str(path.with_suffix(".md"))]) == status
    err = capsys.readouterr().err
    assert ("--strict: 2 error finding(s)" in err) == (status == 1)


def test_the_progress_bar_is_drawn_only_on_a_terminal():
    import io

    from ocitrace.progress import Bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for out, drawn in ((Terminal(), True), (io.StringIO(), False)):
        bar = Bar(1000, "reading", out)
        bar.last -= 1  # as if the last redraw were a second ago
        bar(500)
        bar.close()
        assert ("50%" in out.getvalue()) == drawn and ("[" in out.getvalue()) == drawn


@pytest.mark.parametrize("command", [["analyze", "{c}", "-o", "{c}"], ["analyze", "--format", "jsonl", "{c}", "-o",
                                                                        "{c}"], ["diff", "{c}", "{c}", "-o", "{c}"]])
def test_a_report_never_replaces_the_capture_it_reads(command, flow_file, capsys):
    capture = flow_file(make_flow("GET", "https://registry.test/v2/", 200))
    before = capture.read_bytes()
    assert main([part.format(c=capture) for part in command]) == 2
    assert capture.read_bytes() == before and "is also the capture read" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["markdown", "jsonl"])
def test_a_report_never_replaces_the_capture_it_reads_under_another_name(fmt, flow_file, capsys):
    capture = flow_file(make_flow("GET", "https://registry.test/v2/", 200))
    before = capture.read_bytes()
    link = capture.with_name("link.jsonl")
    link.hardlink_to(capture)
    assert main(["analyze", str(capture), "--format", fmt, "-o", str(link)]) == 2
    assert capture.read_bytes() == before and "is also the capture read" in capsys.readouterr().err


def test_what_is_no_capture_gives_no_report_that_looks_clean(tmp_path, capsys):
    junk = tmp_path / "junk.txt"
    junk.write_text("not a capture\n")
    assert main(["analyze", str(junk)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1


def test_the_rules_list_command_says_how_it_is_used_and_touches_no_file_without_its_markers(tmp_path, capsys):
    from ocitrace.analyzers.rules import main as rules_main

    assert rules_main(["--help"]) == 0 and "README" in capsys.readouterr().err
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    assert rules_main([str(notes)]) == 2 and notes.read_text() == "my notes\n"


DEMO_FLOWS = sorted((Path(__file__).resolve().parent.parent / "captures" / "demo").glob("*/flows.mitm"))


@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "file"])
def test_jsonl_is_written_call_by_call_and_is_every_call_s_record(tmp_path, capsys, monkeypatch, to_file):
    """Each record is written once its call is analysed, none kept for the end (memory that does not grow with the
    capture), and the lines are those of an analysis that kept every call."""
    from ocitrace.analyzers import analysis as analysis_module
    from ocitrace.analyzers.captures import read_captures
    from ocitrace.analyzers.report import render

    whole = render(analysis_module.analyze(read_captures(DEMO_FLOWS).calls), "jsonl")
    finished = []
    finish = analysis_module.Analyzer.finish
    monkeypatch.setattr(analysis_module.Analyzer, "finish", lambda self: finished.append(finish(self)) or finished[-1])
    out = tmp_path / "events.jsonl"
    assert main(["analyze", *map(str, DEMO_FLOWS), "--format", "jsonl", *(["-o", str(out)] if to_file else [])]) == 0
    assert (out.read_text(encoding="utf-8") if to_file else capsys.readouterr().out) == whole
    [analysis] = finished
    assert analysis.count == whole.count("\n") > 100 and analysis.calls == []


def test_jsonl_of_nothing_readable_leaves_the_destination_as_it_was(tmp_path, capsys):
    damaged = tmp_path / "damaged.mitm"
    damaged.write_bytes(b"12:not a flow")
    out = tmp_path / "events.jsonl"
    out.write_text("kept\n")
    assert main(["analyze", str(damaged), "--format", "jsonl", "-o", str(out)]) == 2
    assert out.read_text() == "kept\n" and "damaged.mitm" in capsys.readouterr().err


def test_jsonl_of_an_empty_capture_is_an_empty_file(tmp_path):
    empty = tmp_path / "empty.mitm"
    empty.write_bytes(b"")
    out = tmp_path / "events.jsonl"
    assert main(["analyze", str(empty), "--format", "jsonl", "-o", str(out)]) == 0
    assert out.read_bytes() == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_jsonl_to_a_full_disk_says_so_in_one_sentence():
    done = subprocess.run([sys.executable, "-m", "ocitrace", "analyze", str(DEMO_FLOWS[0]), "--format", "jsonl",
                           "-o", "/dev/full"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["ocitrace: cannot write to /dev/full: no space left on the disk"]


@pytest.mark.parametrize("fmt", ["jsonl", "markdown"])
def test_a_report_whose_reader_leaves_stops_quietly(fmt):
    """`ocitrace analyze ... | head -n 1` (the demo's report is far more than a pipe holds): what is not wanted is no
    error."""
    with subprocess.Popen([sys.executable, "-m", "ocitrace", "analyze", *map(str, DEMO_FLOWS), "--format", fmt],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
    assert first.startswith(b'{"version": 1, "index": 1,' if fmt == "jsonl" else b"# ")
    assert proc.returncode == 0 and err == b""

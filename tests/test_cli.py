"""`ocitrace analyze` as a user runs it: formats, output file, damaged captures, no tracebacks."""

import json
import subprocess
import sys

import pytest
from conftest import ARTICLE_INDEX, make_flow, sha256
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

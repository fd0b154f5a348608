"""`ocitrace analyze` on a terminal: the report drawn (tables, no markdown escapes), colour only without NO_COLOR;
markdown when piped."""

import subprocess
import sys

from conftest import ARTICLE_INDEX, make_flow, sha256
from ocitrace.analyzers.analysis import analyze
from ocitrace.analyzers.captures import call_from_state
from ocitrace.analyzers.report import render

from ocitrace import terminal

ANSI = "\x1b["


def report():
    flow = make_flow("GET", f"https://registry.test/v2/app/manifests/{sha256(ARTICLE_INDEX)}", 200,
                     resp_body=ARTICLE_INDEX, resp_headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    return render(analyze([call_from_state(flow.get_state())]), "markdown")


def test_the_report_is_drawn_without_markdown_escapes_and_with_its_tables():
    drawn = terminal.render(report(), width=160, color=False)
    assert "/v2/<name>/manifests/<reference>" in drawn and "\\<" not in drawn
    assert "─" in drawn and "|---" not in drawn and "| calls" not in drawn  # tables drawn, not markdown
    assert "```mermaid" not in drawn and ANSI not in drawn


def test_colour_is_used_unless_no_color_is_set(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert ANSI in terminal.render(report(), width=120)
    monkeypatch.setenv("NO_COLOR", "1")
    assert ANSI not in terminal.render(report(), width=120)


def test_piped_output_is_markdown(tmp_path):
    from conftest import write_flows

    capture = write_flows(tmp_path / "c.mitm", [make_flow("GET", "https://registry.test/v2/", 200)])
    done = subprocess.run([sys.executable, "-m", "ocitrace", "analyze", str(capture)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("# ocitrace report") and ANSI not in done.stdout

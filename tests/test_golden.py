"""The committed captures are the product's face: their reports say what the code says today.

A change that alters a report regenerates the captures in the same commit (`make demo`).
"""

from pathlib import Path

import pytest

from ocitrace.demo import DIFF, SCENARIOS, SCREENSHOT, diff_text, index_text, report_text

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SESSIONS = sorted(p.parent for p in CAPTURES.rglob("flows.mitm"))
REPORTS = [(folder, name, lang) for folder in SESSIONS
           for name, lang in (("report.md", "en"), ("report.zh.md", "zh")) if (folder / name).exists()]


def test_there_are_committed_captures_to_compare():
    assert {s.name for s in SCENARIOS} <= {folder.name for folder in SESSIONS}
    assert len(REPORTS) == 2 * len(SESSIONS)


@pytest.mark.parametrize("folder,name,lang", REPORTS,
                         ids=[f"{f.relative_to(CAPTURES)}/{n}" for f, n, _ in REPORTS])
def test_a_committed_report_is_what_the_code_writes_byte_for_byte(folder, name, lang):
    assert (folder / name).read_text(encoding="utf-8") == report_text(folder / "flows.mitm", lang)


def test_the_demo_index_is_what_the_code_writes():
    folders = {s.name: CAPTURES / "demo" / s.name for s in SCENARIOS}
    assert (CAPTURES / "demo" / "README.md").read_text(encoding="utf-8") == index_text(folders)


@pytest.mark.parametrize("lang,suffix", [("en", ".md"), ("zh", ".zh.md")])
def test_the_demo_diff_is_what_the_code_writes(lang, suffix):
    path = CAPTURES / "demo" / f"diff-{DIFF[0]}-{DIFF[1]}{suffix}"
    assert path.read_text(encoding="utf-8") == diff_text(CAPTURES / "demo", lang)


def test_the_push_diagram_screenshot_is_committed():
    png = CAPTURES / "demo" / SCREENSHOT
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


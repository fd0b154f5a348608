"""Render the Mermaid diagrams of reports in a real browser: headless Chromium with mermaid.js from npm.

`python -m ocitrace.mermaid check REPORT.md...` renders every diagram and fails on the first one Mermaid
cannot parse or draw; `python -m ocitrace.mermaid screenshot REPORT.md N OUT.png` draws diagram N.
The Makefile installs both (`make diagrams`): Debian's `chromium`, and `mermaid` packed from the npm registry
into `.cache/mermaid/` (no CDN).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MERMAID_JS = Path(os.environ.get("OCITRACE_MERMAID_JS", ROOT / ".cache/mermaid/package/dist/mermaid.min.js"))
_BLOCK = re.compile(r"^```mermaid\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RENDER_BUDGET_MS = 60_000


class BrowserMissing(Exception):
    pass


def diagrams(markdown: str) -> list[str]:
    return [m.group(1) for m in _BLOCK.finditer(markdown)]


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing("no chromium: run 'make diagrams', which installs Debian's chromium")


def _mermaid_js() -> Path:
    if not MERMAID_JS.is_file():
        raise BrowserMissing(f"no {MERMAID_JS}: run 'make diagrams', which packs mermaid from the npm registry")
    return MERMAID_JS


def _page(body: str, script: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><script src="{_mermaid_js().as_uri()}"></script>'
            f"</head><body>{body}<script>{script}</script></body></html>")


def _chromium(page: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="ocitrace-mermaid-") as tmp:
        html = Path(tmp) / "page.html"
        html.write_text(page, encoding="utf-8")
        argv = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                f"--user-data-dir={tmp}/profile", f"--virtual-time-budget={RENDER_BUDGET_MS}", *args, html.as_uri()]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        return done.stdout


def check(sources: list[str]) -> list[dict]:
    """Render each diagram; one result per diagram: {index, ok, error}."""
    script = ("mermaid.initialize({startOnLoad: false, securityLevel: 'strict'});"
              f"const sources = {json.dumps(sources)};"
              "(async () => { const results = [];"
              " for (const [i, src] of sources.entries()) {"
              "  try { await mermaid.parse(src); const r = await mermaid.render('d' + i, src);"
              "        results.push({index: i, ok: r.svg.includes('<svg'), error: null}); }"
              "  catch (e) { results.push({index: i, ok: false, error: String((e && e.message) || e)}); } }"
              " document.getElementById('out').textContent = JSON.stringify(results); })();")
    out = _chromium(_page('<pre id="out">pending</pre>', script), "--dump-dom")
    match = re.search(r'<pre id="out">(.*?)</pre>', out, re.DOTALL)
    if match is None or match.group(1) == "pending":
        raise RuntimeError(f"chromium did not finish rendering: {out[-500:]}")
    text = match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return json.loads(text)


def screenshot(source: str, png: Path, width: int = 1400, height: int = 1100) -> None:
    script = "mermaid.initialize({startOnLoad: true, securityLevel: 'strict'});"
    escaped = source.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = _page(f'<div class="mermaid">{escaped}</div>', script)
    _chromium(page, f"--screenshot={png.resolve()}", f"--window-size={width},{height}", "--hide-scrollbars")
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["check"] and argv[1:]:
            failures = 0
            for report in argv[1:]:
                sources = diagrams(Path(report).read_text(encoding="utf-8"))
                for result in check(sources) if sources else []:
                    if not result["ok"]:
                        failures += 1
                        print(f"{report}: diagram {result['index'] + 1}: {result['error']}", file=sys.stderr)
                print(f"{report}: {len(sources)} diagrams rendered")
            return 1 if failures else 0
        if argv[:1] == ["screenshot"] and len(argv) == 4:
            screenshot(diagrams(Path(argv[1]).read_text(encoding="utf-8"))[int(argv[2]) - 1], Path(argv[3]))
            return 0
    except BrowserMissing as exc:
        print(f"ocitrace: {exc}", file=sys.stderr)
        return 2
    print("usage: python -m ocitrace.mermaid check REPORT.md... | screenshot REPORT.md N OUT.png", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

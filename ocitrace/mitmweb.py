"""mitmweb with the OCI content view, drawn by headless Chromium: a recorded session's index as mitmweb shows it.

`make demo` commits the picture (captures/demo/pull/mitmweb-oci-view.png); the end-to-end tests draw it too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from .lab import LabError, free_port, terminate, wait_until
from .mermaid import browser

VIEW_SCRIPT = Path(__file__).resolve().parent.parent / "addons" / "view.py"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


def _view_script() -> Path:
    if VIEW_SCRIPT.exists():
        return VIEW_SCRIPT
    import ocitrace.addons

    return Path(ocitrace.addons.__file__).with_name("view.py")


def screenshot(flows: Path, png: Path, width: int = 1400, height: int = 900) -> dict:
    """Open `flows` in mitmweb (with the OCI view), select its first index answer, and draw the page into `png`.
    Returns what mitmweb's own API says it shows for that body (`view_name`, `text`)."""
    with tempfile.TemporaryDirectory(prefix="ocitrace-mitmweb-") as tmp:
        web_port = free_port()
        log = Path(tmp) / "mitmweb.log"
        argv = [str(Path(sys.executable).with_name("mitmweb")), "-s", str(_view_script()), "-r", str(flows),
                "--web-host", "127.0.0.1", "--web-port", str(web_port), "--listen-host", "127.0.0.1",
                "--listen-port", str(free_port()), "--set", "web_open_browser=false", "--set", f"confdir={tmp}/conf"]
        process = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "token=" in log.read_text(errors="replace"), "mitmweb", process, log)
            token = re.search(r"token=([0-9a-f]+)", log.read_text()).group(1)
            base = f"http://127.0.0.1:{web_port}"
            listed = json.loads(urllib.request.urlopen(f"{base}/flows?token={token}", timeout=10).read())
            flow = next((f for f in listed if any(h[0].lower() == "content-type" and h[1] in INDEX_TYPES
                                                  for h in (f.get("response") or {}).get("headers", []))), None)
            if flow is None:
                raise LabError(f"{flows} holds no index answer to show")
            shown = json.loads(urllib.request.urlopen(
                f"{base}/flows/{flow['id']}/response/content/auto.json?token={token}", timeout=10).read())
            subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}/profile",
                            "--virtual-time-budget=8000", f"--window-size={width},{height}", "--hide-scrollbars",
                            f"--screenshot={png.resolve()}", f"{base}/?token={token}#/flows/{flow['id']}/response"],
                           capture_output=True, timeout=120, check=False)
            if not png.exists():
                raise LabError("chromium wrote no screenshot of mitmweb")
            return shown
        finally:
            terminate(process)

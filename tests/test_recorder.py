"""The live proxy's two processes end as one: however the proxy is stopped, its recorder writes what it was handed
and the report, then goes.

A terminal's Ctrl-C reaches the whole process group (the proxy and its recorder); a service manager sends SIGTERM
to the proxy alone; SIGKILL leaves the recorder to find the pipe closed.
"""

import http.client
import os
import signal
import subprocess
import sys
import time

import pytest

from ocitrace.lab import Registry, free_port

pytestmark = pytest.mark.e2e


def recorder_of(pid: int) -> list[int]:
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return [int(child) for child in children]


@pytest.mark.parametrize("sig,group", [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGKILL, False)],
                         ids=["Ctrl-C to the group", "SIGTERM to the proxy", "SIGKILL to the proxy"])
def test_however_the_proxy_stops_the_recorder_writes_the_report_and_ends(tmp_path, sig, group):
    with Registry(tmp_path / "registry", public_url=None) as registry:
        port, out = free_port(), tmp_path / "out"
        proxy = subprocess.Popen([sys.executable, "-m", "ocitrace", "proxy", "--port", str(port), "--out", str(out),
                                  "--confdir", str(tmp_path / "conf")], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:  # ready once a call goes through
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", f"http://127.0.0.1:{registry.port}/v2/")
                    assert conn.getresponse().status == 200
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the proxy did not start"
                    time.sleep(0.1)
            [recorder] = recorder_of(proxy.pid)
            # A call is handed to the recorder within a quarter of a second of its end: a proxy killed outright
            # takes the calls of that last moment with it (SIGINT and SIGTERM do not).
            if sig == signal.SIGKILL:
                time.sleep(1.5)
            (os.killpg if group else os.kill)(proxy.pid, sig)
            proxy.wait(timeout=30)
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{recorder}") and open(f"/proc/{recorder}/stat").read().split()[2] != "Z":
                assert time.monotonic() < deadline, "the recorder did not end"
                time.sleep(0.05)
        finally:
            if proxy.poll() is None:
                proxy.kill()
    assert len((out / "events.jsonl").read_text().splitlines()) == 1
    assert "GET" in (out / "report.md").read_text()

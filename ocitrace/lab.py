"""The parts of a local registry session: a real registry, the ocitrace proxy, and real clients.

Used by `ocitrace demo` and by the end-to-end tests. Every server gets a free loopback port, is waited
for by probing it (never by sleeping a fixed time), and is stopped on exit.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

# Go clients never send localhost or 127.x through a proxy, so the registry gets a name that only the
# proxy resolves (to the registry's loopback port).
REGISTRY_NAME = "registry.test"
READY_TIMEOUT = 30.0


class LabError(Exception):
    """A part of the lab could not be started or a client failed; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"{what} exited with status {process.returncode}: {_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    raise LabError(f"{what} was not ready after {READY_TIMEOUT:.0f} s: {_tail(log)}")


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def require(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)}: run 'make demo' or 'make test', which install them")


def terminate(process: subprocess.Popen | None, timeout: float = 20) -> None:
    """SIGTERM (a proxy writes its report then), and SIGKILL if it has not ended within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Service:
    process: subprocess.Popen | None = None
    name = "service"

    def stop(self) -> None:
        terminate(self.process)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


class Registry(_Service):
    """CNCF distribution (Debian's docker-registry) on loopback, storage in `root`."""

    name = "docker-registry"

    def __init__(self, root: Path, public_url: str | None = f"https://{REGISTRY_NAME}", auth: dict | None = None,
                 access_log: bool = False):
        """`public_url`: the URL the registry names in its Location headers (None: its own address);
        `auth`: distribution's `auth` section (htpasswd, token); `access_log`: log every request it served."""
        self.root = root
        self.port = free_port()
        self.public_url = public_url or self.upstream
        self.auth, self.access_log = auth, access_log
        self.log = root / "registry.log"

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        require("docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        settings = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": not self.access_log}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}, "delete": {"enabled": True}},
            # http.host: upload Locations must name the proxy-only name, or clients go around the proxy.
            "http": {"addr": f"127.0.0.1:{self.port}", "host": self.public_url},
        }
        if self.auth:
            settings["auth"] = self.auth
        config.write_text(yaml.safe_dump(settings))
        self.process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=open(self.log, "wb"),
                                        stderr=subprocess.STDOUT)
        wait_until(self._answers, self.name, self.process, self.log)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.upstream}/v2/", timeout=1) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, and asking for credentials
        except OSError:
            return False


    def served(self, since: int = 0) -> Counter:
        """(method, path, status) of every request the registry logged after byte `since` of its log (its access
        log must be on), the lab's own readiness probes left out."""
        text = self.log.read_bytes()[since:].decode(errors="replace")
        return Counter((m, uri.split("?", 1)[0], int(status)) for m, uri, status, agent in _ACCESS.findall(text)
                       if not agent.startswith("Python-urllib"))


# distribution's access log: Apache combined format
_ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"')


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM) with its children's (`ocitrace proxy`'s recorder), in MB: the
    sum of the peaks, which may not have come at once, so at most that."""
    total = 0.0
    for process in [pid, *_children(pid)]:
        try:
            lines = Path(f"/proc/{process}/status").read_text().splitlines()
        except OSError:  # ended meanwhile
            continue
        total += next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")), 0.0)
    return total or float("nan")


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(child) for child in task.read_text().split()]
        except OSError:
            pass
    return children


class Proxy(_Service):
    """`ocitrace proxy` in its own process, writing into `out`."""

    name = "ocitrace proxy"

    def __init__(self, out: Path, maps: Mapping[str, str], confdir: Path, lang: str = "en",
                 extra: Sequence[str] = (), log: Path | None = None):
        self.out, self.maps, self.confdir, self.lang, self.extra = out, maps, confdir, lang, extra
        self.port = free_port()
        self.log = log or out.parent / f"{out.name}.proxy.log"

    @property
    def ca_file(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "ocitrace", "proxy", "--port", str(self.port), "--out", str(self.out),
                "--confdir", str(self.confdir), "--lang", self.lang]
        for host, url in self.maps.items():
            argv += ["--map", f"{host}={url}"]
        if self.extra:
            argv += ["--", *self.extra]
        self.process = subprocess.Popen(argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_until(lambda: port_open(self.port) and self.ca_file.exists(), self.name, self.process, self.log)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a client needs to go through this proxy and trust it."""
        env = dict(os.environ if base is None else base)
        for key in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(key, None)
        url = f"http://127.0.0.1:{self.port}"
        env.update(HTTPS_PROXY=url, https_proxy=url, SSL_CERT_FILE=str(self.ca_file))
        return env


class PlainMitmdump(Proxy):
    """mitmdump alone, as a user without ocitrace records: `-w` a flow file, `--map-remote` to the registry.

    It buffers every body (no streaming, so map_remote is safe): for small images only.
    """

    name = "mitmdump"

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        argv = [str(Path(sys.executable).with_name("mitmdump")), "--listen-host", "127.0.0.1",
                "--listen-port", str(self.port), "-w", str(self.out / "flows.mitm"),
                "--set", f"confdir={self.confdir}", "--set", "connection_strategy=lazy", "--set", "flow_detail=0"]
        for host, url in self.maps.items():
            argv += ["--map-remote", f"|https://{host}|{url}"]
        self.process = subprocess.Popen(argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_until(lambda: port_open(self.port) and self.ca_file.exists(), self.name, self.process, self.log)


def run_client(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, timeout: float = 600,
               stdin: str | None = None, fails: bool = False) -> str:
    """Run a real client; its output, or a LabError naming the command and its last lines. `fails`: the
    command is meant to be refused (a denied push): its error output, or a LabError when it succeeded."""
    try:
        done = subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              input=stdin)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:3])} did not finish in {timeout:.0f} s") from None
    if fails and done.returncode == 0:
        raise LabError(f"{' '.join(argv)} succeeded where it should have been refused")
    if done.returncode != 0 and not fails:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
        raise LabError(f"{' '.join(argv)} failed ({done.returncode}): {tail}")
    return done.stderr if fails else done.stdout

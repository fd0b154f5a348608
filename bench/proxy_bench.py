"""Push and pull one large blob through `ocitrace proxy`, through plain streaming mitmdump, and direct.

Run: .venv/bin/python bench/proxy_bench.py [--size-mib 1024] [--rounds 1]

All three run side by side against one local registry (Debian's docker-registry, its storage in memory) in one
run, so the ratios hold on a shared, noisy machine: both proxies run throughout, and each step (push, pull, bare
pull) goes through the three paths one right after the other, in turns. Reported: the best throughput of each,
the ratio of ocitrace to plain mitmdump, each round's and their median (target >= 0.9), each proxy's peak RSS
(ocitrace target < 150 MB), and whether ocitrace verified the blob's digest both ways.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocitrace.lab import Registry, free_port, peak_rss_mb, port_open, wait_until  # noqa: E402

CHUNK = 1 << 20
MITMDUMP = Path(sys.executable).with_name("mitmdump")
REPO = "bench/blob"
PATHS = ("direct", "mitmdump", "ocitrace")


_BLOCK = os.urandom(CHUNK)


def payload(size: int):
    """`size` bytes from a repeated random block: cheap to make, not compressible by accident."""
    for offset in range(0, size, CHUNK):
        yield _BLOCK[: min(CHUNK, size - offset)]


def digest_of(size: int) -> str:
    sha = hashlib.sha256()
    for chunk in payload(size):
        sha.update(chunk)
    return "sha256:" + sha.hexdigest()


class Client:
    """A registry client over HTTP, either direct or through a forward proxy (absolute-form URLs)."""

    def __init__(self, upstream_port: int, proxy_port: int | None):
        self.origin = f"http://127.0.0.1:{upstream_port}"
        self.upstream_port, self.proxy_port = upstream_port, proxy_port

    def request(self, method: str, target: str, body=None, headers=None) -> http.client.HTTPResponse:
        path = target.removeprefix(self.origin)
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port or self.upstream_port, timeout=600)
        streamed = body is not None and not isinstance(body, bytes)
        conn.request(method, self.origin + path if self.proxy_port else path, body=body, headers=headers or {},
                     encode_chunked=streamed)
        return conn.getresponse()

    def ping(self) -> None:
        """GET /v2/, as every client begins (docker, skopeo, crane): not timed."""
        self.request("GET", "/v2/").read()

    def push(self, size: int, digest: str) -> None:
        resp = self.request("POST", f"/v2/{REPO}/blobs/uploads/", b"", {"Content-Length": "0"})
        resp.read()
        location = resp.getheader("Location")
        assert resp.status == 202, resp.status
        resp = self.request("PATCH", location, payload(size), {"Content-Type": "application/octet-stream"})
        resp.read()
        assert resp.status == 202, resp.status
        location = resp.getheader("Location")
        sep = "&" if "?" in location else "?"
        resp = self.request("PUT", f"{location}{sep}digest={digest}", b"", {"Content-Length": "0"})
        resp.read()
        assert resp.status == 201, resp.status

    def pull(self, digest: str, verify: bool) -> str | None:
        resp = self.request("GET", f"/v2/{REPO}/blobs/{digest}")
        assert resp.status == 200, resp.status
        sha = hashlib.sha256() if verify else None
        while chunk := resp.read(CHUNK):
            if sha is not None:
                sha.update(chunk)
        return "sha256:" + sha.hexdigest() if sha is not None else None


def storage_dir(size: int) -> str | None:
    """Where the registry keeps the blob: memory (/dev/shm) where it has room. On disk, each round's pushes were
    written back to the disk during later rounds (the kernel flushes dirty pages after 30 s), CPU and I/O that
    fell on whichever path ran then: push, alone of the figures, moved by a fifth from run to run."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * size:
        return str(shm)
    return None


def start(argv: list[str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_until(lambda: port_open(port), argv[0], process, log)
    return process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def timed(fn, *args) -> tuple[float, object]:
    start_time = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start_time, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    size = args.size_mib << 20
    digest = digest_of(size)
    results = {name: {"push": [], "pull": [], "bare pull": []} for name in PATHS}
    storage = storage_dir(size)
    with tempfile.TemporaryDirectory(prefix="ocitrace-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="ocitrace-bench-registry-", dir=storage) as stored:
        work = Path(tmp)
        events = work / "out" / "events.jsonl"
        with Registry(Path(stored), public_url=None) as registry:
            ports = {name: free_port() for name in PATHS[1:]}
            proxies: dict[str, subprocess.Popen] = {}
            try:
                proxies["mitmdump"] = start([str(MITMDUMP), "--listen-host", "127.0.0.1", "-p", str(ports["mitmdump"]),
                                             "--set", "stream_large_bodies=1m", "--set", "flow_detail=0",
                                             "--set", f"confdir={work / 'conf'}"], ports["mitmdump"],
                                            work / "mitmdump.log")
                proxies["ocitrace"] = start([sys.executable, "-m", "ocitrace", "proxy",
                                             "--port", str(ports["ocitrace"]), "--out", str(work / "out"),
                                             "--confdir", str(work / "conf")], ports["ocitrace"], work / "ocitrace.log")
                clients = {name: Client(registry.port, ports.get(name)) for name in PATHS}
                for client in clients.values():
                    client.ping()
                steps = {"push": (lambda c: c.push(size, digest), 3),  # with the calls each one makes
                         "pull": (lambda c: c.pull(digest, True), 1),
                         "bare pull": (lambda c: c.pull(digest, False), 1)}
                recorded = 1  # the ping
                for round_ in range(args.rounds):
                    # Each step through the three paths one after the other, in turns (ABBA): what else the
                    # machine does in those seconds falls on each path alike.
                    order = PATHS if round_ % 2 == 0 else PATHS[::-1]
                    for step, (run, calls) in steps.items():
                        for name in order:
                            seconds, pulled = timed(run, clients[name])
                            assert step != "pull" or pulled == digest, f"{name}: pulled blob has another digest"
                            results[name][step].append(size / seconds / 2**20)
                            if name == "ocitrace":  # its recorder's work on the step is done before the next path
                                recorded += calls
                                wait_until(lambda n=recorded: _lines(events) >= n, "ocitrace's recorder",
                                           proxies["ocitrace"], work / "ocitrace.log")
                rss = {name: peak_rss_mb(process.pid) for name, process in proxies.items()}
            finally:
                for process in proxies.values():
                    try:
                        stop(process)
                    except subprocess.TimeoutExpired:
                        process.kill()
            verified = verified_by_ocitrace(events, digest)
    report(results, rss, args.size_mib, verified, "memory (/dev/shm)" if storage else "disk")


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def verified_by_ocitrace(events: Path, digest: str) -> dict[str, bool]:
    calls = [json.loads(line) for line in events.read_text().splitlines()]
    return {
        "push (end-6)": any(c["endpoint"] == "end-6" and c["body_digest"] == digest and c["digest_verified"]
                            for c in calls),
        "pull (end-2)": any(c["endpoint"] == "end-2" and c["body_digest"] == digest and c["digest_verified"]
                            for c in calls),
    }


def report(results, rss: dict[str, float], size_mib: int, verified: dict[str, bool], storage: str) -> None:
    rounds = len(results["direct"]["push"])
    best = {name: {k: max(v) if v else float("nan") for k, v in r.items()} for name, r in results.items()}
    print(f"blob: {size_mib} MiB, {rounds} round(s) in turns; MiB/s, the best of the rounds")
    print("pull: the client hashes what it reads, as docker does; bare pull: it only reads")
    print(f"the registry stores the blob in {storage}")
    print(f"{'path':<10} {'push':>7} {'pull':>7} {'bare pull':>10} {'peak RSS MB':>12}")
    for name, r in best.items():
        peak = f"{rss[name]:.0f}" if name in rss else ""
        print(f"{name:<10} {r['push']:>7.0f} {r['pull']:>7.0f} {r['bare pull']:>10.0f} {peak:>12}")
    # Each round's ratio pairs the two proxies' runs of a step, one right after the other; the median of the rounds
    # is the figure. The best of each path over the rounds paired one path's luckiest run with the other's (here
    # mitmdump's best push once beat the direct path's).
    o, m = results["ocitrace"], results["mitmdump"]
    figures = []
    for k in ("push", "pull", "bare pull"):
        ratios = [a / b for a, b in zip(o[k], m[k], strict=True)]
        each = " ".join(f"{r:.2f}" for r in ratios)
        figures.append(f"{k} {statistics.median(ratios):.2f}x" + (f" ({each})" if rounds > 1 else ""))
    print(f"ocitrace / mitmdump throughput, the median of the rounds: {', '.join(figures)} (target >= 0.9)")
    print(f"ocitrace peak RSS: {rss['ocitrace']:.0f} MB (target < 150 MB)")
    print("digest verified by ocitrace: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in verified.items()))

if __name__ == "__main__":
    main()

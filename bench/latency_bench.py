"""Small calls: 2,000 manifest HEADs and GETs through plain mitmdump and through `ocitrace proxy`, side by side.

Run: .venv/bin/python bench/latency_bench.py [--calls 2000] [--block 20]

One local registry (Debian's docker-registry) holds a small image; a client on one keep-alive connection per
proxy asks for its manifest, HEAD then GET, over and over. Both proxies run at once and take turns, a block of
calls each; reported: each one's calls per second and median and 99th-percentile latency, and ocitrace's
per-call overhead against mitmdump (target <= 10%).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_bench import MITMDUMP, start, stop  # noqa: E402

from ocitrace.lab import Registry, free_port  # noqa: E402

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def seed(port: int) -> str:
    """Push a config and a manifest naming it; the manifest's path."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST", "/v2/bench/small/blobs/uploads/", b"", {"Content-Length": "0"})
    response = conn.getresponse()
    response.read()
    location = response.getheader("Location")
    conn.request("PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", config,
                 {"Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    response.read()
    assert response.status == 201, response.status
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
        "layers": []}).encode()
    conn.request("PUT", "/v2/bench/small/manifests/v1", manifest, {"Content-Type": MANIFEST_TYPE})
    response = conn.getresponse()
    response.read()
    assert response.status == 201, response.status
    return "/v2/bench/small/manifests/v1"


def call(conn: http.client.HTTPConnection, url: str, method: str) -> float:
    """Seconds one call took."""
    start_time = time.perf_counter()
    conn.request(method, url, headers={"Accept": MANIFEST_TYPE})
    response = conn.getresponse()
    response.read()
    took = time.perf_counter() - start_time
    assert response.status == 200, response.status
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--block", type=int, default=20, help="calls in a row through one proxy before the other")
    args = parser.parse_args()
    took: dict[str, list[float]] = {"mitmdump": [], "ocitrace": []}
    with tempfile.TemporaryDirectory(prefix="ocitrace-latency-") as tmp:
        work = Path(tmp)
        with Registry(work / "registry", public_url=None) as registry:
            url = f"http://127.0.0.1:{registry.port}{seed(registry.port)}"
            processes, conns = [], {}
            try:
                for name in took:
                    port = free_port()
                    argv = ([str(MITMDUMP), "--listen-host", "127.0.0.1", "-p", str(port), "--set", "flow_detail=0",
                             "--set", f"confdir={work / 'conf'}"] if name == "mitmdump" else
                            [sys.executable, "-m", "ocitrace", "proxy", "--port", str(port), "--out",
                             str(work / "out"), "--confdir", str(work / "conf")])
                    processes.append(start(argv, port, work / f"{name}.log"))
                    conns[name] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    for n in range(20):  # warm up: connections made, code paths taken once
                        call(conns[name], url, "HEAD" if n % 2 == 0 else "GET")
                # Both proxies are up the whole time and take turns, a block of calls each (ABBA), so that what
                # else the machine does falls on both alike.
                for block in range(args.calls // args.block):
                    order = list(took) if block % 2 == 0 else list(took)[::-1]
                    for name in order:
                        for n in range(args.block):
                            took[name].append(call(conns[name], url, "HEAD" if n % 2 == 0 else "GET"))
            finally:
                for conn in conns.values():
                    conn.close()
                for process in processes:
                    stop(process)
    print(f"{args.calls} small manifest calls (HEAD, GET alternately) through each proxy on one connection, "
          f"taking turns in blocks of {args.block}")
    print(f"{'proxy':10} {'calls/s':>8} {'median ms':>10} {'p99 ms':>8}")
    for name, times in took.items():
        ordered = sorted(times)
        print(f"{name:10} {len(times) / sum(times):8.0f} {statistics.median(times) * 1e3:10.2f} "
              f"{ordered[int(len(ordered) * 0.99) - 1] * 1e3:8.2f}")
    overhead = sum(took["ocitrace"]) / sum(took["mitmdump"]) - 1
    print(f"ocitrace per-call overhead against mitmdump: {overhead:+.0%} (target <= +10%)")


if __name__ == "__main__":
    main()

"""Small calls: 2,000 manifest HEADs and GETs through plain mitmdump and through `ocitrace proxy`, side by side.

Run: .venv/bin/python bench/latency_bench.py [--calls 2000] [--rounds 3]

One local registry (Debian's docker-registry) holds a small image; a client on one keep-alive connection per
proxy asks for its manifest, HEAD then GET, over and over. Each round runs both proxies in turn; reported: each
one's calls per second and median and 99th-percentile latency (best round), and ocitrace's per-call overhead
against mitmdump (target <= 10%).
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


def run(proxy_port: int, registry_port: int, path: str, calls: int) -> list[float]:
    """Seconds each call took, on one keep-alive connection through the proxy."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=30)
    url = f"http://127.0.0.1:{registry_port}{path}"
    took = []
    for n in range(calls):
        start_time = time.perf_counter()
        conn.request("HEAD" if n % 2 == 0 else "GET", url, headers={"Accept": MANIFEST_TYPE})
        response = conn.getresponse()
        response.read()
        took.append(time.perf_counter() - start_time)
        assert response.status == 200, response.status
    conn.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ocitrace-latency-") as tmp:
        work = Path(tmp)
        with Registry(work / "registry", public_url=None) as registry:
            path = seed(registry.port)
            for round_ in range(args.rounds):
                for name in ("mitmdump", "ocitrace"):
                    port = free_port()
                    argv = ([str(MITMDUMP), "--listen-host", "127.0.0.1", "-p", str(port), "--set", "flow_detail=0",
                             "--set", f"confdir={work / 'conf'}"] if name == "mitmdump" else
                            [sys.executable, "-m", "ocitrace", "proxy", "--port", str(port), "--out",
                             str(work / f"out{round_}"), "--confdir", str(work / "conf")])
                    process = start(argv, port, work / f"{name}.log")
                    try:
                        took = run(port, registry.port, path, args.calls)
                    finally:
                        stop(process)
                    if name not in best or sum(took) < sum(best[name]):
                        best[name] = took
    print(f"{args.calls} small manifest calls (HEAD, GET alternately) on one connection, best of {args.rounds}")
    print(f"{'proxy':10} {'calls/s':>8} {'median ms':>10} {'p99 ms':>8}")
    for name, took in best.items():
        ordered = sorted(took)
        print(f"{name:10} {len(took) / sum(took):8.0f} {statistics.median(took) * 1e3:10.2f} "
              f"{ordered[int(len(ordered) * 0.99) - 1] * 1e3:8.2f}")
    overhead = sum(best["ocitrace"]) / sum(best["mitmdump"]) - 1
    print(f"ocitrace per-call overhead against mitmdump: {overhead:+.0%} (target <= +10%)")


if __name__ == "__main__":
    main()

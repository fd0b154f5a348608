"""Micro-benchmark: how many calls per second the endpoint classifier handles.

Run: .venv/bin/python bench/classify_bench.py [N]
Side by side with a baseline that builds the table for every call (what "compiled once" saves).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocitrace.analyzers.endpoints import EndpointTable, default_table  # noqa: E402

D = "sha256:" + "ab" * 32
MIX = [
    ("GET", "/v2/", ""),
    ("HEAD", "/v2/library/debian/manifests/latest", ""),
    ("GET", f"/v2/library/debian/manifests/{D}", ""),
    ("GET", f"/v2/library/debian/blobs/{D}", ""),
    ("HEAD", f"/v2/team/blobs/manifests/blobs/{D}", ""),
    ("POST", "/v2/hj-public/test1/blobs/uploads/", ""),
    ("POST", "/v2/hj-public/test1/blobs/uploads/", f"mount={D}&from=hj-public/debian"),
    ("PATCH", "/v2/hj-public/test1/blobs/uploads/0b3c5a9e-1c2d", "_state=abcdef"),
    ("PUT", "/v2/hj-public/test1/blobs/uploads/0b3c5a9e-1c2d", f"_state=abcdef&digest={D}"),
    ("PUT", "/v2/hj-public/test1/manifests/new", ""),
    ("GET", "/v2/hj-public/test1/tags/list", "n=50"),
    ("GET", "/token", "scope=repository:a:pull&service=r"),
    ("GET", "/favicon.ico", ""),
]


def rate(classify, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        method, path, query = MIX[i % len(MIX)]
        classify(method, path, query, 200)
    return n / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    table = default_table()
    compiled = rate(table.classify, n)
    baseline = rate(lambda *a: EndpointTable.load().classify(*a), max(n // 200, 50))
    print(f"classify, table compiled once : {compiled:12,.0f} calls/s")
    print(f"baseline, table built per call: {baseline:12,.0f} calls/s")
    print(f"ratio: {compiled / baseline:,.0f}x; {1e6 / compiled:.0f} µs a call "
          "(no target set: issue 9 asks for the figure)")


if __name__ == "__main__":
    main()

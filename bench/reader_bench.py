"""`ocitrace analyze` of a large flow file against a bare mitmproxy FlowReader loop over the same file.

Run: .venv/bin/python bench/reader_bench.py [--flows 200000] [--rounds 2] [--keep FILE]

The capture is the demo's real traffic repeated, each copy with UUIDs of its own (bench/make_capture.py). Both run
in this one run, side by side: the baseline reads every flow with mitmproxy's FlowReader and does nothing with it;
ocitrace reads, classifies, decodes, checks and writes the markdown report (`ocitrace analyze FILE -o /dev/null`,
every core). Reported: each one's flows per second, the ratio (target >= 3x), and each one's peak RSS. Then memory:
ocitrace's peak RSS for the capture (its timed runs) and for one four times longer (twice; target: no growth with
the flows, <= 1.05x, the drift of the allocator's heap as it settles; two runs of one capture differ by up to 2%
here), and what it adds a flow.
"""

from __future__ import annotations

import argparse
import compileall
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_capture import write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import sys
from mitmproxy import io
with open(sys.argv[1], "rb") as fh:
    for flow in io.FlowReader(fh).stream():
        pass
"""


# Run a command and print the peak RSS of the largest process it made (itself or a worker it waited for).
PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(argv: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB, its largest process) of a command run to its end."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, *argv], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, int(out.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="write the capture here and keep it")
    parser.add_argument("--rounds", type=int, default=2, help="each path this many times, in turns (ABBA); the best")
    args = parser.parse_args()
    paths = {"baseline": [sys.executable, "-c", BASELINE], "ours": [sys.executable, "-m", "ocitrace", "analyze"]}
    # ocitrace's modules compiled first, as installing a package does (mitmproxy's were when it was installed): an
    # editable install under PYTHONDONTWRITEBYTECODE compiled them again in every run, 0.1 s of each.
    for package in ("ocitrace", "addons", "analyzers"):
        compileall.compile_dir(ROOT / package, quiet=1)
    best: dict[str, tuple[float, float]] = {}
    short_rss = float("inf")
    with tempfile.TemporaryDirectory(prefix="ocitrace-reader-") as tmp:
        capture = args.keep or Path(tmp) / "capture.mitm"
        size = write(capture, args.flows)
        for round_ in range(args.rounds):
            for name in (list(paths) if round_ % 2 == 0 else list(paths)[::-1]):
                argv = paths[name] + [str(capture)] + (["-o", "/dev/null"] if name == "ours" else [])
                seconds, rss = timed(argv)
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, rss)
                if name == "ours":
                    short_rss = min(rss, short_rss)
        longer = Path(tmp) / "longer.mitm"
        write(longer, 4 * args.flows)
        # the lowest peak of each length (RSS varies run to run): the capture's timed runs, the longer one twice
        long_rss = min(timed(paths["ours"] + [str(longer), "-o", "/dev/null"])[1] for _ in range(2))
    (baseline, base_rss), (ours, our_rss) = best["baseline"], best["ours"]
    print(f"{args.flows} flows of real registry traffic, {size / 1e6:.0f} MB, best of {args.rounds} (in turns)")
    print(f"{'path':32} {'seconds':>8} {'flows/s':>9}")
    print(f"{'mitmproxy FlowReader loop':32} {baseline:8.1f} {args.flows / baseline:9.0f}")
    print(f"{'ocitrace analyze (report)':32} {ours:8.1f} {args.flows / ours:9.0f}")
    print(f"ocitrace / FlowReader throughput: {baseline / ours:.2f}x (target >= 3x)")
    print(f"peak RSS: FlowReader loop {base_rss:.0f} MB, ocitrace analyze (largest process) {our_rss:.0f} MB")
    added = max(0.0, long_rss - short_rss) * 2**20 / (3 * args.flows)
    print(f"ocitrace analyze peak RSS, {args.flows} flows against {4 * args.flows} (lowest of {args.rounds} and of 2): "
          f"{short_rss:.1f} MB "
          f"against {long_rss:.1f} MB, {long_rss / short_rss:.2f}x for 4x the flows, {added:.0f} bytes a flow added "
          f"(target: no growth with the flows, <= 1.05x)")


if __name__ == "__main__":
    main()

"""Make a large flow file from the demo's real traffic, for the reader benchmark.

Run: .venv/bin/python bench/make_capture.py OUT [--flows 200000]

The flows of every committed demo capture (skopeo, buildah and docker CLI traffic against distribution 2.8, as
`mitmdump -w` and `ocitrace proxy` wrote it), repeated in order until OUT holds that many. Each copy has UUIDs of
its own (flow ids, upload sessions), as a day of real traffic would: the same UUID again would read as the same
upload session reopened. A UUID is as long as the one it replaces, so every length prefix stays true.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

from mitmproxy import io
from mitmproxy.io import tnetstring

ROOT = Path(__file__).resolve().parent.parent


def demo_flows() -> list[bytes]:
    """Each demo flow, serialised once as mitmproxy writes it."""
    encoded = []
    for path in sorted(ROOT.glob("captures/demo/*/flows.mitm")):
        with open(path, "rb") as fh:
            encoded += [tnetstring.dumps(flow.get_state()) for flow in io.FlowReader(fh).stream()]
    return encoded


_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _renamed(flow: bytes, copy: int) -> bytes:
    """The flow with each UUID replaced by one of this copy's own (the first copy as it was recorded)."""
    if copy == 0:
        return flow

    def other(match: re.Match) -> bytes:
        hexed = hashlib.md5(match.group() + b"%d" % copy).hexdigest().encode()
        return b"-".join((hexed[:8], hexed[8:12], hexed[12:16], hexed[16:20], hexed[20:]))

    return _UUID.sub(other, flow)


def write(out: Path, flows: int) -> int:
    source = demo_flows()
    with open(out, "wb") as fh:
        for n in range(flows):
            fh.write(_renamed(source[n % len(source)], n // len(source)))
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--flows", type=int, default=200_000)
    args = parser.parse_args()
    size = write(args.out, args.flows)
    print(f"{args.out}: {args.flows} flows, {size / 1e6:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()

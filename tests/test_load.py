"""Load: 16 skopeo copies of a multi-arch image at once, through one `ocitrace proxy`.

Every request the registry logged appears exactly once in events.jsonl, every blob is verified, and the proxy's
memory stays bounded. (bench/README.md keeps the figures of a larger run.)
"""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from ocitrace.analyzers.rules import rule

from ocitrace.lab import REGISTRY_NAME, Proxy, Registry, peak_rss_mb, run_client
from ocitrace.layout import write_base_image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLIENTS = 16
MOST_RSS_MB = 300
def test_sixteen_clients_at_once_lose_nothing_and_every_blob_is_verified(tmp_path):
    layout = write_base_image(tmp_path / "layout")
    with Registry(tmp_path / "registry", access_log=True) as registry, \
            Proxy(tmp_path / "out", {REGISTRY_NAME: registry.upstream}, tmp_path / "conf") as proxy:
        env = proxy.env()

        def copy(n: int) -> str:
            return run_client(["skopeo", "copy", "--all", "--preserve-digests", f"oci:{layout}:latest",
                               f"docker://{REGISTRY_NAME}/load/client{n}:latest"], env)

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(copy, range(CLIENTS)))
        rss = peak_rss_mb(proxy.process.pid)
    served = registry.served()
    records = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    recorded = Counter((r["method"], r["path"], r["status"]) for r in records)
    assert sum(served.values()) > CLIENTS * 20
    assert recorded == served
    closed = [r for r in records if r["endpoint"] == "end-6" and r["status"] == 201]
    assert len({r["repository"] for r in closed}) == CLIENTS
    assert all(r["digest_verified"] is True for r in closed)
    assert not [r for r in records if r["digest_verified"] is False]
    # 16 skopeo copies of one image break no rule of the spec (waste, such as a blob uploaded that another
    # repository of the registry already had, is what concurrent copies do)
    broken = {f["code"] for r in records for f in r["findings"] if rule(f["code"]) is None
              or rule(f["code"]).kind == "conformance"}
    assert broken == set()
    assert rss < MOST_RSS_MB, f"proxy peak RSS {rss:.0f} MB"

"""Send a registry name to another upstream, choosing it in `requestheaders`.

mitmproxy's own map_remote rewrites the URL in the `request` hook, which for a streamed body runs after
the body has gone: with streaming on, every chunked upload hangs. Choosing the upstream as soon as the
headers are in avoids that. The Host header stays as the client sent it, and the name the client asked
for is kept on the flow, so reports show the registry the client meant.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http
from ocitrace.analyzers.calls import METADATA_KEY, CaptureMeta

logger = logging.getLogger(__name__)


class MapSpec(NamedTuple):
    host: str  # the name clients use, lower case, with ":port" when one is given
    scheme: str
    upstream_host: str
    upstream_port: int


def parse_map_spec(spec: str) -> MapSpec:
    """`registry.test=http://127.0.0.1:5000` -> MapSpec. Raises ValueError with what is wrong."""
    host, sep, url = spec.partition("=")
    if not sep or not host.strip() or not url.strip():
        raise ValueError(f"{spec!r} is not HOST=URL (e.g. registry.test=http://127.0.0.1:5000)")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return MapSpec(host.strip().lower(), parts.scheme, parts.hostname, port)


def find_mapping(specs: Sequence[MapSpec], host: str, port: int) -> MapSpec | None:
    host = host.lower()
    for spec in specs:
        if spec.host in (host, f"{host}:{port}"):
            return spec
    return None


class UpstreamMap:
    def __init__(self) -> None:
        self.specs: list[MapSpec] = []

    def load(self, loader) -> None:
        loader.add_option(
            "ocitrace_map", Sequence[str], [],
            "Send requests for HOST to another upstream: HOST=URL, e.g. registry.test=http://127.0.0.1:5000. "
            "Use with connection_strategy=lazy so that HOST need not resolve.",
        )

    def configure(self, updated: set[str]) -> None:
        if "ocitrace_map" in updated:
            try:
                self.specs = [parse_map_spec(s) for s in ctx.options.ocitrace_map]
            except ValueError as exc:
                raise exceptions.OptionsError(f"ocitrace_map: {exc}") from None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        spec = find_mapping(self.specs, flow.request.host, flow.request.port)
        if spec is None:
            return
        asked = flow.request.host_header or flow.request.pretty_host
        flow.metadata[METADATA_KEY] = CaptureMeta(
            client_host=asked, client_scheme=flow.request.scheme, client_port=flow.request.port).to_state()
        flow.request.scheme = spec.scheme
        flow.request.host = spec.upstream_host
        flow.request.port = spec.upstream_port
        flow.request.host_header = asked

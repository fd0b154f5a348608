"""The proxy's fast flow state is mitmproxy's own `get_state`, key for key and byte for byte in a flow file."""

from pathlib import Path

import pytest
from mitmproxy import io
from mitmproxy.test import tflow
from ocitrace.addons.flowstate import flow_state
from ocitrace.analyzers import tnetstrings

CAPTURES = sorted(Path(__file__).resolve().parent.parent.glob("captures/**/*.mitm"))


def same_state(flow) -> None:
    ours, theirs = flow_state(flow), flow.get_state()
    assert ours == theirs
    assert tnetstrings.dumps(ours) == tnetstrings.dumps(theirs)  # the same order, all the way down


def modified():
    flow = tflow.tflow(resp=True)
    flow.backup()  # what mitmweb's edit does before it changes a flow
    flow.request.path = "/v2/app/manifests/edited"
    return flow


@pytest.mark.parametrize("make", [
    lambda: tflow.tflow(),
    lambda: tflow.tflow(resp=True),
    lambda: tflow.tflow(err=True),
    lambda: tflow.tflow(resp=True, ws=True),
    lambda: tflow.twebsocketflow(),
    modified,
], ids=["request only", "answered", "error", "websocket upgrade", "websocket", "edited, with a backup"])
def test_mitmproxy_flows(make):
    same_state(make())


def test_tls_connections_with_certificates(tmp_path):
    from mitmproxy.certs import CertStore

    cert = CertStore.from_store(tmp_path, "mitmproxy", 2048).get_cert("registry.test", []).cert
    flow = tflow.tflow(resp=True)
    flow.client_conn.tls, flow.client_conn.mitmcert, flow.client_conn.sni = True, cert, "registry.test"
    flow.server_conn.tls, flow.server_conn.certificate_list = True, [cert]
    same_state(flow)


def test_a_keep_alive_connections_state_follows_every_change_of_it(tmp_path):
    from mitmproxy.certs import CertStore

    cert = CertStore.from_store(tmp_path, "mitmproxy", 2048).get_cert("registry.test", []).cert
    flow = tflow.tflow(resp=True)
    flow.server_conn.tls, flow.server_conn.certificate_list = True, []
    for change in [lambda conn: None,  # unchanged: the same state again
                   lambda conn: setattr(conn, "timestamp_end", 1234.5),
                   lambda conn: conn.certificate_list.append(cert),  # a list changed in place
                   lambda conn: setattr(conn, "alpn_offers", [b"h2", b"http/1.1"])]:
        change(flow.server_conn)
        change(flow.client_conn)
        same_state(flow)


@pytest.mark.parametrize("capture", CAPTURES, ids=[p.parent.name for p in CAPTURES])
def test_every_flow_of_the_committed_captures(capture):
    with open(capture, "rb") as fh:
        flows = list(io.FlowReader(fh).stream())
    assert flows
    for flow in flows:
        same_state(flow)


def test_a_flow_format_it_was_not_written_for_is_left_to_mitmproxy(monkeypatch):
    from mitmproxy import version

    flow = tflow.tflow(resp=True)
    monkeypatch.setattr(version, "FLOW_FORMAT_VERSION", version.FLOW_FORMAT_VERSION + 1)
    calls = []
    monkeypatch.setattr(type(flow), "get_state", lambda self: calls.append(self) or {"asked": "mitmproxy"})
    assert flow_state(flow) == {"asked": "mitmproxy"} and calls == [flow]

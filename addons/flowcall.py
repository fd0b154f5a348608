"""A live mitmproxy flow as the Call the capture readers build: the one record the analysis reads."""

from __future__ import annotations

from dataclasses import replace

from mitmproxy import http
from ocitrace.analyzers.calls import METADATA_KEY, BodyTap, Call, CaptureMeta
from ocitrace.analyzers.captures import Target, asked_for, headers_from_pairs


def call_from_flow(flow: http.HTTPFlow) -> Call:
    """The Call of `flow`'s request, as its headers make it; `answered_call` adds the body and the answer. Field by
    field what `captures.call_from_state` reads from a flow file."""
    req = flow.request
    meta = CaptureMeta.from_state(flow.metadata.get(METADATA_KEY))
    headers = headers_from_pairs(req.headers.fields)
    path, _, query = req.path.partition("?")
    target = Target(req.scheme, req.host, req.port, req.authority)
    conn = flow.client_conn
    host, port, scheme, upstream = asked_for(target, headers, meta, conn.sni or "", conn.tls)
    return Call(method=req.method.upper(), scheme=scheme, host=host, port=port, path=path, query=query,
                request_headers=headers, timestamp=float(req.timestamp_start or flow.timestamp_created),
                session_tap=meta.session, upstream=upstream)


def _end(flow: http.HTTPFlow) -> float | None:
    """As a flow file tells it (captures.call_from_state): the answer's end, or the error's time when no
    answer came."""
    if flow.response is not None:
        end = flow.response.timestamp_end
        return float(end) if end is not None else None
    return float(flow.error.timestamp) if flow.error is not None else None


def answered_call(call: Call, flow: http.HTTPFlow, request_tap: BodyTap | None = None,
                  response_tap: BodyTap | None = None) -> Call:
    """`call`, made by `call_from_flow` when the request's headers came in, with how the flow ended: its body,
    the answer, the taps."""
    resp = flow.response
    return replace(call, status=resp.status_code if resp is not None else None,
                   response_headers=headers_from_pairs(resp.headers.fields if resp is not None else ()),
                   request_body=flow.request.raw_content, response_body=resp.raw_content if resp is not None else None,
                   end=_end(flow), error=flow.error.msg if flow.error else None, request_tap=request_tap,
                   response_tap=response_tap)

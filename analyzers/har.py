"""Calls as a HAR 1.2 document (the format Chrome and Firefox DevTools, Charles and Fiddler import): what
`ocitrace export --har` writes, redacted like every other output."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from . import redact
from .calls import DECODE_LIMIT, Call, content_decoded


def _headers(headers, decoded: bool = False) -> list[dict[str, str]]:
    """Header pairs as HAR lists them; without Content-Encoding when the body is written decoded."""
    return [{"name": name, "value": value} for name, value in headers
            if not (decoded and name.lower() == "content-encoding")]


def _decoded(body: bytes | None, headers) -> tuple[bytes | None, bool]:
    """A body as HAR wants it: its Content-Encoding (gzip, deflate) undone, when ocitrace can undo it."""
    coding = (headers.get("content-encoding") or "identity").strip().lower()
    if body is None or coding == "identity":
        return body, False
    plain = content_decoded(body, coding, DECODE_LIMIT)
    return (plain, True) if plain is not None else (body, False)


def _content(body: bytes | None, size: int | None, mime: str) -> dict[str, Any]:
    content: dict[str, Any] = {"size": size if size is not None else -1, "mimeType": mime}
    if body is None:
        return content  # streamed past the recorder: its size only
    try:
        content["text"] = body.decode("utf-8")
    except UnicodeDecodeError:
        content.update(text=base64.b64encode(body).decode(), encoding="base64")
    return content


def _entry(call: Call) -> dict[str, Any]:
    url = call.origin + call.path + (f"?{call.query}" if call.query else "")
    try:
        when = datetime.fromtimestamp(call.timestamp or 0, UTC)
    except (ValueError, OverflowError, OSError):  # a time past year 9999 (milliseconds taken for seconds)
        when = datetime.fromtimestamp(0, UTC)
    started = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    elapsed = round((call.duration or 0) * 1000, 3)
    request_type = call.request_headers.get("content-type") or ""
    request: dict[str, Any] = {
        "method": call.method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _headers(call.request_headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(call.query, keep_blank_values=True)],
        "headersSize": -1, "bodySize": call.request_size if call.request_size is not None else -1,
    }
    if call.request_body:
        request["postData"] = {"mimeType": request_type, **{k: v for k, v in _content(
            call.request_body, len(call.request_body), request_type).items() if k in ("text", "encoding")}}
    response_type = call.response_headers.get("content-type") or ""
    body, decoded = _decoded(call.response_body, call.response_headers)
    response: dict[str, Any] = {
        "status": call.status or 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _headers(call.response_headers, decoded),
        "content": _content(body, len(body) if decoded and body is not None else call.response_size,
                            response_type),
        "redirectURL": call.response_headers.get("location") or "", "headersSize": -1,
        "bodySize": call.response_size if call.response_size is not None else -1,
    }
    if call.error:
        response["_error"] = call.error
    return {"startedDateTime": started, "time": elapsed, "request": request, "response": response, "cache": {},
            "timings": {"send": 0, "wait": elapsed, "receive": 0}}


def har_document(calls: Iterable[Call], version: str) -> dict[str, Any]:
    """A HAR of the calls, redacted: credentials, cookies, signed URLs and token answers hidden; bodies kept."""
    document = {"log": {"version": "1.2", "creator": {"name": "ocitrace", "version": version}, "pages": [],
                        "entries": [_entry(call) for call in calls]}}
    return redact.har(document)

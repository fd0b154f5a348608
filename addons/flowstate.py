"""A finished flow's state, as `HTTPFlow.get_state` gives it, for a fraction of the cost.

mitmproxy serialises its connection dataclasses by reading each field's type hints again for every value
(`serializable._process`): about 140 µs of a small call's 135 µs here. This walks the same fields with
converters derived once per class from the same hints, and so the same rules. A flow format it was not
written for falls back to mitmproxy's own `get_state`; tests compare the two on every kind of flow.
"""

from __future__ import annotations

import collections.abc
import copy
import enum
import typing
from collections.abc import Callable
from types import NoneType, UnionType
from typing import Any

from mitmproxy import http, version
from mitmproxy.connection import Connection
from mitmproxy.coretypes.serializable import SerializableDataclass
from ocitrace.analyzers.recent import Recent

FORMAT = 21  # the mitmproxy flow format this mirrors (Flow.get_state + HTTPFlow.get_state)

Convert = Callable[[Any], Any]
_fields: dict[type, tuple[tuple[str, Convert], ...]] = {}


def _identity(value: Any) -> Any:
    return value


def _converter(kind: Any, name: str) -> Convert:
    """What `serializable._process(value, kind, name, make=False)` does to a value, decided once."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return _identity
    if origin in (UnionType, typing.Union):
        inner, none = typing.get_args(kind)
        if none is not NoneType:
            raise TypeError(f"{name}: only `x | None` unions are serialised")
        convert = _converter(inner, name)
        return lambda value: None if value is None else convert(value)
    if hasattr(kind, "get_state"):
        if isinstance(kind, type) and issubclass(kind, SerializableDataclass):
            return dataclass_state
        return lambda value: value.get_state()
    if origin in (list, collections.abc.Sequence):
        (item,) = typing.get_args(kind)
        convert = _converter(item, name)
        return lambda value: [convert(x) for x in value]
    if origin is tuple:
        # mitmproxy's own exception: addresses are (host, port) or IPv6's (host, port, flowinfo, scope id)
        kinds = (str, int, int, int) if name in ("peername", "sockname") else typing.get_args(kind)
        converts = tuple(_converter(k, name) for k in kinds)
        return lambda value: tuple(convert(x) for x, convert in zip(value, converts, strict=False))
    if origin is dict:
        keys, values = (_converter(k, name) for k in typing.get_args(kind))
        return lambda value: {keys(k): values(v) for k, v in value.items()}
    if kind in (int, float, str, bytes, bool):
        return kind
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return lambda value: value.value
    raise TypeError(f"{name}: no serialisation for {kind!r}")


def _fields_of(obj: SerializableDataclass) -> tuple[tuple[str, Convert], ...]:
    fields = _fields.get(type(obj))
    if fields is None:
        declared = type(obj)._SerializableDataclass__fields()  # the fields mitmproxy serialises, hints resolved
        fields = _fields[type(obj)] = tuple((f.name, _converter(f.type, f.name)) for f in declared)
    return fields


def dataclass_state(obj: SerializableDataclass) -> dict:
    return {name: convert(getattr(obj, name)) for name, convert in _fields_of(obj)}


# A keep-alive connection carries call after call and seldom changes between two: its state is made again only when
# a field has (each certificate would be PEM-encoded again for every call). Lists are compared as copies, so that one
# changed in place is seen too. The state is shared by the calls: it is read, never changed.
_connections: Recent[str, tuple[tuple, dict]] = Recent(256)


def connection_state(conn: Connection) -> dict:
    fields = _fields_of(conn)
    now = tuple(tuple(value) if type(value) is list else value for value in (getattr(conn, n) for n, _ in fields))
    known = _connections.get(conn.id)
    if known is not None and known[0] == now:
        return known[1]
    state = {name: convert(value) for (name, convert), value in zip(fields, now, strict=True)}
    _connections[conn.id] = (now, state)
    return state


def flow_state(flow: http.HTTPFlow) -> dict:
    """`flow.get_state()`, the same dict in the same order (a flow file written from it is byte for byte the same)."""
    if version.FLOW_FORMAT_VERSION != FORMAT or type(flow) is not http.HTTPFlow:
        return flow.get_state()
    try:
        state = {
            "version": FORMAT,
            "type": flow.type,
            "id": flow.id,
            "error": dataclass_state(flow.error) if flow.error else None,
            "client_conn": connection_state(flow.client_conn),
            "server_conn": connection_state(flow.server_conn),
            "intercepted": flow.intercepted,
            "is_replay": flow.is_replay,
            "marked": flow.marked,
            "metadata": copy.deepcopy(flow.metadata),
            "comment": flow.comment,
            "timestamp_created": flow.timestamp_created,
        }
    except TypeError:  # a field type this does not know: mitmproxy's own way
        return flow.get_state()
    backup = flow._backup  # noqa: SLF001 - set by an addon that modified the flow (mitmweb's edit, revert)
    state["backup"] = copy.deepcopy(backup) if backup != state else None
    state["request"] = flow.request.get_state()
    state["response"] = flow.response.get_state() if flow.response else None
    state["websocket"] = flow.websocket.get_state() if flow.websocket else None
    return state

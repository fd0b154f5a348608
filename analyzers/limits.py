"""Rate limits: what each registry said of its limit, and how many of this capture's calls count against it.

Registries say it in headers: Docker Hub's `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`
(with `docker-ratelimit-source`: the IP address or account counted), the IETF drafts' `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` (and `RateLimit: limit=100, remaining=50, reset=30` with
`RateLimit-Policy`), GitHub-style `X-RateLimit-*`, and `Retry-After` on a 429. Docker Hub counts manifest GETs,
not HEADs: those are the calls counted here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .redact import SOURCE_ADDRESS, ratelimit_source

if TYPE_CHECKING:
    from .analysis import AnalyzedCall

_NUMBER = re.compile(r"\s*(\d+)")
_WINDOW = re.compile(r"w=(\d+)")
_PARAM = re.compile(r"(limit|remaining|reset)\s*=\s*(\d+)")



def _parameter(name: str, value: str) -> int | None:
    """A structured-field parameter of the newer drafts (`;r=50`, `;q=100`)."""
    match = re.search(rf";\s*{name}\s*=\s*(\d+)", value)
    return int(match.group(1)) if match else None


def _first_number(value: str | None) -> int | None:
    match = _NUMBER.match(value or "")
    return int(match.group(1)) if match else None


def _window(*values: str | None) -> int | None:
    for value in values:
        match = _WINDOW.search(value or "")
        if match:
            return int(match.group(1))
    return None


@dataclass
class Account:
    """One registry host's rate limit, as its answers told it through the capture."""

    host: str
    limit: int | None = None
    window: int | None = None  # seconds
    first_remaining: int | None = None
    last_remaining: int | None = None
    counted_by: str | None = None  # "address" or "account" (docker-ratelimit-source), never the value itself
    manifest_gets: int = 0  # what Docker Hub counts
    manifest_heads: int = 0  # what it does not
    limited: int = 0  # 429 answers
    retry_after: str | None = None

    @property
    def told(self) -> bool:
        """The registry said something of a limit (else only the counts are known)."""
        return self.limit is not None or self.last_remaining is not None or self.limited > 0

    def record(self) -> dict:
        return {"host": self.host, "limit": self.limit, "window": self.window, "first_remaining": self.first_remaining,
                "last_remaining": self.last_remaining, "counted_by": self.counted_by,
                "manifest_gets": self.manifest_gets, "manifest_heads": self.manifest_heads, "limited": self.limited,
                "retry_after": self.retry_after}


# The headers `_limit_headers` starts from (the others it reads come with one of them).
_LIMIT_HEADERS = frozenset({"ratelimit", "ratelimit-limit", "ratelimit-remaining", "x-ratelimit-limit",
                            "x-ratelimit-remaining"})


def _limit_headers(headers) -> tuple[int | None, int | None, int | None]:
    """(limit, remaining, window) from whichever family of headers the answer used."""
    if _LIMIT_HEADERS.isdisjoint(headers.names()):  # most registries say nothing of a limit
        return None, None, None
    combined = headers.get("ratelimit")  # the drafts' one-header forms
    if combined:
        params = dict(_PARAM.findall(combined))
        if "remaining" in params or "limit" in params:  # draft 07: limit=100, remaining=50, reset=30
            return (_first_number(params.get("limit")), _first_number(params.get("remaining")),
                    _window(headers.get("ratelimit-policy")))
        # draft 08 on: `"default";r=50;t=30`, its quota in `RateLimit-Policy: "default";q=100;w=3600`
        policy = headers.get("ratelimit-policy") or ""
        quota, remaining = _parameter("q", policy), _parameter("r", combined)
        return quota, remaining, _window(policy)
    for prefix in ("ratelimit-", "x-ratelimit-"):
        limit, remaining = headers.get(prefix + "limit"), headers.get(prefix + "remaining")
        if limit or remaining:
            return (_first_number(limit), _first_number(remaining),
                    _window(limit, remaining, headers.get("ratelimit-policy")))
    return None, None, None


def _counted_by(source: str | None) -> str | None:
    """What Docker Hub counts against: "address" or "account" (from the value, or its redacted kind)."""
    if not source:
        return None
    return "address" if ratelimit_source(source) == SOURCE_ADDRESS else "account"


class Accounts:
    """Each registry host's account, in the order hosts first answered, added to call by call; hosts that said
    nothing of a limit are kept too (their manifest GETs are what a limit like Docker Hub's would count)."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str | None], Account] = {}

    @property
    def all(self) -> list[Account]:
        return list(self._found.values())

    def add(self, item: AnalyzedCall) -> None:
        call = item.call
        if item.endpoint_id is None or item.endpoint_id == "token":
            return
        # an anonymous pull (counted by address) and a logged-in one (by account) are two counters
        who = _counted_by(call.response_headers.get("docker-ratelimit-source"))
        account = self._found.get((call.authority, who))
        if account is None:
            account = self._found[(call.authority, who)] = Account(call.authority, counted_by=who)
        if item.endpoint_id == "end-3" and call.status == 200:
            if call.method == "GET":
                account.manifest_gets += 1
            elif call.method == "HEAD":
                account.manifest_heads += 1
        if call.status == 429:
            account.limited += 1
            account.retry_after = call.response_headers.get("retry-after") or account.retry_after
        limit, remaining, window = _limit_headers(call.response_headers)
        if limit is not None:
            account.limit = limit
        if window is not None:
            account.window = window
        if remaining is not None:
            account.last_remaining = remaining
            if account.first_remaining is None:
                account.first_remaining = remaining


def accounts(items: Iterable[AnalyzedCall]) -> list[Account]:
    """The accounts of these calls."""
    found = Accounts()
    for item in items:
        found.add(item)
    return found.all

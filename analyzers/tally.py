"""What a report counts over every call of a capture, added to as each call is analysed.

A capture of a fleet's day holds hundreds of thousands of calls. Its report tells the story of the first ones
and counts all of them: the calls per endpoint, the bytes, the hosts, the findings, each registry's rate limit
and the slowest calls are gathered here call by call, so the analysis need not keep every call to write it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .endpoints import Endpoint
from .findings import Finding, worth_telling
from .limits import Accounts
from .runs import Runs

if TYPE_CHECKING:
    from .analysis import AnalyzedCall

SLOWEST = 5


@dataclass
class EndpointCount:
    """The calls of one endpoint (None: no row of the table) and method: how many, how answered, bytes."""

    endpoint: Endpoint | None
    counts: Counter = field(default_factory=Counter)


class Found:
    """The calls a finding was found on (as runs), and how many times."""

    __slots__ = ("calls", "times")

    def __init__(self, runs: int | None):
        self.calls = Runs(limit=runs)
        self.times = 0


class Tally:
    def __init__(self, runs: int | None = None) -> None:
        """`runs`: how many runs of a finding's calls are kept whole (None: all)."""
        self.runs = runs
        self.calls = 0
        self.registry = 0  # calls a row of the endpoint table names
        self.sent = 0
        self.received = 0
        self.hosts: dict[str, None] = {}  # in the order they were first called
        self.endpoints: dict[tuple[str, str], EndpointCount] = {}  # (endpoint id or "-", method)
        self.limits = Accounts()
        # Each finding worth a reader's eyes, in the order first found, with the 0-based calls it was found on.
        self.findings: dict[Finding, Found] = {}
        self._slowest: list[tuple[float, int, AnalyzedCall]] = []  # a heap of the longest calls

    def add(self, item: AnalyzedCall) -> None:
        call, classification = item.call, item.classification
        self.calls += 1
        if classification.endpoint_id:
            self.registry += 1
        sent, received = call.request_size or 0, call.response_size or 0
        self.sent += sent
        self.received += received
        self.hosts.setdefault(call.host, None)
        key = (classification.endpoint_id or "-", call.method)
        tallied = self.endpoints.get(key)
        if tallied is None:
            tallied = self.endpoints[key] = EndpointCount(classification.endpoint)
        counts = tallied.counts
        counts["calls"] += 1
        counts[classification.status_class or "none"] += 1
        counts["sent"] += sent
        counts["received"] += received
        for finding in item.findings:
            if worth_telling(finding):
                found = self.findings.get(finding)
                if found is None:
                    found = self.findings[finding] = Found(self.runs)
                found.calls.append(item.index)
                found.times += 1
        self.limits.add(item)
        duration = call.duration
        if duration:  # of two as long, the earlier is the longer, as a stable sort orders them
            entry = (duration, -item.index, item)  # (an index is never twice: items are never compared)
            if len(self._slowest) < SLOWEST:
                heapq.heappush(self._slowest, entry)
            elif entry > self._slowest[0]:
                heapq.heapreplace(self._slowest, entry)

    @property
    def slowest(self) -> list[AnalyzedCall]:
        """The longest calls, longest first."""
        return [item for *_, item in sorted(self._slowest, reverse=True)]

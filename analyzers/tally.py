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
from .findings import ERROR, Finding, worth_telling
from .limits import Accounts
from .recent import Recent
from .runs import Runs
from .strings import LANGUAGES
from .words import finding_text

if TYPE_CHECKING:
    from .analysis import AnalyzedCall

SLOWEST = 5
MOST_ROWS = 100  # rows of a report's findings table (every finding is in the JSON, counted per code)
# Findings a capture can have too, not only a call (an analysis that failed at the end as on a call): their rows are
# always kept, so the capture's joins its call's row as it would with every row kept (a few: one per kind of fault).
ALSO_THE_CAPTURE_S = frozenset({"analysis-failed"})


@dataclass
class EndpointCount:
    """The calls of one endpoint (None: no row of the table) and method: how many, how answered, bytes."""

    endpoint: Endpoint | None
    counts: Counter = field(default_factory=Counter)


class Tally:
    def __init__(self, runs: int | None = None, rows: int | None = None) -> None:
        """`runs`: how many runs of a row's calls are kept whole (None: all). `rows`: how many rows of the findings
        table are kept, in each language, of each severity (None: all); the findings of later rows are counted."""
        self.runs = runs
        self.rows = rows
        self.calls = 0
        self.registry = 0  # calls a row of the endpoint table names
        self.sent = 0
        self.received = 0
        self.hosts: dict[str, None] = {}  # in the order they were first called
        self.endpoints: dict[tuple[str, str], EndpointCount] = {}  # (endpoint id or "-", method)
        self.limits = Accounts()
        # How many findings worth a reader's eyes were found, of each code (the JSON's counts), and of them errors.
        self.codes: Counter[str] = Counter()
        self.errors = 0
        # The rows of a report's findings table, in each language: the findings it tells in the same words (a digest
        # shortened, a size rounded), with the 0-based calls they were found on. A report orders them by severity,
        # then by their first call, and rows begin in call order: of each severity the first `rows` are all a report
        # can show. Past them, a fleet's day would hold a row for each finding that names a call or a digest.
        self.told: dict[str, dict[tuple[str, str], Runs]] = {lang: {} for lang in LANGUAGES}
        self.untold: dict[str, int] = dict.fromkeys(LANGUAGES, 0)  # findings of the rows past those kept
        self._kept: dict[str, Counter[str]] = {lang: Counter() for lang in LANGUAGES}  # rows kept, per severity
        self._untold_on: tuple[int, set[tuple[str, tuple[str, str]]]] = (-1, set())  # a call's, counted once each
        # The words of the findings told lately: most repeat soon after (the demo's traffic repeated finds 69% of
        # them here at 256 entries, 70% at 4,096), so a small memory does.
        self._words: Recent[Finding, tuple[tuple[str, tuple[str, str]], ...]] = Recent(256)
        self._slowest: list[tuple[float, int, AnalyzedCall]] = []  # a heap of the longest calls

    def add(self, item: AnalyzedCall) -> None:
        call, classification = item.call, item.classification
        self.calls += 1
        if classification.endpoint_id:
            self.registry += 1
        sent, received = call.request_size or 0, call.response_size or 0
        self.sent += sent
        self.received += received
        self.hosts.setdefault(call.authority, None)
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
                self.codes[finding.code] += 1
                severity = finding.severity
                if severity == ERROR:
                    self.errors += 1
                for lang, row in self._rows(finding):
                    calls = self.told[lang].get(row)
                    if calls is None:
                        if self.rows is not None and self._kept[lang][severity] >= self.rows \
                                and finding.code not in ALSO_THE_CAPTURE_S:
                            self._count_untold(lang, row, item.index)
                            continue
                        self._kept[lang][severity] += 1
                        calls = self.told[lang][row] = Runs(limit=self.runs)
                    calls.append(item.index)  # a call with two findings told alike counts once
        self.limits.add(item)
        duration = call.duration
        if duration:  # of two as long, the earlier is the longer, as a stable sort orders them
            entry = (duration, -item.index, item)  # (an index is never twice: items are never compared)
            if len(self._slowest) < SLOWEST:
                heapq.heappush(self._slowest, entry)
            elif entry > self._slowest[0]:
                heapq.heapreplace(self._slowest, entry)

    def _count_untold(self, lang: str, row: tuple[str, str], index: int) -> None:
        """Count a finding of a row past those kept: once a call, as a kept row counts it."""
        on, counted = self._untold_on
        if on != index:
            counted = set()
            self._untold_on = (index, counted)
        if (lang, row) not in counted:
            counted.add((lang, row))
            self.untold[lang] += 1

    def _rows(self, finding: Finding) -> tuple[tuple[str, tuple[str, str]], ...]:
        """The row that tells `finding` in each language: (its code, its words)."""
        rows = self._words.get(finding)
        if rows is None:
            rows = self._words[finding] = tuple((lang, (finding.code, finding_text(finding, lang)))
                                                for lang in LANGUAGES)
        return rows

    @property
    def slowest(self) -> list[AnalyzedCall]:
        """The longest calls, longest first."""
        return [item for *_, item in sorted(self._slowest, reverse=True)]

"""The calls an object, an operation or an upload was seen in: ascending call indexes kept as runs of
consecutive ones, as a report says them (`1, 6, 12–14`; past a few runs, `2, 3, 7, … 162 (48)`).

A capture of a fleet's day fetches one index thousands of times. When the analysis keeps only the first calls
(`Analyzer(keep=...)`), a `Runs` keeps only its first runs, its last one and the count: all a report says of
them, in memory that does not grow with the capture. Kept whole (JSON lists every call), it gives every index.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# Runs kept whole when bounded: more than a report ever spells out (`ranges` lists at most 6, else the first 3).
KEPT = 8


class Runs:
    """Ascending 0-based call indexes (one given twice in a row counts once). `limit`: how many runs are kept
    whole, past which only the last run and the counts are (None: every run)."""

    __slots__ = ("_bounds", "_tail", "count", "runs", "limit")

    def __init__(self, indexes: Iterable[int] = (), limit: int | None = None):
        self._bounds: list[int] = []  # start, end, start, end, ... of the runs kept whole
        self._tail: list[int] | None = None  # [start, end] of the last run, once past the limit
        self.count = 0  # how many indexes
        self.runs = 0  # how many runs
        self.limit = limit
        for index in indexes:
            self.append(index)

    @property
    def first(self) -> int | None:
        return self._bounds[0] if self._bounds else None

    @property
    def last(self) -> int | None:
        if self._tail is not None:
            return self._tail[1]
        return self._bounds[-1] if self._bounds else None

    @property
    def whole(self) -> bool:
        """Every index is known (none was let go past the limit)."""
        return self._tail is None

    def append(self, index: int) -> None:
        last = self.last
        if last is not None and index <= last:
            if index == last:
                return
            raise ValueError(f"call {index} after call {last}: indexes come in order")
        self.count += 1
        if last is not None and index == last + 1:  # the last run goes on
            if self._tail is not None:
                self._tail[1] = index
            else:
                self._bounds[-1] = index
            return
        self.runs += 1
        if self.limit is None or self.runs <= self.limit:
            self._bounds += (index, index)
        else:
            self._tail = [index, index]

    def _spans(self) -> list[tuple[int, int]]:
        return list(zip(self._bounds[::2], self._bounds[1::2], strict=True))

    def __iter__(self) -> Iterator[int]:
        if self._tail is not None:
            raise ValueError("only the first runs of these calls were kept")
        for start, end in self._spans():
            yield from range(start, end + 1)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Runs):
            return (self._spans(), self._tail, self.count) == (other._spans(), other._tail, other.count)
        return isinstance(other, list) and self.whole and list(self) == other

    def __repr__(self) -> str:
        return f"Runs({self.text(most=self.runs)!r})"

    def text(self, most: int = 6) -> str:
        """1-based call numbers: `1, 6, 12–14`; past `most` runs, `2, 3, 7, … 162 (48)`."""
        spans = self._spans() + ([tuple(self._tail)] if self._tail is not None else [])
        parts = [str(start + 1) if start == end else f"{start + 1}–{end + 1}" for start, end in spans]
        if self.runs > most:
            return f"{', '.join(parts[:3])}, … {parts[-1]} ({self.count})"
        return ", ".join(parts)

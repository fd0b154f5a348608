"""A bounded memory: what the analysis remembers of earlier calls, oldest forgotten first."""

from __future__ import annotations

from collections import OrderedDict

# A proxy left up for weeks remembers at most this many of each thing (descriptors, platforms, learned URLs).
MEMORY = 100_000


class Recent[K, V](OrderedDict):
    """A dict that forgets its oldest entries past `limit`."""

    def __init__(self, limit: int = MEMORY):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)

    def setdefault(self, key: K, default: V) -> V:  # OrderedDict's own would not go through __setitem__
        if key in self:
            return self[key]
        self[key] = default
        return default

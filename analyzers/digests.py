"""Content digests: computing them over whole bodies or chunk by chunk, and printing them short."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# The article prints digests as "sha256:520ce6d85...": the algorithm and nine hex digits.
SHORT_HEX = 9


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short_digest(digest: str | None) -> str:
    if not digest:
        return ""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or len(encoded) <= SHORT_HEX:
        return digest
    return f"{algorithm}:{encoded[:SHORT_HEX]}..."


@dataclass
class Hasher:
    """sha256 over a body that arrives in chunks, with its length."""

    size: int = 0
    whole: bool = True  # False once a part of the body was not seen

    def __post_init__(self) -> None:
        self._sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


class UploadSessions:
    """The bytes of each blob upload session, hashed across its PATCH and PUT bodies.

    A blob pushed in chunks has its digest over all of them, so no single request can be checked
    alone: the session's running hash is checked when the closing PUT names the digest.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, Hasher] = {}

    def hasher(self, session: str) -> Hasher:
        """The session's running hash, for a caller that feeds it chunk by chunk."""
        return self._sessions.setdefault(session, Hasher())

    def feed(self, session: str, chunk: bytes | None) -> None:
        """Add a chunk to a session; None for a chunk that passed unseen (its hash can no longer be known)."""
        hasher = self.hasher(session)
        if chunk is None:
            hasher.whole = False
        else:
            hasher.update(chunk)

    def close(self, session: str) -> Hasher:
        """The session's hash so far; the session is forgotten."""
        return self._sessions.pop(session, None) or Hasher()

"""Blob upload sessions: opened by a POST, fed by PATCH chunks, closed by the PUT that names the digest.

A blob pushed in chunks has its digest over all of them, so no single request can be checked alone:
the session keeps a running hash, checked when the closing PUT names the digest. This is the one place
that state lives, for the live proxy and for `ocitrace analyze` alike.

Live, a chunk streams through the proxy without being kept, so the proxy's stream tap feeds the session
hash itself (`tap`); offline, the analysis feeds the bodies the capture kept (`chunk`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .digests import Hasher

# Sessions left open (a client that never closed them) are forgotten oldest first past this many.
MAX_OPEN = 1024
# A blob this small is kept whole as it is uploaded (a config, an attestation), to be decoded once a
# manifest says what it is.
KEEP = 1 << 16


def session_key(source: str, session: str) -> str:
    """A session as the analysis keeps it: its id within its capture file (two files may hold the same ids)."""
    return f"{source}\0{session}" if source else session


@dataclass
class UploadSession:
    id: str
    repository: str | None = None
    hasher: Hasher = field(default_factory=Hasher)
    whole: bool = True  # False once a chunk passed that was not hashed
    tapped: bool = False  # a live stream tap feeds `hasher` as the chunks pass
    before: Hasher | None = None  # live: the hash before the chunk a tap feeds now, should the registry refuse it
    chunks: int = 0
    calls: list[int] = field(default_factory=list)
    kept: bytearray | None = field(default_factory=bytearray)  # the bytes, while the blob is small

    @property
    def body(self) -> bytes | None:
        """The whole blob, when it was small and every chunk was captured."""
        return bytes(self.kept) if self.kept is not None and self.whole and len(self.kept) == self.size else None

    @property
    def digest(self) -> str | None:
        return self.hasher.digest if self.whole else None

    @property
    def size(self) -> int:
        return self.hasher.size


class UploadSessions:
    def __init__(self) -> None:
        self._open: dict[str, UploadSession] = {}

    def _get(self, session_id: str, repository: str | None = None, opened: bool = False) -> UploadSession:
        session = self._open.get(session_id)
        if session is None:
            # A session first seen part-way (a capture or proxy started mid-upload, one forgotten past MAX_OPEN)
            # has lost its first bytes: its hash can verify nothing.
            session = self._open[session_id] = UploadSession(session_id, repository, whole=opened)
            if len(self._open) > MAX_OPEN:
                del self._open[next(iter(self._open))]
        return session

    def open(self, session_id: str, repository: str | None, call: int) -> UploadSession:
        session = self._get(session_id, repository, opened=True)
        session.calls.append(call)
        return session

    def tap(self, session_id: str) -> Hasher:
        """The running hash a live stream tap feeds with the chunks of this session as they pass."""
        session = self._get(session_id)
        session.tapped = True
        session.before = session.hasher.copy()  # (a client sends a session's chunks one after another)
        return session.hasher

    def chunk(self, session_id: str, call: int, body: bytes | None, streamed: bool, complete: bool,
              refused: bool = False) -> None:
        """A call that carried a chunk of the session completed.

        `body` is what the capture kept (None when nothing); `streamed`: it passed through a live tap;
        `complete`: its body arrived whole; `refused`: the registry answered it with a failure (a 401, a 416)
        and took none of it, so the session is as it was (the client sends it again). A live tap has hashed a
        refused chunk already: the session's hash goes back to the copy `tap` made before it.
        """
        session = self._get(session_id)
        session.calls.append(call)
        if refused:
            if streamed and session.tapped:  # the tap hashed it as it passed: back to the hash before it
                if session.before is None:
                    session.whole = False
                else:
                    session.hasher, session.before = session.before, None
            return
        session.chunks += 1
        if body is None or session.kept is None or len(session.kept) + len(body) > KEEP:
            session.kept = None
        else:
            session.kept += body
        if not complete:
            session.whole = False
        elif streamed and session.tapped:
            return  # the live tap hashed these bytes as they passed
        elif body is None:
            session.whole = False
        else:
            session.hasher.update(body)

    def close(self, session_id: str) -> UploadSession:
        """The session, now complete (or cancelled); it is forgotten."""
        return self._open.pop(session_id, None) or UploadSession(session_id, whole=False)

    def __len__(self) -> int:
        return len(self._open)

"""Content digests as the image spec defines them: a type that parses, prints short, and hashes.

`algorithm:encoded` (descriptor.md "Digests"); sha256 and sha512 are registered, other algorithms are
valid by the grammar and compared as text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

# The article prints digests as "sha256:520ce6d85...": the algorithm and nine hex digits.
SHORT_HEX = 9

_GRAMMAR = re.compile(r"(?P<algorithm>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<encoded>[a-zA-Z0-9=_-]+)")
# Registered algorithms and the form of their encoded part.
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}"),
            "blake3": re.compile(r"[a-f0-9]{64}")}


# A digest inside a path or a sentence. It may start only where a token starts (the lookbehind), so a long
# run of letters is scanned once, not once per letter.
IN_TEXT = re.compile(r"(?<![a-z0-9+._-])[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")


class DigestError(ValueError):
    """A string that is not a digest; `reason` is a code: `grammar` or `encoded` (wrong form for its algorithm)."""

    def __init__(self, text: str, reason: str):
        super().__init__(f"{text!r} is not a digest ({reason})")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _GRAMMAR.fullmatch(text or "")
        if match is None:
            raise DigestError(text, "grammar")
        algorithm, encoded = match["algorithm"], match["encoded"]
        rule = _ENCODED.get(algorithm)
        if rule is not None and rule.fullmatch(encoded) is None:
            raise DigestError(text, "encoded")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data`; an algorithm hashlib does not know is computed as sha256."""
        try:
            return cls(algorithm, hashlib.new(algorithm, data).hexdigest())
        except (ValueError, TypeError):
            return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @property
    def short(self) -> str:
        if len(self.encoded) <= SHORT_HEX:
            return str(self)
        return f"{self.algorithm}:{self.encoded[:SHORT_HEX]}..."


@lru_cache(maxsize=4096)  # a digest is named by many calls (HEAD, GET, the manifests that list it, ...)
def parse_digest(text: str | None) -> Digest | None:
    """The digest `text` names, or None when it names none."""
    try:
        return Digest.parse(text or "")
    except DigestError:
        return None


def algorithm_of(text: str | None) -> str | None:
    digest = parse_digest(text)
    return digest.algorithm if digest else None


def short_digest(text: str | None) -> str:
    """A digest as the article prints it; anything else unchanged."""
    if not text:
        return ""
    digest = parse_digest(text)
    return digest.short if digest else text


class Hasher:
    """sha256 over a body that arrives in chunks, with its length."""

    __slots__ = ("_sha", "size")

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        # Counted before it is hashed: whoever reads the digest and then the size (another thread, while this
        # one hashes) finds the size counting every byte the digest holds.
        self.size += len(chunk)
        self._sha.update(chunk)

    def copy(self) -> Hasher:
        """The hash as it is now, to go on from apart from this one."""
        other = Hasher.__new__(Hasher)
        other._sha, other.size = self._sha.copy(), self.size
        return other

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()

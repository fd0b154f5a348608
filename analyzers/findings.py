"""Findings: what the analysis noticed about a call or a capture, as data.

A finding is a code, a severity and the values that fill its text. The words live in strings.yaml
(`finding.<code>`, in each language); nothing downstream matches English text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .rules import rule, rules

ERROR = "error"
WARNING = "warning"
INFO = "info"

# code -> severity. A code is added here, and its words in strings.yaml (a test checks both agree).
SEVERITIES: Mapping[str, str] = {
    # the call itself
    "call-failed": WARNING,  # error: why no answer came (mitmproxy's words, a captured value)
    "analysis-failed": ERROR,  # error: what went wrong in ocitrace while it analysed this call (a bug to report)
    "upload-aborted": WARNING,  # bytes: the request body stopped after this many bytes
    "download-aborted": WARNING,  # bytes: the answer's body stopped after this many bytes
    "body-not-captured": INFO,  # the capture kept no body (streamed past the recorder)
    "body-too-large": WARNING,  # bytes: a manifest past the decode limit, checked but not decoded
    "body-encoded": INFO,  # encoding: a Content-Encoding ocitrace cannot undo (br, zstd): the body not checked
    "invalid-name": WARNING,  # value
    "invalid-reference": WARNING,  # value
    "invalid-digest": WARNING,  # value
    # decoding a body (see manifests.DecodeFailure)
    "decode-not-utf8": WARNING,
    "decode-invalid-json": WARNING,  # line, column
    "decode-too-complex": WARNING,  # nested too deep, or a number too long
    "decode-not-object": WARNING,  # what, actual
    "decode-missing-field": WARNING,  # where, field
    "decode-wrong-type": WARNING,  # where, field, expected, actual
    "decode-unknown-media-type": WARNING,  # media_type
    # reading captures (see captures.CaptureError)
    "capture-truncated": ERROR,  # flows, offset, size
    "capture-damaged": ERROR,  # flows, offset, size, detail
    "capture-unreadable": ERROR,  # detail
    "capture-not-utf8": ERROR,
    "capture-invalid-json": ERROR,  # line, column
    "capture-not-har": ERROR,
    "capture-bad-entry": ERROR,  # entry
    "capture-unknown-format": ERROR,
    "capture-empty": INFO,
    "capture-given-twice": INFO,
    # and every rule of rules.yaml (conformance, waste, limits), with the severity the table gives it
    **{rule.code: rule.severity for rule in rules()},
}


@dataclass(frozen=True)
class Finding:
    code: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in SEVERITIES:
            raise ValueError(f"unknown finding code {self.code!r}")

    @classmethod
    def of(cls, code: str, **values: Any) -> Finding:
        return cls(code, values)

    @property
    def severity(self) -> str:
        return SEVERITIES[self.code]

    def record(self) -> dict[str, Any]:
        """The finding as JSON: code, severity, and its values."""
        return {"code": self.code, "severity": self.severity, **self.values}

    def __hash__(self) -> int:
        return hash((self.code, tuple(sorted((k, str(v)) for k, v in self.values.items()))))


def worth_telling(finding: Finding) -> bool:
    """What a report tells: a rule's finding (any severity), and the analysis' own errors and warnings."""
    return rule(finding.code) is not None or finding.severity in (ERROR, WARNING)

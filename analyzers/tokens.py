"""Token-endpoint answers (Docker token auth, OAuth2): what was granted, for how long, never the token.

A registry token is usually a JWT whose claims say who it is for and what it grants (Docker's `access`
claim: type, name, actions). The claims are no secret (the report states them anyway); the signature is
what makes a token usable, so a redacted token keeps its header and claims and loses its signature.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from .calls import json_object

REDACTED_SIGNATURE = "redacted"


@dataclass(frozen=True)
class Grant:
    """What a token answer granted: `access` as scopes (`repository:team/app:pull,push`), its lifetime."""

    access: tuple[str, ...] | None  # None: an opaque token, whose grant cannot be read
    expires_in: int | None
    subject: str | None = None

    def record(self) -> dict:
        return {"access": list(self.access) if self.access is not None else None, "expires_in": self.expires_in,
                "subject": self.subject}


def token_request(call) -> dict[str, list[str]]:
    """What a token request asked for (scope, service, account): the query of a GET (Docker token auth), and the
    form a POST sends (OAuth2: containerd with credentials, ACR), whose values join the query's."""
    asked = parse_qs(call.query)
    content_type = (call.request_headers.get("content-type") or "").lower()
    if call.method == "POST" and call.request_body and "x-www-form-urlencoded" in content_type:
        for key, values in parse_qs(call.request_body.decode("utf-8", "replace")).items():
            asked.setdefault(key, []).extend(values)
    return asked


def _claims(token: str) -> dict | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


def _scopes(access: object) -> tuple[str, ...] | None:
    if not isinstance(access, list):
        return None
    scopes = []
    for entry in access:
        if isinstance(entry, dict):
            actions = entry.get("actions")
            actions = ",".join(str(a) for a in actions) if isinstance(actions, list) else ""
            scopes.append(f"{entry.get('type', '')}:{entry.get('name', '')}:{actions}")
    return tuple(scopes)


def decode_grant(body: bytes | None) -> Grant | None:
    """The grant of a token answer (`{"token": ..., "expires_in": ...}`), or None when the body is not one."""
    document = json_object(body) if body and body[:1] == b"{" else None
    if document is None:
        return None
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str):
        return None
    expires = document.get("expires_in")
    expires = expires if isinstance(expires, int) and not isinstance(expires, bool) else None
    claims = _claims(token)
    if claims is None:
        return Grant(None, expires)
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    if expires is None and isinstance(claims.get("exp"), int) and isinstance(claims.get("iat"), int):
        expires = claims["exp"] - claims["iat"]
    return Grant(_scopes(claims.get("access")), expires, subject or None)


def redacted_token(token: str, redacted: str) -> str:
    """A JWT with its signature removed (its claims still read), or `redacted` for an opaque token."""
    if _claims(token) is None:
        return redacted
    header, claims, _ = token.split(".")
    return f"{header}.{claims}.{REDACTED_SIGNATURE}"

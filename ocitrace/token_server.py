"""A Docker token-auth server for the lab: the scheme Docker Hub, GHCR and Harbor use, on loopback.

The registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`; the client asks this
server for a token (GET with Basic credentials, or an OAuth2 password grant by POST); the server grants what
the user may do of what was asked, as a JWT signed with a key whose certificate the registry trusts
(`auth.token.rootcertbundle`, checked through the token's `x5c` header). Used by `ocitrace demo` and the tests.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import fnmatch
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .lab import free_port

TOKEN_NAME = "auth.test"
LIFETIME = 300  # seconds a token is valid


@dataclass(frozen=True)
class User:
    password: str
    # repository pattern (fnmatch) -> the actions granted there ("pull", "push", "delete", "*")
    grants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def allowed(self, repository: str, asked: list[str]) -> list[str]:
        granted: set[str] = set()
        for pattern, actions in self.grants.items():
            if fnmatch.fnmatchcase(repository, pattern):
                granted.update(asked if "*" in actions else actions)
        return [action for action in asked if action in granted]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Grants tokens for `service` to `users` (anyone else gets a token granting nothing, as Docker Hub does)."""

    def __init__(self, root: Path, users: Mapping[str, User], service: str, issuer: str = "ocitrace-lab"):
        self.root, self.users, self.service, self.issuer = root, dict(users), service, issuer
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"https://{TOKEN_NAME}/token"

    @property
    def certificate(self) -> Path:
        return self.root / "token-signer.pem"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._key, self._x5c = self._signer()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                query = parse_qs(urlsplit(self.path).query)
                self._answer(*server.answer(self.headers.get("Authorization"), query, oauth=False))

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                self._answer(*server.password_grant(form))

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet: the proxy records every call
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="token-server").start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TokenServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what it answers ---

    def answer(self, authorization: str | None, query: Mapping[str, list[str]], oauth: bool) -> tuple[int, dict]:
        account = None
        if authorization:
            account = self._basic(authorization)
            if account is None:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}
        return self._grant(account, query, oauth)

    def password_grant(self, form: Mapping[str, list[str]]) -> tuple[int, dict]:
        """OAuth2 `grant_type=password` (what clients do with a stored identity): the same grant, by POST."""
        user, password = (form.get(k, [""])[0] for k in ("username", "password"))
        if form.get("grant_type", [""])[0] != "password" or not self._valid(user, password):
            return 401, {"error": "invalid_grant"}
        return self._grant(user, form, oauth=True)

    def _basic(self, authorization: str) -> str | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if self._valid(user, password) else None

    def _valid(self, user: str, password: str) -> bool:
        known = self.users.get(user)
        return known is not None and secrets.compare_digest(known.password, password)

    def _grant(self, account: str | None, query: Mapping[str, list[str]], oauth: bool) -> tuple[int, dict]:
        if query.get("service", [self.service])[0] != self.service:
            return 400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]}
        access = []
        user = self.users.get(account or "")
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = user.allowed(name, actions.split(",")) if user and kind == "repository" else []
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        token = self._sign({"iss": self.issuer, "sub": account or "", "aud": self.service, "exp": now + LIFETIME,
                            "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access})
        issued = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if oauth:
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": LIFETIME, "issued_at": issued,
                         "scope": " ".join(query.get("scope", []))}
        return 200, {"token": token, "access_token": token, "expires_in": LIFETIME, "issued_at": issued}

    # --- signing ---

    def _signer(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocitrace lab token signer")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(key, hashes.SHA256()))
        self.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return key, [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]

    def _sign(self, claims: dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        signed = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
        signature = self._key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64url(signature)}"

"""Token answers (Docker token auth, OAuth2): the grant read, the token never kept."""

import base64
import json

import pytest
from ocitrace.analyzers.redact import REDACTED, flow_state
from ocitrace.analyzers.tokens import Grant, decode_grant, redacted_token


def b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


SIGNATURE = "U0lHTkFUVVJFLW9mLXRoZS10b2tlbg"
CLAIMS = {"iss": "lab", "sub": "alice", "aud": "registry.test", "iat": 100, "exp": 400,
          "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
                     {"type": "repository", "name": "base", "actions": ["pull"]}]}
JWT = f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(CLAIMS)}.{SIGNATURE}"


@pytest.mark.parametrize("body, grant", [
    # Docker token auth: the token, and the same as access_token, with its lifetime
    (json.dumps({"token": JWT, "access_token": JWT, "expires_in": 300}),
     Grant(("repository:team/app:pull,push", "repository:base:pull"), 300, "alice")),
    # OAuth2 answer without expires_in: the lifetime from the claims
    (json.dumps({"access_token": JWT, "token_type": "Bearer"}),
     Grant(("repository:team/app:pull,push", "repository:base:pull"), 300, "alice")),
    # an opaque token (GHCR, ECR): its grant cannot be read
    (json.dumps({"token": "djF8c2VjcmV0", "expires_in": 60}), Grant(None, 60)),
    # a JWT granting nothing (anonymous on a private repository)
    (json.dumps({"token": f"{b64({})}.{b64({'access': []})}.x"}), Grant((), None)),
])
def test_a_token_answer_tells_what_it_granted(body, grant):
    assert decode_grant(body.encode()) == grant


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"errors": []}', b'{"token": 5}',
                                  b"{" * 5000 + b"}" * 5000, b'{"token": "a.' + b"!" * 10 + b'.c"}'])
def test_what_is_not_a_token_answer_has_no_grant_and_raises_nothing(body):
    grant = decode_grant(body)
    assert grant is None or grant.access is None


def test_a_redacted_jwt_keeps_its_claims_and_loses_its_signature():
    shown = redacted_token(JWT, REDACTED)
    assert SIGNATURE not in shown and shown.startswith(JWT.rsplit(".", 1)[0])
    assert decode_grant(json.dumps({"token": shown}).encode()).access == ("repository:team/app:pull,push",
                                                                          "repository:base:pull")
    assert redacted_token("opaque-secret", REDACTED) == REDACTED


def test_a_redacted_flow_of_a_token_answer_holds_no_signature_refresh_token_or_opaque_secret():
    from conftest import make_flow

    body = json.dumps({"token": JWT, "access_token": JWT, "refresh_token": "r-SECRET", "expires_in": 300}).encode()
    flow = make_flow("GET", "https://auth.test/token?service=registry.test&scope=repository:team/app:pull", 200,
                     resp_body=body, resp_headers={"Content-Type": "application/json"})
    state = flow_state(flow.get_state())
    content = state["response"]["content"]
    assert SIGNATURE.encode() not in content and b"r-SECRET" not in content
    assert decode_grant(content) == Grant(("repository:team/app:pull,push", "repository:base:pull"), 300, "alice")

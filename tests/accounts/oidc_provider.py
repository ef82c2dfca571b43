"""A fake OpenID Connect provider speaking the real protocol over HTTP, for mozilla-django-oidc.

A threaded HTTP server on 127.0.0.1 (a fresh port per provider) with:
- `/.well-known/openid-configuration`: the discovery document (fetches are counted);
- `/authorize`: the authorization endpoint of the code flow. It checks the client, the redirect URI,
  `response_type=code` and the `openid` scope, remembers the nonce and the PKCE challenge, and sends the
  browser back to the redirect URI with a one-time code and the state. With `interactive = True` it first
  shows a page with a "Continue as …" button (what a person sees at a real provider);
- `/token`: exchanges the code (client authenticated by `client_secret_post` or `client_secret_basic`,
  the same redirect URI, the PKCE verifier checked against the S256 challenge) for an access token and
  an ID token signed with RS256 by a fresh RSA key, its `kid` in the header;
- `/jwks`: the public key as a JWK set;
- `/userinfo`: the claims, for a bearer access token.

Who signs in is `provider.user` (its claims: sub, email, groups…). To test refusals, `id_token_claims`
overrides claims of the next ID tokens (aud, iss, nonce, exp…), `signing_key` can be replaced by another
key (a bad signature under the published kid), and `id_token_omits` leaves claims to userinfo only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeOidcProvider:
    def __init__(self, *, client_id: str = "atalaya-test", client_secret: str = "atalaya-test-secret"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = new_rsa_key()
        self.kid = "fake-key-1"
        self.signing_key: rsa.RSAPrivateKey = self.key
        self.user: dict[str, Any] = {
            "sub": "10001",
            "email": "ana@example.com",
            "email_verified": True,
            "name": "Ana García",
            "given_name": "Ana",
            "family_name": "García",
            "groups": [],
        }
        self.id_token_claims: dict[str, Any] = {}
        self.id_token_omits: set[str] = set()
        self.interactive = False
        self.discovery_fetches = 0
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._codes: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def start(self) -> FakeOidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "userinfo_endpoint": self.url("/userinfo"),
            "jwks_uri": self.url("/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    # The protocol

    def authorize(self, params: dict[str, str]) -> tuple[int, str]:
        """(400, reason) or (302, the redirect URI with code and state)."""
        self.authorize_requests.append(params)
        if params.get("response_type") != "code":
            return 400, "unsupported_response_type"
        if params.get("client_id") != self.client_id:
            return 400, "unauthorized_client"
        if "openid" not in params.get("scope", "").split():
            return 400, "invalid_scope: openid is required"
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return 400, "invalid_request: redirect_uri"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": redirect_uri,
                "nonce": params.get("nonce"),
                "code_challenge": params.get("code_challenge"),
                "code_challenge_method": params.get("code_challenge_method"),
                "user": dict(self.user),
            }
        query = urlencode({"code": code, "state": params.get("state", "")})
        return 302, f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}"

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # one use only
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if grant["code_challenge"]:
            verifier = form.get("code_verifier", "")
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if grant["code_challenge_method"] != "S256" or digest != grant["code_challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        user = grant["user"]
        now = int(time.time())
        claims = {k: v for k, v in user.items() if k not in self.id_token_omits}
        claims.update({"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300})
        if grant["nonce"] is not None:
            claims["nonce"] = grant["nonce"]
        claims.update(self.id_token_claims)
        id_token = jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": self.kid})
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens[access_token] = user
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def userinfo(self, authorization: str) -> tuple[int, dict[str, Any]]:
        user = self._access_tokens.get(authorization.removeprefix("Bearer "))
        if not authorization.startswith("Bearer ") or user is None:
            return 401, {"error": "invalid_token"}
        return 200, user


def _handler_for(provider: FakeOidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # quiet
            pass

        def _send(
            self, status: int, body: str | dict[str, Any], content_type: str = "application/json"
        ) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            parsed = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            return {k: v[0] for k, v in parsed.items()}

        def _authorize(self, params: dict[str, str]) -> None:
            status, result = provider.authorize(params)
            if status == 302:
                self._redirect(result)
            else:
                self._send(status, {"error": result})

        def do_GET(self):
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if parts.path == "/.well-known/openid-configuration":
                provider.discovery_fetches += 1
                self._send(200, provider.discovery())
            elif parts.path == "/jwks":
                self._send(200, provider.jwks())
            elif parts.path == "/userinfo":
                self._send(*provider.userinfo(self.headers.get("Authorization", "")))
            elif parts.path == "/authorize" and provider.interactive:
                fields = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                    for k, v in params.items()
                )
                email = html.escape(str(provider.user.get("email", "")))
                page = (
                    "<!doctype html><html><head><title>Fake IdP</title></head><body>"
                    f"<h1>Fake IdP</h1><p>Atalaya asks who you are.</p>"
                    f'<form method="post" action="/authorize">{fields}'
                    f"<button type=submit>Continue as {email}</button></form></body></html>"
                )
                self._send(200, page, "text/html; charset=utf-8")
            elif parts.path == "/authorize":
                self._authorize(params)
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self):
            path = urlsplit(self.path).path
            if path == "/token":
                self._send(*provider.token(self._form(), self.headers.get("Authorization", "")))
            elif path == "/authorize":
                self._authorize(self._form())
            else:
                self._send(404, {"error": "not_found"})

    return Handler


GROUP_ROLES = (
    "atalaya-support-governance=support:governance,"
    "atalaya-support-engineers=support:engineer,"
    "atalaya-finance-engineers=finance:engineer"
)


def oidc_settings_apply(settings, provider: FakeOidcProvider, *, discovery: bool = False) -> None:
    """Turn OIDC on, aimed at the fake (pytest-django's `settings` fixture undoes it after the test)."""
    from apps.accounts.oidc import discovery_forget

    discovery_forget()
    settings.OIDC_RP_CLIENT_ID = provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = provider.client_secret
    settings.OIDC_PROVIDER_NAME = "Fake IdP"
    settings.OIDC_TIMEOUT = 5.0
    settings.OIDC_GROUP_ROLES = GROUP_ROLES
    if discovery:
        settings.OIDC_DISCOVERY_URL = provider.url("/.well-known/openid-configuration")
    else:
        settings.OIDC_OP_ISSUER = [provider.issuer]
        settings.OIDC_OP_AUTHORIZATION_ENDPOINT = provider.url("/authorize")
        settings.OIDC_OP_TOKEN_ENDPOINT = provider.url("/token")
        settings.OIDC_OP_USER_ENDPOINT = provider.url("/userinfo")
        settings.OIDC_OP_JWKS_ENDPOINT = provider.url("/jwks")

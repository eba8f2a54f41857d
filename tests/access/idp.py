"""A test identity provider: real RSA and EC keys, signed tokens, and a JWKS served over HTTP
from a local server (127.0.0.1, a free port) or written to a file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test/realms/shipyard"
AUDIENCE = "shipyard-api"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Idp:
    def __init__(self) -> None:
        self.keys: dict[str, PrivateKey] = {}
        self.add_rsa("rsa-1")
        self.add_ec("ec-1")

    def add_rsa(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def add_ec(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys.items():
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            else:
                jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": entries}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def claims(self, sub: str = "alice", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + 300,
            "tenant": "default",
            "groups": [],
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        sub: str = "alice",
        *,
        kid: str | None = "rsa-1",
        signer: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with key ``signer`` (default: ``kid``); the header names ``kid``."""
        key = self.keys[signer or kid or "rsa-1"]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        header = {"kid": kid} if kid is not None else {}
        header.update(headers or {})
        return jwt.encode(self.claims(sub, **claims), key, algorithm=alg, headers=header)


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hmac_token(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HS256 signed with ``secret`` by hand (PyJWT refuses a PEM key as an HMAC secret)."""
    head = b64url(json.dumps({**header, "alg": "HS256"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


class JwksServer:
    """Serves ``idp.jwks()`` at ``/jwks`` and an OpenID discovery document for the issuer
    ``{base}/realm`` (``discovery`` overrides its members); ``mode`` switches to misbehaviour."""

    def __init__(self, idp: Idp) -> None:
        self.idp = idp
        self.requests = 0
        self.mode = "ok"  # ok | redirect | huge | error
        self.discovery: dict[str, Any] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                if self.path == "/realm/.well-known/openid-configuration":
                    document = {
                        "issuer": server.issuer,
                        "jwks_uri": server.url,
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        **server.discovery,
                    }
                    body = json.dumps(document).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if server.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{server.url}?again")
                    self.end_headers()
                    return
                if server.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps(server.idp.jwks()).encode()
                if server.mode == "huge":
                    body = body + b" " * 2_000_000
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks"
        self.issuer = f"http://127.0.0.1:{self._http.server_address[1]}/realm"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


class FakeClock:
    """A monotonic clock tests move by hand (no sleeping, no timing assertions)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

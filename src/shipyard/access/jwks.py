"""The identity provider's public signing keys (a JWKS), from a file, a URL, or the URL the
issuer's OpenID discovery document names.

A URL is fetched with a timeout, without following redirects and with a size cap, then cached
for a TTL. A token naming an unknown ``kid`` triggers one early refetch (the IdP rotated its
keys), but fetches are never more frequent than ``min_refresh`` seconds, whatever the cause:
tokens with random key ids cannot turn Shipyard into a flood against the IdP. When a refetch
fails the last good keys stay in use.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from shipyard.settings import is_idp_url

log = logging.getLogger("shipyard.access.jwks")

# JWK members that only a private (or symmetric) key has; never needed to verify.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Key types that can verify a public-key signature; "oct" (a shared secret) is never used.
_PUBLIC_KTY = frozenset({"RSA", "EC", "OKP"})


class JwksError(Exception):
    """The key set could not be fetched or parsed (the message names no key material)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the algorithm the key is bound to, when the JWK names one
    key: Any  # a cryptography public key object


def parse_jwks(document: bytes | str) -> tuple[SigningKey, ...]:
    """The usable signature keys of a JWKS document; symmetric, encryption-only and broken
    entries are skipped. Refuses a document that is not a JWKS at all."""
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        raise JwksError("JWKS is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError('JWKS must be a JSON object with a "keys" list')
    keys = []
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in _PUBLIC_KTY:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {name: value for name, value in entry.items() if name not in _PRIVATE_MEMBERS}
        try:
            key = PyJWK(public).key
        except (PyJWTError, ValueError, TypeError):
            log.warning("skipping an unusable JWKS entry (kid %r)", str(entry.get("kid"))[:64])
            continue
        kid, alg, crv = entry.get("kid"), entry.get("alg"), entry.get("crv")
        keys.append(
            SigningKey(
                kid=kid if isinstance(kid, str) else None,
                kty=str(entry["kty"]),
                crv=crv if isinstance(crv, str) else None,
                alg=alg if isinstance(alg, str) else None,
                key=key,
            )
        )
    return tuple(keys)


def load_jwks_file(path: Path) -> tuple[SigningKey, ...]:
    try:
        return parse_jwks(path.read_bytes())
    except OSError as exc:
        raise JwksError(f"cannot read JWKS file {path}: {exc.strerror}") from None


def _get(url: str, what: str, *, timeout: float, max_bytes: int) -> bytes:
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise JwksError(f"{what} answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise JwksError(f"{what} larger than {max_bytes} bytes")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise JwksError(f"{what} unreachable ({type(exc).__name__})") from None


def http_fetcher(url: str, *, timeout: float, max_bytes: int) -> Callable[[], bytes]:
    """A function that GETs ``url`` once: no redirects, ``timeout`` seconds, ``max_bytes``."""

    def fetch() -> bytes:
        return _get(url, "JWKS endpoint", timeout=timeout, max_bytes=max_bytes)

    return fetch


def jwks_uri_of(document: bytes, issuer: str) -> str:
    """The ``jwks_uri`` of an OpenID provider configuration, which must name ``issuer``
    exactly (OpenID Connect Discovery 1.0, section 4.3: no mix-up with another issuer's keys)
    and point at https (or http on this machine)."""
    try:
        data = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        raise JwksError("discovery document is not valid JSON") from None
    if not isinstance(data, dict):
        raise JwksError("discovery document is not a JSON object")
    if data.get("issuer") != issuer:
        raise JwksError("discovery document names another issuer")
    uri = data.get("jwks_uri")
    # Plain http on this machine only for an issuer that is itself on this machine: a remote
    # issuer's document must not point key fetches at local services.
    local_issuer = urlsplit(issuer).scheme == "http"
    if (
        not isinstance(uri, str)
        or not is_idp_url(uri)
        or (urlsplit(uri).scheme != "https" and not local_issuer)
    ):
        raise JwksError("discovery document has no https jwks_uri")
    return uri


def discovery_fetcher(issuer: str, *, timeout: float, max_bytes: int) -> Callable[[], bytes]:
    """Like :func:`http_fetcher`, for the JWKS the issuer's discovery document points at. The
    document is read again on each fetch, so a moved JWKS endpoint is followed."""
    configuration = issuer.rstrip("/") + "/.well-known/openid-configuration"

    def fetch() -> bytes:
        document = _get(configuration, "discovery endpoint", timeout=timeout, max_bytes=max_bytes)
        uri = jwks_uri_of(document, issuer)
        return _get(uri, "JWKS endpoint", timeout=timeout, max_bytes=max_bytes)

    return fetch


class KeySet:
    """Signing keys, fixed (a file) or fetched and cached (a URL). Thread-safe."""

    def __init__(
        self,
        *,
        keys: tuple[SigningKey, ...] | None = None,
        fetch: Callable[[], bytes] | None = None,
        ttl: float = 300,
        min_refresh: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (keys is None) == (fetch is None):
            raise ValueError("give either fixed keys or a fetch function")
        self._keys = keys
        self._fetch = fetch
        self._ttl = ttl
        self._min_refresh = min_refresh
        self.clock = clock  # replaceable in tests
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # attempts made, for tests and metrics

    def current(self) -> tuple[SigningKey, ...]:
        """The keys, refetched first when the cache is older than the TTL (rate-limited)."""
        if self._fetch is None:
            return self._keys or ()
        with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if stale:
                self._try_fetch(now)
            if self._keys is None:
                raise JwksError("signing keys unavailable")
            return self._keys

    def refresh(self) -> bool:
        """Refetch early because a token named an unknown key id; False when a fetch is not
        allowed yet (rate limit), not possible (a file) or failed."""
        if self._fetch is None:
            return False
        with self._lock:
            return self._try_fetch(self.clock())

    def _try_fetch(self, now: float) -> bool:
        assert self._fetch is not None
        if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
            return False
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = parse_jwks(self._fetch())
        except JwksError as exc:
            log.warning("JWKS fetch failed, keeping the last good keys: %s", exc)
            return False
        self._keys, self._fetched_at = keys, now
        return True

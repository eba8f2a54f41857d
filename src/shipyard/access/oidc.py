"""Bearer JWTs from an OIDC identity provider: verified here, mapped to roles elsewhere.

Only what the token *proves* comes out of :meth:`OidcVerifier.verify`: the issuer, the user
(``sub``), the tenant and the IdP groups. Every refusal is :class:`Unauthenticated` with a
short reason; no token content is ever logged or echoed back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from shipyard.access.jwks import (
    JwksError,
    KeySet,
    SigningKey,
    discovery_fetcher,
    http_fetcher,
    load_jwks_file,
)
from shipyard.errors import ConfigError, Unauthenticated
from shipyard.settings import ASYMMETRIC_ALGORITHMS, OidcSettings

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
MAX_TOKEN_CHARS = 16_384
MAX_GROUPS = 1000
MAX_CLAIM_CHARS = 200  # role_bindings.subject holds 200 characters
# The audit actor is "user:<sub>" in a 200-character column.
MAX_SUBJECT_CHARS = MAX_CLAIM_CHARS - len("user:")


def _plain(value: object, max_chars: int) -> bool:
    """A non-empty string without control characters (which could forge log lines, and which
    PostgreSQL refuses in text: a NUL would turn a lookup into a server error)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_chars
        and not any(ord(char) < 32 or ord(char) == 127 for char in value)
    )


# Which key type (and curve) each public-key algorithm needs: a key of another type is never
# tried, so an RSA key cannot be misused with another algorithm family (algorithm confusion).
_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVES = {"ES256": {"P-256"}, "ES384": {"P-384"}, "ES512": {"P-521"}, "EdDSA": {"Ed25519"}}


@dataclass(frozen=True)
class Identity:
    """A verified token's user, tenant and IdP groups."""

    issuer: str
    subject: str
    tenant: str
    groups: frozenset[str]

    @property
    def user_id(self) -> str:
        """Stands in for a key id on runs ("own runs"): 26 characters, never a key id (those
        are 12 of [a-z0-9]), stable for one user of one issuer."""
        digest = hashlib.sha256(f"{self.issuer}\x00{self.subject}".encode()).hexdigest()
        return "u_" + digest[:24]


def _refuse(reason: str) -> Unauthenticated:
    return Unauthenticated(f"invalid token: {reason}")


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A top-level claim; else, for a dotted name, the nested one (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def key_matches(key: SigningKey, alg: str) -> bool:
    """Whether ``key`` may verify a signature made with ``alg``."""
    if _KTY.get(alg[:2]) != key.kty:
        return False
    if key.alg is not None and key.alg != alg:
        return False
    curves = _CURVES.get(alg)
    return curves is None or key.crv in curves


class OidcVerifier:
    def __init__(self, settings: OidcSettings, keys: KeySet) -> None:
        self.settings = settings
        self.keys = keys
        # Settings refuse anything else; this is the second lock on the door.
        self._algorithms = [a for a in settings.algorithms if a in ASYMMETRIC_ALGORITHMS]

    @classmethod
    def from_settings(cls, settings: OidcSettings) -> OidcVerifier:
        """A file's keys are read here, at start-up; a URL's on the first token."""
        if settings.jwks_file is not None:
            try:
                keys = KeySet(keys=load_jwks_file(settings.jwks_file))
            except JwksError as exc:
                raise ConfigError(f"SHIPYARD_OIDC jwks_file: {exc}") from None
        else:
            timeout, max_bytes = settings.jwks_timeout_seconds, settings.jwks_max_bytes
            if settings.jwks_url is not None:
                fetch = http_fetcher(settings.jwks_url, timeout=timeout, max_bytes=max_bytes)
            else:
                fetch = discovery_fetcher(settings.issuer, timeout=timeout, max_bytes=max_bytes)
            keys = KeySet(
                fetch=fetch,
                ttl=settings.jwks_cache_seconds,
                min_refresh=settings.jwks_min_refresh_seconds,
            )
        return cls(settings, keys)

    def verify(self, token: str) -> Identity:
        if len(token) > MAX_TOKEN_CHARS:
            raise _refuse("too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise _refuse("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _refuse("signature algorithm not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refuse("malformed key id")
        key = self._key_for(kid, alg)
        claims = self._decode(token, key, alg)
        return self._identity(claims)

    def _key_for(self, kid: str | None, alg: str) -> SigningKey:
        try:
            keys = self.keys.current()
        except JwksError:
            raise _refuse("signing keys unavailable") from None
        if kid is None:
            if len(keys) != 1:
                raise _refuse("no key id (kid) in the token header")
            found: SigningKey | None = keys[0]
        else:
            found = next((k for k in keys if k.kid == kid), None)
            if found is None:  # the IdP may have rotated its keys (refetch is rate-limited)
                self.keys.refresh()  # another thread may have refetched: look again anyway
                found = next((k for k in self.keys.current() if k.kid == kid), None)
        if found is None:
            raise _refuse("unknown signing key")
        if not key_matches(found, alg):
            raise _refuse("signing key does not match the algorithm")
        return found

    def _decode(self, token: str, key: SigningKey, alg: str) -> dict[str, Any]:
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt_errors.ExpiredSignatureError:
            raise _refuse("expired") from None
        except jwt_errors.ImmatureSignatureError:
            raise _refuse("not yet valid") from None
        except jwt_errors.InvalidIssuerError:
            raise _refuse("wrong issuer") from None
        except jwt_errors.InvalidAudienceError:
            raise _refuse("wrong audience") from None
        except jwt_errors.MissingRequiredClaimError as exc:
            raise _refuse(f"missing claim {exc.claim!r}") from None
        except jwt_errors.InvalidSignatureError:
            raise _refuse("bad signature") from None
        except jwt_errors.PyJWTError:
            raise _refuse("malformed token") from None
        except (ValueError, TypeError):  # a key the algorithm cannot use, odd claim types
            raise _refuse("malformed token") from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        subject = claims["sub"]
        if not _plain(subject, MAX_SUBJECT_CHARS):
            raise _refuse("malformed 'sub' claim")
        tenant = self.settings.tenant or _claim(claims, self.settings.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise _refuse("no tenant claim")
        if not _plain(tenant, MAX_CLAIM_CHARS):
            raise _refuse("malformed tenant claim")
        raw = _claim(claims, self.settings.groups_claim)
        if raw is None:
            raw = []
        elif isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or len(raw) > MAX_GROUPS:
            raise _refuse("malformed groups claim")
        groups = frozenset(g for g in raw if _plain(g, MAX_CLAIM_CHARS))
        return Identity(claims["iss"], subject, tenant, groups)

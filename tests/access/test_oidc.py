"""Verifying OIDC bearer JWTs: every refusal, JWKS from a file and from a real HTTP server,
key rotation at the IdP and the refetch rate limit. No database here (see
tests/api/test_oidc_api.py for the mapping to principals)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.access.jwks import JwksError, KeySet, http_fetcher, jwks_uri_of, parse_jwks
from shipyard.access.oidc import Identity, OidcVerifier
from shipyard.errors import ConfigError, Unauthenticated
from shipyard.settings import OidcSettings, Settings
from tests.access.idp import (
    AUDIENCE,
    ISSUER,
    FakeClock,
    Idp,
    JwksServer,
    hmac_token,
    unsigned_token,
)


@pytest.fixture(scope="module")
def idp() -> Idp:
    return Idp()


@pytest.fixture
def file_verifier(idp: Idp, tmp_path: Path) -> OidcVerifier:
    settings = OidcSettings(
        issuer=ISSUER, audience=AUDIENCE, jwks_file=idp.write_jwks(tmp_path / "jwks.json")
    )
    return OidcVerifier.from_settings(settings)


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with JwksServer(Idp()) as running:
        yield running


def url_verifier(server: JwksServer, clock: FakeClock, **options: Any) -> OidcVerifier:
    settings = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=server.url, **options)
    verifier = OidcVerifier.from_settings(settings)
    verifier.keys.clock = clock
    return verifier


def refused(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    assert token not in caught.value.detail
    return caught.value.detail


# -- accepted tokens ---------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_rs256_and_es256_tokens_from_a_jwks_file_verify(
    file_verifier: OidcVerifier, idp: Idp, kid: str
) -> None:
    identity = file_verifier.verify(idp.token("alice", kid=kid, groups=["/support", "eng"]))
    assert identity == Identity(ISSUER, "alice", "default", frozenset({"/support", "eng"}))


def test_the_user_id_is_stable_and_never_a_key_id(idp: Idp, file_verifier: OidcVerifier) -> None:
    first = file_verifier.verify(idp.token("alice")).user_id
    assert first == file_verifier.verify(idp.token("alice", kid="ec-1")).user_id
    assert first != file_verifier.verify(idp.token("bob")).user_id
    assert first.startswith("u_")
    assert len(first) == 26


def test_claims_may_be_nested_or_fixed(idp: Idp, tmp_path: Path) -> None:
    settings = OidcSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_file=idp.write_jwks(tmp_path / "jwks.json"),
        tenant="acme",
        groups_claim="realm_access.roles",
    )
    verifier = OidcVerifier.from_settings(settings)
    token = idp.token("alice", tenant="ignored", realm_access={"roles": ["ops"]})
    identity = verifier.verify(token)
    assert (identity.tenant, identity.groups) == ("acme", frozenset({"ops"}))


# -- refusals ----------------------------------------------------------------------------


def test_alg_none_is_refused(file_verifier: OidcVerifier, idp: Idp) -> None:
    token = unsigned_token({"alg": "none", "kid": "rsa-1"}, idp.claims())
    assert "algorithm not accepted" in refused(file_verifier, token)


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    file_verifier: OidcVerifier, idp: Idp
) -> None:
    token = hmac_token(idp.public_pem("rsa-1"), {"kid": "rsa-1", "typ": "JWT"}, idp.claims())
    assert "algorithm not accepted" in refused(file_verifier, token)


def test_a_key_of_another_type_than_the_algorithm_is_refused(
    file_verifier: OidcVerifier, idp: Idp
) -> None:
    # Signed ES256 with the EC key, but the header names the RSA key.
    token = idp.token("alice", kid="rsa-1", signer="ec-1")
    assert "does not match the algorithm" in refused(file_verifier, token)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"iat": int(time.time()) + 600}, "not yet valid"),
        ({"iss": "https://evil.example.test"}, "wrong issuer"),
        ({"aud": "another-api"}, "wrong audience"),
        ({"exp": None}, "missing claim 'exp'"),
        ({"iat": None}, "missing claim 'iat'"),
        ({"iss": None}, "missing claim 'iss'"),
        ({"aud": None}, "missing claim 'aud'"),
        ({"sub": None}, "missing claim 'sub'"),
        ({"sub": "line\nbreak"}, "malformed 'sub' claim"),
        ({"sub": "x" * 201}, "malformed 'sub' claim"),
        ({"sub": 42}, "malformed token"),
        ({"tenant": None}, "no tenant claim"),
        ({"tenant": ["acme"]}, "no tenant claim"),
        ({"groups": {"not": "a list"}}, "malformed groups claim"),
    ],
)
def test_claim_refusals(
    file_verifier: OidcVerifier, idp: Idp, claims: dict[str, Any], reason: str
) -> None:
    # A claim set to None is left out of the token.
    assert reason in refused(file_verifier, idp.token(**claims))


def test_the_leeway_accepts_a_token_just_expired(file_verifier: OidcVerifier, idp: Idp) -> None:
    assert file_verifier.verify(idp.token("alice", exp=int(time.time()) - 5)).subject == "alice"


def test_unknown_kid_is_refused(file_verifier: OidcVerifier, idp: Idp) -> None:
    token = idp.token("alice", kid="rsa-9", signer="rsa-1")
    assert "unknown signing key" in refused(file_verifier, token)


def test_missing_kid_is_refused_when_the_jwks_has_several_keys(
    file_verifier: OidcVerifier, idp: Idp
) -> None:
    assert "no key id" in refused(file_verifier, idp.token("alice", kid=None, signer="rsa-1"))


def test_missing_kid_is_accepted_when_the_jwks_has_one_key(idp: Idp, tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"keys": [idp.jwks()["keys"][0]]}))
    verifier = OidcVerifier.from_settings(
        OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=path)
    )
    assert verifier.verify(idp.token("alice", kid=None, signer="rsa-1")).subject == "alice"


def test_a_forged_signature_is_refused(file_verifier: OidcVerifier, idp: Idp) -> None:
    other = Idp()  # same kid names, different keys
    assert "bad signature" in refused(file_verifier, other.token("alice"))
    head, _body, signature = idp.token("alice").split(".")
    forged_body = unsigned_token({}, idp.claims("mallory")).split(".")[1]
    assert "bad signature" in refused(file_verifier, f"{head}.{forged_body}.{signature}")


@pytest.mark.parametrize(
    "token",
    ["a.b.c", "...", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20_000, "eyJhbGciOiJSUzI1NiJ9.%%%.abc"],
)
def test_malformed_tokens_are_refused(file_verifier: OidcVerifier, token: str) -> None:
    refused(file_verifier, token)


def test_symmetric_and_encryption_keys_in_a_jwks_are_ignored(idp: Idp) -> None:
    document = idp.jwks()
    document["keys"].append({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})
    document["keys"].append({**document["keys"][0], "kid": "enc", "use": "enc"})
    kids = {key.kid for key in parse_jwks(json.dumps(document))}
    assert kids == {"rsa-1", "ec-1"}


# -- JWKS over HTTP ----------------------------------------------------------------------


def test_jwks_from_a_url_is_fetched_once_and_cached(server: JwksServer) -> None:
    verifier = url_verifier(server, FakeClock())
    for _ in range(3):
        verifier.verify(server.idp.token("alice"))
    assert server.requests == 1


def test_the_cache_expires_after_its_ttl(server: JwksServer) -> None:
    clock = FakeClock()
    verifier = url_verifier(server, clock, jwks_cache_seconds=300)
    verifier.verify(server.idp.token("alice"))
    clock.advance(301)
    verifier.verify(server.idp.token("alice"))
    assert server.requests == 2


def test_key_rotation_at_the_idp_is_picked_up_on_an_unknown_kid(server: JwksServer) -> None:
    clock = FakeClock()
    verifier = url_verifier(server, clock)
    verifier.verify(server.idp.token("alice"))
    server.idp.add_rsa("rsa-2")
    del server.idp.keys["rsa-1"]
    clock.advance(61)  # past the refetch limit, well within the cache TTL
    assert verifier.verify(server.idp.token("alice", kid="rsa-2")).subject == "alice"
    assert server.requests == 2
    assert "unknown signing key" in refused(verifier, Idp().token("alice", kid="rsa-1"))


def test_random_kids_cannot_hammer_the_idp(server: JwksServer) -> None:
    clock = FakeClock()
    verifier = url_verifier(server, clock, jwks_min_refresh_seconds=60)
    verifier.verify(server.idp.token("alice"))
    clock.advance(61)
    for _ in range(20):
        refused(verifier, server.idp.token("alice", kid=uuid.uuid4().hex, signer="rsa-1"))
        clock.advance(1)
    assert server.requests == 2  # the first fetch and one refetch in the 60 s window
    clock.advance(60)
    refused(verifier, server.idp.token("alice", kid="another", signer="rsa-1"))
    assert server.requests == 3


@pytest.mark.parametrize("mode", ["redirect", "huge", "error"])
def test_redirects_oversized_and_failed_jwks_are_not_used(server: JwksServer, mode: str) -> None:
    server.mode = mode
    verifier = url_verifier(server, FakeClock())
    assert "signing keys unavailable" in refused(verifier, server.idp.token("alice"))
    assert server.requests == 1  # the redirect is not followed


def test_the_last_good_keys_stay_in_use_when_a_refetch_fails(server: JwksServer) -> None:
    clock = FakeClock()
    verifier = url_verifier(server, clock)
    verifier.verify(server.idp.token("alice"))
    server.mode = "error"
    clock.advance(400)  # the cache is stale; the refetch fails
    assert verifier.verify(server.idp.token("alice")).subject == "alice"


def test_an_unreachable_idp_is_refused_without_raising_anything_else() -> None:
    fetch = http_fetcher("http://127.0.0.1:9/jwks", timeout=2, max_bytes=10_000)
    keys = KeySet(fetch=fetch, clock=FakeClock())
    settings = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:9/jwks")
    verifier = OidcVerifier(settings, keys)
    assert "signing keys unavailable" in refused(verifier, Idp().token("alice"))


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithms": ["HS256"]}, "'HS256' is not accepted"),
        ({"algorithms": ["RS256", "none"]}, "'none' is not accepted"),
        ({"jwks_file": "/tmp/x.json"}, "exactly one of jwks_url, jwks_file and discovery"),
        ({"jwks_url": None}, "exactly one of jwks_url, jwks_file and discovery"),
        ({"jwks_url": "http://idp.example.test/jwks"}, "https"),
        ({"jwks_url": "ftp://idp.example.test/jwks"}, "https"),
    ],
)
def test_unsafe_settings_are_refused(options: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": "https://idp.example.test/jwks",
        **options,
    }
    with pytest.raises(ConfigError, match=message):
        OidcSettings(**values)


def test_oidc_settings_come_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "SHIPYARD_OIDC",
        json.dumps({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "https://i.test/k"}),
    )
    oidc = Settings().oidc
    assert oidc is not None
    assert (oidc.algorithms, oidc.tenant_claim, oidc.leeway_seconds) == (
        ["RS256", "ES256"],
        "tenant",
        30,
    )


def test_a_missing_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    settings = OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=tmp_path / "none.json")
    with pytest.raises(ConfigError, match="jwks_file"):
        OidcVerifier.from_settings(settings)


def test_claims_that_could_not_be_stored_or_looked_up_are_refused(
    idp: Idp, file_verifier: OidcVerifier
) -> None:
    # A NUL in the tenant claim would reach PostgreSQL (which refuses it: a 500, not a 401).
    assert "tenant" in refused(file_verifier, idp.token(tenant="acme\x00"))
    # The audit actor is "user:<sub>" in 200 characters.
    assert "sub" in refused(file_verifier, idp.token("u" * 196))
    assert file_verifier.verify(idp.token("u" * 195)).subject == "u" * 195
    # Groups with control characters are dropped, not looked up.
    identity = file_verifier.verify(idp.token(groups=["ok", "bad\x00", "line\nbreak"]))
    assert identity.groups == frozenset({"ok"})


# -- discovery ---------------------------------------------------------------------------


def discovery_verifier(server: JwksServer) -> OidcVerifier:
    settings = OidcSettings(issuer=server.issuer, audience=AUDIENCE, discovery=True)
    verifier = OidcVerifier.from_settings(settings)
    verifier.keys.clock = FakeClock()
    return verifier


def test_discovery_finds_the_jwks_of_the_issuer(server: JwksServer) -> None:
    verifier = discovery_verifier(server)
    identity = verifier.verify(server.idp.token("alice", iss=server.issuer))
    assert identity.subject == "alice"
    assert server.requests == 2  # the discovery document, then the JWKS it names
    refused(verifier, server.idp.token("alice"))  # another issuer's token


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"issuer": "https://attacker.example"}, "another issuer"),
        ({"jwks_uri": "http://10.0.0.8/keys"}, "no https jwks_uri"),
        ({"jwks_uri": None}, "no https jwks_uri"),
    ],
)
def test_a_discovery_document_that_does_not_fit_is_not_used(
    server: JwksServer, caplog: pytest.LogCaptureFixture, document: dict[str, Any], why: str
) -> None:
    server.discovery = document
    verifier = discovery_verifier(server)
    refused(verifier, server.idp.token("alice", iss=server.issuer))
    assert why in caplog.text
    assert server.requests == 1  # the keys of an unverified endpoint were never fetched


def test_discovery_needs_an_https_issuer_and_one_key_source(idp: Idp, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="https issuer"):
        OidcSettings(issuer="http://idp.example.com/realm", audience=AUDIENCE, discovery=True)
    with pytest.raises(ConfigError, match="exactly one"):
        OidcSettings(
            issuer=ISSUER, audience=AUDIENCE, discovery=True, jwks_url="https://idp.test/k"
        )
    with pytest.raises(ConfigError, match="exactly one"):
        OidcSettings(issuer=ISSUER, audience=AUDIENCE)


def test_a_remote_issuer_cannot_point_key_fetches_at_this_machine() -> None:
    remote = "https://idp.example.test/realm"
    for uri in ("http://localhost:9000/keys", "http://127.0.0.1/keys", "ftp://idp.test/k"):
        document = json.dumps({"issuer": remote, "jwks_uri": uri}).encode()
        with pytest.raises(JwksError, match="https jwks_uri"):
            jwks_uri_of(document, remote)
    fine = json.dumps({"issuer": remote, "jwks_uri": "https://keys.example.test/jwks"}).encode()
    assert jwks_uri_of(fine, remote) == "https://keys.example.test/jwks"
    local = "http://127.0.0.1:8080/realm"  # a test IdP on this machine may serve http keys
    nearby = json.dumps({"issuer": local, "jwks_uri": "http://127.0.0.1:8080/keys"}).encode()
    assert jwks_uri_of(nearby, local) == "http://127.0.0.1:8080/keys"

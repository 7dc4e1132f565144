"""Identity under auth: the acting person comes from a verified JWT, never the body alone."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from signoff.adapters.nats.identity import Authenticator
from signoff.client import SignoffClient
from signoff.errors import ForbiddenError
from tests.integration.nats_support import served, shared_nats, unique_settings

SECRET = "test-secret-of-thirty-two-bytes!"


def token(sub: str, *, key=SECRET, algorithm="HS256", ttl=60, **claims) -> str:
    return jwt.encode(
        {"sub": sub, "exp": int(time.time()) + ttl, **claims},
        key,
        algorithm=algorithm,
        headers=claims.pop("headers", None),
    )


async def test_the_actor_comes_from_the_token(tmp_path):
    auth = Authenticator(key=SECRET, algorithms=["HS256"])
    async with served(
        f"sqlite:///{tmp_path}/e.db",
        shared_nats(),
        unique_settings(),
        auth=auth,
        token=token("carol"),
    ) as s:
        # The requester is the token's subject; the body need not name anyone
        approval_id = await s.client.request_approval(title="Pay", approvers=["alice"])
        assert (await s.client.get_approval(approval_id)).requested_by == "carol"
        alice = SignoffClient(s.nc, prefix=s.settings.prefix, token=token("alice"))
        before = s.stored()

        # A body that names someone else, a missing or expired token: refused, nothing stored
        with pytest.raises(ForbiddenError, match="not the authenticated"):
            await alice.approve(approval_id, by="bob")
        with pytest.raises(ForbiddenError, match="authentication required"):
            await SignoffClient(s.nc, prefix=s.settings.prefix).approve(approval_id, by="alice")
        expired = SignoffClient(s.nc, prefix=s.settings.prefix, token=token("alice", ttl=-10))
        with pytest.raises(ForbiddenError, match="expired"):
            await expired.approve(approval_id)
        forged = SignoffClient(
            s.nc,
            prefix=s.settings.prefix,
            token=token("alice", key="another-secret-of-32-bytes-long!!"),
        )
        with pytest.raises(ForbiddenError, match="credential refused"):
            await forged.approve(approval_id)
        assert s.stored() == before

        # The token's subject votes
        info = await alice.approve(approval_id)
        assert [v.voter for v in info.votes] == ["alice"]


async def test_jwks_keys_and_group_claims(tmp_path):
    # A key set with one RSA key, named by its kid
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    auth = Authenticator(jwks_file=jwks, algorithms=["RS256"], audience="signoff")

    def signed(sub: str, kid: str = "k1", **claims) -> str:
        return jwt.encode(
            {"sub": sub, "exp": int(time.time()) + 60, "aud": "signoff", **claims},
            private,
            algorithm="RS256",
            headers={"kid": kid},
        )

    async with served(
        f"sqlite:///{tmp_path}/e.db",
        shared_nats(),
        unique_settings(),
        auth=auth,
        token=signed("carol"),
    ) as s:
        approval_id = await s.client.request_approval(title="Pay", groups=["finance"])
        erin = SignoffClient(s.nc, prefix=s.settings.prefix, token=signed("erin", groups=["ops"]))
        dave = SignoffClient(
            s.nc, prefix=s.settings.prefix, token=signed("dave", groups=["finance"])
        )
        stranger = SignoffClient(s.nc, prefix=s.settings.prefix, token=signed("x", kid="k2"))

        # Groups the credential does not name are refused; an unknown kid is refused
        with pytest.raises(ForbiddenError, match="group"):
            await erin.approve(approval_id, groups=["finance"])
        with pytest.raises(ForbiddenError):
            await stranger.approve(approval_id)

        # The credential's groups make dave an approver
        info = await dave.approve(approval_id)
        assert info.status == "approved"
        assert info.votes[0].groups == ["finance"]


async def test_a_public_key_is_never_taken_for_an_hmac_secret(tmp_path):
    # An engine that checks RS256 tokens against a PEM public key
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    auth = Authenticator(key=pem.decode())

    # A token "signed" with the public key as an HMAC secret is refused
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    claims = jwt.utils.base64url_encode(
        json.dumps({"sub": "mallory", "exp": int(time.time()) + 60}).encode()
    )
    signing_input = header + b"." + claims
    signature = jwt.utils.base64url_encode(hmac.new(pem, signing_input, hashlib.sha256).digest())
    with pytest.raises(ForbiddenError):
        auth.verify({"Authorization": f"Bearer {(signing_input + b'.' + signature).decode()}"})

    # A token signed with the private key passes
    good = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, private, algorithm="RS256")
    assert auth.verify({"Authorization": f"Bearer {good}"}).person == "alice"

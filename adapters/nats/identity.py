"""Who is acting: a verified JWT carried in a header, never the body alone.

With an :class:`Authenticator` configured, a command's ``by`` (or ``requested_by``)
comes from the token's subject, and a body that names someone else is refused; the
acting person's groups come from the token's ``groups`` claim. Without one, the
service trusts the body and says so when it starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from signoff.adapters.nats.messages import Message
from signoff.adapters.nats.routes import Route
from signoff.domain.errors import ForbiddenError

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
AUTH_HEADER = "Authorization"
"""Carries ``Bearer <JWT>``."""


@dataclass(frozen=True)
class Identity:
    """A verified person and the groups their credential names."""

    person: str
    groups: tuple[str, ...] = ()


class Authenticator:
    """Checks JWTs against a public key or secret, or against a JWKS file (by ``kid``).

    Args:
        key: a PEM public key or an HMAC secret.
        jwks_file: a JSON Web Key Set; the token's ``kid`` picks the key.
        algorithms: accepted signing algorithms (default: HMAC ones for a secret,
            public-key ones for a PEM key or a key set, never both).
        audience, issuer: required ``aud`` / ``iss`` claims, when given.
        groups_claim: the claim that lists the person's groups.
    """

    def __init__(
        self,
        *,
        key: str | None = None,
        jwks_file: str | Path | None = None,
        algorithms: Sequence[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        groups_claim: str = "groups",
    ) -> None:
        if (key is None) == (jwks_file is None):
            raise ValueError("give exactly one of key and jwks_file")
        self._key = key
        self._jwks = jwt.PyJWKSet.from_json(Path(jwks_file).read_text()) if jwks_file else None
        asymmetric = jwks_file is not None or (key or "").lstrip().startswith("-----BEGIN")
        default = ASYMMETRIC if asymmetric else ("HS256", "HS384", "HS512")
        self._algorithms = list(algorithms or default)
        self._audience = audience
        self._issuer = issuer
        self._groups_claim = groups_claim

    def verify(self, headers: Mapping[str, str] | None) -> Identity:
        """The identity in the ``Authorization`` header; ForbiddenError if there is none
        or it does not verify."""
        value = (headers or {}).get(AUTH_HEADER, "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ForbiddenError(f"authentication required: a '{AUTH_HEADER}: Bearer' JWT")
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp"]},
            )
        except (jwt.PyJWTError, KeyError, ValueError) as error:
            raise ForbiddenError(f"credential refused: {error}") from None
        groups = claims.get(self._groups_claim) or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ForbiddenError(f"credential refused: {self._groups_claim!r} is not a list")
        return Identity(str(claims["sub"]), tuple(groups))

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        if not kid:
            raise ValueError("the token names no 'kid' of the configured key set")
        return self._jwks[kid]


def act_as(route: Route, msg: Message, identity: Identity | None) -> Message:
    """The body with the acting person (and their groups) taken from ``identity``;
    ForbiddenError when the body names someone or some group the credential does not."""
    if identity is None or route.actor is None:
        return msg
    update: dict[str, Any] = {route.actor: identity.person}
    claimed = getattr(msg, route.actor)
    if claimed is not None and claimed != identity.person:
        raise ForbiddenError(
            f"{route.actor}={json.dumps(claimed)} is not the authenticated {identity.person!r}"
        )
    if route.actor_groups is not None:
        groups = getattr(msg, route.actor_groups)
        foreign = sorted(set(groups) - set(identity.groups))
        if foreign:
            raise ForbiddenError(f"the credential does not name the group(s) {foreign}")
        update[route.actor_groups] = groups or list(identity.groups)
    return msg.model_copy(update=update)

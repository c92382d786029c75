"""Who is calling: JWT (flask-jwt-extended) with a ``roles`` claim."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, jsonify
from flask_jwt_extended import JWTManager, get_jwt, verify_jwt_in_request

from app.core.errors import Forbidden, Unauthorized
from app.extensions import current_context
from app.services import tokens

ROLES = ("admin", "client", "server")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    subject: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def owner_filter(self) -> str | None:
        """The owner whose tasks this caller may see; None for an admin (all)."""
        return None if self.is_admin else self.subject


def current_caller() -> Caller:
    """The caller of this request; a token whose ``roles`` is not a list of role names
    is refused (401) rather than guessed at."""
    claims = get_jwt()
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("token claim 'roles' must be a list of role names")
    return Caller(str(claims["sub"]), frozenset(roles) & set(ROLES))


def requires(*roles: str) -> Callable[[F], F]:
    """A valid JWT whose roles include one of ``roles`` (401 without one, 403 otherwise)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            caller = current_caller()
            if not caller.roles & set(roles):
                raise Forbidden(f"requires role {' or '.join(roles)}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def init_jwt(app: Flask) -> JWTManager:
    """Decoding (HS256, ``exp``/``nbf``/``iat`` with ``CLOCK_LEEWAY_S`` of leeway) is
    flask-jwt-extended's; on top of it a token must carry a numeric ``exp`` and must not
    be revoked (``services.tokens``). Every refusal is a 401 in the API's error shape."""
    jwt = JWTManager(app)

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        g.revoked_reason = tokens.revoked_reason(current_context(), payload)
        return g.revoked_reason is not None

    @jwt.token_verification_loader
    def _has_expiry(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        exp = payload.get("exp")
        return isinstance(exp, int | float) and not isinstance(exp, bool)

    @jwt.token_verification_failed_loader
    def _no_expiry(_header: dict[str, Any], _payload: dict[str, Any]) -> Any:
        return unauthorized("token has no expiry (exp claim): mint one with taskfleet token")

    def unauthorized(message: str) -> Any:
        response = jsonify(error="unauthorized", message=message, details={})
        response.status_code = 401
        return response

    @jwt.unauthorized_loader
    def _missing(reason: str) -> Any:
        return unauthorized(f"missing bearer token: {reason}")

    @jwt.invalid_token_loader
    def _invalid(reason: str) -> Any:
        return unauthorized("invalid token")

    @jwt.expired_token_loader
    def _expired(_header: dict[str, Any], _payload: dict[str, Any]) -> Any:
        return unauthorized("token expired")

    @jwt.revoked_token_loader
    def _revoked(_header: dict[str, Any], _payload: dict[str, Any]) -> Any:
        return unauthorized(g.get("revoked_reason") or "token revoked")

    @jwt.needs_fresh_token_loader
    def _stale(_header: dict[str, Any], _payload: dict[str, Any]) -> Any:
        return unauthorized("fresh token required")

    @jwt.user_lookup_error_loader
    def _lookup(_header: dict[str, Any], _payload: dict[str, Any]) -> Any:
        return unauthorized("unknown subject")

    return jwt

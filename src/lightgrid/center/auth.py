"""Passwords (argon2) and API tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center.access import Principal
from lightgrid.core.errors import Unauthorized
from lightgrid.store.models import ApiToken, Membership, OrgRole, Project, User

TOKEN_PREFIX = "lg_"
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (unlike passwords).
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User, *, name: str = "",
                ttl_days: int | None = 90) -> tuple[ApiToken, str]:
    """Create a token for `user`; the plain token is returned once and never stored."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(days=ttl_days) if ttl_days else None
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(plain),
                   prefix=plain[:10], expires_at=expires)
    session.add(row)
    session.flush()
    return row, plain


def load_principal(session: Session, user: User) -> Principal:
    rows = session.execute(
        select(Membership.project_id, Membership.role, Project.name)
        .join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user.id, Project.active.is_(True))).all()
    orgs = session.scalars(select(OrgRole.org_id).where(OrgRole.user_id == user.id)).all()
    return Principal(user_id=user.id, username=user.username, center_role=user.center_role,
                     projects={pid: role for pid, role, _ in rows},
                     project_names={name: pid for pid, _, name in rows},
                     admin_orgs=frozenset(orgs))


class TokenAuthenticator:
    """Resolves bearer tokens to principals, caching for a few seconds.

    The cache keeps the hot submit path at one database round trip; a revoked token
    or changed role takes effect within `ttl` seconds.
    """

    def __init__(self, factory: sessionmaker[Session], ttl: float = 5.0) -> None:
        self._factory = factory
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def cached(self, token: str | None) -> Principal | None:
        """The principal for `token` if it was resolved in the last `ttl` seconds."""
        if not token:
            return None
        with self._lock:
            hit = self._cache.get(hash_token(token))
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing API token (send 'Authorization: Bearer <token>')")
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and hit[0] > now:
            return hit[1]
        with self._factory() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
            if row is None or row.revoked_at is not None:
                raise Unauthorized("invalid or revoked API token")
            if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
                raise Unauthorized("API token expired")
            user = session.get(User, row.user_id)
            if user is None or not user.active:
                raise Unauthorized("the token's user is disabled")
            principal = load_principal(session, user)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        return principal

"""Dashboard sign-in sessions: an opaque random token in a cookie, the rest in memory.

The cookie holds only a 256-bit random token; the store keeps, under the token's
SHA-256, the SHA-256 of the API key that signed in (never the key), its name and
role, a CSRF token and pending flash messages. Every request re-checks the key in
the database, so revoking a key or changing its role takes effect at once.

The store lives in the app's state: sessions end when the process restarts, and
several API processes behind one address need sticky routing (or one shared store).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.access.schemas import Role

SESSION_COOKIE = "sl_session"
LANG_COOKIE = "sl_lang"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class DashboardSession:
    """One signed-in browser."""

    key_hash: str
    name: str
    role: Role
    csrf: str
    created: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, kind: str, message: str) -> None:
        """Queue a message (``ok`` or ``error``) for the next page shown."""
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class SessionStore:
    """In-memory sessions with an idle timeout, an absolute lifetime and a size cap.

    ``clock`` returns seconds (monotonic by default; tests pass their own). When the
    cap is reached the least recently used session is dropped.
    """

    def __init__(
        self,
        *,
        idle_s: float,
        max_age_s: float,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, DashboardSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, *, key_hash: str, name: str, role: Role) -> tuple[str, DashboardSession]:
        """A new session; returns the token for the cookie (shown nowhere else)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = DashboardSession(
            key_hash=key_hash,
            name=name,
            role=role,
            csrf=secrets.token_urlsafe(24),
            created=now,
            last_seen=now,
        )
        self._sessions[_digest(token)] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> DashboardSession | None:
        """The live session for ``token`` (touching it), or None if unknown or expired."""
        if not token:
            return None
        digest = _digest(token)
        session = self._sessions.get(digest)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.idle_s or now - session.created > self.max_age_s:
            del self._sessions[digest]
            return None
        session.last_seen = now
        self._sessions.move_to_end(digest)
        return session

    def drop(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def drop_key(self, key_hash: str) -> int:
        """End every session of one API key (it was revoked); returns how many."""
        doomed = [d for d, s in self._sessions.items() if s.key_hash == key_hash]
        for digest in doomed:
            del self._sessions[digest]
        return len(doomed)

"""Who may use the workbench: the session cookie, the role behind it (read from the database
on every request), the forms' CSRF tokens, and the limit on guessing sign-in links.
"""

from __future__ import annotations

import hmac
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from storage.roles import Role
from storage.store import Store
from storage.web_sessions import IDLE_LIMIT, WebSession, csrf_token

logger = logging.getLogger(__name__)

SESSION_COOKIE = "cocreate_workbench"
SIGN_IN_COOKIE = "cocreate_signin"  # the sign-in form's CSRF token, before any session
# Wrong, used or expired links one address may open in GUESS_WINDOW before it must wait.
# A link's token has 256 random bits, so this is a second wall, not the first; it also keeps
# the audit log from filling up.
GUESS_LIMIT = 10
GUESS_WINDOW = timedelta(minutes=10)
# Addresses remembered at most (the oldest are forgotten first): memory stays bounded.
GUESSERS_KEPT = 10_000


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member behind a request, as the database says now."""

    session: WebSession
    token: str  # the session's secret, from the cookie
    role: Role
    name: str | None

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    @property
    def is_organiser(self) -> bool:
        return self.role == "organiser"


class Refused(Exception):
    """The request has no live session, or the person behind it is no longer staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "signed_out" or "not_staff"


async def current_staff(request: Request, store: Store) -> Staff:
    """The staff member behind a request; raises Refused otherwise.

    The role is read from the database every time: someone removed in /roles is refused on
    their next request, and their session ends."""
    token = request.cookies.get(SESSION_COOKIE)
    session = await store.web_sessions.current(token) if token else None
    if token is None or session is None:
        raise Refused("signed_out")
    role = await store.roles.get(session.telegram_user_id)
    if role is None or not role.active:
        await store.web_sessions.end(session, "not_staff")
        raise Refused("not_staff")
    return Staff(session=session, token=token, role=role.role, name=role.name)


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    """The session's cookie: never readable by scripts, never sent from another site."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(IDLE_LIMIT.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


async def form_of(request: Request) -> dict[str, str]:
    """A posted form's fields (application/x-www-form-urlencoded; the first of each)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body).items()}


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether a form's CSRF token is the one expected (in constant time)."""
    return bool(given and expected) and hmac.compare_digest(str(given), str(expected))


class Guesses:
    """Wrong sign-in links, by client address, in a sliding window (in this process)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._seen: dict[str, deque[datetime]] = {}

    def _recent(self, address: str) -> deque[datetime]:
        times = self._seen.get(address, deque())
        cutoff = self._now() - GUESS_WINDOW
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def blocked(self, address: str) -> timedelta | None:
        """How long an address must wait before trying another link; None: it may now."""
        times = self._recent(address)
        if len(times) < GUESS_LIMIT:
            return None
        return times[0] + GUESS_WINDOW - self._now()

    def wrong(self, address: str) -> None:
        """Notes a wrong, used or expired link opened from an address."""
        times = self._recent(address)
        times.append(self._now())
        self._seen.pop(address, None)
        self._seen[address] = times  # newest last, so the oldest are forgotten first
        while len(self._seen) > GUESSERS_KEPT:
            self._seen.pop(next(iter(self._seen)))
        if len(times) == GUESS_LIMIT:
            logger.warning("Too many wrong sign-in links from one address; it must wait")

"""Signing in to the staff workbench: one-time links and the browser sessions they open.

Tables: web_links, web_sessions. /workbench (conversations/workbench.py) makes a link that
works once, for LINK_TTL; opening it starts a session, which ends after IDLE_LIMIT without a
request, or at sign-out. As with invites (storage/roles.py), only the sha256 of each token is
kept: the link exists only in the staff member's chat, the session token only in their
browser's cookie. Whether the person is still staff is not this module's business: the
workbench asks storage/roles.py on every request. Sign-ins (and refusals) are in the audit
log, in the same unit of work as the change.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from storage.db import Database, Row, Tx, new_id
from storage.times import from_db, to_db

LINK_TTL = timedelta(minutes=10)
IDLE_LIMIT = timedelta(hours=12)
# A session's last request is written at most this often (not on every page and event).
SEEN_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    """The form a link's or a session's token is stored in."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The token every form of a session carries: derived from the session's secret (which
    only the browser's HttpOnly cookie holds), so a page elsewhere cannot know it, and
    different from the stored hash, so the database does not give it away either."""
    return hashlib.sha256(b"cocreate-csrf\0" + session_token.encode()).hexdigest()


class LinkState(StrEnum):
    """What a sign-in link is now."""

    OK = "ok"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class WebSession:
    """A staff member signed in to the workbench in one browser."""

    id: int
    telegram_user_id: int
    started_at: datetime
    seen_at: datetime


@dataclass(frozen=True)
class SignIn:
    """What came of opening a link: a new session's token and its person, or why not."""

    state: LinkState
    token: str | None = None
    telegram_user_id: int | None = None


async def _audit(conn: Tx, at: str, who: str, action: str, **detail: Any) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
        (at, who, action, json.dumps(detail, sort_keys=True)),
    )


class WebSessions:
    """Sign-in links and workbench sessions."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now

    async def make_link(self, user_id: int, ttl: timedelta = LINK_TTL) -> str:
        """Makes a one-time sign-in link for a staff member; returns its token."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        at = to_db(now)
        async with self._db.transaction() as conn:
            link_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO web_links (token_hash, telegram_user_id, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (token_hash(token), user_id, at, to_db(now + ttl)),
                )
            )
            await _audit(conn, at, f"telegram:{user_id}", "workbench_link_made", link=link_id)
        return token

    async def check_link(self, token: str) -> LinkState:
        """Whether a link would work now, without using it; a refusal is audited."""
        row = await self._db.fetch_one(
            "SELECT id, telegram_user_id, used_at, expires_at FROM web_links WHERE token_hash = ?",
            (token_hash(token),),
        )
        state = self._state(row)
        if state is not LinkState.OK:
            async with self._db.transaction() as conn:
                await self._refused(conn, to_db(self._now()), row, state)
        return state

    @staticmethod
    async def _refused(conn: Tx, at: str, row: Row | None, state: LinkState) -> None:
        who = f"telegram:{row['telegram_user_id']}" if row else "unknown"
        link = row["id"] if row else None
        await _audit(conn, at, who, "workbench_sign_in_refused", link=link, reason=state.value)

    def _state(self, row: Row | None) -> LinkState:
        if row is None:
            return LinkState.UNKNOWN
        if row["used_at"] is not None:
            return LinkState.USED
        if from_db(row["expires_at"]) <= self._now():
            return LinkState.EXPIRED
        return LinkState.OK

    async def sign_in(self, token: str) -> SignIn:
        """Uses a link, once: starts a session and returns its token (only its hash is kept).

        A link that is used, expired or unknown starts nothing; the refusal is audited."""
        now = self._now()
        at = to_db(now)
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(
                "SELECT id, telegram_user_id, used_at, expires_at FROM web_links"
                " WHERE token_hash = ?",
                (token_hash(token),),
            )
            state = self._state(row)
            if row is None or state is not LinkState.OK:
                await self._refused(conn, at, row, state)
                return SignIn(state)
            user_id = int(row["telegram_user_id"])
            await conn.execute(
                "UPDATE web_links SET used_at = ? WHERE id = ? AND used_at IS NULL",
                (at, row["id"]),
            )
            session = secrets.token_urlsafe(32)
            session_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO web_sessions"
                    " (token_hash, telegram_user_id, link_id, started_at, seen_at)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (token_hash(session), user_id, row["id"], at, at),
                )
            )
            await _audit(conn, at, f"telegram:{user_id}", "workbench_signed_in", session=session_id)
        return SignIn(LinkState.OK, session, user_id)

    async def current(self, token: str) -> WebSession | None:
        """The session a cookie holds, if it has not ended nor been idle for IDLE_LIMIT;
        notes the request (at most once every SEEN_EVERY)."""
        row = await self._db.fetch_one(
            "SELECT id, telegram_user_id, started_at, seen_at FROM web_sessions"
            " WHERE token_hash = ? AND ended_at IS NULL",
            (token_hash(token),),
        )
        if row is None:
            return None
        now = self._now()
        seen = from_db(row["seen_at"])
        if now - seen >= IDLE_LIMIT:
            await self._end(int(row["id"]), int(row["telegram_user_id"]), "idle")
            return None
        if now - seen >= SEEN_EVERY:
            await self._db.execute(
                "UPDATE web_sessions SET seen_at = ? WHERE id = ?", (to_db(now), row["id"])
            )
            seen = now
        return WebSession(
            id=int(row["id"]),
            telegram_user_id=int(row["telegram_user_id"]),
            started_at=from_db(row["started_at"]),
            seen_at=seen,
        )

    async def end(self, session: WebSession, reason: str) -> None:
        """Ends a session (signed out, or no longer staff)."""
        await self._end(session.id, session.telegram_user_id, reason)

    async def _end(self, session_id: int, user_id: int, reason: str) -> None:
        at = to_db(self._now())
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE web_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                (at, session_id),
            )
            await _audit(
                conn,
                at,
                f"telegram:{user_id}",
                "workbench_session_ended",
                session=session_id,
                reason=reason,
            )

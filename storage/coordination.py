"""Several processes on one database (../shared/DESIGN.md, Scaling out): who handles a
person's updates now, who leads (polls Telegram, runs the scheduler), and the sending pace
they share.

`OneProcess` is SQLite's: one process owns the database, so there is nothing to agree on.
`Shared` is PostgreSQL's, built on advisory locks held by one connection of its own per
process: PostgreSQL lets them go the moment that connection ends, so when a process dies
(even by kill -9) its locks and its leadership pass on at once, and what it had taken
(inbox rows, outbox rows marked 'sending') is known to be orphaned: it was taken by a
backend (`process`) that no longer exists (`alive`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

logger = logging.getLogger(__name__)

# Advisory lock keys (bigint). A person's key is their id plus PERSON; a role's is fixed.
PERSON = 1 << 56
ROLES = {"poller": 1, "scheduler": 2, "due-work": 3}
FORGET_EVERY = 0.5  # seconds: how often a process clears paced chats whose moment passed
# Waiting for a person another process is handling: first try again after this, then up to
# PERSON_WAIT_MOST between tries.
PERSON_WAIT_FIRST, PERSON_WAIT_MOST = 0.005, 0.1


class Coordination(ABC):
    """What the processes sharing a database agree on."""

    # Several processes may share the database (PostgreSQL): inbox rows and outbox rows
    # carry the process that took them, and a person's older updates are looked for.
    shared: bool = False
    # The mark this process puts on what it takes (None: one process, no marks).
    process: int | None = None

    @abstractmethod
    def person(self, person_id: int) -> AbstractAsyncContextManager[None]:
        """Holds the right to handle this person's updates (an async context manager)."""

    @abstractmethod
    def exclusive(self, work: str) -> AbstractAsyncContextManager[None]:
        """Holds the right to do some work ("due-work": sending what is due) while no other
        process does it (an async context manager; waits for it)."""

    @abstractmethod
    async def lead(self, role: str) -> bool:
        """Tries to lead `role` ("poller", "scheduler"); True if this process leads it (it
        keeps leading until it closes or dies)."""

    @abstractmethod
    def leads(self, role: str) -> bool:
        """Whether this process leads `role`."""

    @abstractmethod
    async def pace(
        self,
        chat_id: int | None,
        overall: float,
        per_chat: float,
        *,
        waits: bool = True,
        most: int = 0,
        span: float = 1.0,
    ) -> tuple[float, int | None]:
        """Waits for the moment to send, shared by every process, and takes it once it has
        come (the caller sends at once): `overall` seconds apart for all, and at most `most`
        (0: no such limit) in any `span` seconds, counted from when the requests came back
        (see `sent`); for a chat, `per_chat` after its last message when `waits` (a
        broadcast, or a late reply), and the chat's next moment `per_chat` after this one
        either way (a prompt reply, which does not wait, still holds back the next
        broadcast to its chat). Returns how long to wait still (at most a few milliseconds;
        0 with one process: its own budget paces it) and the moment's ticket for `sent`."""

    @abstractmethod
    async def sent(
        self, ticket: int | None, most: int, chat_id: int | None, per_chat: float
    ) -> None:
        """The request of `pace`'s `ticket` came back (Telegram had it by then): the window of
        `most` counts it from now, and its chat's next paced message waits `per_chat` from
        now."""

    @abstractmethod
    async def close(self) -> None:
        """Lets go of every lock and leadership."""


class OneProcess(Coordination):
    """SQLite: one process, which leads everything and waits for no one."""

    @asynccontextmanager
    async def person(self, person_id: int) -> AsyncIterator[None]:
        yield

    @asynccontextmanager
    async def exclusive(self, work: str) -> AsyncIterator[None]:
        yield

    async def lead(self, role: str) -> bool:
        return True

    def leads(self, role: str) -> bool:
        return True

    async def pace(
        self,
        chat_id: int | None,
        overall: float,
        per_chat: float,
        *,
        waits: bool = True,
        most: int = 0,
        span: float = 1.0,
    ) -> tuple[float, int | None]:
        return 0.0, None

    async def sent(
        self, ticket: int | None, most: int, chat_id: int | None, per_chat: float
    ) -> None:
        """Nothing shared to tell."""

    async def close(self) -> None:
        """Nothing to let go."""


class Shared(Coordination):
    """PostgreSQL: advisory locks on this process's own connection (see the module)."""

    shared = True

    def __init__(self, conn: asyncpg.Connection, pool: asyncpg.Pool) -> None:
        self._conn, self._pool = conn, pool
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._leading: set[str] = set()
        self.process = conn.get_server_pid()
        self._forget_at = 0.0  # when to forget paced chats next (monotonic seconds)

    @classmethod
    async def connect(cls, url: str, pool: asyncpg.Pool) -> Shared:
        """Opens this process's own connection for its locks (`pool` paces sending)."""
        conn = await asyncpg.connect(url, server_settings={"application_name": "cocreate locks"})
        return cls(conn, pool)

    async def _ask(self, sql: str, *args: object) -> object:
        async with self._lock:
            return await self._conn.fetchval(sql, *args)

    def person(self, person_id: int) -> AbstractAsyncContextManager[None]:
        return self._holding(PERSON + person_id)

    def exclusive(self, work: str) -> AbstractAsyncContextManager[None]:
        return self._holding(ROLES[work])

    @asynccontextmanager
    async def _holding(self, key: int) -> AsyncIterator[None]:
        """Holds an advisory lock, waiting (trying again, ever less often) while another
        process holds it."""
        wait = PERSON_WAIT_FIRST
        while not await self._ask("SELECT pg_try_advisory_lock($1)", key):
            await asyncio.sleep(wait)  # another process holds it
            wait = min(wait * 2, PERSON_WAIT_MOST)
        try:
            yield
        finally:
            await self._ask("SELECT pg_advisory_unlock($1)", key)

    async def lead(self, role: str) -> bool:
        if role in self._leading:
            return True
        if await self._ask("SELECT pg_try_advisory_lock($1)", ROLES[role]):
            self._leading.add(role)
            logger.info("This process now leads: %s", role)
            return True
        return False

    def leads(self, role: str) -> bool:
        return role in self._leading

    async def pace(
        self,
        chat_id: int | None,
        overall: float,
        per_chat: float,
        *,
        waits: bool = True,
        most: int = 0,
        span: float = 1.0,
    ) -> tuple[float, int | None]:
        # On the pool: the pace's row is locked a moment by each process that sends. A
        # moment is taken only once it has come, so a process that sleeps late (a busy
        # event loop) asks again rather than sending on a moment long past.
        if time.monotonic() >= self._forget_at:  # chats whose moment passed: not kept
            self._forget_at = time.monotonic() + FORGET_EVERY
            await self._pool.fetchval("SELECT cocreate_pace_forget()")
        while True:
            row = await self._pool.fetchrow(
                "SELECT wait, ticket FROM cocreate_pace($1, $2, $3, $4, $5, $6)",
                chat_id,
                overall,
                per_chat,
                waits,
                most,
                span,
            )
            assert row is not None
            wait = float(row["wait"])
            if wait >= 0:
                ticket = row["ticket"]
                return wait, None if ticket is None else int(ticket)
            await asyncio.sleep(-wait)  # not yet (everyone's, or the chat's): nothing taken

    async def sent(
        self, ticket: int | None, most: int, chat_id: int | None, per_chat: float
    ) -> None:
        if ticket is None and chat_id is None:
            return
        await self._pool.execute(
            "SELECT cocreate_sent($1, $2, $3, $4)", ticket, most, chat_id, per_chat
        )

    async def close(self) -> None:
        self._leading.clear()
        await self._conn.close()  # PostgreSQL lets every lock go with it

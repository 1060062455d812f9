"""The database connection: one writer connection, WAL, foreign keys, busy timeout.

Every statement goes through `Database`, which serialises units of work with a lock so two
coroutines never interleave inside one transaction on the shared connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from storage.migrations import migrate

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def path_from_url(url: str) -> Path:
    """Turns `sqlite:///relative.db` or `sqlite:////absolute.db` into a file path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"DATABASE_URL must start with {prefix!r}, got {url.split(':')[0]!r}")
    rest = url[len(prefix) :]
    if not rest:
        raise ValueError("DATABASE_URL names no file")
    return Path(rest)


class Database:
    """One aiosqlite connection shared by the repositories."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Opens (creating the file and its folder if needed) and migrates the database."""
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed answer survives a power cut, not only a killed process.
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        logger.info("Database ready at schema version %s", version)
        return cls(conn, path)

    async def close(self) -> None:
        """Closes the connection."""
        async with self._lock:
            await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One unit of work: everything inside commits together or not at all."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one writing statement in its own transaction; returns the rows changed."""
        async with self.transaction() as conn, conn.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """Returns the first row of a query, or None."""
        async with self._lock, self._conn.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Returns every row of a query."""
        async with self._lock, self._conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def table_names(self) -> list[str]:
        """Lists the tables, for checks that scan every table."""
        rows = await self.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return [str(r["name"]) for r in rows]

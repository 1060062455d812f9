"""The database connection: one writer connection, WAL, foreign keys, busy timeout,
secure_delete, files only the bot's user can read.

Every statement goes through `Database`, which serialises units of work with a lock so two
coroutines never interleave inside one transaction on the shared connection.

Handling one update is one `Unit` (see `Database.unit`): its writes share a transaction that
commits together with the unit's hooks (where the person is in a flow, with the update's id;
and at the end the inbox's done-mark). It commits before every request the bot sends
(`commit_point`, called by the bot's HTTP request class), so an answer is on disk before the
bot says "saved", and a replayed update can be recognised as already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
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


# Runs inside each commit of a unit, before COMMIT; `final` is True for the unit's last one.
CommitHook = Callable[[bool], Awaitable[None]]
_savepoints = itertools.count(1)


@dataclass(eq=False)
class Unit:
    """The work of handling one update: one transaction, committed at each commit point."""

    db: Database
    hooks: list[CommitHook] = field(default_factory=list)
    open: bool = False  # a transaction is open and this unit holds the connection's lock
    # Only the task handling the update works in the unit: a task it starts (a long export)
    # copies the context but works on its own, like any other task.
    task: asyncio.Task[Any] | None = field(default_factory=asyncio.current_task)
    # Done once the unit has committed for the last time (e.g. a WAL checkpoint after an
    # erasure, which cannot run inside a transaction).
    after: list[Callable[[], Awaitable[object]]] = field(default_factory=list)


_UNIT: ContextVar[Unit | None] = ContextVar("cocreate_unit", default=None)


def _current_unit() -> Unit | None:
    unit = _UNIT.get()
    return unit if unit is not None and unit.task is asyncio.current_task() else None


async def commit_point() -> None:
    """Commits the current unit's writes and its hooks' (the person's session, saying this
    update was applied), if any: call before telling anyone about them."""
    unit = _current_unit()
    if unit is not None:
        await unit.db._commit(unit, final=False)


def sidecars(path: Path) -> tuple[Path, Path]:
    """The database's WAL and shared-memory files."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def private_folder(folder: Path) -> None:
    """Creates a folder (and its missing parents) that only the bot's user can open.

    A folder that already existed is left as it is: it may be shared, like the current one.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for created in missing:
        created.chmod(0o700)  # mkdir's mode is cut by the umask, and parents get the default


def private_files(path: Path) -> None:
    """Makes the database's folder (if missing) and file (new or not) private: 0700, 0600."""
    private_folder(path.parent)
    for file in (path, *sidecars(path)):
        if file.exists():
            file.chmod(0o600)
    if not path.exists():
        # Never open and close a database file another connection in this process may hold:
        # closing any descriptor of a file drops the process's POSIX locks on it.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """One aiosqlite connection shared by the repositories."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path
        # Writes left for later that must reach the file before a checkpoint empties the WAL
        # (the inbox's done-marks, which clear what members wrote).
        self.before_checkpoint: list[Callable[[], Awaitable[object]]] = []

    def _owned(self) -> Unit | None:
        """The current unit, if it is on this database and holds its open transaction."""
        unit = _current_unit()
        return unit if unit is not None and unit.db is self and unit.open else None

    async def _begin(self, unit: Unit) -> None:
        if unit.open:
            return
        await self._lock.acquire()
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        unit.open = True

    async def _commit(self, unit: Unit, *, final: bool) -> None:
        """Runs the unit's hooks and commits what they and the unit wrote, if anything.

        A hook writes only what changed, so a commit point with nothing new, or a final commit
        after the last commit point, often writes nothing and costs nothing (see
        storage/inbox.py, `mark_done_soon`). The first commit point of an update that wrote
        nothing still saves the person's session, saying the update was applied: a replay
        after a crash does not run it again.
        """
        try:
            for hook in unit.hooks:
                await hook(final)
            if unit.open:
                await self._conn.execute("COMMIT")
        except BaseException:
            if unit.open:
                await self._conn.execute("ROLLBACK")
            raise
        finally:
            if unit.open:
                unit.open = False
                self._lock.release()

    def in_transaction(self) -> bool:
        """Whether the current update's unit has uncommitted writes (they commit next)."""
        return self._owned() is not None

    @asynccontextmanager
    async def unit(self, hooks: Iterable[CommitHook] = ()) -> AsyncIterator[Unit]:
        """Handles one update as a unit of work; its last commit runs the hooks with final=True.

        If the block fails, what was not committed yet is rolled back.
        """
        unit = Unit(self, list(hooks))
        token = _UNIT.set(unit)
        try:
            try:
                yield unit
            except BaseException:
                if unit.open:
                    unit.open = False
                    try:
                        await self._conn.execute("ROLLBACK")
                    finally:
                        self._lock.release()
                raise
            await self._commit(unit, final=True)
        finally:
            _UNIT.reset(token)
        for action in unit.after:  # outside the unit: their writes are their own
            await action()

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Opens (creating the file and its folder if needed) and migrates the database.

        Only the bot's own user may read it: a folder it creates is 0700, the database file
        0600 (SQLite gives its -wal and -shm files the database file's mode).
        """
        private_files(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            # Deleted rows are overwritten with zeros, not just marked free: an erased
            # member's words must not stay readable in the file (set explicitly, whatever
            # the SQLite build's default).
            await conn.execute("PRAGMA secure_delete = ON")
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

    async def checkpoint(self) -> bool:
        """Copies the WAL file into the database and empties it, so what was just deleted
        is gone from both files (after an erasure, after retention). False if a reader (an
        export) holds an older snapshot: then the next checkpoint finishes the job, and the
        bot does not wait for the reader meanwhile.

        Inside an update's unit it runs once the unit has committed (True: planned)."""
        unit = _current_unit()
        if unit is not None and unit.db is self:
            unit.after.append(self._checkpoint_now)
            return True
        return await self._checkpoint_now()

    async def _checkpoint_now(self) -> bool:
        for write in self.before_checkpoint:
            await write()
        async with self._lock:
            await self._conn.execute("PRAGMA busy_timeout = 0")
            try:
                async with self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                    row = await cursor.fetchone()
            finally:
                await self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        done = row is not None and not row[0]
        if not done:
            logger.warning("WAL checkpoint could not finish: a reader is still open")
        return done

    async def close(self) -> None:
        """Closes the connection."""
        async with self._lock:
            await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One unit of work: everything inside commits together or not at all.

        Inside an update's `Unit` it joins the unit's transaction (as a savepoint), which
        commits at the unit's next commit point.
        """
        unit = _current_unit()
        if unit is not None and unit.db is self:
            await self._begin(unit)
            name = f"sp{next(_savepoints)}"
            await self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute(f"ROLLBACK TO {name}")
                await self._conn.execute(f"RELEASE {name}")
                raise
            await self._conn.execute(f"RELEASE {name}")
            return
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one writing statement in its own transaction; returns the rows changed.

        Inside an update's unit it joins the unit's transaction; one statement is atomic on
        its own, so it needs no savepoint."""
        unit = _current_unit()
        if unit is not None and unit.db is self:
            await self._begin(unit)
            async with self._conn.execute(sql, tuple(params)) as cursor:
                return cursor.rowcount
        async with self.transaction() as conn, conn.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """Returns the first row of a query (meant for queries of one row, or a few), or None.

        One trip to the database's thread (`execute_fetchall`), not three (execute, fetch,
        close): reads are most of what an update does."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Returns every row of a query."""
        if self._owned() is not None:  # reads the unit's own uncommitted writes
            return list(await self._conn.execute_fetchall(sql, tuple(params)))
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def table_names(self) -> list[str]:
        """Lists the tables, for checks that scan every table."""
        rows = await self.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return [str(r["name"]) for r in rows]

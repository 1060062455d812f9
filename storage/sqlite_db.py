"""SQLite, the default database: one writer connection, WAL, foreign keys, busy timeout,
secure_delete, files only the bot's user can read.

Every statement goes through `SqliteDatabase`, which serialises the writers with a lock so two
coroutines never interleave inside one segment on the shared connection.

Group commit. With `synchronous=FULL` every COMMIT waits for the disk (milliseconds), so
writes are made in segments of one shared transaction, and one COMMIT makes every segment
that ended meanwhile durable at once (`_lead`). A segment is a savepoint: one that fails is
rolled back alone. Whoever wrote waits for that COMMIT before going on, so nothing is
confirmed to anyone before it is on disk.

Handling one update is one `Unit` (see `Database.unit`): its writes are a segment that ends
with the unit's hooks (where the person is in a flow, with the update's id; and at the end
the inbox's done-mark), at every commit point: before every request the bot sends
(`commit_point`, called by the bot's HTTP request class), so an answer is on disk before the
bot says "saved", and a replayed update can be recognised as already applied. An update
reads a query once until it writes what the query names (`Unit.reads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.db import Database, Row, Statement, Unit, current_unit
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


_savepoints = itertools.count(1)
T = TypeVar("T")


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


class SqliteDatabase(Database):
    """One aiosqlite connection shared by the repositories."""

    dialect = "sqlite"

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        triggered: Iterable[str] = (),
        parents: Iterable[str] = (),
    ) -> None:
        super().__init__(triggered, parents)
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = self.file = path
        # Group commit: who waits for the next COMMIT, and the task that makes it.
        self._waiting: list[asyncio.Future[None]] = []
        self._leader: asyncio.Task[None] | None = None
        self._savepoint = ""  # the name of the last segment begun
        self._ended: list[str] = []  # segments ended whose savepoints are still to release
        self._closed = False

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` on the connection's thread: one trip, however many statements."""
        # aiosqlite's own helpers (execute_fetchall, execute_insert) are built on _execute.
        run: Callable[..., Awaitable[T]] = self._conn._execute  # untyped in aiosqlite
        return await run(work, self._conn._conn)

    async def _segment(self, work: Callable[[sqlite3.Connection], T], *, alone: bool) -> T:
        """Runs `work` as a segment of the shared transaction, holding the lock (the caller
        took it): in one trip, BEGIN if no transaction is open, a savepoint, and `work`. If
        `work` fails, what it wrote is rolled back to the savepoint, and the error raised.

        `alone`: the segment is all of `work`, released in the same trip; otherwise it stays
        open (a unit's, named unit.savepoint) until `_settle`."""
        name = f"s{next(_savepoints)}"
        ended, self._ended = self._ended, []

        def segment(conn: sqlite3.Connection) -> T:
            for old in ended:  # segments that ended before: kept, in the same trip
                conn.execute(f"RELEASE {old}")
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            return _saved(conn, name, work, release=alone)

        result = await self._run(segment)
        self._savepoint = name
        return result

    async def _settle(self, name: str | None) -> None:
        """Ends a segment and releases the lock, then waits until what it wrote is on disk:
        the next group commit. Its savepoint, if still open, is released by the next trip
        that writes (the next segment's, or the COMMIT, which keeps everything): no trip of
        its own."""
        if name is not None:
            self._ended.append(name)
        waiting = self._enlist()
        self._lock.release()
        await waiting

    async def _undo(self, name: str) -> None:
        """Rolls a segment back (its savepoint) and releases the lock."""
        try:

            def undo(conn: sqlite3.Connection) -> None:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")

            await self._run(undo)
        finally:
            self._lock.release()

    def _enlist(self) -> asyncio.Future[None]:
        """A future done once everything written so far is committed (or failed to be)."""
        waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiting)
        if self._leader is None or self._leader.done():
            self._leader = asyncio.create_task(self._lead(), name="group commit")
        return waiting

    async def durable(self) -> None:
        """Waits until everything written so far, by anyone, is on disk (at once if so)."""
        if not self._closed and (self._conn.in_transaction or self._waiting):
            await self._enlist()

    async def _lead(self) -> None:
        """Group commit: one COMMIT (one fsync) for every segment that ended while the last
        one was being written, as many as there are, then the next, until none waits."""
        while self._waiting:
            async with self._lock:  # no segment is half-way
                if self._waiting:  # (close() may have committed them meanwhile)
                    await self._commit_waiting()

    async def _commit_waiting(self) -> None:
        """Commits the shared transaction (the lock is held) and tells everyone waiting."""
        batch, self._waiting = self._waiting, []
        self._ended = []  # COMMIT keeps what their savepoints hold
        error: BaseException | None = None
        if self._closed:
            error = ConnectionError("the database was closed before this write was committed")
        try:
            if error is None and self._conn.in_transaction:
                await self._run(lambda conn: conn.execute("COMMIT"))
        except BaseException as exc:
            error = exc
            if not self._closed and self._conn.in_transaction:
                with contextlib.suppress(Exception):
                    await self._run(lambda conn: conn.execute("ROLLBACK"))
        for waiting in batch:
            if waiting.done():
                continue
            if error is None:
                waiting.set_result(None)
            else:
                waiting.set_exception(error)
        if isinstance(error, asyncio.CancelledError):
            raise error

    async def _in_unit(self, unit: Unit, work: Callable[[sqlite3.Connection], T], *sql: str) -> T:
        """Runs `work` in the unit's segment of the shared transaction, beginning it in the
        same trip if it is not open yet. What the update read that `work`'s statements
        (`sql`; unknown if none) may have changed is read again next time."""
        for each in sql or (None,):
            self._forget(unit, each)
        if unit.open:
            return await self._run(work)
        await self._lock.acquire()
        try:
            result = await self._segment(work, alone=False)
        except BaseException:
            self._lock.release()
            raise
        unit.open, unit.savepoint = True, self._savepoint
        return result

    async def _begin(self, unit: Unit) -> None:
        if not unit.open:
            await self._in_unit(unit, lambda conn: None)

    async def _commit(self, unit: Unit, *, final: bool) -> None:
        """Runs the unit's hooks, ends its segment and waits until what it wrote is on disk.

        A hook writes only what changed, so a commit point with nothing new, or a final commit
        after the last commit point, often writes nothing and costs nothing (see
        storage/inbox.py, `mark_done_soon`). The first commit point of an update that wrote
        nothing still saves the person's session, saying the update was applied: a replay
        after a crash does not run it again. An update that wrote nothing may have read
        what others wrote that is not on disk yet: it waits for that too, before it tells
        anyone anything.
        """
        try:
            for hook in unit.hooks:
                await hook(final)
        except BaseException:
            if unit.open:
                unit.open = False
                await self._undo(unit.savepoint)
            raise
        if unit.open:
            unit.open = False
            await self._settle(unit.savepoint)
        else:
            await self.durable()

    async def _abort(self, unit: Unit) -> None:
        if unit.open:
            unit.open = False
            await self._undo(unit.savepoint)

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
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
            triggered = await conn.execute_fetchall(
                "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'"
            )
            parents = await conn.execute_fetchall(
                'SELECT fk."table" FROM sqlite_master AS t, pragma_foreign_key_list(t.name) AS fk'
                " WHERE t.type = 'table' AND fk.on_delete IN ('CASCADE', 'SET NULL')"
            )
        except BaseException:
            await conn.close()
            raise
        logger.info("Database ready at schema version %s", version)
        names = [[str(row[0]) for row in rows] for rows in (triggered, parents)]
        return cls(conn, path, *names)

    async def open_reader(self) -> SqliteDatabase:
        """A second, read-only connection: in WAL mode it reads beside the bot's writes and
        never holds the bot's lock."""
        conn = await aiosqlite.connect(self.file, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA query_only = ON")
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except BaseException:
            await conn.close()
            raise
        return SqliteDatabase(conn, self.file)

    async def change_mark(self) -> int:
        """`PRAGMA data_version`: it moves whenever another connection commits."""
        row = await self.fetch_one("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    async def checkpoint(self) -> bool:
        """Copies the WAL file into the database and empties it, so what was just deleted
        is gone from both files (after an erasure, after retention). False if a reader (an
        export) holds an older snapshot: then the next checkpoint finishes the job, and the
        bot does not wait for the reader meanwhile.

        Inside an update's unit it runs once the unit has committed (True: planned)."""
        unit = current_unit()
        if unit is not None and unit.db is self:
            unit.after.append(self._checkpoint_now)
            return True
        return await self._checkpoint_now()

    async def _checkpoint_now(self) -> bool:
        for write in self.before_checkpoint:
            await write()
        async with self._lock:
            await self._commit_waiting()  # no checkpoint inside a transaction
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
        """Commits what is waiting and closes the connection."""
        async with self._lock:
            await self._commit_waiting()
            self._closed = True
            await self._conn.close()
        self._deregister()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        """One unit of work: everything inside commits together or not at all.

        Inside an update's `Unit` it joins the unit's transaction (as a savepoint), which
        commits at the unit's next commit point. Elsewhere it is a segment of its own, and
        returns once it is on disk (see `_lead`).
        """
        unit = current_unit()
        if unit is not None and unit.db is self:
            await self._begin(unit)
            self._forget(unit, None)
            name = f"sp{next(_savepoints)}"
            await self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield SqliteTx(self._conn)
            except BaseException:
                await self._conn.execute(f"ROLLBACK TO {name}")
                await self._conn.execute(f"RELEASE {name}")
                raise
            await self._conn.execute(f"RELEASE {name}")
            return
        await self._lock.acquire()
        try:
            await self._segment(lambda conn: None, alone=False)
        except BaseException:
            self._lock.release()
            raise
        name = self._savepoint
        try:
            yield SqliteTx(self._conn)
        except BaseException:
            await self._undo(name)
            raise
        await self._settle(name)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one writing statement in its own transaction; returns the rows changed.

        Inside an update's unit it joins the unit's transaction; one statement is atomic on
        its own, so it needs no savepoint."""
        args = tuple(params)

        def write(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, args)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

        unit = current_unit()
        if unit is not None and unit.db is self:
            return await self._in_unit(unit, write, sql)
        return await self._alone(write)

    async def execute_returning(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Runs one writing statement with a RETURNING clause, as `execute` does; returns
        its rows."""
        args = tuple(params)

        def write(conn: sqlite3.Connection) -> list[Row]:
            cursor = conn.execute(sql, args)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()

        unit = current_unit()
        if unit is not None and unit.db is self:
            return await self._in_unit(unit, write, sql)
        return await self._alone(write)

    async def execute_all(self, statements: Iterable[Statement]) -> list[list[Row]]:
        """Runs several writing statements together or not at all, in one trip to the
        database's thread; returns each one's rows (from RETURNING; else none). Inside an
        update's unit they join its transaction."""
        batch = [(sql, tuple(params)) for sql, params in statements]

        def write(conn: sqlite3.Connection) -> list[list[Row]]:
            return _each(conn, batch)

        unit = current_unit()
        if unit is None or unit.db is not self:
            return await self._alone(write)

        def together(conn: sqlite3.Connection) -> list[list[Row]]:
            return _saved(conn, f"sp{next(_savepoints)}", write)

        return await self._in_unit(unit, together, *(sql for sql, _ in batch))

    async def _alone(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` as a segment of its own, in one trip; returns once it is on disk."""
        await self._lock.acquire()
        try:
            result = await self._segment(work, alone=True)
        except BaseException:
            self._lock.release()
            raise
        await self._settle(None)
        return result

    async def _read_many(
        self, unit: Unit, batch: list[tuple[str, tuple[Any, ...]]]
    ) -> list[list[Row]]:
        """Reads several queries in one trip to the database's thread."""

        def read(conn: sqlite3.Connection) -> list[list[Row]]:
            return _each(conn, batch)

        if unit.open:
            return await self._run(read)
        async with self._lock:
            return await self._run(read)

    async def _read(self, unit: Unit | None, sql: str, args: tuple[Any, ...]) -> list[Row]:
        """One trip to the database's thread (`execute_fetchall`), not three (execute,
        fetch, close). A unit with a segment open reads its own uncommitted writes."""
        if unit is not None and unit.open:
            return list(await self._conn.execute_fetchall(sql, args))
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, args))

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SqliteSnapshot]:
        """A read-only connection of its own holding one snapshot until it closes (WAL lets
        the bot write meanwhile)."""
        uri = self.file.resolve().as_uri() + "?mode=ro"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            conn.row_factory = None  # plain tuples: the fastest rows to unpack
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("BEGIN")
            yield SqliteSnapshot(conn)
        finally:
            await conn.close()

    async def table_names(self) -> list[str]:
        """Lists the tables, for checks that scan every table."""
        rows = await self.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return [str(r["name"]) for r in rows]


def _each(
    conn: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]]
) -> list[list[Row]]:
    """Runs the statements one after the other; returns each one's rows."""
    results = []
    for sql, args in statements:
        cursor = conn.execute(sql, args)
        try:
            results.append(cursor.fetchall())
        finally:
            cursor.close()
    return results


def _saved(
    conn: sqlite3.Connection,
    name: str,
    work: Callable[[sqlite3.Connection], T],
    *,
    release: bool = True,
) -> T:
    """`work` under a savepoint: rolled back to it if `work` fails; released after it
    (unless `release` is False: a segment that stays open)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        result = work(conn)
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    if release:
        conn.execute(f"RELEASE {name}")
    return result


class SqliteTx:
    """Statements inside a transaction on the shared connection (`SqliteDatabase.transaction`)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one statement; returns the rows it changed."""
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Runs one statement for each row of parameters."""
        await self._conn.executemany(sql, (tuple(row) for row in rows))

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query (or of a writing statement's RETURNING)."""
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row, or None."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None


# Rows an export reads per trip to the database's thread.
STREAM_BATCH = 2000


class SqliteSnapshot:
    """A read-only connection in one read transaction (`SqliteDatabase.snapshot`)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query, as plain tuples."""
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def stream(self, sql: str, params: Sequence[Any] = ()) -> AsyncGenerator[list[Any], None]:
        """The rows a batch at a time; the next batch is read while the caller works on
        this one: SQLite runs in aiosqlite's thread, so the two overlap on a second core."""
        async with self._conn.execute(sql, tuple(params)) as cursor:
            pending = asyncio.ensure_future(cursor.fetchmany(STREAM_BATCH))
            try:
                while batch := await pending:
                    pending = asyncio.ensure_future(cursor.fetchmany(STREAM_BATCH))
                    yield list(batch)
            finally:
                if not pending.done():  # stopped early: the fetch ends before the cursor closes
                    await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not warn about it

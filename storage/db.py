"""The database, whichever it is: SQLite (the default, storage/sqlite_db.py) or PostgreSQL
(storage/pg_db.py, for several processes sharing one database). `storage.store.open_database`
opens the one DATABASE_URL names.

Repositories see only `Database`: they write SQL with `?` placeholders, shared where the
two dialects agree, and pick per dialect (`Database.dialect`) where they don't. Times cross
the boundary as UTC ISO text in both (storage/times.py): PostgreSQL keeps them as
timestamptz and turns them into that text and back.

Handling one update is one `Unit` (see `Database.unit`): its writes commit together with the
unit's hooks (where the person is in a flow, with the update's id; and at the end the
inbox's done-mark), at every commit point: before every request the bot sends
(`commit_point`, called by the bot's HTTP request class), so an answer is on disk before the
bot says "saved", and a replayed update can be recognised as already applied. An update
reads a query once until it writes what the query names (`Unit.reads`).

A commit point marks the update applied, so whatever the update writes after it would be lost
if the process died before the next one (a replay only asks again). So a call that tells no
one what the update did (a pressed button's answer, a chat action, getFile: bot/receiving.py
`QUIET_CALLS`) is not a commit point; and what must be said once the update's writes are on
disk, but not before them (a pressed button's answer and its "✓ Yes", the door's safeguarding
help and "we got your messages"), is handed to `after_commit`: it runs just after the next
commit point (before the update's next message) or its last commit. Its calls are not commit
points: nothing was written since.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import weakref
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import asyncpg

# Runs inside each commit of a unit, before COMMIT; `final` is True for the unit's last one.
CommitHook = Callable[[bool], Awaitable[None]]
Statement = tuple[str, Iterable[Any]]
# What a broken constraint raises, in either database (`except IntegrityErrors:`).
IntegrityErrors: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.IntegrityConstraintViolationError,
)
# The table one writing statement names (INSERT OR REPLACE, which deletes, is not matched).
_WRITES = re.compile(
    r"\s*(?:INSERT(?: OR (?:IGNORE|ABORT|FAIL|ROLLBACK))? INTO|UPDATE|DELETE FROM)\s+(\w+)",
    re.I,
)


class Row(Protocol):
    """A row read from either database: by column name or position (sqlite3.Row,
    asyncpg.Record)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> Any: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """Statements inside one transaction (`Database.transaction`)."""

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one statement; returns the rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Runs one statement for each row of parameters."""
        ...

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query (or of a writing statement's RETURNING)."""
        ...

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row, or None."""
        ...


class Snapshot(Protocol):
    """One consistent, read-only view of the database, open while an export runs."""

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query, as plain tuples."""
        ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> AsyncGenerator[list[Any], None]:
        """A large query's rows (plain tuples), a batch at a time, read ahead of the caller."""
        ...


def new_id(row: Row | None) -> int:
    """The id an INSERT … RETURNING id gave its new row."""
    if row is None:
        raise LookupError("the INSERT returned no id")
    return int(row[0])


@functools.lru_cache(maxsize=256)
def _naming(table: str) -> Callable[[str], object]:
    """Whether a query names the table (as a whole word)."""
    return re.compile(rf"\b{re.escape(table)}\b", re.I).search


@dataclass(eq=False)
class Unit:
    """The work of handling one update: one transaction, committed at each commit point."""

    db: Database
    hooks: list[CommitHook] = field(default_factory=list)
    open: bool = False  # it has a transaction (SQLite: a segment; see sqlite_db.py) open
    savepoint: str = ""  # SQLite: its segment's savepoint, while open
    conn: Any = None  # PostgreSQL: the connection it holds until its next commit
    transaction: Any = None  # PostgreSQL: its open transaction
    # Only the task handling the update works in the unit: a task it starts (a long export)
    # copies the context but works on its own, like any other task.
    task: asyncio.Task[Any] | None = field(default_factory=asyncio.current_task)
    # Done once the unit has committed for the last time (e.g. a WAL checkpoint after an
    # erasure, which cannot run inside a transaction).
    after: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    # What the update has read, by query, until it writes anything (Database.fetch_all):
    # handling one update reads the person's member row, role and draft several times.
    reads: dict[tuple[str, tuple[Any, ...]], list[Row]] = field(default_factory=dict)
    # Calls to make just after the unit's next commit (`after_commit`); dropped if it fails.
    then: list[Callable[[], Awaitable[object]]] = field(default_factory=list)


_UNIT: ContextVar[Unit | None] = ContextVar("cocreate_unit", default=None)
_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()  # open ones, for commit_point
# Set while `after_commit`'s calls are made: right after a commit, they are no commit points.
_JUST_COMMITTED: ContextVar[bool] = ContextVar("cocreate_just_committed", default=False)


def current_unit() -> Unit | None:
    """The unit of the update the current task is handling, if any."""
    unit = _UNIT.get()
    return unit if unit is not None and unit.task is asyncio.current_task() else None


async def commit_point() -> None:
    """Commits the current unit's writes and its hooks' (the person's session, saying this
    update was applied), if any: call before telling anyone about them. Outside a unit, it
    waits until whatever anyone wrote (and so whatever may have been read) is on disk."""
    if _JUST_COMMITTED.get():
        return
    unit = current_unit()
    if unit is not None:
        await unit.db._commit(unit, final=False)
        await _then(unit)
        return
    for db in list(_DATABASES):
        await db.durable()


def uncommitted() -> bool:
    """Whether the current update has writes not committed yet (on SQLite it then holds the
    one writer's lock until its next commit)."""
    unit = current_unit()
    return unit is not None and unit.open


async def after_commit(action: Callable[[], Awaitable[object]]) -> None:
    """Runs `action` (Bot API calls) once what the current update wrote, and writes until its
    next message, is committed: just after its next commit point, or its last commit; and not
    at all if the update fails first. Outside an update, at once. Its calls are not commit
    points (nothing was written since); it must not write, and must catch its own errors
    (nothing the update did waits on it)."""
    unit = current_unit()
    if unit is None:
        await action()
        return
    unit.then.append(action)


async def _then(unit: Unit) -> None:
    """Makes the calls left for just after the commit the unit just made."""
    if not unit.then:
        return
    actions, unit.then = unit.then, []
    token = _JUST_COMMITTED.set(True)
    try:
        for action in actions:
            await action()
    finally:
        _JUST_COMMITTED.reset(token)


class Database(ABC):
    """The connection (or pool) the repositories share. Open with `open_database`."""

    dialect: ClassVar[str]
    # SQLite: the database file (readers of their own open it); PostgreSQL: None.
    path: Path | None = None

    def __init__(self, triggered: Iterable[str] = (), parents: Iterable[str] = ()) -> None:
        # Tables whose writes may change other tables: they fire triggers; or, for a DELETE,
        # other tables' rows point at theirs with ON DELETE CASCADE or SET NULL.
        self._triggered = frozenset(name.lower() for name in triggered)
        self._parents = frozenset(name.lower() for name in parents)
        # Writes left for later that must reach the file before a checkpoint empties the WAL
        # (the inbox's done-marks, which clear what members wrote).
        self.before_checkpoint: list[Callable[[], Awaitable[object]]] = []
        _DATABASES.add(self)

    def _deregister(self) -> None:
        """Forgets a closed database (commit points no longer wait for it)."""
        _DATABASES.discard(self)

    def _mine(self) -> Unit | None:
        """The current unit, if it is on this database."""
        unit = current_unit()
        return unit if unit is not None and unit.db is self else None

    def _forget(self, unit: Unit, sql: str | None) -> None:
        """Forgets what the update read that a write may have changed: the reads that name
        the table it writes, or everything if that write may change other tables too (or
        the statement is not known)."""
        found = _WRITES.match(sql) if sql is not None else None
        table = found.group(1).lower() if found is not None else None
        deletes = found is not None and found.group(0).lstrip()[:6].upper() == "DELETE"
        if table is None or table in self._triggered or (deletes and table in self._parents):
            unit.reads.clear()
            return
        named = _naming(table)
        for key in [key for key in unit.reads if named(key[0])]:
            del unit.reads[key]

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
                await self._abort(unit)
                raise
            await self._commit(unit, final=True)
            await _then(unit)
        finally:
            _UNIT.reset(token)
        for action in unit.after:  # outside the unit: their writes are their own
            await action()

    def in_transaction(self) -> bool:
        """Whether the current update's unit has uncommitted writes (they commit next)."""
        unit = self._mine()
        return unit is not None and unit.open

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """Returns the first row of a query (meant for queries of one row, or a few), or None.

        One trip, not three (execute, fetch, close): reads are most of what an update does."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Returns every row of a query.

        Within an update's unit the same query is read once until the update writes
        something: the update sees one snapshot, as if it had read it all at its start."""
        args = tuple(params)
        unit = self._mine()
        if unit is None:
            return await self._read(None, sql, args)
        key = (sql, args)
        cached = unit.reads.get(key)
        if cached is not None:
            return list(cached)
        rows = await self._read(unit, sql, args)
        unit.reads[key] = rows
        return list(rows)

    async def prefetch(self, queries: Iterable[Statement]) -> None:
        """Reads several queries together, for the current update's later reads of them
        (see `fetch_all`); outside an update, does nothing."""
        unit = self._mine()
        if unit is None:
            return
        batch = [(sql, tuple(params)) for sql, params in queries]
        found = await self._read_many(unit, batch)
        unit.reads.update(zip(batch, found, strict=True))

    # What each database does its own way.

    @abstractmethod
    async def _read(self, unit: Unit | None, sql: str, args: tuple[Any, ...]) -> list[Row]:
        """Reads a query: in the unit's transaction (seeing its writes), or on its own."""

    @abstractmethod
    async def _read_many(
        self, unit: Unit, batch: list[tuple[str, tuple[Any, ...]]]
    ) -> list[list[Row]]:
        """Reads several queries for a unit, in as few trips as the database allows."""

    @abstractmethod
    async def _commit(self, unit: Unit, *, final: bool) -> None:
        """Runs the unit's hooks, commits what it wrote and waits until it is on disk."""

    @abstractmethod
    async def _abort(self, unit: Unit) -> None:
        """Rolls back what the unit wrote since its last commit."""

    @abstractmethod
    async def durable(self) -> None:
        """Waits until everything written so far, by anyone, is on disk (at once if so)."""

    @abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one writing statement in its own transaction; returns the rows changed.
        Inside an update's unit it joins the unit's transaction."""

    @abstractmethod
    async def execute_returning(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Runs one writing statement with a RETURNING clause, as `execute` does; returns
        its rows."""

    @abstractmethod
    async def execute_all(self, statements: Iterable[Statement]) -> list[list[Row]]:
        """Runs several writing statements together or not at all, in as few trips as the
        database allows; returns each one's rows (from RETURNING; else none). Inside an
        update's unit they join its transaction."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """One unit of work: everything inside commits together or not at all. Inside an
        update's unit it joins the unit's transaction (as a savepoint)."""

    @abstractmethod
    def snapshot(self) -> AbstractAsyncContextManager[Snapshot]:
        """A read-only view of the whole database as it is now, kept until it closes (for
        exports, which must not hold up the bot)."""

    @abstractmethod
    async def checkpoint(self) -> bool:
        """Makes what was just deleted gone from the database's files, where the database
        allows (after an erasure, after retention)."""

    @abstractmethod
    async def open_reader(self) -> Database:
        """A read-only database of its own for long reads (the workbench's figures), which
        never holds up the bot's writes; close it when done."""

    @abstractmethod
    async def change_mark(self) -> int:
        """A number that moves whenever another connection (the bot) has committed."""

    @abstractmethod
    async def table_names(self) -> list[str]:
        """Lists the tables, for checks that scan every table."""

    @abstractmethod
    async def close(self) -> None:
        """Commits what is waiting and closes."""

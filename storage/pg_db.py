"""PostgreSQL, for outgrowing one machine: several `cocreate run` processes share one
database (README, Outgrowing one machine). Through asyncpg, with a pool of connections.

The repositories' SQL is the same as for SQLite where the dialects agree: `?` placeholders
become $1, $2… here (`numbered`, outside quoted text). Times are `timestamptz` columns, read
and written as the same UTC ISO text SQLite keeps (a text codec, `_time_in`/`_time_out`).

A unit (one update) takes a connection from the pool at its first statement and gives it
back at each commit point: it never holds one while a message goes to Telegram. Its writes
are one transaction, begun at its first write and committed (every hook with it) at each
commit point. PostgreSQL commits each transaction on its own and makes it durable before
COMMIT returns, so there is no group commit to wait for (`durable` does nothing).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.db import Database, Row, Statement, Unit
from storage.migrations_pg import migrate_pg

logger = logging.getLogger(__name__)

# Connections each process keeps at most. Units hold one only between commit points.
POOL_SIZE = 20
# Rows an export reads per trip (a server-side cursor).
STREAM_BATCH = 2000
Connection = asyncpg.Connection | PoolConnectionProxy


@functools.lru_cache(maxsize=2048)
def numbered(sql: str) -> str:
    """The statement with `?` placeholders numbered as PostgreSQL wants ($1, $2, …); a `?`
    inside quoted text or a quoted name is left alone."""
    out: list[str] = []
    quote: str | None = None
    n = 0
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(char)
    return "".join(out)


def _time_in(value: object) -> str:
    """A time parameter as PostgreSQL reads it: the stored ISO text as it is."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _time_out(text: str) -> str:
    """A timestamptz as the repositories read times (storage/times.py): ISO text, UTC."""
    return datetime.fromisoformat(text).isoformat()


async def _prepare(conn: asyncpg.Connection) -> None:
    """Every new connection reads and writes times as ISO text."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_time_in, decoder=_time_out, format="text"
    )


async def _keep(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is, unless a transaction was left open (a
    failed rollback): that one is rolled back. asyncpg's default reset sends four statements
    (RESET ALL, pg_advisory_unlock_all(), UNLISTEN *, CLOSE ALL) each time, and a unit gives
    its connection back at every commit point: about 7 of 16 transactions an update cost
    (bench/workers.py). Nothing here sets a session setting, listens, or takes an advisory
    lock on a pooled connection (those are on coordination.py's own connection), and a
    cursor lives only in a snapshot's transaction."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _changed(status: str) -> int:
    """The rows a statement changed, from its status ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTx:
    """Statements on one connection, inside its transaction (`PostgresDatabase.transaction`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Runs one statement; returns the rows it changed."""
        return _changed(await self._conn.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        """Runs one statement for each row of parameters."""
        await self._conn.executemany(numbered(sql), [tuple(row) for row in rows])

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query (or of a writing statement's RETURNING)."""
        return list(await self._conn.fetch(numbered(sql), *params))

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row, or None."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def copy_in(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Writes many rows into a table in one COPY (text format, so times go as their ISO
        text and citext as text): `cocreate copy-db` (storage/copy.py)."""
        data = "".join("\t".join(map(_copy_text, row)) + "\n" for row in rows).encode()

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await self._conn.copy_to_table(table, source=chunks(), columns=list(columns))


def _copy_text(value: Any) -> str:
    """A value in COPY's text format: \\N for NULL; backslash, tab and line ends escaped."""
    if value is None:
        return "\\N"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        text = text.replace("\r", "\\r")
    return text


class PgSnapshot:
    """A read-only REPEATABLE READ transaction on a connection of its own."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query."""
        return list(await self._conn.fetch(numbered(sql), *params))

    async def stream(self, sql: str, params: Sequence[Any] = ()) -> AsyncGenerator[list[Any], None]:
        """The rows a batch at a time, through a server-side cursor."""
        cursor = await self._conn.cursor(numbered(sql), *params)
        while batch := await cursor.fetch(STREAM_BATCH):
            yield [tuple(row) for row in batch]


class PostgresDatabase(Database):
    """A pool of asyncpg connections shared by the repositories."""

    dialect = "postgresql"

    def __init__(
        self,
        pool: asyncpg.Pool,
        triggered: Iterable[str] = (),
        parents: Iterable[str] = (),
        *,
        owns_pool: bool = True,
    ) -> None:
        super().__init__(triggered, parents)
        self.pool = pool
        self._owns_pool = owns_pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = POOL_SIZE) -> PostgresDatabase:
        """Connects, and migrates the database (once, whichever process comes first)."""
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=pool_size,
            init=_prepare,
            reset=_keep,
            server_settings={"timezone": "UTC", "application_name": "cocreate"},
        )
        try:
            async with pool.acquire() as conn:
                version = await migrate_pg(conn)
                triggered = await conn.fetch(
                    "SELECT DISTINCT event_object_table FROM information_schema.triggers"
                    " WHERE trigger_schema = current_schema()"
                )
                parents = await conn.fetch(
                    "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint"
                    " WHERE contype = 'f' AND confdeltype IN ('c', 'n')"
                )
        except BaseException:
            await pool.close()
            raise
        logger.info("PostgreSQL ready at schema version %s", version)
        names = [[str(row[0]) for row in rows] for rows in (triggered, parents)]
        return cls(pool, *names)

    # Units

    async def _hold(self, unit: Unit) -> Connection:
        """The unit's connection, taken from the pool if it holds none yet."""
        if unit.conn is None:
            unit.conn = await self.pool.acquire()
        conn: Connection = unit.conn
        return conn

    async def _writing(self, unit: Unit, *sql: str) -> Connection:
        """The unit's connection with its transaction begun; forgets what the statements
        may have changed of what the update read."""
        for each in sql or (None,):
            self._forget(unit, each)
        conn = await self._hold(unit)
        if not unit.open:
            unit.transaction = conn.transaction()
            await unit.transaction.start()
            unit.open = True
        return conn

    async def _give_back(self, unit: Unit) -> None:
        conn, unit.conn, unit.transaction, unit.open = unit.conn, None, None, False
        if conn is not None:
            await self.pool.release(conn)

    async def _commit(self, unit: Unit, *, final: bool) -> None:
        """Runs the hooks, commits the unit's transaction, gives its connection back."""
        try:
            for hook in unit.hooks:
                await hook(final)
            if unit.open:
                await unit.transaction.commit()
        except BaseException:
            await self._abort(unit)
            raise
        await self._give_back(unit)

    async def _abort(self, unit: Unit) -> None:
        try:
            if unit.open:
                await unit.transaction.rollback()
        finally:
            await self._give_back(unit)

    async def durable(self) -> None:
        """Nothing to wait for: PostgreSQL's COMMIT returns once it is on disk."""

    # Reading

    async def _read(self, unit: Unit | None, sql: str, args: tuple[Any, ...]) -> list[Row]:
        if unit is None:
            return list(await self.pool.fetch(numbered(sql), *args))
        conn = await self._hold(unit)
        return list(await conn.fetch(numbered(sql), *args))

    async def _read_many(
        self, unit: Unit, batch: list[tuple[str, tuple[Any, ...]]]
    ) -> list[list[Row]]:
        conn = await self._hold(unit)
        return [list(await conn.fetch(numbered(sql), *args)) for sql, args in batch]

    # Writing

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        args = tuple(params)
        unit = self._mine()
        if unit is None:
            return _changed(await self.pool.execute(numbered(sql), *args))
        conn = await self._writing(unit, sql)
        return _changed(await conn.execute(numbered(sql), *args))

    async def execute_returning(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        args = tuple(params)
        unit = self._mine()
        if unit is None:
            return list(await self.pool.fetch(numbered(sql), *args))
        conn = await self._writing(unit, sql)
        return list(await conn.fetch(numbered(sql), *args))

    async def execute_all(self, statements: Iterable[Statement]) -> list[list[Row]]:
        batch = [(sql, tuple(params)) for sql, params in statements]
        unit = self._mine()
        if unit is None:
            async with self.pool.acquire() as alone, alone.transaction():
                return [list(await alone.fetch(numbered(sql), *args)) for sql, args in batch]
        conn = await self._writing(unit, *(sql for sql, _ in batch))
        async with conn.transaction():  # a savepoint: all or nothing
            return [list(await conn.fetch(numbered(sql), *args)) for sql, args in batch]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTx]:
        unit = self._mine()
        if unit is not None:
            conn = await self._writing(unit)
            async with conn.transaction():  # a savepoint inside the unit's transaction
                yield PgTx(conn)
            return
        async with self.pool.acquire() as conn, conn.transaction():
            yield PgTx(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgSnapshot]:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield PgSnapshot(conn)

    async def open_reader(self) -> PostgresDatabase:
        """The same pool: PostgreSQL's readers never hold up its writers."""
        return PostgresDatabase(self.pool, self._triggered, self._parents, owns_pool=False)

    async def change_mark(self) -> int:
        """A fingerprint of which transactions have ended (a snapshot: xmin, xmax and those
        still running between): any commit changes it, and nothing else but a rollback does.
        Any role may read it, and it is read in a statement of its own, so it is fresh.
        (The write-ahead log's position is no such mark: reads write to it too, pruning
        pages, and with synchronous_commit off its written end lags behind commits.)"""
        row = await self.pool.fetchrow("SELECT hashtextextended(pg_current_snapshot()::text, 0)")
        assert row is not None
        return int(row[0])

    async def checkpoint(self) -> bool:
        """Writes what was left for later (the inbox's done-marks). PostgreSQL has no
        secure_delete: deleted rows stay in its files until VACUUM reuses their space
        (README, Outgrowing one machine)."""
        for write in self.before_checkpoint:
            await write()
        return True

    async def table_names(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
        return [str(r["tablename"]) for r in rows]

    async def close(self) -> None:
        if self._owns_pool:
            await self.pool.close()
        self._deregister()

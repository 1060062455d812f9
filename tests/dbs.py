"""The database a test runs on, for tests about one database's own workings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from storage.db import Database, Row, Statement, Tx
from storage.sqlite_db import SqliteDatabase


async def outbox_settled(db: Database, timeout: float = 10.0) -> None:
    """Waits until the delivery worker has settled every outbox row and marked every batch
    finished. A message can reach its chat before the worker records it sent (and its batch
    finished), so a test that compares the tables before and after waits for this first."""

    async def busy() -> int:
        row = await db.fetch_one(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending'))"
            " + (SELECT COUNT(*) FROM delivery_batches WHERE finished_at IS NULL) AS busy"
        )
        return int(row["busy"]) if row is not None else 0

    async with asyncio.timeout(timeout):
        while await busy():  # noqa: ASYNC110 - the sender works in another task
            await asyncio.sleep(0.02)


def sqlite_db(db: Database) -> SqliteDatabase:
    """The SQLite database under a store (tests of SQLite's files and group commit)."""
    assert isinstance(db, SqliteDatabase), "this test is about SQLite"
    return db


class Statements:
    """Records the SQL a database is given through its methods, on either database (a
    statement of `Tx.executemany` once per row of parameters), while open:
    `with Statements(store.db) as statements: ...`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql: list[str] = []

    def __enter__(self) -> list[str]:
        db, sql = self.db, self.sql
        execute, returning, every = db.execute, db.execute_returning, db.execute_all
        transaction = db.transaction

        async def on_execute(statement: str, params: Iterable[Any] = ()) -> int:
            sql.append(statement)
            return await execute(statement, params)

        async def on_returning(statement: str, params: Iterable[Any] = ()) -> list[Row]:
            sql.append(statement)
            return await returning(statement, params)

        async def on_all(statements: Iterable[Statement]) -> list[list[Row]]:
            batch = list(statements)
            sql.extend(statement for statement, _ in batch)
            return await every(batch)

        @asynccontextmanager
        async def on_transaction() -> AsyncIterator[Tx]:
            async with transaction() as tx:
                yield _RecordedTx(tx, sql)

        for name, method in (
            ("execute", on_execute),
            ("execute_returning", on_returning),
            ("execute_all", on_all),
            ("transaction", on_transaction),
        ):
            setattr(db, name, method)
        return sql

    def __exit__(self, *exc: object) -> None:
        for name in ("execute", "execute_returning", "execute_all", "transaction"):
            delattr(self.db, name)


class _RecordedTx:
    def __init__(self, tx: Tx, sql: list[str]) -> None:
        self._tx, self._sql = tx, sql

    async def execute(self, statement: str, params: Iterable[Any] = ()) -> int:
        self._sql.append(statement)
        return await self._tx.execute(statement, params)

    async def executemany(self, statement: str, rows: Iterable[Iterable[Any]]) -> None:
        every = list(rows)
        self._sql.extend(statement for _ in every)
        await self._tx.executemany(statement, every)

    async def fetch_all(self, statement: str, params: Iterable[Any] = ()) -> list[Row]:
        self._sql.append(statement)
        return await self._tx.fetch_all(statement, params)

    async def fetch_one(self, statement: str, params: Iterable[Any] = ()) -> Row | None:
        self._sql.append(statement)
        return await self._tx.fetch_one(statement, params)

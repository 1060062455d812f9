"""The database a test runs on, for tests about one database's own workings."""

from __future__ import annotations

from storage.db import Database
from storage.sqlite_db import SqliteDatabase


def sqlite_db(db: Database) -> SqliteDatabase:
    """The SQLite database under a store (tests of SQLite's files and group commit)."""
    assert isinstance(db, SqliteDatabase), "this test is about SQLite"
    return db

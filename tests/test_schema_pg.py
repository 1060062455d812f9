"""The PostgreSQL schema (storage/migrations_pg.py) against the SQLite one (storage/migrations.py),
on a real PostgreSQL: migrations apply once (also when two processes start at once), both
schemas have the same tables, columns, keys and indexes, and triggers and ON DELETE rules do
the same in both."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest

from storage.migrations import migrate
from storage.migrations_pg import MIGRATIONS_PG, migrate_pg, schema_version_pg
from storage.search import match_query
from storage.times import from_db

# --- A private PostgreSQL cluster: to be replaced by the shared pg fixture at merge -------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_owner(tool: str, *args: str) -> list[str]:
    """A PostgreSQL tool's command line; initdb and postgres refuse root: as nobody then."""
    command = [str(PG_BIN / tool), *args]
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]


@pytest.fixture(scope="session")
def private_pg_cluster() -> Iterator[Path]:
    """A throw-away cluster, socket only (its directory is returned), trust auth, user cocreate.
    To be replaced by the shared pg fixture at merge."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL is not installed at {PG_BIN}")
    base = Path(tempfile.mkdtemp(prefix="cocreate-pg-"))  # short: a socket path has a limit
    if os.geteuid() == 0:
        shutil.chown(base, "nobody", "nogroup")
    data = base / "data"
    subprocess.run(
        _as_owner(
            "initdb",
            "-D",
            str(data),
            "--auth=trust",
            "-U",
            "cocreate",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses='' -c unix_socket_directories={base} -c fsync=off"
    subprocess.run(
        _as_owner("pg_ctl", "-D", str(data), "-l", str(base / "log"), "-w", "-o", options, "start"),
        check=True,
        capture_output=True,
    )
    try:
        yield base
    finally:
        subprocess.run(
            _as_owner("pg_ctl", "-D", str(data), "-m", "immediate", "stop"),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


_databases = iter(range(1, 1_000_000))


@pytest.fixture
async def pg_url(private_pg_cluster: Path) -> AsyncIterator[str]:
    """A new empty database on the private cluster. To be replaced by the shared pg fixture."""
    name = f"t{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(f"postgresql://cocreate@/postgres?host={private_pg_cluster}")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"postgresql://cocreate@/{name}?host={private_pg_cluster}"
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


# --- Both databases, side by side ------------------------------------------------------------


async def _connect_pg(url: str) -> Any:
    """A connection as issue 14 has them: times pass as ISO text, in UTC."""
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=str, decoder=str, format="text"
    )
    return conn


def _dollars(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1..$n (no `?` in these tests' literals)."""
    count = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


SEARCH = {
    "sqlite": "SELECT rowid FROM submission_search WHERE submission_search MATCH ? ORDER BY 1",
    "postgresql": "SELECT rowid FROM submission_search WHERE document @@ cocreate_match(?)"
    " ORDER BY 1",
}


class Both:
    """The same SQL on a migrated SQLite database and a migrated PostgreSQL one."""

    def __init__(self, lite: aiosqlite.Connection, pg: Any) -> None:
        self.lite, self.pg = lite, pg

    async def run(self, sql: str, *params: object) -> None:
        await self.lite.execute(sql, params)
        await self.lite.commit()
        await self.pg.execute(_dollars(sql), *params)

    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """The rows, which must be the same in both."""
        async with self.lite.execute(sql, params) as cursor:
            lite = [tuple(r) for r in await cursor.fetchall()]
        pg = [tuple(r) for r in await self.pg.fetch(_dollars(sql), *params)]
        assert lite == pg, sql
        return lite

    async def search(self, words: str) -> list[int]:
        query = match_query(words)
        async with self.lite.execute(SEARCH["sqlite"], (query,)) as cursor:
            lite = [int(r[0]) for r in await cursor.fetchall()]
        pg = [int(r[0]) for r in await self.pg.fetch(_dollars(SEARCH["postgresql"]), query)]
        assert lite == pg, words
        return lite


@pytest.fixture
async def both(tmp_path: Path, pg_url: str) -> AsyncIterator[Both]:
    lite = await aiosqlite.connect(tmp_path / "cocreate.db")
    pg = await _connect_pg(pg_url)
    try:
        await lite.execute("PRAGMA foreign_keys = ON")
        await migrate(lite)
        await migrate_pg(pg)
        yield Both(lite, pg)
    finally:
        await pg.close()
        await lite.close()


T = "2026-12-01T10:00:00+00:00"


async def _member(db: Both, member_id: int) -> None:
    await db.run(
        "INSERT INTO members (id, telegram_user_id, chat_id, joined_at) VALUES (?, ?, ?, ?)",
        member_id,
        1000 + member_id,
        1000 + member_id,
        T,
    )


async def _statement(db: Both, statement_id: int, submission_id: int | None = None) -> None:
    await db.run(
        "INSERT INTO statements (id, submission_id, visibility, state, text, created_at)"
        " VALUES (?, ?, 'anonymous', 'approved', 'An idea', ?)",
        statement_id,
        submission_id,
        T,
    )


async def _submission(db: Both, submission_id: int, member_id: int, *texts: str) -> None:
    await db.run(
        "INSERT INTO submissions (id, member_id, kind, language, created_at)"
        " VALUES (?, ?, 'idea', 'cy', ?)",
        submission_id,
        member_id,
        T,
    )
    for n, text in enumerate(texts):
        await db.run(
            "INSERT INTO submission_parts (submission_id, part, text, updated_at)"
            " VALUES (?, ?, ?, ?)",
            submission_id,
            f"part{n}",
            text,
            T,
        )


# --- 1. Migrations apply once ----------------------------------------------------------------


async def test_migrate_pg_brings_an_empty_database_to_the_last_version_once(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await schema_version_pg(conn) == 0
        assert await migrate_pg(conn) == len(MIGRATIONS_PG)
        first = await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert [r["version"] for r in first] == list(range(1, len(MIGRATIONS_PG) + 1))

        assert await migrate_pg(conn) == len(MIGRATIONS_PG)
        assert await schema_version_pg(conn) == len(MIGRATIONS_PG)
        again = await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
        assert again == first
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            == tables
        )
    finally:
        await conn.close()


async def test_two_processes_starting_at_once_apply_each_migration_once(pg_url: str) -> None:
    one, two = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        versions = await asyncio.gather(migrate_pg(one), migrate_pg(two))
        assert list(versions) == [len(MIGRATIONS_PG), len(MIGRATIONS_PG)]
        rows = await one.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS_PG) + 1))
    finally:
        await one.close()
        await two.close()


async def test_migrate_pg_refuses_a_database_that_is_not_utf8(private_pg_cluster: Path) -> None:
    """Search folds accents with normalize(), which needs UTF8: better refused at start."""
    name = f"ascii{os.getpid()}"
    admin = await asyncpg.connect(f"postgresql://cocreate@/postgres?host={private_pg_cluster}")
    try:
        await admin.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
            " TEMPLATE template0"
        )
        conn = await asyncpg.connect(f"postgresql://cocreate@/{name}?host={private_pg_cluster}")
        try:
            with pytest.raises(asyncpg.RaiseError, match="needs a UTF8 database"):
                await migrate_pg(conn)
            assert await schema_version_pg(conn) == 0  # nothing applied, not even in part
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


# --- 2. The two schemas match ----------------------------------------------------------------

# FTS5 keeps its index in shadow tables; PostgreSQL keeps it in submission_search itself.
# The sending pace several processes share: only PostgreSQL serves several processes.
POSTGRES_ONLY_TABLES = {"send_pace"}
SQLITE_ONLY_TABLES = {
    "submission_search_data",
    "submission_search_idx",
    "submission_search_content",
    "submission_search_docsize",
    "submission_search_config",
}
# SQLite's FTS table has an implicit rowid and one column; PostgreSQL's has rowid as its key,
# and the tsvector with its GIN index. Its keys and nullability are not compared.
SEARCH_TABLE = "submission_search"
PG_ONLY_COLUMNS = {SEARCH_TABLE: ["rowid", "text", "document"]}
PG_ONLY_INDEXES = {"submission_search_document"}
TIMES = {"not_before", "at"}  # besides every *_at column
# Whole numbers that are BIGINT (besides id and every *_id): Telegram's ids, a member's id,
# and a file's size (Telegram: it may need more than 32 bits). The others are INTEGER.
BIGINTS = {
    "telegram_user_id",
    "chat_id",
    "author_chat_id",
    "staff_chat_id",
    "author_id",
    "staff_id",
    "created_by",
    "granted_by",
    "used_by",
    "decided_by",
    "changed_by",
    "tagged_by",
    "followed_up_by",
    "update_id",
    "last_update_id",
    "user_id",
    "words_of",
    "telegram_message_id",
    "size",
}
CASELESS = {("projects", "code"), ("themes", "name")}  # COLLATE NOCASE: citext


async def _lite_schema(db: aiosqlite.Connection) -> dict[str, dict[str, Any]]:
    async def rows(sql: str) -> list[Any]:
        async with db.execute(sql) as cursor:
            return list(await cursor.fetchall())

    schema: dict[str, dict[str, Any]] = {}
    tables = await rows(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    for (table,) in tables:
        columns = await rows(f"PRAGMA table_info('{table}')")
        indexes = await rows(f"PRAGMA index_list('{table}')")
        unique = set()
        for index in indexes:
            if index[2] and index[3] != "pk":
                cols = await rows(f"PRAGMA index_info('{index[1]}')")
                unique.add(tuple(c[2] for c in sorted(cols)))
        schema[table] = {
            "columns": [c[1] for c in columns],
            "types": {c[1]: c[2] for c in columns},
            "defaults": {c[1]: c[4] for c in columns if c[4] is not None},
            "not_null": {c[1] for c in columns if c[3] or c[5]},
            "primary_key": tuple(c[1] for c in sorted(columns, key=lambda c: c[5]) if c[5]),
            "unique": unique,
            "foreign_keys": {
                (f[3], f[2], f[4], f[6]) for f in await rows(f"PRAGMA foreign_key_list('{table}')")
            },
            "indexes": {i[1] for i in indexes if not i[1].startswith("sqlite_autoindex_")},
        }
    return schema


async def _pg_schema(conn: Any) -> dict[str, dict[str, Any]]:
    schema: dict[str, dict[str, Any]] = {}
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'schema_migrations'"
    )
    for (table,) in tables:
        columns = await conn.fetch(
            "SELECT column_name, is_nullable, data_type, column_default"
            " FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        keys = await conn.fetch(
            "SELECT i.indisprimary AS pk, i.indisunique AS uniq, c.relname AS name,"
            " array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)"
            "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n"
            "  ORDER BY k.o) AS cols,"
            " EXISTS (SELECT 1 FROM pg_constraint x WHERE x.conindid = i.indexrelid) AS owned"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = $1::regclass",
            table,
        )
        fks = await conn.fetch(
            "SELECT a.attname::text AS col, r.relname::text AS ref, b.attname::text AS to_col,"
            " x.confdeltype::text AS del FROM pg_constraint x"
            " JOIN pg_class r ON r.oid = x.confrelid"
            " JOIN pg_attribute a ON a.attrelid = x.conrelid AND a.attnum = x.conkey[1]"
            " JOIN pg_attribute b ON b.attrelid = x.confrelid AND b.attnum = x.confkey[1]"
            " WHERE x.contype = 'f' AND x.conrelid = $1::regclass",
            table,
        )
        actions = {"a": "NO ACTION", "c": "CASCADE", "n": "SET NULL", "r": "RESTRICT"}
        primary = [tuple(k["cols"]) for k in keys if k["pk"]]
        schema[table] = {
            "columns": [c["column_name"] for c in columns],
            "types": {c["column_name"]: c["data_type"] for c in columns},
            "defaults": {
                c["column_name"]: c["column_default"].removesuffix("::text")
                for c in columns
                if c["column_default"] is not None
            },
            "not_null": {c["column_name"] for c in columns if c["is_nullable"] == "NO"},
            "primary_key": primary[0] if primary else (),
            "unique": {tuple(k["cols"]) for k in keys if k["uniq"] and not k["pk"]},
            "foreign_keys": {(f["col"], f["ref"], f["to_col"], actions[f["del"]]) for f in fks},
            "indexes": {k["name"] for k in keys if not k["owned"]},
        }
    return schema


async def test_the_postgresql_schema_matches_the_sqlite_one(tmp_path: Path, pg_url: str) -> None:
    async with aiosqlite.connect(tmp_path / "cocreate.db") as lite:
        await migrate(lite)
        sqlite = await _lite_schema(lite)
    pg = await _connect_pg(pg_url)
    try:
        await migrate_pg(pg)
        postgres = await _pg_schema(pg)
        lite_triggers = set()
        async with aiosqlite.connect(tmp_path / "cocreate.db") as lite:
            async with lite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'") as c:
                lite_triggers = {r[0] for r in await c.fetchall()}
        pg_triggers = {
            r[0] for r in await pg.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        }
    finally:
        await pg.close()

    assert set(sqlite) - SQLITE_ONLY_TABLES == set(postgres) - POSTGRES_ONLY_TABLES
    assert lite_triggers == pg_triggers
    assert len(postgres) == 35  # 34 shared (3 for SMS), and the pace
    for table, lite_table in sqlite.items():
        if table in SQLITE_ONLY_TABLES:
            continue
        pg_table = postgres[table]
        if table == SEARCH_TABLE:
            assert lite_table["columns"] == ["text"]
            assert pg_table["columns"] == PG_ONLY_COLUMNS[table]
            assert pg_table["indexes"] == PG_ONLY_INDEXES
            continue
        parts = ("columns", "not_null", "defaults", "primary_key", "unique", "foreign_keys")
        for part in (*parts, "indexes"):
            assert lite_table[part] == pg_table[part], (table, part)
        for column, kind in pg_table["types"].items():
            lite_kind = lite_table["types"][column]
            if column.endswith("_at") or column in TIMES:
                assert (lite_kind, kind) == ("TEXT", "timestamp with time zone"), (table, column)
            elif lite_kind == "INTEGER":
                big = column == "id" or column.endswith("_id") or column in BIGINTS
                assert kind == ("bigint" if big else "integer"), (table, column)
            elif (table, column) in CASELESS:
                assert (lite_kind, kind) == ("TEXT", "USER-DEFINED"), (table, column)
            else:
                assert (lite_kind, kind) == ("TEXT", "text"), (table, column)


# --- 3. Triggers -----------------------------------------------------------------------------


async def test_vote_counts_follow_votes_as_in_sqlite(both: Both) -> None:
    for member in (1, 2, 3):
        await _member(both, member)
    await _statement(both, 10)

    async def votes() -> int:
        return int((await both.rows("SELECT votes FROM statements WHERE id = 10"))[0][0])

    vote = "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, 10, ?, ?)"
    change = "UPDATE votes SET choice = ? WHERE member_id = ? AND statement_id = 10"
    await both.run(vote, 1, "agree", T)
    await both.run(vote, 2, "skip", T)
    await both.run(vote, 3, "unsure", T)
    assert await votes() == 2
    await both.run(change, "skip", 1)  # a view taken back
    assert await votes() == 1
    await both.run(change, "disagree", 2)  # a skip becomes a view
    assert await votes() == 2
    await both.run(change, "agree", 2)  # a view changed: counted once still
    assert await votes() == 2
    await both.run("DELETE FROM votes WHERE member_id = 1")  # a skip
    assert await votes() == 2
    await both.run("DELETE FROM votes WHERE member_id = 3")
    assert await votes() == 1


async def test_search_finds_a_saved_story_by_a_word_without_its_accent_and_by_prefix(
    both: Both,
) -> None:
    await _member(both, 1)
    await _submission(both, 5, 1, "Dŵr glân yn y PARC", "Caffi newydd, i'r plant. Über ПРИВЕТ")
    await _submission(both, 6, 1, "A park bench")
    assert await both.search("dwr") == []  # a draft is not indexed
    await both.run("UPDATE submissions SET status = 'submitted', submitted_at = ? WHERE id = 5", T)
    await both.run("UPDATE submissions SET status = 'submitted', submitted_at = ? WHERE id = 6", T)

    assert await both.search("dwr") == [5]
    assert await both.search("DŴR") == [5]
    assert await both.search("glan caffi") == [5]  # every word, in any order
    assert await both.search("glan bench") == []
    assert await both.search("par*") == [5, 6]
    assert await both.search("caf*") == [5]
    assert await both.search("caf") == []  # without * a word is whole
    assert await both.search("plant") == [5]
    assert await both.search("uber привет") == [5]  # case folds beyond ASCII too

    await both.run("UPDATE submissions SET status = 'cancelled' WHERE id = 6")
    assert await both.search("par*") == [5]
    await both.run("DELETE FROM submissions WHERE id = 5")
    assert await both.search("dwr") == []
    assert await both.rows("SELECT count(*) FROM submission_search") == [(0,)]


async def test_checks_refuse_the_same_rows_as_in_sqlite(both: Both) -> None:
    await _member(both, 1)
    await _submission(both, 5, 1, "An idea")
    await _statement(both, 10)
    bad = [
        ("UPDATE submissions SET status = 'lost' WHERE id = 5",),
        ("UPDATE submissions SET volunteer = 'perhaps' WHERE id = 5",),
        ("INSERT INTO votes VALUES (1, 10, 'love', ?, NULL)", T),
        ("INSERT INTO status_changes (status, changed_by, changed_at) VALUES ('new', 1, ?)", T),
        (
            "INSERT INTO status_changes (submission_id, statement_id, status, changed_by,"
            " changed_at) VALUES (5, 10, 'new', 1, ?)",
            T,
        ),
        (
            "INSERT INTO status_changes (statement_id, status, changed_by, changed_at)"
            " VALUES (10, 'maybe', 1, ?)",
            T,
        ),
        ("INSERT INTO themes (id, name, created_by, created_at) VALUES (1, 'Food', 1, ?)", T),
        ("INSERT INTO item_themes (theme_id, tagged_by, tagged_at) VALUES (1, 1, ?)", T),
        ("INSERT INTO roles (telegram_user_id, role, granted_at) VALUES (1, 'king', ?)", T),
    ]
    for sql, *params in bad:
        if sql.startswith("INSERT INTO themes"):  # a good row, for item_themes after it
            await both.run(sql, *params)
            continue
        with pytest.raises(sqlite3.IntegrityError):
            await both.lite.execute(sql, params)
        with pytest.raises(asyncpg.CheckViolationError):
            await both.pg.execute(_dollars(sql), *params)
    good = "INSERT INTO status_changes (statement_id, status, changed_by, changed_at)"
    await both.run(good + " VALUES (10, 'looking', 1, ?)", T)
    assert await both.rows("SELECT statement_id, status FROM status_changes") == [(10, "looking")]


# --- 4. ON DELETE ----------------------------------------------------------------------------


async def test_erasing_a_member_deletes_their_rows_and_unlinks_receipts_as_in_sqlite(
    both: Both,
) -> None:
    await _member(both, 1)
    await _member(both, 2)
    await both.run("INSERT INTO projects (id, code, name, created_at) VALUES (1, 'P', 'P', ?)", T)
    await both.run("INSERT INTO member_projects VALUES (1, 1, ?)", T)
    await both.run("INSERT INTO about_you VALUES (1, 'area', 'Cardiff', ?)", T)
    await both.run(
        "INSERT INTO consent_receipts (id, member_id, consent_version, language, agreed_to,"
        " agreed_at) VALUES (7, 1, 'v1', 'en', '[]', ?)",
        T,
    )
    await both.run("INSERT INTO pseudonyms VALUES ('Blue Heron', 1)")
    await _submission(both, 5, 1, "My idea")
    await _statement(both, 10, submission_id=5)  # member 1's idea
    await _statement(both, 11)  # a facilitator's
    vote = "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, ?, ?, ?)"
    await both.run(vote, 2, 10, "agree", T)
    await both.run(vote, 1, 11, "agree", T)
    await both.run(vote, 2, 11, "agree", T)
    await both.run(
        "INSERT INTO delivery_batches (id, kind, created_at) VALUES (3, 'reply', ?)",
        T,
    )
    await both.run(
        "INSERT INTO outbox (batch_id, member_id, chat_id, text, not_before, created_at,"
        " words_of) VALUES (3, NULL, 99, 'Their words', ?, ?, 1)",
        T,
        T,
    )

    await both.run("DELETE FROM members WHERE id = 1")

    for table in ("member_projects", "about_you", "submissions", "submission_parts", "outbox"):
        assert await both.rows(f"SELECT count(*) FROM {table}") == [(0,)], table
    assert await both.rows("SELECT id, member_id FROM consent_receipts") == [(7, None)]
    assert await both.rows("SELECT name, member_id FROM pseudonyms") == [("Blue Heron", None)]
    # Their idea's statement went with it (and member 2's vote on it); their vote is uncounted.
    assert await both.rows("SELECT id, votes FROM statements ORDER BY id") == [(11, 1)]
    assert await both.rows("SELECT member_id, statement_id FROM votes") == [(2, 11)]
    assert await both.rows("SELECT count(*) FROM projects") == [(1,)]


async def test_project_codes_and_theme_names_ignore_case_as_in_sqlite(both: Both) -> None:
    await both.run("INSERT INTO projects (code, name, created_at) VALUES ('Parks', 'P', ?)", T)
    assert await both.rows("SELECT name FROM projects WHERE code = ?", "pARKS") == [("P",)]
    await both.run("INSERT INTO themes (name, created_by, created_at) VALUES ('Food', 1, ?)", T)
    with pytest.raises(asyncpg.UniqueViolationError):
        await both.pg.execute(
            "INSERT INTO themes (name, created_by, created_at) VALUES ('FOOD', 1, $1)", T
        )


# --- 5. Times --------------------------------------------------------------------------------


async def test_a_timestamptz_takes_and_gives_iso_text_and_orders_by_the_moment(
    pg_url: str,
) -> None:
    pg = await _connect_pg(pg_url)
    try:
        await migrate_pg(pg)
        add = "INSERT INTO audit_log (at, actor, action) VALUES ($1, 'test', $2)"
        await pg.execute(add, "2026-12-01T10:00:00+00:00", "ten")
        await pg.execute(add, "2026-12-01T10:30:00+01:00", "half past nine")  # 09:30 UTC
        await pg.execute(add, "2026-12-01T09:45:00+00:00", "quarter to ten")
        rows = await pg.fetch("SELECT action, at FROM audit_log ORDER BY at")
        assert [r["action"] for r in rows] == ["half past nine", "quarter to ten", "ten"]
        assert from_db(rows[2]["at"]) == from_db("2026-12-01T10:00:00+00:00")
        earlier = await pg.fetch(
            "SELECT action FROM audit_log WHERE at < $1", "2026-12-01T09:50:00+00:00"
        )
        assert {r["action"] for r in earlier} == {"half past nine", "quarter to ten"}
        # Without the codec, the text form casts as well.
        assert await pg.fetchval(
            "SELECT $1::text::timestamptz = $2::text::timestamptz",
            "2026-12-01T10:30:00+01:00",
            "2026-12-01T09:30:00+00:00",
        )
    finally:
        await pg.close()

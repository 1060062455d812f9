"""Moving a deployment to another database: `cocreate copy-db --from URL --to URL` (issue 14).

Either URL may be SQLite (`sqlite:///…`) or PostgreSQL (`postgresql://…`): SQLite to
PostgreSQL when a deployment outgrows one machine, PostgreSQL to SQLite for a way back, and
either to its own kind. Stop the bot first: the copy reads one snapshot of the source, and
the check afterwards reads the source again.

1. Both databases are opened the usual way (`open_database`), which migrates each to the
   latest schema, as a start would: the two schemas then have the same tables and columns.
2. The target must be empty: no row in any table, apart from each database's record of its
   migrations and the rows the schema itself puts in (`SEEDED`). Otherwise nothing is
   written (`TargetNotEmpty`).
3. Every table is copied in one transaction on the target (all or nothing), parents before
   the tables whose foreign keys point at them (the order is read from the target's schema,
   `copy_order`), in batches of `BATCH` rows (into PostgreSQL, one COPY each), ids and
   all. Search (`submission_search`: SQLite's FTS5 table, PostgreSQL's table with a
   generated tsvector) is not copied as an index: its rows (the submission's id and its
   text) go in as new rows, and the target indexes them its own way; FTS5's shadow tables
   are the source's index and stay behind. Columns triggers keep up to date (`DERIVED`: a
   statement's vote count, which the triggers on votes raise again as the votes go in) are
   set from the source afterwards. In PostgreSQL, every identity column's sequence then
   starts after the largest id copied.
4. Then each table is compared (`verify`): its rows counted, and a checksum of its rows as
   read on each side through the Database API, each value in one form whichever database
   holds it (`_NORMAL`: times through storage.times, whole numbers, text). The checksum is
   the sum of each row's sha256 (modulo 2**256), so the rows may come in any order: no
   sort, and nothing held in memory but one batch.
"""

from __future__ import annotations

import asyncio
import graphlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Database, Snapshot, Tx
from storage.pg_db import PgTx
from storage.sqlite_db import path_from_url
from storage.store import is_postgres, open_database
from storage.times import from_db, to_db

# Rows written per statement batch.
BATCH = 1000
# Tables not copied: each database's own record of its migrations, and PostgreSQL's sending
# pace (storage/coordination.py), a clock the processes share rather than data: a new
# deployment starts its own.
NOT_COPIED = frozenset({"schema_migrations", "send_pace"})
# Rows the schema itself puts in (a condition matching them): a table holding only those
# counts as empty. migrations_pg.py seeds send_pace (chat 0, everyone's pace); SQLite's
# migrations seed nothing that survives (older data they carry over is data).
SEEDED = {"send_pace": "chat_id = 0 AND next_at = 0"}
# Search: copied as rows (id and text); each database indexes them its own way.
SEARCH = "submission_search"
SEARCH_COLUMNS = ("rowid", "text")
# Columns triggers keep up to date from other tables as those are written: copied again,
# from the source, once every table is in (key column, the columns).
DERIVED = {"statements": ("id", ("votes",))}
# FTS5's own tables behind a virtual table named X (X_data, X_idx, …): its index.
_FTS5_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")
_PG_KINDS = {
    "timestamp with time zone": "time",
    "bigint": "int",
    "integer": "int",
    "smallint": "int",
    "double precision": "float",
    "real": "float",
}


class CopyError(Exception):
    """The copy cannot be made (the message says why); nothing was written."""


class TargetNotEmpty(CopyError):
    """The target database already holds data."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "time" or "text"


@dataclass(frozen=True)
class TableCheck:
    """One table compared: its rows and checksum in the source and in the target."""

    name: str
    source_rows: int
    target_rows: int
    source_sum: str
    target_sum: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sum == self.target_sum


@dataclass(frozen=True)
class CopyResult:
    """What `copy_database` did: each table's check, and how long the copy took."""

    checks: list[TableCheck]
    seconds: float  # the copy, without the check
    check_seconds: float

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def rows(self) -> int:
        return sum(check.source_rows for check in self.checks)


# Reading a database's schema


async def tables_of(db: Database) -> dict[str, list[Column]]:
    """Every table holding data (migration records and sending pace included, FTS5's own
    tables not), with its columns in order (generated ones left out)."""
    if db.dialect == "postgresql":
        rows = await db.fetch_all(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
            " AND t.table_name = c.table_name"
            " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
            " AND c.is_generated = 'NEVER' ORDER BY c.table_name, c.ordinal_position"
        )
        found: dict[str, list[Column]] = {}
        for table, column, data_type in rows:
            kind = _PG_KINDS.get(str(data_type), "text")
            found.setdefault(str(table), []).append(Column(str(column), kind))
        return found
    master = await db.fetch_all(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name"
    )
    virtual = [str(name) for name, sql in master if str(sql).upper().startswith("CREATE VIRTUAL")]
    shadows = {f"{name}{suffix}" for name in virtual for suffix in _FTS5_SHADOWS}
    found = {}
    for name, _ in master:
        table = str(name)
        if table in shadows:
            continue
        if table in virtual:
            if table != SEARCH:
                raise CopyError(f"the SQLite database has a virtual table {table!r} not known here")
            found[table] = [Column("rowid", "int"), Column("text", "text")]
            continue
        info = await db.fetch_all("SELECT name, type FROM pragma_table_info(?)", (table,))
        found[table] = [
            Column(str(column), _sqlite_kind(str(declared))) for column, declared in info
        ]
    return found


def _sqlite_kind(declared: str) -> str:
    """A column's kind from its declared SQLite type (its affinity, roughly)."""
    upper = declared.upper()
    if "INT" in upper:
        return "int"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "float"
    return "text"


async def foreign_keys(db: Database) -> list[tuple[str, str]]:
    """Each foreign key as (the table holding it, the table it points at)."""
    if db.dialect == "postgresql":
        rows = await db.fetch_all(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
        )
    else:
        rows = await db.fetch_all(
            'SELECT m.name, f."table" FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f'
            " WHERE m.type = 'table'"
        )
    return [(str(child).strip('"'), str(parent).strip('"')) for child, parent in rows]


def copy_order(tables: Iterable[str], keys: Iterable[tuple[str, str]]) -> list[str]:
    """The tables with every table after those its foreign keys point at (a table pointing
    at itself is fine: not a dependency here); alphabetical where nothing decides."""
    names = sorted(tables)
    graph: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in keys:
        if child in graph and parent in graph and child != parent:
            graph[child].add(parent)
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise CopyError(f"the tables' foreign keys make a cycle: {exc.args[1]}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


@dataclass(frozen=True)
class Plan:
    """What to copy: the tables in order, with their columns and each column's kind."""

    tables: list[str]
    columns: dict[str, list[Column]]  # kinds as the target (PostgreSQL if either is) keeps them


async def plan(source: Database, target: Database) -> Plan:
    """The tables to copy, in order; CopyError if the two schemas differ."""
    theirs, ours = await tables_of(source), await tables_of(target)
    wanted = {name for name in ours if name not in NOT_COPIED}
    have = {name for name in theirs if name not in NOT_COPIED}
    if wanted != have:
        missing = ", ".join(sorted(wanted ^ have))
        raise CopyError(f"the two databases' tables differ ({missing}): are both cocreate's?")
    # The kinds are PostgreSQL's when either database is PostgreSQL: it knows which columns
    # are times (SQLite holds them as text).
    kinds = theirs if source.dialect == "postgresql" else ours
    columns: dict[str, list[Column]] = {}
    for name in wanted:
        names = [column.name for column in ours[name]]  # in the target's order
        if set(names) != {column.name for column in theirs[name]}:
            raise CopyError(f"the table {name} has different columns in the two databases")
        kind = {column.name: column for column in kinds[name]}
        columns[name] = [kind[column] for column in names]
    order = copy_order(wanted, await foreign_keys(target))
    return Plan(order, columns)


async def row_counts(db: Database) -> dict[str, int]:
    """The rows each table holds that are data: not the schema's own (`SEEDED`), nor the
    record of migrations."""
    counts: dict[str, int] = {}
    for name in await tables_of(db):
        if name == "schema_migrations":
            continue
        seeded = SEEDED.get(name)
        where = f" WHERE NOT ({seeded})" if seeded else ""
        row = await db.fetch_one(f'SELECT COUNT(*) FROM "{name}"{where}')
        counts[name] = int(row[0]) if row is not None else 0
    return counts


# Copying


def _converter(columns: Sequence[Column]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Turns a row read from one database into the values the other takes for its columns
    (SQLite may hold a number in a text column, or text in a number's)."""
    casts: list[Callable[[Any], Any]] = []
    for column in columns:
        if column.kind == "int":
            casts.append(lambda v: v if v is None or type(v) is int else int(v))
        elif column.kind == "float":
            casts.append(lambda v: v if v is None else float(v))
        elif column.kind == "time":
            casts.append(lambda v: to_db(v) if isinstance(v, datetime) else v)
        else:
            casts.append(lambda v: v if v is None or isinstance(v, str) else str(v))

    def convert(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(cast(value) for cast, value in zip(casts, row, strict=True))

    return convert


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


async def _copy_table(
    source: Snapshot,
    tx: Tx,
    name: str,
    columns: list[Column],
    progress: Callable[[str, int], None],
) -> int:
    """Copies one table's rows a batch at a time; returns how many."""
    names = [column.name for column in columns]
    select = f'SELECT {_quoted(names)} FROM "{name}"'
    insert = f'INSERT INTO "{name}" ({_quoted(names)}) VALUES ({", ".join("?" for _ in names)})'
    convert = _converter(columns)
    copied = 0
    async for batch in source.stream(select):
        for start in range(0, len(batch), BATCH):
            rows = [convert(row) for row in batch[start : start + BATCH]]
            if isinstance(tx, PgTx):  # PostgreSQL's fast way in: one COPY a batch
                await tx.copy_in(name, names, rows)
            else:
                await tx.executemany(insert, rows)
        copied += len(batch)
        progress(name, copied)
    return copied


async def _restore_derived(source: Snapshot, tx: Tx, plan_: Plan) -> None:
    """Sets the columns triggers keep (`DERIVED`) to the source's values."""
    for name, (key, derived) in DERIVED.items():
        if name not in plan_.columns:
            continue
        sets = ", ".join(f'"{column}" = ?' for column in derived)
        update = f'UPDATE "{name}" SET {sets} WHERE "{key}" = ?'
        async for batch in source.stream(f'SELECT {_quoted([*derived, key])} FROM "{name}"'):
            for start in range(0, len(batch), BATCH):
                await tx.executemany(update, batch[start : start + BATCH])


async def _restart_sequences(tx: Tx) -> None:
    """PostgreSQL: every identity column's next value is one more than its largest id."""
    identities = await tx.fetch_all(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for table, column in identities:
        await tx.fetch_all(
            f"SELECT setval(pg_get_serial_sequence(?, ?),"
            f' COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, false)',
            (f'"{table}"', str(column)),
        )


def _nothing(name: str, rows: int) -> None:
    """No progress to show."""


async def copy_tables(
    source: Database,
    target: Database,
    progress: Callable[[str, int], None] = _nothing,
) -> Plan:
    """Copies every table from one open database into the other, which must be empty;
    returns what was copied. All or nothing."""
    plan_ = await plan(source, target)
    busy = {name: n for name, n in (await row_counts(target)).items() if n}
    if busy:
        listed = ", ".join(f"{name} ({n:,})" for name, n in sorted(busy.items()))
        raise TargetNotEmpty(
            f"the target database is not empty, so nothing was copied. It has rows in: {listed}"
        )
    async with source.snapshot() as snapshot, target.transaction() as tx:
        for name in plan_.tables:
            await _copy_table(snapshot, tx, name, plan_.columns[name], progress)
        await _restore_derived(snapshot, tx, plan_)
        if target.dialect == "postgresql":
            await _restart_sequences(tx)
    return plan_


# Checking


def _time(value: Any) -> str:
    """A time as storage/times.py writes it: UTC ISO text to the second."""
    if isinstance(value, str) and len(value) == 25 and value[10] == "T" and value[19:] == "+00:00":
        return value  # the form it is always stored in: from_db, then to_db, gives it back
    return to_db(value if isinstance(value, datetime) else from_db(str(value)))


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


# How each kind of value is put in one form, whichever database it was read from.
_NORMAL: dict[str, Callable[[Any], Any]] = {
    "time": _time,
    "int": int,
    "float": float,
    "text": _text,
}


async def table_sum(db: Database, name: str, columns: list[Column]) -> tuple[int, str]:
    """A table's rows and its checksum: the sum of each row's sha256, so any order will do."""
    normal = [_NORMAL[column.kind] for column in columns]
    select = f'SELECT {_quoted(column.name for column in columns)} FROM "{name}"'
    total = rows = 0
    sha256 = hashlib.sha256
    async with db.snapshot() as snapshot:
        async for batch in snapshot.stream(select):
            for row in batch:
                # repr of a tuple of None, int, float and str: one text for the same values
                values = tuple(
                    None if value is None else form(value)
                    for form, value in zip(normal, row, strict=True)
                )
                total += int.from_bytes(sha256(repr(values).encode()).digest(), "big")
            rows += len(batch)
    return rows, f"{total % 2**256:064x}"


async def compare(source: Database, target: Database, plan_: Plan) -> list[TableCheck]:
    """Counts and checksums every table in both databases."""
    checks = []
    for name in plan_.tables:
        columns = plan_.columns[name]
        theirs, ours = await asyncio.gather(
            table_sum(source, name, columns), table_sum(target, name, columns)
        )
        checks.append(TableCheck(name, theirs[0], ours[0], theirs[1], ours[1]))
    return checks


@asynccontextmanager
async def both(source_url: str, target_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Opens (and migrates) the two databases; closes both at the end."""
    if source_url == target_url:
        raise CopyError("--from and --to name the same database")
    if not is_postgres(source_url) and not path_from_url(source_url).exists():
        # Opening it would make a new, empty one: a mistyped path would copy nothing.
        raise CopyError(f"there is no database at {path_from_url(source_url)}")
    source = await open_database(source_url)
    try:
        target = await open_database(target_url)
        try:
            yield source, target
        finally:
            await target.close()
    finally:
        await source.close()


async def verify(source_url: str, target_url: str) -> list[TableCheck]:
    """Compares two databases table by table (rows and checksums), without copying."""
    async with both(source_url, target_url) as (source, target):
        return await compare(source, target, await plan(source, target))


async def copy_database(
    source_url: str,
    target_url: str,
    progress: Callable[[str, int], None] = _nothing,
) -> CopyResult:
    """Copies a deployment's database into an empty one, then compares every table."""
    async with both(source_url, target_url) as (source, target):
        started = time.perf_counter()
        plan_ = await copy_tables(source, target, progress)
        copied = time.perf_counter()
        checks = await compare(source, target, plan_)
        return CopyResult(checks, copied - started, time.perf_counter() - copied)

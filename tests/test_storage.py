"""Storage on a temporary database: migrations, pragmas, repositories, inbox, sessions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from bot.clock import FakeClock
from storage.db import commit_point
from storage.migrations import MIGRATIONS, migrate, schema_version
from storage.models import PREFER_NOT_TO_SAY, Member
from storage.sessions import Session
from storage.sqlite_db import SqliteDatabase, path_from_url
from storage.store import Store
from tests.dbs import sqlite_db


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))


async def test_database_file_and_folder_are_created(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "deep" / "folder" / "cocreate.db"
    store = await Store.open(path, clock.now)
    await store.close()
    assert path.is_file()


async def test_migrations_applied_twice_change_nothing(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "c.db"
    store = await Store.open(path, clock.now)
    await store.projects.add("parks", "Parks for all")
    tables = await store.db.table_names()
    await store.close()

    async with aiosqlite.connect(path) as conn:
        assert await schema_version(conn) == len(MIGRATIONS)
        assert await migrate(conn) == len(MIGRATIONS)  # second run: nothing to do
        async with conn.execute("SELECT sql FROM sqlite_master ORDER BY name") as cur:
            schema_once = await cur.fetchall()

    store = await Store.open(path, clock.now)  # third run, through the normal start-up
    assert await store.db.table_names() == tables
    assert [p.code for p in await store.projects.all()] == ["parks"]
    await store.close()
    async with aiosqlite.connect(path) as conn:
        async with conn.execute("SELECT sql FROM sqlite_master ORDER BY name") as cur:
            assert await cur.fetchall() == schema_once


async def test_connection_uses_wal_foreign_keys_and_busy_timeout(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = await SqliteDatabase.open(tmp_path / "c.db")
    try:
        assert (await db.fetch_one("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
        assert (await db.fetch_one("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
        assert (await db.fetch_one("PRAGMA busy_timeout"))[0] == 5000  # type: ignore[index]
    finally:
        await db.close()


def test_database_url_forms() -> None:
    assert path_from_url("sqlite:///data/cocreate.db") == Path("data/cocreate.db")
    assert path_from_url("sqlite:////var/lib/c.db") == Path("/var/lib/c.db")
    with pytest.raises(ValueError, match="sqlite:///"):
        path_from_url("postgres://x")


async def test_join_records_member_receipt_and_project_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "c.db", clock.now)
    try:
        project = await store.projects.add("parks", "Parks for all")

        async def join() -> Member:
            return await store.members.join(
                telegram_user_id=42,
                chat_id=42,
                language="cy",
                consent_version="v1",
                agreed_to=["keep"],
                project_id=project.id,
            )

        first = await join()
        again = await join()  # a replayed update must not double anything
        assert first == again
        assert first.language == "cy" and not first.onboarded
        receipts = await store.consent.all()
        assert len(receipts) == 1
        assert receipts[0].member_id == first.id
        assert receipts[0].consent_version == "v1"
        assert receipts[0].agreed_to == ("keep",)
        assert receipts[0].agreed_at == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        assert [p.code for p in await store.members.projects_of(first.id)] == ["parks"]
        assert await store.projects.by_code("PARKS") == project  # codes ignore case
        with pytest.raises(ValueError, match="already exists"):
            await store.projects.add("Parks", "again")
    finally:
        await store.close()


async def test_about_you_answers_replace_and_erase_removes_everything(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "c.db", clock.now)
    try:
        member = await store.members.join(
            telegram_user_id=7, chat_id=7, language="en", consent_version="v1", agreed_to=["k"]
        )
        other = await store.members.join(
            telegram_user_id=8, chat_id=8, language="en", consent_version="v1", agreed_to=["k"]
        )
        await store.about.answer(member.id, "age_band", "25_34")
        await store.about.answer(member.id, "age_band", PREFER_NOT_TO_SAY)
        await store.about.answer(other.id, "area", "Cardiff")
        assert await store.about.of(member.id) == {"age_band": PREFER_NOT_TO_SAY}
        await store.sessions.save(Session(7, "onboarding", "AGE", {"answering": 4}))
        await store.sessions.save(Session(8, "onboarding", "AREA"))

        clock.advance(timedelta(days=1))
        await store.erase_member(member.id)

        assert await store.members.get(member.id) is None
        assert await store.about.of(member.id) == {}
        assert await store.sessions.get(7) == Session(7)
        assert (await store.sessions.get(8)).state == "AREA"
        receipt = next(r for r in await store.consent.all() if r.member_id is None)
        assert receipt.withdrawn_at == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        erasures = [e for e in await store.audit.entries() if e.action == "erasure"]
        assert len(erasures) == 1 and erasures[0].detail == "{}"
        assert await store.about.of(other.id) == {"area": "Cardiff"}
        assert await store.members.get(other.id) is not None
    finally:
        await store.close()


async def test_inbox_records_once_replays_in_order_and_forgets_content(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "c.db", clock.now)
    try:
        assert await store.inbox.record(12, json.dumps({"update_id": 12}))
        assert await store.inbox.record(10, json.dumps({"update_id": 10}))
        assert not await store.inbox.record(10, "{}")  # redelivered: ignored
        assert [u for u, _ in await store.inbox.unfinished()] == [10, 12]
        await store.inbox.mark_done(10)
        assert [u for u, _ in await store.inbox.unfinished()] == [12]
        row = await store.db.fetch_one("SELECT payload, done_at FROM inbox WHERE update_id = 10")
        assert row is not None and row["payload"] is None and row["done_at"]
        assert not await store.inbox.record(10, "{}")  # still known after it was handled
        assert await store.inbox.prune(before=datetime(2026, 11, 30, 13, 0, tzinfo=UTC)) == 1
    finally:
        await store.close()


async def test_sessions_round_trip_survives_reopening(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "c.db"
    store = await Store.open(path, clock.now)
    await store.sessions.save(Session(5, "onboarding", "CONSENT", {"language": "cy"}, 41))
    await store.sessions.save(Session(6, "ask", "TEXT", {}, 7))
    gone = Session(6)
    gone.drop()
    await store.sessions.save(gone)
    await store.close()

    store = await Store.open(path, clock.now)
    try:
        assert await store.sessions.get(5) == Session(
            5, "onboarding", "CONSENT", {"language": "cy"}, 41
        )
        assert await store.sessions.get(6) == Session(6)
        # The newest applied update is never moved back.
        await store.sessions.save(Session(5, None, None, {}, 40))
        assert (await store.sessions.get(5)).last_update_id == 41
    finally:
        await store.close()


async def test_a_unit_commits_its_hooks_with_its_writes_and_rolls_back_on_failure(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "c.db", clock.now)
    seen: list[bool] = []

    async def hook(final: bool) -> None:
        seen.append(final)
        await store.sessions.save(Session(9, "onboarding", "AGE", {}, 3))

    try:
        async with store.db.unit([hook]):
            await store.projects.add("a", "A")
            await commit_point()  # as before a message is sent
            assert seen == [False]
            await store.projects.add("b", "B")
        assert seen == [False, True]
        assert [p.code for p in await store.projects.all()] == ["a", "b"]
        with pytest.raises(RuntimeError):
            async with store.db.unit([hook]):
                await store.projects.add("c", "C")
                raise RuntimeError("boom")
        assert [p.code for p in await store.projects.all()] == ["a", "b"]
        # A unit that wrote nothing still runs its hooks at a commit point (before a message
        # leaves: the session says the update was applied) and at the end.
        seen.clear()
        async with store.db.unit([hook]):
            await commit_point()
            assert seen == [False]
        assert seen == [False, True]
    finally:
        await store.close()


async def test_a_failed_unit_of_work_leaves_nothing(tmp_path: Path, clock: FakeClock) -> None:
    store = await Store.open(tmp_path / "c.db", clock.now)
    try:
        with pytest.raises(RuntimeError):
            async with store.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO projects (code, name, created_at) VALUES ('a', 'A', 'now')"
                )
                raise RuntimeError("boom")
        assert await store.projects.all() == []
    finally:
        await store.close()


@pytest.mark.sqlite_only
async def test_inbox_batches_records_and_done_marks(tmp_path: Path, clock: FakeClock) -> None:
    store = await Store.open(tmp_path / "c.db", clock.now)
    statements: list[str] = []
    try:
        assert await store.inbox.record(20, "{}")
        await sqlite_db(store.db)._conn.set_trace_callback(statements.append)
        fresh = await store.inbox.record_batch([(20, "{}", None), (21, "{}", 5), (22, "{}", 5)])
        assert fresh == {21, 22}  # 20 was a redelivery
        for update_id in (20, 21, 22):
            store.inbox.mark_done_soon(update_id)
        assert [u for u, _ in await store.inbox.unfinished()] == [20, 21, 22]  # not yet
        await store.inbox.flush()
        assert await store.inbox.unfinished() == []
        writes = [s for s in statements if s.startswith(("INSERT", "UPDATE"))]
        assert len(writes) == 2  # one statement for the batch, one for its three marks
    finally:
        await sqlite_db(store.db)._conn.set_trace_callback(lambda _: None)
        await store.close()


@pytest.mark.sqlite_only
async def test_a_flush_waits_for_the_marks_a_flush_under_way_took(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Closing and a checkpoint flush the done-marks (they clear members' words): if the timer's
    # flush has just taken them, the second flush must not return before they are on disk.
    store = await Store.open(tmp_path / "c.db", clock.now)
    try:
        await store.inbox.record_batch([(30, '{"words": 1}', 5), (31, '{"words": 2}', 5)])
        store.inbox.mark_done_soon(30)
        store.inbox.mark_done_soon(31)
        under_way = asyncio.create_task(store.inbox.flush())  # as the timer starts it
        await asyncio.sleep(0)  # it has taken the marks and is writing them
        await store.inbox.flush()
        with closing(sqlite3.connect(tmp_path / "c.db")) as other:  # what is on disk
            rows = other.execute("SELECT payload FROM inbox WHERE update_id IN (30, 31)")
            assert [payload for (payload,) in rows] == [None, None]
        await under_way
    finally:
        await store.close()


async def test_a_members_receipts_and_files_are_found_by_index(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Erasure unlinks a member's receipts and deletes their files' rows; /mydata and the
    # consent check read them: none of these may read every row of the table.
    store = await Store.open(tmp_path / "c.db", clock.now)
    try:
        for sql in (
            "SELECT * FROM consent_receipts WHERE member_id = 1 AND withdrawn_at IS NULL",
            "UPDATE consent_receipts SET member_id = NULL WHERE member_id = 1",
            "SELECT file_name FROM media WHERE member_id = 1",
            "DELETE FROM media WHERE member_id = 1",
        ):
            plan = " ".join(
                str(r["detail"]) for r in await store.db.fetch_all(f"EXPLAIN QUERY PLAN {sql}")
            )
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (sql, plan)
    finally:
        await store.close()


@pytest.mark.sqlite_only
async def test_an_update_reads_a_query_once_until_it_writes(store: Store) -> None:
    """Within one update's unit a repeated read is made once; a write makes it read again
    (and it sees the write)."""
    db = sqlite_db(store.db)
    await db.execute("INSERT INTO projects (code, name, created_at) VALUES ('p', 'One', 'x')")
    query = "SELECT name FROM projects WHERE code = ?"
    statements: list[str] = []
    await db._conn.set_trace_callback(statements.append)
    try:
        async with db.unit():
            first = await db.fetch_one(query, ("p",))
            again = await db.fetch_one(query, ("p",))
            await db.execute("UPDATE projects SET name = 'Two' WHERE code = 'p'")
            after = await db.fetch_one(query, ("p",))
        outside = [await db.fetch_one(query, ("p",)) for _ in range(2)]
    finally:
        await db._conn.set_trace_callback(lambda _: None)
    assert first is not None and again is not None and after is not None
    assert (first["name"], again["name"], after["name"]) == ("One", "One", "Two")
    assert [row["name"] for row in outside if row is not None] == ["Two", "Two"]
    reads = [s for s in statements if s.startswith("SELECT name FROM projects")]
    assert len(reads) == 4  # once before the write, once after, and twice outside any unit
    begun = statements.index("BEGIN IMMEDIATE")
    assert statements[begun + 1].startswith("SAVEPOINT")  # the update's segment
    assert statements[begun + 2].startswith("UPDATE projects")


@pytest.mark.sqlite_only
async def test_a_write_forgets_only_the_reads_it_may_change(store: Store) -> None:
    """A write to another table keeps what the update read; a DELETE that may cascade, and a
    write that fires triggers, make it read everything again."""
    db = sqlite_db(store.db)
    await db.execute("INSERT INTO projects (code, name, created_at) VALUES ('p', 'One', 'x')")
    query = "SELECT name FROM projects WHERE code = ?"
    statements: list[str] = []
    await db._conn.set_trace_callback(statements.append)

    def reads() -> int:
        return sum(s.startswith("SELECT name FROM projects") for s in statements)

    try:
        async with db.unit():
            await db.fetch_one(query, ("p",))
            await db.execute("INSERT INTO app_secrets (name, value) VALUES ('a', 'b')")
            await db.execute("DELETE FROM app_secrets WHERE name = 'a'")
            await db.fetch_one(query, ("p",))
            assert reads() == 1
            await db.execute("DELETE FROM members WHERE id = 0")  # members' rows cascade
            await db.fetch_one(query, ("p",))
            assert reads() == 2
            await db.execute("UPDATE votes SET choice = 'agree' WHERE member_id = 0")  # triggers
            await db.fetch_one(query, ("p",))
            assert reads() == 3
            await db.execute_all([("UPDATE projects SET name = 'Two' WHERE code = 'p'", ())])
            row = await db.fetch_one(query, ("p",))
            assert reads() == 4 and row is not None and row["name"] == "Two"
    finally:
        await db._conn.set_trace_callback(lambda _: None)


@pytest.mark.sqlite_only
async def test_writers_at_once_share_one_commit(store: Store) -> None:
    """Group commit: twenty updates writing at once wait for the same few COMMITs (one fsync
    each), not twenty; each returns only once its write is committed; one that fails is
    rolled back alone."""
    db = sqlite_db(store.db)
    statements: list[str] = []
    await db._conn.set_trace_callback(statements.append)

    async def one_update(n: int) -> None:
        async with db.unit():
            await db.execute(
                "INSERT INTO projects (code, name, created_at)"
                " VALUES (?, 'P', '2026-01-01T00:00:00+00:00')",
                (f"p{n}",),
            )
            if n == 7:
                raise RuntimeError("this update fails")

    try:
        results = await asyncio.gather(*(one_update(n) for n in range(20)), return_exceptions=True)
    finally:
        await db._conn.set_trace_callback(lambda _: None)
    assert [n for n, r in enumerate(results) if isinstance(r, RuntimeError)] == [7]
    assert not db._conn.in_transaction  # every one that returned is committed
    codes = {p.code for p in await store.projects.all()}
    assert codes == {f"p{n}" for n in range(20) if n != 7}
    commits = statements.count("COMMIT")
    assert 1 <= commits <= 3, commits


@pytest.mark.sqlite_only
async def test_closing_commits_what_waits_for_the_group_commit(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Something waiting for the group commit when the store closes is committed by the
    close; the task that would have committed it, queued behind the close, ends quietly."""
    store = await Store.open(tmp_path / "c.db", clock.now)
    db = sqlite_db(store.db)
    await db._lock.acquire()  # a segment is half-way
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0)  # the close waits for the lock
    waiting = db._enlist()  # a segment ended: its group commit waits behind the close
    leader = db._leader
    assert leader is not None
    await asyncio.sleep(0)
    db._lock.release()
    await closing
    await waiting
    await leader
    assert leader.exception() is None


async def test_a_taken_project_code_is_refused_and_the_update_goes_on(store: Store) -> None:
    """On either database: the code is taken whatever its case, and the refusal spoils
    nothing else the same update writes (PostgreSQL aborts a transaction at its first error,
    so the insert has a savepoint of its own)."""
    await store.projects.add("parks", "Parks for all")
    async with store.db.unit():
        with pytest.raises(ValueError, match="already exists"):
            await store.projects.add("PARKS", "again")
        await store.projects.add("libraries", "Libraries")
    assert [p.code for p in await store.projects.all()] == ["parks", "libraries"]

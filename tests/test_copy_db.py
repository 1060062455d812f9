"""`cocreate copy-db --from URL --to URL` (storage/copy.py): a deployment the real bot filled
(members who joined, a story, a question answered, votes) is copied between SQLite and
PostgreSQL, every table checked by rows and checksum; a target with data is refused; a
changed row is found; the command's exit codes and summary."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import storage.copy
from bot.catalogue import t
from bot.cli import cli
from bot.clock import FakeClock
from storage.copy import (
    DERIVED,
    NOT_COPIED,
    SEARCH,
    CopyError,
    Plan,
    TableCheck,
    TargetNotEmpty,
    copy_database,
    copy_order,
    row_counts,
    tables_of,
    verify,
)
from storage.db import Database
from storage.search import match_query
from storage.store import Store, open_database
from storage.votes import Choice
from tests.pg import ThrowawayCluster
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9300
CHOICES: tuple[Choice, Choice] = ("agree", "skip")  # on the two ideas
NOW = "2026-11-30T10:00:00+00:00"
# Tabs, line ends, backslashes, COPY's NULL as text, an empty text, Welsh and an emoji.
ODD_NAMES = {"odd": "A\tB\nC\r\nD \\N E\\F", "empty": "", "cy": "Dŵr a thân 🌊"}
STORY = "The bus to Dŵr Park did not stop for my wheelchair."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def fill(person: MakePerson, store: Store, clock: FakeClock) -> None:
    """A small deployment, made by the real bot: three members join (one in Welsh), one
    shares a story, all answer a question, and vote on two ideas."""
    project = await store.projects.add("parks", "Parks")
    people = [person(7300 + i, name) for i, name in enumerate(("Ann", "Bo", "Cai"))]
    for someone in people:
        await join(someone, "Cymraeg" if someone.user.first_name == "Cai" else "English")
    ann = people[0]
    await ann.taps("Share your story")
    await ann.says(STORY)
    await ann.says("I was late.")
    await ann.says("A driver who waits.")
    assert (await ann.taps("Save"))[0] == t("en", "story.saved")
    # A question sent and answered, put in through the repositories: sending questions
    # through the bot is broken on this branch's base for now (tests/test_questions.py).
    now = clock.now()
    question = await store.questions.create(
        author_id=STAFF,
        author_chat_id=STAFF,
        author_language="en",
        text="Which day suits you?",
        kind="choice",
        options=["Monday", "Friday"],
        audience="everyone",
        repeat="once",
        starts_at=now + timedelta(days=1),
        reminder_hours=None,
    )
    [round_row] = await store.db.fetch_all(
        "SELECT id FROM question_rounds WHERE question_id = ?", (question.id,)
    )
    round_id = int(round_row[0])
    await store.questions.mark_round_sent(
        round_id,
        batch_id=None,
        sent_at=now,
        closes_at=now + timedelta(days=7),
        reminder_due_at=None,
        next_due_at=None,
    )
    for someone, choice in zip(people[:2], ("1", "2"), strict=True):
        member = await store.members.by_telegram_id(someone.user.id)
        assert member is not None
        await store.answers.save(round_id, member.id, choice=choice, text=None)
    ideas = []
    for text in ("More benches", "Later buses"):
        rows = await store.db.execute_returning(
            "INSERT INTO statements (project_id, visibility, state, text, created_at)"
            " VALUES (?, 'team', 'approved', ?, '2026-11-30T10:00:00+00:00') RETURNING id",
            (project.id, text),
        )
        ideas.append(int(rows[0][0]))
    for someone in people:
        member = await store.members.by_telegram_id(someone.user.id)
        assert member is not None
        for idea, choice in zip(ideas, CHOICES, strict=True):
            await store.votes.record(member.id, idea, choice)
    await store.inbox.flush()  # the inbox's done-marks, left for later, are written now


async def new_database(cluster: ThrowawayCluster) -> str:
    name = cluster.unique_name("copy")
    await cluster.create_database(name)
    return cluster.url(name)


async def small_sqlite(path: Path, clock: FakeClock) -> str:
    """An SQLite deployment filled through the repositories (no bot): two members, and
    projects whose names hold what COPY's text format must escape, and an empty one."""
    store = await Store.open(path, clock.now)
    for code, name in ODD_NAMES.items():
        await store.projects.add(code, name)
    for user in (1, 2):
        await store.members.join(
            telegram_user_id=user, chat_id=user, language="en", consent_version="1", agreed_to=[]
        )
    await store.close()
    return f"sqlite:///{path}"


def everything(checks: list[TableCheck]) -> dict[str, int]:
    return {check.name: check.source_rows for check in checks if check.ok}


# The source here must be SQLite: this is the move the command is for (SQLite to PostgreSQL).
@pytest.mark.sqlite_only
async def test_sqlite_to_postgresql_copies_every_table_and_the_bot_goes_on_there(
    person: MakePerson,
    store: Store,
    database_url: str,
    pg_database_url: str,
    clock: FakeClock,
) -> None:
    await fill(person, store, clock)
    result = await copy_database(database_url, pg_database_url)
    assert result.ok, [check for check in result.checks if not check.ok]
    # Every table of the schema, none left out, each the same in both.
    source_tables = set(await tables_of(store.db)) - NOT_COPIED
    assert {check.name for check in result.checks} == source_tables
    copied = everything(result.checks)
    assert set(copied) == source_tables
    for table in ("members", "consent_receipts", "submissions", "submission_parts", "answers"):
        assert copied[table] > 0, table
    assert copied["members"] == 3 and copied["answers"] == 2 and copied["votes"] == 6
    assert copied["submission_search"] == 1

    moved = await Store.open_url(pg_database_url, clock.now)
    try:
        for user in (7300, 7301, 7302):
            before = await store.members.by_telegram_id(user)
            after = await moved.members.by_telegram_id(user)
            assert after is not None and after == before
        cai = await moved.members.by_telegram_id(7302)
        assert cai is not None and cai.language == "cy"
        ann = await moved.members.by_telegram_id(7300)
        assert ann is not None
        [story] = await moved.sharing.of_member(ann.id)
        assert story == (await store.sharing.of_member(ann.id))[0]
        assert (await moved.sharing.parts(story.id))["what_happened"].text == STORY
        [question] = await moved.questions.recent(1)
        assert await moved.answers.counts(question.id) == await store.answers.counts(question.id)
        # The vote counts the triggers keep are the source's, not counted twice.
        kept = await moved.db.fetch_all("SELECT votes FROM statements ORDER BY id")
        assert [row[0] for row in kept] == [3, 0]
        # Search works in the target: a word of the story, and one with its accent left
        # off, as the workbench's reader asks (storage/search.py; PostgreSQL's spelling,
        # storage/migrations_pg.py), and nothing for a word not in it.
        for words, found in (("wheelchair", [story.id]), ("dwr park*", [story.id]), ("car", [])):
            rows = await moved.db.fetch_all(
                "SELECT rowid FROM submission_search WHERE document @@ cocreate_match(?)",
                (match_query(words),),
            )
            assert [row[0] for row in rows] == found, words
        # New rows take new ids: a member joins, an entry goes in the audit log.
        dan = await moved.members.join(
            telegram_user_id=7399, chat_id=7399, language="en", consent_version="1", agreed_to=[]
        )
        assert dan.id > max(m.id for m in (ann, cai))
        await moved.audit.add("cli:test", "copied")
        # Every identity's next value is past the ids copied.
        identities = await moved.db.fetch_all(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        )
        assert len(identities) > 15
        for table, column in identities:
            row = await moved.db.fetch_one(
                f"SELECT COALESCE(MAX({column}), 0) < nextval(pg_get_serial_sequence(?, ?))"
                f" FROM {table}",
                (table, column),
            )
            assert row is not None and row[0] is True, table
    finally:
        await moved.close()


async def test_a_target_with_data_is_refused_and_left_as_it_was(
    pg_cluster: ThrowawayCluster, tmp_path: Path, clock: FakeClock
) -> None:
    source = await small_sqlite(tmp_path / "source.db", clock)
    target = await new_database(pg_cluster)
    # A database just migrated is empty, though PostgreSQL's schema puts in a row of its own.
    db = await open_database(target)
    assert not any((await row_counts(db)).values())
    assert [tuple(row) for row in await db.fetch_all("SELECT chat_id FROM send_pace")] == [(0,)]
    await db.execute("INSERT INTO projects (code, name, created_at) VALUES ('x', 'X', ?)", (NOW,))
    before = await row_counts(db)
    await db.close()
    with pytest.raises(TargetNotEmpty, match=r"projects \(1\)"):
        await copy_database(source, target)
    db = await open_database(target)
    assert await row_counts(db) == before
    await db.close()
    # The same for an SQLite target, and for one that is the source itself.
    other = await small_sqlite(tmp_path / "other.db", clock)
    with pytest.raises(TargetNotEmpty, match=r"members \(2\)"):
        await copy_database(source, other)
    with pytest.raises(CopyError, match="same database"):
        await copy_database(source, source)
    # A target with a table cocreate's schema does not have is not cocreate's: refused.
    stranger = tmp_path / "stranger.db"
    db = await open_database(f"sqlite:///{stranger}")
    await db.execute("CREATE TABLE extra (x INTEGER)")
    await db.close()
    with pytest.raises(CopyError, match=r"tables differ \(extra\)"):
        await copy_database(source, f"sqlite:///{stranger}")


async def test_a_row_changed_after_the_copy_is_found(
    pg_cluster: ThrowawayCluster, tmp_path: Path, clock: FakeClock
) -> None:
    source = await small_sqlite(tmp_path / "source.db", clock)
    target = await new_database(pg_cluster)
    assert (await copy_database(source, target)).ok
    assert all(check.ok for check in await verify(source, target))
    copied = await Store.open_url(target, clock.now)
    for code, name in ODD_NAMES.items():
        project = await copied.projects.by_code(code.upper())  # citext: any case
        assert project is not None and project.name == name
    await copied.close()
    db = await open_database(target)
    await db.execute("UPDATE members SET language = 'cy' WHERE telegram_user_id = 2")
    # A time one second later is a different time, though written another way.
    await db.execute(
        "UPDATE consent_receipts SET agreed_at = agreed_at + interval '1 second'"
        " WHERE id = (SELECT MIN(id) FROM consent_receipts)"
    )
    await db.close()
    checks = {check.name: check for check in await verify(source, target)}
    assert {name for name, check in checks.items() if not check.ok} == {
        "members",
        "consent_receipts",
    }
    members = checks["members"]
    assert members.source_rows == members.target_rows == 2
    assert members.source_sum != members.target_sum


def test_the_copy_order_puts_parents_first_and_refuses_a_cycle() -> None:
    order = copy_order(["c", "b", "a", "d"], [("c", "b"), ("b", "a"), ("d", "d"), ("x", "a")])
    assert order == ["a", "d", "b", "c"]
    with pytest.raises(CopyError, match="cycle"):
        copy_order(["a", "b"], [("a", "b"), ("b", "a")])


async def test_the_command_prints_each_table_and_exits_by_what_it_found(
    pg_cluster: ThrowawayCluster,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = await small_sqlite(tmp_path / "source.db", clock)
    target = await new_database(pg_cluster)
    runner = CliRunner()

    async def run(*args: str) -> tuple[int, str, str]:
        # The command runs its own event loop: in a thread, away from this test's.
        got = await asyncio.to_thread(runner.invoke, cli, ["copy-db", *args])
        return got.exit_code, got.stdout, got.stderr

    code, out, err = await run("--from", source, "--to", target)
    assert code == 0, err
    assert "members" in out and "consent_receipts" in out and "DIFFERENT" not in out
    assert out.count("same") >= 20
    assert "Every table is the same in both." in out
    # Again into the same database: refused, exit 2, nothing copied.
    code, out, err = await run("--from", source, "--to", target)
    assert code == 2 and "not empty" in err and out == ""
    missing = tmp_path / "missing.db"
    code, _, err = await run("--from", f"sqlite:///{missing}", "--to", target)
    assert code == 2 and f"there is no database at {missing}" in err and not missing.exists()
    code, _, err = await run("--from", source, "--to", pg_cluster.url("no_such_database"))
    assert code == 2 and "nothing was written" in err and "no_such_database" in err
    code, _, err = await run("--from", source, "--to", "mysql://nowhere/db")
    assert code == 2 and "DATABASE_URL must start with 'sqlite:///'" in err

    # A table that differs after the copy (changed between copy and check): exit 1.
    real_compare = storage.copy.compare

    async def changed_first(source: Database, target: Database, plan: Plan) -> list[TableCheck]:
        await target.execute("UPDATE members SET chat_id = 5 WHERE telegram_user_id = 1")
        return await real_compare(source, target, plan)

    monkeypatch.setattr(storage.copy, "compare", changed_first)
    code, out, err = await run("--from", source, "--to", f"sqlite:///{tmp_path / 'copy.db'}")
    assert code == 1
    assert "DIFFERENT" in out and "These tables differ: members." in err


async def test_postgresql_to_sqlite_and_back_gives_the_same_tables(
    person: MakePerson,
    store: Store,
    database: str,
    database_url: str,
    pg_cluster: ThrowawayCluster,
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    """On each database the bot runs on: copied to the other kind, then back into a new one
    of its own kind, every table is as it was."""
    await fill(person, store, clock)
    there: str
    back: str
    if database == "postgresql":
        there, back = f"sqlite:///{tmp_path / 'there.db'}", await new_database(pg_cluster)
    else:
        there, back = await new_database(pg_cluster), f"sqlite:///{tmp_path / 'back.db'}"
    steps: list[Callable[[], Awaitable[Any]]] = [
        partial(copy_database, database_url, there),
        partial(copy_database, there, back),
    ]
    for step in steps:
        assert (await step()).ok
    checks = await verify(database_url, back)
    assert all(check.ok for check in checks)
    # SQLite's copy finds a story's word in its own index (FTS5), built as the rows went in.
    copy = await open_database(there if database == "postgresql" else back)
    for words, found in (("wheelchair", 1), ("dwr", 1), ("car", 0)):
        rows = await copy.fetch_all(
            "SELECT rowid FROM submission_search WHERE submission_search MATCH ?",
            (match_query(words),),
        )
        assert len(rows) == found, words
    await copy.close()
    assert everything(checks)["votes"] == 6 and everything(checks)["submission_search"] == 1


async def test_every_column_a_trigger_keeps_is_set_again_after_the_copy(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Triggers that write another table as rows go in would leave the copy with other
    values than the source: each such column is in storage.copy.DERIVED (set again from
    the source), or is search (copied as rows). A new trigger fails here until it is."""
    store = await Store.open(tmp_path / "schema.db", clock.now)
    triggers = await store.db.fetch_all("SELECT sql FROM sqlite_master WHERE type = 'trigger'")
    await store.close()
    written: set[tuple[str, str]] = set()
    for (sql,) in triggers:
        body = str(sql).split("BEGIN", 1)[1]
        for table, sets in re.findall(r"UPDATE\s+(\w+)\s+SET\s+(.*?)\s+WHERE", body, re.S):
            assignments = sets.split(",")  # each `column = …` (no commas inside, here)
            written |= {(table, part.split("=")[0].strip()) for part in assignments}
        for table in re.findall(r"(?:INSERT INTO|DELETE FROM)\s+(\w+)", body):
            written.add((table, "*"))
    assert written, "no trigger found"
    derived = {(table, column) for table, (_, columns) in DERIVED.items() for column in columns}
    assert written - derived == {(SEARCH, "*")}

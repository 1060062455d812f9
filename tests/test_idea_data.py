"""Data rights for ideas members weigh (issue 12): /mydata shows a member's votes and how each
of their ideas is shared; /delete takes their votes and ideas with it and keeps every idea's
vote count right; retention ages votes and statements out; exports carry the votes
(pseudonymous), the statements and each idea's status history.

Members join through the real bot and the emulator; the flows that fill statements, votes
and status_changes are built elsewhere, so these rows are written here with SQL, as the
migration's columns say."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import zipfile
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.catalogue import t, tn
from bot.cli import cli
from bot.clock import FakeClock
from bot.retention import run_retention
from bot.settings import Settings
from storage import export_files
from storage.db import new_id
from storage.export_ideas import STATEMENT_COLUMNS, STATUS_COLUMNS, VOTE_COLUMNS
from storage.export_rows import COLUMNS, ExportFilter, Row
from storage.store import Store
from storage.times import to_db
from tests.transcript import Person, holds_trace, join

MakePerson = Callable[..., Person]
ORGANISER = 9810
STAFF = 9811  # a facilitator
GONE = 9812  # once staff, no role now
ANN, BO, CAI = 7401, 7402, 7403
TELEGRAM = [str(i).encode() for i in (ORGANISER, STAFF, GONE, ANN, BO, CAI)]
EDITED = "A late bus from the town centre."
FORMULA = '=HYPERLINK("http://x","y")'


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER]}


@dataclass(frozen=True)
class World:
    """Who is who, and the ids of what they shared."""

    member: dict[str, int]
    ideas: dict[str, int]  # submission ids: ann_bus (shared), ann_private, bo_benches
    statements: dict[str, int]  # ann_bus, bo_benches, staff (a facilitator's own)
    round_id: int
    question_id: int
    at: datetime  # when it all happened


async def statement(
    store: Store,
    at: datetime,
    text: str,
    *,
    submission: int | None = None,
    project: int | None = None,
    visibility: str = "team",
    edited: bool = False,
) -> int:
    """An approved statement: a member's idea (submission) or a facilitator's own."""
    return await insert(
        store,
        "INSERT INTO statements (project_id, submission_id, visibility, state, text, edited,"
        " decided_by, decided_at, created_by, created_at)"
        " VALUES (?, ?, ?, 'approved', ?, ?, ?, ?, ?, ?)",
        (
            project,
            submission,
            visibility,
            text,
            int(edited),
            STAFF,
            to_db(at),
            STAFF if submission is None else None,
            to_db(at),
        ),
    )


async def insert(store: Store, sql: str, params: tuple[Any, ...]) -> int:
    async with store.db.transaction() as conn:
        return new_id(await conn.fetch_one(sql + " RETURNING id", params))


async def vote(store: Store, member: int, statement_id: int, choice: str, at: datetime) -> None:
    await store.db.execute(
        "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, ?, ?, ?)",
        (member, statement_id, choice, to_db(at)),
    )


async def change(
    store: Store,
    at: datetime,
    status: str,
    *,
    submission: int | None = None,
    statement_id: int | None = None,
    round_id: int | None = None,
    reason: str | None = None,
    by: int = STAFF,
) -> None:
    await store.db.execute(
        "INSERT INTO status_changes (submission_id, statement_id, round_id, status, reason,"
        " changed_by, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (submission, statement_id, round_id, status, reason, by, to_db(at)),
    )


async def idea(store: Store, member: int, text: str, project: int | None = None) -> int:
    """An idea stored as the sharing flow stores it."""
    draft = await store.sharing.start(
        member_id=member, kind="idea", project_id=project, language="en"
    )
    await store.sharing.answer(draft.id, member, "idea", text)
    await store.sharing.submit(draft.id)
    return draft.id


async def counts(store: Store) -> dict[int, tuple[int, int]]:
    """Each statement's stored count (kept by the triggers) and its votes counted afresh."""
    rows = await store.db.fetch_all(
        "SELECT id, votes, (SELECT COUNT(*) FROM votes WHERE statement_id = st.id"
        " AND choice != 'skip') AS real FROM statements st ORDER BY id"
    )
    return {int(r["id"]): (int(r["votes"]), int(r["real"])) for r in rows}


async def build(person: MakePerson, store: Store, clock: FakeClock) -> World:
    """Ann shares two ideas: one for others to see without her name (approved, edited), one
    for the team only. Bo's idea, in the parks project, may show his first name. A
    facilitator adds a statement. Ann agrees with Bo and skips the facilitator's; Bo agrees
    with Ann; Cai disagrees with Ann, agrees with Bo, is not sure of the facilitator's. Ann's
    idea is looked at, then goes ahead; the facilitator's is looked at; a question round is
    done (by someone who is no longer staff)."""
    parks = await store.projects.add("parks", "Better parks")
    ids = {}
    for name, user_id in (("Ann", ANN), ("Bo", BO), ("Cai", CAI)):
        await join(person(user_id, name))
        found = await store.members.by_telegram_id(user_id)
        assert found is not None
        ids[name] = found.id
    at = clock.now()
    await store.db.execute(
        "INSERT INTO roles (telegram_user_id, role, granted_at) VALUES (?, 'facilitator', ?)",
        (STAFF, to_db(at)),
    )
    ideas = {
        "ann_bus": await idea(store, ids["Ann"], "A late bus from Zebedee Street."),
        "ann_private": await idea(store, ids["Ann"], "Ann's private idea."),
        "bo_benches": await idea(store, ids["Bo"], "- More benches in the park", parks.id),
    }
    statements = {
        "ann_bus": await statement(
            store, at, EDITED, submission=ideas["ann_bus"], visibility="anonymous", edited=True
        ),
        "bo_benches": await statement(
            store,
            at,
            "- More benches in the park",
            submission=ideas["bo_benches"],
            project=parks.id,
            visibility="named",
        ),
        "staff": await statement(store, at, "Buses should run after 11 pm"),
    }
    for who, what, choice in (
        ("Ann", "bo_benches", "agree"),
        ("Ann", "staff", "skip"),
        ("Bo", "ann_bus", "agree"),
        ("Cai", "ann_bus", "disagree"),
        ("Cai", "bo_benches", "agree"),
        ("Cai", "staff", "unsure"),
    ):
        await vote(store, ids[who], statements[what], choice, at)
    question_id = await insert(
        store,
        "INSERT INTO questions (author_id, author_chat_id, text, kind, audience, starts_at,"
        " created_at) VALUES (?, ?, 'Which day suits you?', 'open', 'project:parks', ?, ?)",
        (GONE, GONE, to_db(at), to_db(at)),
    )
    round_id = await insert(
        store,
        "INSERT INTO question_rounds (question_id, due_at, status, sent_at)"
        " VALUES (?, ?, 'sent', ?)",
        (question_id, to_db(at), to_db(at)),
    )
    await change(store, at, "looking", submission=ideas["ann_bus"])
    await change(
        store,
        at + timedelta(days=2),
        "going_ahead",
        submission=ideas["ann_bus"],
        reason="The council will try it for a month.",
    )
    await change(store, at, "looking", statement_id=statements["staff"])
    await change(store, at + timedelta(days=3), "done", round_id=round_id, reason=FORMULA, by=GONE)
    return World(ids, ideas, statements, round_id, question_id, at)


async def my_data(someone: Person) -> tuple[str, dict[str, Any], bytes]:
    """/mydata: the summary's text, the file's data and its bytes."""
    await someone.says("/mydata")
    summary, document = someone.user.messages[-2:]
    assert summary.text is not None and document.file_bytes is not None
    return summary.text, json.loads(document.file_bytes), document.file_bytes


async def test_mydata_shows_votes_and_how_each_idea_is_shared(
    person: MakePerson, store: Store, clock: FakeClock
) -> None:
    world = await build(person, store, clock)
    ann = person(ANN, "Ann")
    summary, data, raw = await my_data(ann)
    assert t("en", "mydata.ideas_shown", count=1) in summary
    assert t("en", "mydata.votes", count=2) in summary
    when = to_db(world.at)
    assert data["votes"] == [
        {
            "idea_id": world.statements["bo_benches"],
            "idea": "- More benches in the park",
            "your_choice": "agree",
            "voted_at": when,
            "changed_at": None,
        },
        {
            "idea_id": world.statements["staff"],
            "idea": "Buses should run after 11 pm",
            "your_choice": "skip",
            "voted_at": when,
            "changed_at": None,
        },
    ]
    shared, private = data["ideas"]
    assert shared["parts"]["idea"]["text"] == "A late bus from Zebedee Street."
    assert shared["who_may_see"] == "other_members_without_your_name"
    assert shared["approval"] == {
        "state": "approved",
        "edited": True,
        "text_for_others": EDITED,
        "decided_at": when,
    }
    assert shared["status_history"] == [
        {"status": "looking", "reason": None, "changed_at": when},
        {
            "status": "going_ahead",
            "reason": "The council will try it for a month.",
            "changed_at": to_db(world.at + timedelta(days=2)),
        },
    ]
    assert private["who_may_see"] == "only_the_team" and private["approval"] is None
    assert private["status_history"] == []
    # Nothing of who approved it, nor how anyone else voted on Ann's idea.
    assert str(STAFF).encode() not in raw and b"disagree" not in raw

    bo = person(BO, "Bo")
    summary, data, _ = await my_data(bo)
    assert data["ideas"][0]["who_may_see"] == "other_members_with_your_first_name"
    assert [v["idea"] for v in data["votes"]] == [EDITED]
    # Cai shared no idea: the summary says nothing of sharing, only his votes.
    cai = person(CAI, "Cai")
    summary, data, _ = await my_data(cai)
    assert t("en", "mydata.votes", count=3) in summary
    assert t("en", "mydata.ideas_shown", count=1) not in summary


async def test_delete_takes_votes_and_ideas_and_every_count_stays_right(
    person: MakePerson, store: Store, clock: FakeClock
) -> None:
    world = await build(person, store, clock)
    s = world.statements
    assert await counts(store) == {
        s["ann_bus"]: (2, 2),
        s["bo_benches"]: (2, 2),
        s["staff"]: (1, 1),
    }
    # Ann changes her skip to a vote: the count follows (votes_recounted).
    await store.db.execute(
        "UPDATE votes SET choice = 'agree', changed_at = ?"
        " WHERE member_id = ? AND statement_id = ?",
        (to_db(clock.now()), world.member["Ann"], s["staff"]),
    )
    assert (await counts(store))[s["staff"]] == (2, 2)

    ann = person(ANN, "Ann")
    await ann.says("/delete")
    assert await ann.taps("Yes, delete it all") == [t("en", "delete.done")]
    # Her votes went, and the counts they were in went down; her shared idea went with its
    # statement, the votes on it and its status history.
    assert await counts(store) == {s["bo_benches"]: (1, 1), s["staff"]: (1, 1)}
    gone = world.member["Ann"]
    for table, column in (("votes", "member_id"), ("submissions", "member_id")):
        found = await store.db.fetch_all(f"SELECT 1 FROM {table} WHERE {column} = ?", (gone,))
        assert found == [], table
    changes = await store.db.fetch_all(
        "SELECT submission_id, statement_id, round_id FROM status_changes ORDER BY id"
    )
    assert [tuple(r) for r in changes] == [(None, s["staff"], None), (None, None, world.round_id)]
    for table in await store.db.table_names():
        dump = repr([tuple(r) for r in await store.db.fetch_all(f"SELECT * FROM {table}")])
        for trace in ("Zebedee", "late bus", "Ann's private", str(ANN)):
            assert not holds_trace(dump, trace), (table, trace)
    # Bo's and Cai's votes on other ideas stay.
    kept = await store.db.fetch_all("SELECT member_id, choice FROM votes ORDER BY member_id")
    assert [tuple(r) for r in kept] == [
        (world.member["Cai"], "agree"),
        (world.member["Cai"], "unsure"),
    ]


async def test_retention_ages_out_votes_and_statements(
    person: MakePerson, store: Store, clock: FakeClock, settings: Settings
) -> None:
    world = await build(person, store, clock)
    kept = settings.model_copy(update={"retention_days": 30})
    # 20 December: a new statement from the facilitator, and Bo's vote on it. A vote older
    # than its statement (a clock set back): it still goes by its own time.
    clock.advance(timedelta(days=20))
    later = await statement(store, clock.now(), "A bus shelter with a roof")
    await vote(store, world.member["Bo"], later, "agree", clock.now())
    await vote(store, world.member["Cai"], later, "disagree", world.at)
    assert (await counts(store))[later] == (2, 2)
    # 29 December: nothing is 30 days old yet.
    clock.advance(timedelta(days=9))
    deleted = await run_retention(store, kept, clock)
    assert deleted is not None and not deleted.anything

    # 31 December: all of 30 November goes.
    clock.advance(timedelta(days=2))
    deleted = await run_retention(store, kept, clock)
    assert deleted is not None
    assert deleted.count("ideas") == 3
    # Ann's and Cai's votes on the facilitator's statement, Cai's early vote; the votes on
    # members' ideas went with them, not counted twice.
    assert deleted.votes == 3 and deleted.statements == 1
    assert await counts(store) == {later: (1, 1)}
    left = await store.db.fetch_all("SELECT member_id, statement_id FROM votes")
    assert [tuple(r) for r in left] == [(world.member["Bo"], later)]
    # The history of a question round stays (the team's, with no member's words); that of
    # the ideas went with them.
    changes = await store.db.fetch_all("SELECT round_id FROM status_changes")
    assert [r["round_id"] for r in changes] == [world.round_id]
    [entry] = [e for e in await store.audit.entries() if e.action == "responses_deleted"]
    detail = json.loads(entry.detail)
    assert (detail["ideas"], detail["votes"], detail["statements"]) == (3, 3, 1)

    # 20 January: the later statement and Bo's vote on it are old now too.
    clock.advance(timedelta(days=20))
    deleted = await run_retention(store, kept, clock)
    assert deleted is not None and (deleted.votes, deleted.statements) == (1, 1)
    assert await counts(store) == {}


def read_csv(data: bytes, columns: tuple[str, ...]) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(header) == columns
    return [dict(zip(columns, row, strict=True)) for row in rows]


def no_telegram_ids(data: bytes) -> None:
    for needle in TELEGRAM:
        assert needle not in data, needle


async def test_exports_carry_votes_statements_and_status_history(
    person: MakePerson, store: Store, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    world = await build(person, store, clock)
    tz = settings.tz
    s, m = world.statements, world.member
    p = {name: await store.pseudonyms.of(i) for name, i in m.items()}
    when = world.at.astimezone(tz).isoformat()

    result = await store.responses.export("csv", tmp_path / "a.csv", ExportFilter(), tz, actor="t")
    assert result.rows == 3 and result.tables == {"votes": 6, "statements": 3, "status": 4}
    assert result.table_files == tuple(
        tmp_path / f"a-{name}.csv" for name in ("votes", "statements", "status")
    )
    responses = read_csv((tmp_path / "a.csv").read_bytes(), COLUMNS)
    # The same pseudonyms as in the responses; never a Telegram id.
    assert {r["pseudonym"] for r in responses} == {p["Ann"], p["Bo"]}
    votes = read_csv((tmp_path / "a-votes.csv").read_bytes(), VOTE_COLUMNS)
    # Oldest first (all at once here), then by statement, then by member.
    assert [(v["pseudonym"], v["statement_id"], v["choice"]) for v in votes] == [
        (p["Bo"], str(s["ann_bus"]), "agree"),
        (p["Cai"], str(s["ann_bus"]), "disagree"),
        (p["Ann"], str(s["bo_benches"]), "agree"),
        (p["Cai"], str(s["bo_benches"]), "agree"),
        (p["Ann"], str(s["staff"]), "skip"),
        (p["Cai"], str(s["staff"]), "unsure"),
    ]
    assert {v["voted_at"] for v in votes} == {when} and {v["changed_at"] for v in votes} == {""}
    statements = read_csv((tmp_path / "a-statements.csv").read_bytes(), STATEMENT_COLUMNS)
    benches = {
        "statement_id": str(s["bo_benches"]),
        "project": "parks",
        "response_id": f"S-{world.ideas['bo_benches']}",
        "text": "'- More benches in the park",  # formula-safe, like the responses
        "visibility": "named",
        "state": "approved",
        "edited": "no",
        "agree": "2",
        "disagree": "0",
        "unsure": "0",
        "skipped": "0",
        "created_at": when,
        "decided_at": when,
    }
    assert statements[1] == benches
    assert statements[0]["text"] == EDITED and statements[0]["edited"] == "yes"
    assert (statements[0]["agree"], statements[0]["disagree"]) == ("1", "1")
    assert statements[2]["response_id"] == "" and statements[2]["skipped"] == "1"
    status = read_csv((tmp_path / "a-status.csv").read_bytes(), STATUS_COLUMNS)
    assert [(c["target"], c["target_id"], c["status"], c["changed_by"]) for c in status] == [
        ("idea", f"S-{world.ideas['ann_bus']}", "looking", "facilitator"),
        ("idea", f"S-{world.ideas['ann_bus']}", "going_ahead", "facilitator"),
        ("statement", str(s["staff"]), "looking", "facilitator"),
        ("round", str(world.round_id), "done", "staff"),
    ]
    assert status[3]["question_id"] == str(world.question_id)
    assert status[3]["reason"] == "'" + FORMULA
    for name in ("a.csv", "a-votes.csv", "a-statements.csv", "a-status.csv"):
        no_telegram_ids((tmp_path / name).read_bytes())

    # JSON Lines: the same tables, text exactly as written.
    result = await store.responses.export(
        "json", tmp_path / "b.jsonl", ExportFilter(), tz, actor="t"
    )
    assert [path.name for path in result.table_files] == [
        "b-votes.jsonl",
        "b-statements.jsonl",
        "b-status.jsonl",
    ]
    records = {
        name: [json.loads(x) for x in (tmp_path / f"b-{name}.jsonl").read_text().splitlines()]
        for name in ("votes", "statements", "status")
    }
    assert [tuple(r) for r in records["votes"]] == [VOTE_COLUMNS] * 6
    assert [r["pseudonym"] for r in records["votes"]] == [v["pseudonym"] for v in votes]
    assert records["statements"][1]["text"] == "- More benches in the park"
    assert records["statements"][1]["edited"] is False and records["statements"][1]["agree"] == 2
    assert records["status"][3]["reason"] == FORMULA and records["status"][3]["changed_at"]
    for name in ("votes", "statements", "status"):
        no_telegram_ids((tmp_path / f"b-{name}.jsonl").read_bytes())

    # Excel: one file, a sheet for each table; text is text, times are times.
    result = await store.responses.export(
        "xlsx", tmp_path / "c.xlsx", ExportFilter(), tz, actor="t"
    )
    assert result.table_files == ()
    book = openpyxl.load_workbook(tmp_path / "c.xlsx")
    assert book.sheetnames == ["Responses", "Votes", "Statements", "Status history"]
    sheet = book["Status history"]
    assert next(sheet.iter_rows(values_only=True)) == STATUS_COLUMNS
    reason = sheet.cell(row=5, column=STATUS_COLUMNS.index("reason") + 1)
    assert reason.value == FORMULA and reason.data_type == "s"
    votes_sheet = list(book["Votes"].iter_rows(values_only=True))
    assert votes_sheet[0] == VOTE_COLUMNS and len(votes_sheet) == 7
    assert votes_sheet[1][3] == world.at.astimezone(tz).replace(tzinfo=None)
    assert book["Statements"].cell(row=3, column=4).value == "- More benches in the park"
    with zipfile.ZipFile(tmp_path / "c.xlsx") as z:
        no_telegram_ids(b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/work")))

    # Filters: one project, one question, a time.
    async def tables(flt: ExportFilter) -> dict[str, int]:
        out = tmp_path / "f.csv"
        return (await store.responses.export("csv", out, flt, tz, actor="t")).tables

    assert await tables(ExportFilter(project="parks")) == {
        "votes": 2,
        "statements": 1,
        "status": 1,  # the round of a question asked of parks
    }
    assert await tables(ExportFilter(question_id=world.question_id)) == {"status": 1}
    assert await tables(ExportFilter(since=world.at + timedelta(days=1))) == {"status": 2}

    # The command line says what it wrote beside the responses.
    runner = CliRunner()
    env = {"DATABASE_URL": settings.database_url, "MEDIA_DIR": str(settings.media_dir)}
    out = tmp_path / "cli.csv"
    got = await asyncio.to_thread(
        runner.invoke, cli, ["export", "--format=csv", f"--out={out}"], env=env
    )
    assert got.exit_code == 0, got.stderr
    where = ", ".join(str(tmp_path / f"cli-{n}.csv") for n in ("votes", "statements", "status"))
    assert got.stdout.endswith(f" Also 6 votes, 3 statements, 4 status changes in {where}.\n")
    assert (tmp_path / "cli-votes.csv").read_bytes() == (tmp_path / "a-votes.csv").read_bytes()
    # Every export is in the audit log with how many of each it held.
    [entry, *_] = [e for e in await store.audit.entries() if e.action == "export"]
    assert json.loads(entry.detail) == {
        "format": "csv",
        "rows": 3,
        "votes": 6,
        "statements": 3,
        "status": 4,
    }


async def test_export_in_chat_sends_the_tables_too(
    person: MakePerson, store: Store, clock: FakeClock
) -> None:
    await build(person, store, clock)
    olu = person(ORGANISER, "Olu")
    since = len(olu.user.messages)
    await olu.says("/export")
    await olu.taps("CSV")
    await olu.taps("Everything")
    [sent] = await documents(olu, since)
    stem = "cocreate-export-2026-11-30"
    assert sent.file_name == f"{stem}.zip" and sent.file_bytes is not None
    assert sent.text == tn("en", "export.ready.tables", 3, rows=3)
    with zipfile.ZipFile(io.BytesIO(sent.file_bytes)) as bundle:
        assert bundle.namelist() == [
            f"{stem}.csv",
            f"{stem}-votes.csv",
            f"{stem}-statements.csv",
            f"{stem}-status.csv",
        ]
        assert len(read_csv(bundle.read(f"{stem}-votes.csv"), VOTE_COLUMNS)) == 6
    # Excel: one file, with the tables as sheets.
    since = len(olu.user.messages)
    await olu.says("/export")
    await olu.taps("Excel")
    await olu.taps("Everything")
    [sent] = await documents(olu, since)
    assert sent.file_name == f"{stem}.xlsx" and sent.file_bytes is not None
    assert sent.text == tn("en", "export.ready", 3, rows=3)
    book = openpyxl.load_workbook(io.BytesIO(sent.file_bytes))
    assert book.sheetnames == ["Responses", "Votes", "Statements", "Status history"]


async def documents(someone: Person, since: int) -> list[Any]:
    """The file the bot sent after its first `since` messages, waiting for it (it is made
    in a task of its own)."""
    while True:
        found = [m for m in someone.user.messages[since:] if m.kind == "document"]
        if found:
            someone.user.unread()
            return found
        await someone.user.next_message(timeout=15)


async def test_an_export_that_fails_in_a_table_leaves_no_file(
    person: MakePerson,
    store: Store,
    clock: FakeClock,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await build(person, store, clock)
    real = export_files.write_table
    written: list[str] = []

    async def broken(
        chunks: AsyncGenerator[list[Row], None], fmt: str, path: Path, names: tuple[str, ...]
    ) -> int:
        if written:  # the votes are written; the disk fills up during the statements
            await real(chunks, fmt, path, names)
            raise OSError("disk full")
        written.append(path.name)
        return await real(chunks, fmt, path, names)

    monkeypatch.setattr("storage.export.write_table", broken)
    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("csv", "json"):
        written.clear()
        with pytest.raises(OSError, match="disk full"):
            await store.responses.export(fmt, out / "x.out", ExportFilter(), settings.tz, actor="t")
        assert os.listdir(out) == []
        written.clear()
        with pytest.raises(OSError, match="disk full"):
            await store.responses.export_parts(
                fmt, out, "x", ExportFilter(), settings.tz, actor="t", max_bytes=1000
            )
        assert os.listdir(out) == []
    assert [e for e in await store.audit.entries() if e.action == "export"] == []

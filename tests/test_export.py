"""Organisers download what people said. The database is built through the real bot and the
emulator: members in English and Welsh, one named and the rest anonymous, a Welsh story told
partly in a voice note, an idea with a volunteer, answers by button and by typing, an open
answer that tries to be a spreadsheet formula. Then it is exported in every format by the
storage layer, by `python -m bot export` in a subprocess, and by /export in chat."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.catalogue import t, tn
from bot.cli import cli
from bot.clock import FakeClock
from bot.export_args import export_filter
from bot.settings import Settings
from conversations import exporting
from emulator import BotMessage, SimUser
from storage import pg_db, sqlite_db
from storage.export_rows import COLUMNS, WHEN_COLUMN, BadExport, ExportFilter, ResponseRows
from storage.store import Store
from tests.media_samples import voice
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ORGANISER = 9300
ANN, BRYN, CAI = 7001, 7002, 7003
LONDON = ZoneInfo("Europe/London")
FORMULA = '=HYPERLINK("http://x","y")'
# Everything in the database that points at a Telegram account.
TELEGRAM = [str(i).encode() for i in (ORGANISER, ANN, BRYN, CAI)] + [
    b"ann_tg",
    b"bryn_tg",
    b"cai_tg",
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "organiser_ids": [ORGANISER],
        "about_areas": ["Grangetown", "Splott"],
        "safeguarding_words": ["unsafe at night"],
    }


@dataclass(frozen=True)
class World:
    """What the members said, by the id each response gets in an export."""

    member: dict[str, int]
    choice_question: int
    open_question: int
    voice_file: str


async def messages(someone: Person, n: int = 1) -> list[str]:
    return [m.text or "" for m in await someone.user.wait_messages(n, timeout=10)]


async def documents(user: SimUser, since: int, n: int = 1) -> list[BotMessage]:
    """The first `n` files the bot sent after its first `since` messages, waiting for them
    (a file is made and sent in a task of its own, so it may come before or after the
    conversation step that asked for it was handled)."""
    while True:
        found = [m for m in user.messages[since:] if m.kind == "document"]
        if len(found) >= n:
            user.unread()
            return found[:n]
        await user.next_message(timeout=15)


async def export(someone: Person, *steps: str) -> BotMessage:
    """/export, then each step typed (or tapped, if it is a button); returns the file."""
    since = len(someone.user.messages)
    await someone.says("/export")
    for step in steps:
        if step in someone.buttons:
            await someone.taps(step)
        else:
            await someone.says(step)
    [sent] = await documents(someone.user, since)
    return sent


async def ask(staff: Person, question: str, kind: str, options: str = "", project: str = "") -> int:
    """Asks a question now, through /ask with buttons; returns its id."""
    await staff.says("/ask")
    await staff.says(question)
    await staff.taps(kind)
    if options:
        await staff.says(options)
    await staff.taps("One project" if project else "All members")
    if project:
        await staff.taps(project)
    await staff.taps("Now")
    await staff.taps("No reminder")
    await staff.taps("Send")
    await staff.user.wait_messages(1, timeout=10)  # the delivery report
    return (await staff.app.resources.store.questions.recent(1))[0].id


async def build(person: MakePerson, store: Store, clock: FakeClock) -> World:
    """Three members share, a week of answers; see the module docstring."""
    await store.projects.add("parks", "Better parks")
    olu = person(ORGANISER, "Olu")
    ann = person(ANN, "Ann", username="ann_tg")
    await ann.says("/start parks")
    for label in ("English", "Yes, I agree", "Use my first name", "25 to 34", "Grangetown", "Yes"):
        await ann.taps(label)
    bryn = person(BRYN, "Bryn", username="bryn_tg")
    await join(bryn, "Cymraeg")
    cai = person(CAI, "Cai", username="cai_tg")
    await join(cai, start="/start parks")

    # 30 November: Bryn's story, in Welsh, the first part a voice note.
    await bryn.taps(t("cy", "menu.story"))
    await bryn.does(lambda u: u.send_voice(voice(2), duration=5))
    await bryn.says("Roeddwn i'n hwyr i'r apwyntiad.")
    await bryn.taps(t("cy", "common.skip"))
    await bryn.taps(t("cy", "sharing.save"))
    # 2 December: Cai's idea; he would help.
    clock.set(datetime(2026, 12, 2, 11, 30, tzinfo=LONDON))
    await cai.taps("Share an idea")
    await cai.says("A bench at the bus stop.")
    await cai.says("Older people.")
    await cai.taps("Yes")
    await cai.taps("Save")
    # 4 December: a choice question for everyone; Ann taps, Bryn types, Cai says nothing.
    clock.set(datetime(2026, 12, 4, 9, 0, tzinfo=LONDON))
    choice = await ask(
        olu, "Which day suits you?", "Pick one from a list", options="Monday\nWednesday\nSaturday"
    )
    for someone in (ann, bryn, cai):
        await messages(someone)
    await ann.taps("Wednesday")
    await bryn.says("3")
    # 5 December: an open question for the parks project.
    clock.set(datetime(2026, 12, 5, 18, 0, tzinfo=LONDON))
    open_ = await ask(
        olu, "What would make the park safer?", "In their own words", project="Better parks"
    )
    for someone in (ann, cai):
        await messages(someone)
    await ann.says(FORMULA)
    await cai.says("More lights by the gate. I feel unsafe at night.")
    await olu.user.wait_messages(1, timeout=10)  # the safeguarding alert

    ids = {}
    for name, user_id in (("Ann", ANN), ("Bryn", BRYN), ("Cai", CAI)):
        found = await store.members.by_telegram_id(user_id)
        assert found is not None
        ids[name] = found.id
    [voice_file] = await store.sharing.media_files_of(ids["Bryn"])
    return World(ids, choice, open_, voice_file)


async def expected(store: Store, world: World) -> dict[str, dict[str, str]]:
    """Every row as CSV shows it, by response id."""
    p = {name: await store.pseudonyms.of(i) for name, i in world.member.items()}
    blank = dict.fromkeys(COLUMNS, "")
    ann_about = {"age_band": "25_34", "area": "Grangetown", "extra": "Yes"}
    no = {"safeguarding_flag": "no"}
    rows = [
        {
            "response_id": "S-1",
            "pseudonym": p["Bryn"],
            "kind": "experience",
            "how_it_affected": "Roeddwn i'n hwyr i'r apwyntiad.",
            "media_files": world.voice_file,
            "language": "cy",
            "submitted_at": "2026-11-30T10:00:00+00:00",
            **no,
        },
        {
            "response_id": "S-2",
            "pseudonym": p["Cai"],
            "kind": "idea",
            "project": "parks",
            "idea": "A bench at the bus stop.",
            "who_it_helps": "Older people.",
            "volunteer": "yes",
            "language": "en",
            "submitted_at": "2026-12-02T11:30:00+00:00",
            **no,
        },
    ]
    choice = {
        "kind": "answer",
        "question_id": str(world.choice_question),
        "question": "Which day suits you?",
        "submitted_at": "2026-12-04T09:00:00+00:00",
        **no,
    }
    rows += [
        {
            "response_id": "A-1",
            "pseudonym": p["Ann"],
            "first_name": "Ann",
            "choice": "2",
            "choice_label": "Wednesday",
            "language": "en",
            **choice,
            **ann_about,
        },
        {
            "response_id": "A-2",
            "pseudonym": p["Bryn"],
            "choice": "3",
            "choice_label": "Saturday",
            "language": "cy",
            **choice,
        },
    ]
    open_ = {
        "kind": "answer",
        "project": "parks",
        "question_id": str(world.open_question),
        "question": "What would make the park safer?",
        "language": "en",
        "submitted_at": "2026-12-05T18:00:00+00:00",
    }
    rows += [
        {
            "response_id": "A-3",
            "pseudonym": p["Ann"],
            "first_name": "Ann",
            "answer": "'" + FORMULA,  # inert: a spreadsheet shows it as text
            **open_,
            **no,
            **ann_about,
        },
        {
            "response_id": "A-4",
            "pseudonym": p["Cai"],
            "answer": "More lights by the gate. I feel unsafe at night.",
            "safeguarding_flag": "yes",
            **open_,
        },
    ]
    return {row["response_id"]: {**blank, **row} for row in rows}


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header, *rows = list(reader)
    assert tuple(header) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r["response_id"]) for r in rows]


def no_telegram_ids(data: bytes) -> None:
    for needle in TELEGRAM:
        assert needle not in data, needle


def cells(path: Path) -> bytes:
    """What an Excel file holds: its sheets and strings (not its theme, which has numbers)."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.startswith(("xl/worksheets/", "xl/sharedStrings"))]
        assert names
        return b"".join(z.read(name) for name in names)


def cli_env(settings: Settings) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ABOUT_"))}
    return {
        **clean,
        "DATABASE_URL": settings.database_url,
        "MEDIA_DIR": str(settings.media_dir),
        "TIMEZONE": "Europe/London",
    }


async def run_cli(settings: Settings, cwd: Path, *args: str) -> tuple[int, str, str]:
    """`python -m bot …` in a subprocess; returns its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=cli_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_exports_of_what_members_said(
    person: MakePerson, store: Store, clock: FakeClock, settings: Settings, tmp_path: Path
) -> None:
    world = await build(person, store, clock)
    want = await expected(store, world)
    tz = settings.tz
    out = tmp_path / "out"
    out.mkdir()

    # The storage layer, in every format.
    for fmt, name in (("csv", "a.csv"), ("xlsx", "a.xlsx"), ("json", "a.jsonl")):
        result = await store.responses.export(fmt, out / name, ExportFilter(), tz, actor="test")
        assert result.rows == 6 and result.files == (out / name,)
    csv_bytes = (out / "a.csv").read_bytes()
    assert {r["response_id"]: r for r in read_csv(csv_bytes)} == want
    assert ids(read_csv(csv_bytes)) == ["S-1", "S-2", "A-1", "A-2", "A-3", "A-4"]
    no_telegram_ids(csv_bytes)

    lines = (out / "a.jsonl").read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(tuple(r) == COLUMNS for r in records)
    assert ids(records) == list(want)
    story, idea, ann_choice, *_, cai_open = records
    assert story["media_files"] == [world.voice_file] and story["first_name"] is None
    assert story["safeguarding_flag"] is False and cai_open["safeguarding_flag"] is True
    assert ann_choice["question_id"] == world.choice_question and ann_choice["choice"] == "2"
    assert records[4]["answer"] == FORMULA  # JSON keeps the text as it was written
    assert idea["submitted_at"] == "2026-12-02T11:30:00+00:00"
    no_telegram_ids((out / "a.jsonl").read_bytes())

    book = openpyxl.load_workbook(out / "a.xlsx")
    sheet = book["Responses"]
    assert sheet.freeze_panes == "A2"
    table = list(sheet.iter_rows(values_only=True))
    assert table[0] == COLUMNS and len(table) == 7
    when = sheet.cell(row=2, column=COLUMNS.index("submitted_at") + 1)
    assert when.value == datetime(2026, 11, 30, 10, 0) and when.number_format.startswith("yyyy")
    formula = sheet.cell(row=6, column=COLUMNS.index("answer") + 1)
    assert formula.value == FORMULA and formula.data_type == "s"  # text, never a formula
    assert [row[0] for row in table[1:]] == list(want)
    no_telegram_ids(cells(out / "a.xlsx"))

    # `python -m bot export` in subprocesses (at once): the same rows, the same pseudonyms.
    cli_out = tmp_path / "cli"
    cli_out.mkdir()
    # CSV (with the media files) in a subprocess; the rest in this process, in a thread.
    runner = CliRunner()

    def in_process(*args: str) -> tuple[int, str, str]:
        got = runner.invoke(cli, list(args), env=cli_env(settings))
        return got.exit_code, got.stdout, got.stderr

    async def the_rest() -> list[tuple[int, str, str]]:
        found = []
        for args in (
            ("--format=xlsx", f"--out={cli_out / 'b.xlsx'}"),
            ("--format=json", f"--out={cli_out / 'b.jsonl'}"),
            ("--format=csv", f"--out={cli_out / 'parks.csv'}", "--project=PARKS", "--with-media"),
        ):
            found.append(await asyncio.to_thread(in_process, "export", *args))
        return found

    csv_run, rest = await asyncio.gather(
        run_cli(
            settings,
            tmp_path,
            "export",
            "--format=csv",
            f"--out={cli_out / 'b.csv'}",
            "--with-media",
        ),
        the_rest(),
    )
    runs = [csv_run, *rest]
    for code, stdout, stderr in runs:
        assert code == 0, stderr
        assert stdout.startswith("Wrote ") and stdout.count("\n") == 1
    assert runs[0][1].startswith(f"Wrote 6 rows to {cli_out / 'b.csv'} in ")
    assert runs[0][1].endswith(f" 1 media file in {cli_out / 'b-media.zip'}.\n")
    assert read_csv((cli_out / "b.csv").read_bytes()) == read_csv(csv_bytes)
    cli_records = [json.loads(x) for x in (cli_out / "b.jsonl").read_text().splitlines()]
    assert cli_records == records
    cli_book = openpyxl.load_workbook(cli_out / "b.xlsx", read_only=True)
    assert list(cli_book["Responses"].iter_rows(values_only=True)) == table
    assert ids(read_csv((cli_out / "parks.csv").read_bytes())) == ["S-2", "A-3", "A-4"]
    with zipfile.ZipFile(cli_out / "parks-media.zip") as media:
        assert media.namelist() == []  # the voice note is Bryn's, who is not in parks
    assert sorted(os.listdir(cli_out)) == sorted(
        ["b.csv", "b-media.zip", "b.xlsx", "b.jsonl", "parks.csv", "parks-media.zip"]
    )
    with zipfile.ZipFile(cli_out / "b-media.zip") as media:
        assert media.namelist() == [world.voice_file]
        assert media.read(world.voice_file) == voice(2)

    # Filters select exactly their rows.
    async def selected(**kwargs: Any) -> list[str]:
        return [row[0] async for row in store.responses.rows(ExportFilter(**kwargs), tz)]

    def day(d: int, h: int = 0) -> datetime:
        return datetime(2026, 12, d, h, tzinfo=LONDON)

    assert await selected(project="parks") == ["S-2", "A-3", "A-4"]
    assert await selected(question_id=world.choice_question) == ["A-1", "A-2"]
    assert await selected(question_id=world.open_question) == ["A-3", "A-4"]
    assert await selected(since=day(1), until=day(4)) == ["S-2"]
    assert await selected(until=day(1)) == ["S-1"]
    assert await selected(since=day(4, 9)) == ["A-1", "A-2", "A-3", "A-4"]
    assert await selected(since=day(5), project="parks") == ["A-3", "A-4"]
    # Dates on the command line are whole days in TIMEZONE; --until includes its day.
    flt = export_filter(project=None, question=None, since="2026-12-02", until="2026-12-04", tz=tz)
    assert await selected(since=flt.since, until=flt.until) == ["S-2", "A-1", "A-2"]

    # /export in chat: CSV, everything, with buttons.
    olu = person(ORGANISER, "Olu")
    olu.user.unread()
    since = len(olu.user.messages)
    assert await olu.says("/export") == [t("en", "export.ask.format")]
    assert olu.buttons == ["CSV", "Excel", "JSON"]
    assert await olu.taps("CSV") == [t("en", "export.ask.filter")]
    assert olu.buttons == ["Everything", "One project", "One question", "The last 7 days"]
    assert (await olu.taps("Everything"))[0] == t("en", "export.making")
    [sent] = await documents(olu.user, since)
    assert sent.file_name == "cocreate-export-2026-12-05.csv"
    assert sent.text == tn("en", "export.ready", 6, rows=6)
    assert sent.file_bytes is not None
    assert read_csv(sent.file_bytes) == read_csv(csv_bytes)  # pseudonyms stable, too
    # Typed: JSON, one question (its number in the list).
    since = len(olu.user.messages)
    await olu.says("/export")
    await olu.says("json")
    await olu.says("one question")
    assert olu.buttons == ["What would make the park safer?", "Which day suits you?"]
    await olu.says("2")
    [sent] = await documents(olu.user, since)
    assert sent.file_name == "cocreate-export-2026-12-05.jsonl" and sent.file_bytes is not None
    assert ids([json.loads(x) for x in sent.file_bytes.splitlines()]) == ["A-1", "A-2"]
    # Excel, one project (its code typed), then CSV of the last 7 days.
    sent = await export(olu, "Excel", "One project", "parks")
    assert sent.file_name is not None and sent.file_name.endswith(".xlsx")
    assert sent.file_bytes is not None
    sheet = openpyxl.load_workbook(io.BytesIO(sent.file_bytes))["Responses"]
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["S-2", "A-3", "A-4"]
    clock.set(datetime(2026, 12, 9, 12, 0, tzinfo=LONDON))
    sent = await export(olu, "1", "the last 7 days")
    assert sent.file_bytes is not None
    assert ids(read_csv(sent.file_bytes)) == ["A-1", "A-2", "A-3", "A-4"]
    # Words it does not know are asked again; /cancel stops.
    await olu.says("/export")
    assert await olu.says("pdf") == [t("en", "staff.not_understood"), t("en", "export.ask.format")]
    assert await olu.says("/cancel") == [t("en", "export.cancelled")]

    # The audit log has every export: who, the filters, how many rows.
    exports = [e for e in await store.audit.entries() if e.action == "export"]
    assert len(exports) == 3 + 4 + 4
    chat = [json.loads(e.detail) for e in exports if e.actor == f"telegram:{ORGANISER}"]
    assert chat[0] == {"format": "csv", "rows": 6}
    assert chat[1] == {"format": "json", "rows": 2, "question": world.choice_question}
    assert chat[2] == {"format": "xlsx", "rows": 3, "project": "parks"}
    assert chat[3] == {"format": "csv", "rows": 4, "since": "2026-12-02T12:00:00+00:00"}
    cli_runs = [e for e in exports if e.actor.startswith("cli")]
    assert {"format": "csv", "rows": 3, "project": "parks", "media_files": 0} in [
        json.loads(e.detail) for e in cli_runs
    ]
    assert {"format": "csv", "rows": 6, "media_files": 1} in [
        json.loads(e.detail) for e in cli_runs
    ]


async def test_export_is_for_organisers_only(person: MakePerson, store: Store) -> None:
    olu = person(ORGANISER, "Olu")
    token = await store.roles.create_invite(ORGANISER)
    fay = person(9301, "Fay")
    await fay.says(f"/start invite-{token}")
    ann = person(ANN, "Ann")
    await join(ann)
    for someone in (ann, fay, person(9302, "Sid")):
        unknown = await someone.says("/frobnicate")
        assert await someone.says("/export") == unknown
        assert await someone.does(lambda u: u.press_callback("exp:1:csv")) == await someone.does(
            lambda u: u.press_callback("nonsense:1")
        )
    assert [e for e in await store.audit.entries() if e.action == "export"] == []
    # An organiser with nothing to export yet still gets a file: the header row.
    since = len(olu.user.messages)
    await olu.says("/export")
    await olu.taps("CSV")
    assert await olu.taps("One question") == [
        t("en", "export.no_questions"),
        t("en", "export.ask.filter"),
    ]
    await olu.taps("Everything")
    [sent] = await documents(olu.user, since)
    assert sent.file_bytes is not None and read_csv(sent.file_bytes) == []


async def test_a_large_export_is_zipped_or_sent_in_parts(
    person: MakePerson, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    olu = person(ORGANISER, "Olu")
    eve = person(7010, "Eve")
    await join(eve)
    member = await store.members.by_telegram_id(7010)
    assert member is not None
    for n in range(40):  # stored as the sharing flow stores them
        draft = await store.sharing.start(
            member_id=member.id, kind="idea", project_id=None, language="en"
        )
        text = f"Idea {n}: " + "a longer bus shelter with a roof " * 20
        await store.sharing.answer(draft.id, member.id, "idea", text)
        await store.sharing.submit(draft.id)
    monkeypatch.setattr(exporting, "PART_BYTES", 10_000)
    sent = await export(olu, "CSV", "Everything")
    assert sent.file_name == "cocreate-export-2026-11-30.zip" and sent.file_bytes is not None
    assert sent.text == tn("en", "export.zipped", 40, rows=40)
    with zipfile.ZipFile(io.BytesIO(sent.file_bytes)) as bundle:
        names = bundle.namelist()
        assert len(names) >= 3 and names[0] == "cocreate-export-2026-11-30-part1.csv"
        parts = [read_csv(bundle.read(name)) for name in names]
    assert all(len(bundle_part) > 0 for bundle_part in parts)
    assert [r["response_id"] for part in parts for r in part] == [f"S-{n}" for n in range(1, 41)]

    # Too big even zipped: one part after another, each under the limit.
    monkeypatch.setattr(exporting, "UPLOAD_LIMIT", 100)
    since = len(olu.user.messages)
    await olu.says("/export")
    await olu.taps("JSON")
    await olu.taps("Everything")
    [first] = await documents(olu.user, since)
    count = int((first.text or "").rpartition(" ")[2])  # "Part 1 of N"
    files = await documents(olu.user, since, count)
    texts = [m.text for m in olu.user.messages[since:] if m.kind == "text"]
    parts_text = tn("en", "export.parts", count, parts=count)
    assert texts[-1] == f"{parts_text} {tn('en', 'export.parts.rows', 40, rows=40)}"
    assert count > len(names) and "They have 40 responses in all." in texts[-1]
    assert [f.text for f in files] == [
        t("en", "export.part", part=n, parts=count) for n in range(1, count + 1)
    ]
    got = [json.loads(line) for f in files for line in (f.file_bytes or b"").splitlines()]
    assert len(got) == 40


def test_bad_command_line_input_exits_with_one_sentence_and_writes_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cocreate.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "MEDIA_DIR": str(tmp_path / "media")}
    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()
    cases = {
        "--project=nope": "cocreate: There is no project with the code 'nope'.",
        "--question=42": "cocreate: There is no question number 42.",
        "--question=two": "cocreate: --question takes a question number, not 'two'.",
        "--since=2026-13-01": "cocreate: --since '2026-13-01' is not a date like 2026-12-01.",
        "--until=yesterday": "cocreate: --until 'yesterday' is not a date like 2026-12-01.",
        "--format=pdf": "cocreate: --format must be csv, xlsx or json, not 'pdf'.",
        f"--out={tmp_path / 'missing' / 'x.csv'}": (
            f"cocreate: The folder '{tmp_path / 'missing'}' does not exist."
        ),
        f"--out={out}": f"cocreate: '{out}' is a folder; give a file name.",
    }
    for bad, sentence in cases.items():
        args = ["export", "--format=csv", f"--out={out / 'x.csv'}", "--with-media", bad]
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 2, (bad, result.output)
        assert result.stderr == sentence + "\n", bad
        assert result.stdout == ""
        assert os.listdir(out) == [], bad
    good = runner.invoke(cli, ["export", "--format=json", f"--out={out / 'x.jsonl'}"], env=env)
    assert good.exit_code == 0 and good.stdout.startswith("Wrote 0 rows to ")
    audit = runner.invoke(cli, ["audit"], env=env)
    assert audit.exit_code == 0
    header, entry = audit.stdout.splitlines()
    assert header.split() == ["When", "Who", "What", "Details"]
    assert entry.split()[3:] == ["export", "format=json,", "rows=0"]


async def test_an_export_reads_one_snapshot_a_batch_at_a_time(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large export is read a batch at a time (on PostgreSQL through a server-side cursor),
    all from one snapshot: the bot saves meanwhile, and what it saves is not in the export.
    Times come out as datetimes in the export's time zone."""
    monkeypatch.setattr(pg_db, "STREAM_BATCH", 4)
    monkeypatch.setattr(sqlite_db, "STREAM_BATCH", 4)
    member = await store.members.join(
        telegram_user_id=7010, chat_id=7010, language="en", consent_version="1", agreed_to=["x"]
    )

    async def idea(text: str) -> int:
        draft = await store.sharing.start(
            member_id=member.id, kind="idea", project_id=None, language="en"
        )
        await store.sharing.answer(draft.id, member.id, "idea", text)
        await store.sharing.submit(draft.id)
        return draft.id

    ideas = [await idea(f"Idea {n}") for n in range(10)]
    async with (
        ResponseRows(store.db, store.pseudonyms).snapshot() as snapshot,
        contextlib.aclosing(snapshot.chunks(ExportFilter(), LONDON)) as chunks,
    ):
        first = await anext(chunks)
        late = await asyncio.wait_for(idea("Saved while the export runs"), timeout=10)
        rest = [chunk async for chunk in chunks]
        assert await snapshot.count(ExportFilter()) == len(ideas)  # a query begun after it
    assert [len(chunk) for chunk in (first, *rest)] == [4, 4, 2]
    rows = [row for chunk in (first, *rest) for row in chunk]
    assert [row[0] for row in rows] == [f"S-{i}" for i in ideas]
    assert f"S-{late}" not in {row[0] for row in rows}
    when = rows[0][WHEN_COLUMN]
    assert isinstance(when, datetime) and when.tzinfo is LONDON and when == clock.now()
    assert [row[0] async for row in store.responses.rows(ExportFilter(), LONDON)][-1] == (
        f"S-{late}"
    )


async def test_an_export_that_fails_half_way_leaves_no_file(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    database_files = sorted(os.listdir(tmp_path))  # SQLite's file and its WAL; PostgreSQL: none
    member = await store.members.join(
        telegram_user_id=7020, chat_id=7020, language="en", consent_version="1", agreed_to=["x"]
    )
    draft = await store.sharing.start(
        member_id=member.id, kind="idea", project_id=None, language="en"
    )
    await store.sharing.answer(draft.id, member.id, "idea", "More benches")
    await store.sharing.submit(draft.id)

    def broken(done: int, total: int) -> None:
        assert (done, total) == (1, 1)
        raise OSError("disk full")

    for fmt in ("csv", "xlsx", "json"):
        with pytest.raises(OSError, match="disk full"):
            await store.responses.export(
                fmt,
                tmp_path / "x.out",
                ExportFilter(),
                LONDON,
                actor="test",
                media_dir=tmp_path,
                media_out=tmp_path / "x-media.zip",
                progress=broken,
            )
        assert sorted(os.listdir(tmp_path)) == database_files
    with pytest.raises(BadExport, match="no project with the code 'nope'"):
        await store.responses.export(
            "csv", tmp_path / "x.csv", ExportFilter(project="nope"), LONDON, actor="test"
        )
    assert [e for e in await store.audit.entries() if e.action == "export"] == []


def test_a_folder_it_may_not_write_in_gets_one_sentence_and_no_traceback(
    tmp_path: Path,
) -> None:
    # As root (tests and CI) permission bits stop nothing, but /proc and /sys take no new
    # files from anyone; a folder without write permission stops everyone else.
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cocreate.db'}", "TIMEZONE": "Europe/London"}
    cases = {
        Path("/proc/x.csv"): "No such file or directory",
        Path("/sys/x.csv"): None,  # the kernel's reason: "Permission denied" or the like
    }
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases[locked / "x.csv"] = "Permission denied"
    runner = CliRunner()
    for out, reason in cases.items():
        args = ["export", "--format=csv", f"--out={out}", "--with-media"]
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 2, (out, result.output)
        said = f"cocreate: Could not write '{out}': "
        assert result.stderr.startswith(said) and result.stderr.count("\n") == 1, result.stderr
        if reason is not None:
            assert result.stderr == f"{said}{reason}.\n"
        assert result.stdout == ""
        assert not out.exists() and not out.with_name("x-media.zip").exists()


async def test_a_compact_date_is_the_same_whole_day_as_a_dashed_one(
    store: Store, clock: FakeClock, tmp_path: Path, database_url: str
) -> None:
    # --until 20261201 once meant midnight at the start of the day: nothing from that day.
    member = await store.members.join(
        telegram_user_id=7030, chat_id=7030, language="en", consent_version="1", agreed_to=["x"]
    )
    clock.set(datetime(2026, 12, 1, 23, 30, tzinfo=LONDON))
    draft = await store.sharing.start(
        member_id=member.id, kind="idea", project_id=None, language="en"
    )
    await store.sharing.answer(draft.id, member.id, "idea", "A late bus")
    await store.sharing.submit(draft.id)
    env = {"DATABASE_URL": database_url, "TIMEZONE": "Europe/London"}
    runner = CliRunner()

    def exported(*options: str) -> list[str]:
        out = tmp_path / "x.csv"
        args = ["export", "--format=csv", f"--out={out}", *options]
        result = runner.invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        return ids(read_csv(out.read_bytes()))

    async def rows(*options: str) -> list[str]:
        return await asyncio.to_thread(exported, *options)

    assert await rows("--until=2026-12-01") == ["S-1"]
    assert await rows("--until=20261201") == ["S-1"]
    assert await rows("--until=20261130") == await rows("--until=2026-11-30") == []
    assert await rows("--since=20261201", "--until=20261201") == ["S-1"]
    assert await rows("--since=20261202") == await rows("--since=2026-12-02") == []
    # A compact date with a time is that moment, as with dashes.
    assert await rows("--until=20261201T2330") == await rows("--until=2026-12-01T23:30") == []
    assert await rows("--since=20261201T2330") == ["S-1"]

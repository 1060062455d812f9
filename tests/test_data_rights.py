"""A member's rights over their data, through the real bot and the emulator: /mydata holds
everything kept about them; /delete leaves none of their words anywhere (tables, outbox,
database and WAL files); files are readable only by the bot's user; a file's stored name
never keeps a suffix the member chose."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.catalogue import t
from bot.settings import Settings
from conversations.media import stored_name
from storage.outbox import Outgoing
from storage.store import Store
from tests.dbs import sqlite_db
from tests.media_samples import voice
from tests.transcript import Person, holds_trace, join

MakePerson = Callable[..., Person]
STAFF = 9700
QUESTION = "What would make the park safer?"
ANSWER = "More lamps by the gate. Some days I want to die walking home there."
REPLY = "Thank you for telling us. Which gate do you mean?"
BACK = "The turquoise gate beside Zebedee's bakery."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


def sidecars(db_file: Path) -> tuple[Path, Path]:
    """The WAL and shared-memory files beside a database."""
    return Path(f"{db_file}-wal"), Path(f"{db_file}-shm")


def now() -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class World:
    staff: Person
    ann: Person
    bo: Person
    ann_id: int


async def texts(someone: Person, n: int = 1) -> list[str]:
    """The next n messages the bot sends them (delivered by the outbox's worker)."""
    return [m.text or "" for m in await someone.user.wait_messages(n, timeout=10)]


async def conversation(person: MakePerson, store: Store) -> World:
    """Ann answers an open question (words that raise a safeguarding flag) and tells a story
    with a voice note; a facilitator replies to her answer and she answers back. Bo answers
    too, and his data must stay."""
    staff = person(STAFF, "Fran")
    ann, bo = person(7301, "Ann"), person(7302, "Bo")
    await join(ann)
    await join(bo)
    await ann.taps("Share your story")
    await ann.says("Ann's own story about the turquoise gate")
    await ann.does(lambda u: u.send_voice(voice(2), duration=4))
    await ann.taps("Skip")
    await ann.taps("Save")
    await staff.says("/ask")
    await staff.says(QUESTION)
    for label in ("In their own words", "All members", "Now", "No reminder", "Send"):
        await staff.taps(label)
    await texts(ann)
    await texts(bo)
    await texts(staff)  # the delivery report, so that the next read is the answer back
    await ann.says(ANSWER)
    await bo.says("Bo wants a crossing.")
    await staff.says("/responses")
    await staff.taps(QUESTION)
    member = await store.members.by_telegram_id(7301)
    assert member is not None
    pseudonym = await store.pseudonyms.of(member.id)
    mine = [m for m in staff.user.messages if (m.text or "").startswith(f"{pseudonym}:")]
    await staff.taps("Write back", on=mine[-1].message_id)
    assert await staff.says(REPLY) == [t("en", "staff.reply.sent", pseudonym=pseudonym)]
    await texts(ann)
    await ann.taps("Answer back")
    assert await ann.says(BACK) == [t("en", "reply.passed_on")]
    await staff.user.wait_messages(1, timeout=10)  # the answer back reaches the facilitator
    return World(staff, ann, bo, member.id)


async def test_mydata_holds_answers_replies_answers_back_and_flags(
    person: MakePerson, store: Store
) -> None:
    world = await conversation(person, store)
    await world.ann.says("/mydata")
    summary, document = world.ann.user.messages[-2:]
    assert document.file_bytes is not None
    data = json.loads(document.file_bytes)
    [answer] = data["answers"]
    assert answer["question"] == QUESTION and answer["text"] == ANSWER
    [reply] = answer["replies"]
    assert reply["from_the_team"] == REPLY and reply["your_answer_back"] == BACK
    assert reply["sent_at"] and reply["answered_back_at"]
    [flag] = data["safeguarding_flags"]
    assert flag["answer_id"] == answer["id"] and flag["flagged_at"]
    assert data["profile"]["pseudonym"] == await store.pseudonyms.of(world.ann_id)
    assert data["stories"][0]["parts"]["what_happened"]["text"].startswith("Ann's own story")
    raw = document.file_bytes.decode()
    # Nothing of the facilitator's identity, nothing of Bo's.
    assert str(STAFF) not in raw and "Fran" not in raw and "Bo wants" not in raw
    assert summary.text is not None and "Answers to questions: 1" in summary.text


async def test_delete_takes_the_answer_back_out_of_the_outbox(
    person: MakePerson, store: Store
) -> None:
    world = await conversation(person, store)
    queued = await store.db.fetch_all("SELECT * FROM outbox WHERE text LIKE ?", (f"%{BACK}%",))
    assert len(queued) == 1 and queued[0]["member_id"] is None  # to the facilitator
    # One more row for Ann's chat that names no member (a notice), waiting to go.
    await store.outbox.enqueue_batch("notice", None, [Outgoing(None, 7301, "A notice for Ann")])
    await world.ann.says("/delete")
    assert await world.ann.taps("Yes, delete it all") == [t("en", "delete.done")]
    for table in await store.db.table_names():
        dump = repr([tuple(r) for r in await store.db.fetch_all(f"SELECT * FROM {table}")])
        for trace in ("turquoise gate", "Some days I want", "A notice for Ann", "7301"):
            assert not holds_trace(dump, trace), (table, trace)
    bo_rows = await store.db.fetch_all("SELECT text FROM answers")
    assert [r["text"] for r in bo_rows] == ["Bo wants a crossing."]


@pytest.mark.sqlite_only
async def test_after_delete_the_words_are_in_neither_the_database_nor_the_wal_file(
    person: MakePerson, store: Store
) -> None:
    world = await conversation(person, store)
    db_file = sqlite_db(store.db).file
    wal = sidecars(db_file)[0]
    on_disk = db_file.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"turquoise gate" in on_disk  # the check below can see the words
    # Freed space is zeroed (set by the bot, whatever the SQLite build's default).
    setting = await store.db.fetch_one("PRAGMA secure_delete")
    assert setting is not None and setting[0] == 1
    await world.ann.says("/delete")
    await world.ann.taps("Yes, delete it all")
    for path in (db_file, wal):
        if path.exists():
            content = path.read_bytes()
            for words in (b"turquoise gate", b"Some days I want", b"Zebedee"):
                assert words not in content, (path.name, words)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite_only
async def test_database_and_media_files_are_readable_only_by_the_bot(
    person: MakePerson, store: Store, settings: Settings, tmp_path: Path
) -> None:
    ann = person(7303, "Ann")
    await join(ann)
    await ann.taps("Share your story")
    await ann.does(lambda u: u.send_voice(voice(2), duration=4))
    [name] = os.listdir(settings.media_dir)
    assert mode(settings.media_dir) == 0o700
    assert mode(settings.media_dir / name) == 0o600
    db_file = sqlite_db(store.db).file
    assert mode(db_file) == 0o600
    for sidecar in sidecars(db_file):
        assert sidecar.exists() and mode(sidecar) == 0o600, sidecar.name

    # A new database in a folder that does not exist yet: folders 0700, files 0600.
    fresh = tmp_path / "data" / "db" / "cocreate.db"
    other = await Store.open(fresh, now)
    try:
        await other.members.count()
        assert mode(tmp_path / "data") == 0o700 and mode(fresh.parent) == 0o700
        assert [mode(p) for p in (fresh, *sidecars(fresh))] == [0o600] * 3
    finally:
        await other.close()

    # A database an older version left world-readable is made private when opened.
    old = tmp_path / "old.db"
    sqlite3.connect(old).close()
    old.chmod(0o644)
    older = await Store.open(old, now)
    try:
        assert mode(old) == 0o600
    finally:
        await older.close()


@pytest.mark.parametrize(
    ("file_name", "mime_type", "suffix"),
    [
        ("invoice.pdf.exe", "application/x-msdownload", ".bin"),
        ("invoice.pdf.exe", "application/pdf", ".pdf"),
        ("photo.JPG", "image/jpeg", ".jpg"),
        ("notes.sh", "text/x-sh", ".bin"),
    ],
)
async def test_a_stored_file_takes_its_suffix_from_its_type_never_its_name(
    person: MakePerson,
    store: Store,
    settings: Settings,
    file_name: str,
    mime_type: str,
    suffix: str,
) -> None:
    ann = person(7304, "Ann")
    await join(ann)
    await ann.taps("Share your story")
    await ann.does(
        lambda u: u.send_document(b"MZ\x90\x00", file_name=file_name, mime_type=mime_type)
    )
    [name] = os.listdir(settings.media_dir)
    assert Path(name).suffix == suffix and ".exe" not in name
    member = await store.members.by_telegram_id(7304)
    assert member is not None
    assert await store.sharing.media_files_of(member.id) == [name]


def test_media_names_never_start_like_a_spreadsheet_formula() -> None:
    names = [stored_name(".ogg") for _ in range(2000)]
    assert len(set(names)) == 2000
    assert not [n for n in names if n[0] in "=+-@\t\r"]

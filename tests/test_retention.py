"""Retention: with RETENTION_DAYS set, old responses and their files go; newer ones stay.
The FakeClock moves; the job's work (`run_retention`) is called directly."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.retention import JOB, run_retention
from bot.settings import Settings
from storage.outbox import Outgoing, Sent
from storage.store import Store
from tests.dbs import sqlite_db
from tests.media_samples import voice
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ORGANISER = 9500


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "retention_days": 30}


async def count(store: Store, table: str) -> int:
    row = await store.db.fetch_one(f"SELECT COUNT(*) AS n FROM {table}")
    return int(row["n"]) if row else 0


async def test_old_responses_and_their_files_are_deleted(
    person: MakePerson,
    store: Store,
    clock: FakeClock,
    settings: Settings,
    bot: CocreateApplication,
) -> None:
    assert bot.job_queue is not None and bot.job_queue.get_jobs_by_name(JOB)
    olu = person(ORGANISER, "Olu")
    ann, bo = person(7201, "Ann"), person(7202, "Bo")
    await join(ann)
    await join(bo)
    # 30 November: Ann's story with a voice note; Bo answers a question by voice note.
    await ann.taps("Share your story")
    await ann.does(lambda u: u.send_voice(voice(2), duration=4))
    for _ in range(2):
        await ann.taps("Skip")
    await ann.taps("Save")
    await olu.says("/ask")
    await olu.says("What would make the park safer?")
    for label in ("In their own words", "All members", "Now", "No reminder", "Send"):
        await olu.taps(label)
    await bo.user.wait_messages(1, timeout=10)
    await bo.does(lambda u: u.send_voice(voice(3), duration=6))

    # Bulk waits for CHAT_INTERVAL's quiet in each chat (bot/budget.py): let the round finish.
    async def round_done() -> bool:
        busy = await count(store, "outbox WHERE status IN ('queued', 'sending')")
        return not busy and bool(
            await count(store, "delivery_batches WHERE reported_at IS NOT NULL")
        )

    async with asyncio.timeout(10):
        while not await round_done():  # noqa: ASYNC110 - the sender works in another task
            await asyncio.sleep(0.05)
    old_files = sorted(os.listdir(settings.media_dir))
    assert len(old_files) == 2
    # A draft is not a response: Bo's story, left for later, stays however old it is.
    member = await store.members.by_telegram_id(7202)
    assert member is not None
    await store.sharing.start(
        member_id=member.id, kind="experience", project_id=None, language="en"
    )
    # 20 December: Ann's idea.
    clock.advance(timedelta(days=20))
    await ann.says("/menu")
    await ann.taps("Share an idea")
    await ann.says("A bench by the pond.")
    await ann.taps("Skip")
    await ann.taps("Maybe")
    await ann.taps("Save")

    # 29 December: nothing is 30 days old yet.
    clock.advance(timedelta(days=9))
    deleted = await run_retention(store, settings, clock)
    assert deleted is not None and deleted.responses == 0
    assert [e for e in await store.audit.entries() if e.action == "responses_deleted"] == []

    # 4 January: the story and the answer are more than 30 days old; the idea is not.
    clock.advance(timedelta(days=6))
    deleted = await run_retention(store, settings, clock)
    assert deleted is not None
    assert (deleted.count("stories"), deleted.count("ideas"), deleted.answers) == (1, 0, 1)
    assert sorted(deleted.files) == old_files
    assert os.listdir(settings.media_dir) == []
    kinds = await store.db.fetch_all("SELECT kind, status FROM submissions ORDER BY id")
    assert [(r["kind"], r["status"]) for r in kinds] == [
        ("experience", "draft"),
        ("idea", "submitted"),
    ]
    assert await count(store, "answers") == 0
    assert await count(store, "media") == 0
    assert await count(store, "submission_parts") == 2  # the idea's
    [entry] = [e for e in await store.audit.entries() if e.action == "responses_deleted"]
    assert entry.actor == "retention"
    assert json.loads(entry.detail) == {
        "days": 30,
        "stories": 1,
        "ideas": 0,
        "answers": 1,
        "files": 2,
        "messages": 3,  # the question to Bo, and Olu's delivery reports
    }
    # The sent messages of 30 November are kept (their counts make reports) but emptied.
    outbox = await store.db.fetch_all("SELECT text, status FROM outbox")
    assert len(outbox) == 3 and {(r["text"], r["status"]) for r in outbox} == {("", "sent")}
    # Nothing more to do; and with RETENTION_DAYS empty, nothing is deleted at all.
    again = await run_retention(store, settings, clock)
    assert again is not None and again.responses == 0
    clock.advance(timedelta(days=365))
    off = settings.model_copy(update={"retention_days": None})
    assert await run_retention(store, off, clock) is None
    assert await count(store, "submissions") == 2
    assert len([e for e in await store.audit.entries() if e.action == "responses_deleted"]) == 1


async def empty_old_messages(
    store: Store, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five old sent messages with a member's words, emptied by retention two at a time;
    one old but still queued, one new: both keep their words."""
    monkeypatch.setattr("bot.retention.BATCH", 2)
    old = [Outgoing(None, 8000 + i, f"P-OLD{i} wrote back: my secret number {i}") for i in range(5)]
    batch = await store.outbox.enqueue_batch("reply", None, old)
    rows = await store.outbox.rows_of(batch)
    await store.outbox.settle([Sent(r.id, 100 + r.id) for r in rows])
    await store.outbox.enqueue_batch("notice", None, [Outgoing(None, 8100, "still queued")])
    clock.advance(timedelta(days=31))
    await store.outbox.enqueue_batch("notice", None, [Outgoing(None, 8200, "new words")])

    deleted = await run_retention(store, settings, clock)
    assert deleted is not None and deleted.messages == 5 and deleted.responses == 0
    texts = await store.db.fetch_all("SELECT text, status FROM outbox ORDER BY id")
    assert [(r["text"], r["status"]) for r in texts] == [
        *[("", "sent")] * 5,
        ("still queued", "queued"),  # not sent yet: it keeps its words until it goes
        ("new words", "queued"),
    ]
    [entry] = [e for e in await store.audit.entries() if e.action == "responses_deleted"]
    assert json.loads(entry.detail)["messages"] == 5


async def test_old_sent_messages_are_emptied_however_many_batches_it_takes(
    store: Store, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await empty_old_messages(store, settings, clock, monkeypatch)
    # In no table any more (PostgreSQL keeps freed rows in its files until VACUUM reuses
    # their space: README, Outgrowing one machine).
    for table in await store.db.table_names():
        dump = repr([tuple(r) for r in await store.db.fetch_all(f"SELECT * FROM {table}")])
        assert "my secret number" not in dump, table


@pytest.mark.sqlite_only
async def test_old_sent_messages_are_gone_from_the_database_and_wal_files(
    store: Store, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await empty_old_messages(store, settings, clock, monkeypatch)
    # Gone from the disk too: the WAL file was emptied into the zeroed database file.
    db_file = sqlite_db(store.db).file
    for path in (db_file, Path(f"{db_file}-wal")):
        assert b"my secret number" not in path.read_bytes(), path.name

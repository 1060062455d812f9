"""Handling at once and in order: a slow download keeps no one else waiting; one person's
updates are handled in the order they were sent; someone flooding is told once that their
messages arrived, loses none of them, and is answered about their last one; each batch
getUpdates fetches is recorded in the inbox in one statement before it is confirmed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.app import build_application
from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication, DurableUpdateQueue
from bot.settings import Settings
from conversations.door import FLOOD
from emulator import Emulator
from storage.store import Store
from tests.dbs import Statements, sqlite_db
from tests.media_samples import voice
from tests.transcript import Person, join

MakePerson = Callable[..., Person]


async def downloading(emulator: Emulator) -> None:
    """Waits until the bot has asked for a file and started downloading it (the held fault
    has been taken)."""
    while any(f.method == "file" for f in emulator.faults.active):  # noqa: ASYNC110 (no event)
        await asyncio.sleep(0.01)


async def hold_a_voice_note(bo: Person, emulator: Emulator) -> Any:
    """Bo starts a story and sends a voice note whose download the emulator holds (up to 5 s,
    until released)."""
    await join(bo)
    assert await bo.says("story") == [t("en", "story.what_happened")]
    slow = emulator.faults.add("file", delay=5.0)
    bo.user.send_voice(voice(3), duration=7)
    await downloading(emulator)
    return slow


async def test_a_slow_download_keeps_no_one_else_waiting(
    person: MakePerson, emulator: Emulator, bot: CocreateApplication
) -> None:
    ann, bo = person(6201, "Ann"), person(6202, "Bo")
    await join(ann)
    slow = await hold_a_voice_note(bo, emulator)

    started = time.monotonic()
    replies = await ann.says("/help")
    waited = time.monotonic() - started
    assert replies
    assert not slow.released.is_set()  # Bo's download is still being held
    assert waited < 0.2, f"Ann waited {waited:.2f} s behind Bo's download"

    slow.released.set()
    [reply] = await bo.user.wait_messages(1, timeout=10)
    assert reply.text == t("en", "story.how_it_affected")


async def test_one_persons_messages_are_handled_in_the_order_sent(
    person: MakePerson, emulator: Emulator, bot: CocreateApplication, store: Store
) -> None:
    bo = person(6203, "Bo")
    slow = await hold_a_voice_note(bo, emulator)
    # Sent while the voice note is still being handled: they wait for it, in order.
    bo.user.send("It made me late for work.")
    last = bo.user.send("A text when the bus is not coming.")
    await asyncio.sleep(0.05)  # the bot has fetched them (they wait behind the voice note)
    slow.released.set()
    await bot.wait_handled(last)
    texts = [m.text for m in await bo.user.wait_messages(3, timeout=10)]
    assert texts[0] == t("en", "story.how_it_affected")
    assert texts[1] == t("en", "story.what_would_help")
    row = await store.db.fetch_one("SELECT id FROM submissions ORDER BY id DESC LIMIT 1")
    assert row is not None
    parts = await store.sharing.parts(int(row["id"]))
    assert parts["how_it_affected"].text == "It made me late for work."
    assert parts["what_would_help"].text == "A text when the bus is not coming."
    assert [m.kind for m in parts["what_happened"].media] == ["voice"]


async def test_someone_flooding_is_told_once_and_loses_nothing(
    person: MakePerson, emulator: Emulator, bot: CocreateApplication, store: Store
) -> None:
    bo = person(6204, "Bo")
    slow = await hold_a_voice_note(bo, emulator)
    bo.user.send("It made me late for work.")
    bo.user.send("A text when the bus is not coming.")
    for n in range(FLOOD + 20):
        bo.user.send(f"hello? {n}")
    last = bo.user.send("save")
    await asyncio.sleep(0.05)
    slow.released.set()
    await bot.wait_handled(last)
    await asyncio.sleep(0.05)
    texts = [m.text for m in bo.user.messages[-10:]]
    calm = t("en", "flood.got_them")
    sent_since = texts[texts.index(t("en", "story.what_happened")) + 1 :]
    # One calm message, no reply to each, and an answer to the last one: the story is saved.
    assert sent_since.count(calm) == 1
    assert len(sent_since) <= 4, sent_since
    assert t("en", "story.saved") in sent_since
    row = await store.db.fetch_one("SELECT id, status FROM submissions ORDER BY id DESC LIMIT 1")
    assert row is not None and row["status"] == "submitted"
    parts = await store.sharing.parts(int(row["id"]))
    assert parts["how_it_affected"].text == "It made me late for work."
    assert parts["what_would_help"].text == "A text when the bus is not coming."
    await store.inbox.flush()  # done-marks are written a moment later, together
    assert await store.inbox.unfinished() == []

    # Afterwards, Bo is answered as usual again.
    assert await bo.says("/help")


async def test_a_fetched_batch_is_recorded_in_one_statement_before_it_is_confirmed(
    emulator: Emulator, settings: Settings, store: Store, clock: FakeClock
) -> None:
    async with build_application(settings, store, clock) as bot:  # not polling: fetched by hand
        await fetch_by_hand(emulator, bot, store)


async def fetch_by_hand(emulator: Emulator, bot: CocreateApplication, store: Store) -> None:
    users = [emulator.user(6300 + n, first_name="Cy") for n in range(30)]
    ids = [u.send("/start") for u in users]
    with Statements(store.db) as statements:
        updates = await bot.bot.get_updates(offset=ids[0], timeout=0)
    assert [u.update_id for u in updates] == ids
    assert not any(emulator.is_confirmed(i) for i in ids)
    inserts = [s for s in statements if "INTO inbox" in s]
    assert len(inserts) == 1
    recorded = await store.db.fetch_all(
        "SELECT update_id FROM inbox WHERE done_at IS NULL AND payload IS NOT NULL"
        " ORDER BY update_id"
    )
    assert [r["update_id"] for r in recorded] == ids
    # A redelivery of the same batch is recognised: nothing is handled twice.
    again = await bot.bot.get_updates(offset=ids[0], timeout=0)
    assert len(again) == 30
    queue = bot.update_queue
    assert isinstance(queue, DurableUpdateQueue)
    for update in again:
        await queue.put(update)
    assert not queue.taken(ids[0])  # none was accepted


@pytest.mark.sqlite_only
async def test_a_story_part_reads_the_member_once(
    bot: CocreateApplication, person: MakePerson, store: Store, monkeypatch: Any
) -> None:
    """The hot path: every flow asks who the person is, but one update reads their member row
    from the database once, unless it wrote something in between; and it goes to the
    database's thread only a few times: who and where the person is, their draft, the part
    with their place (one segment), and the group's COMMIT."""
    ann = person()
    await join(ann)
    assert await ann.says("story") == [t("en", "story.what_happened")]
    statements: list[str] = []
    trips: list[str] = []
    await store.inbox.flush()  # the last update's done-mark, kept for a moment: not ours
    # Nor is any other write that began before and waits for its group commit: on a loaded
    # machine, the timer's flush of that done-mark had its COMMIT counted here once.
    await store.db.durable()
    run: Any = sqlite_db(store.db)._conn._execute  # every trip to the thread goes through it

    async def counted(work: Any, *args: Any) -> Any:
        trips.append(getattr(work, "__name__", "?"))
        return await run(work, *args)

    monkeypatch.setattr(sqlite_db(store.db)._conn, "_execute", counted)
    await sqlite_db(store.db)._conn.set_trace_callback(statements.append)
    try:
        await ann.says("The bus did not come.")
    finally:
        await sqlite_db(store.db)._conn.set_trace_callback(lambda _: None)
    reads = [s for s in statements if s.startswith("SELECT * FROM members WHERE telegram")]
    assert len(reads) == 1
    # Receiving the batch (its INSERT, its COMMIT), then the update's five: who and where,
    # the draft, the part, the session, the COMMIT. Before group commit it was about 20.
    assert len([t for t in trips if t != "set_trace_callback"]) <= 7, trips

"""Whole process: a broadcast to 300 members survives a SIGKILL part-way, and nobody gets it twice.

`cocreate run` (python -m bot run) sends from the outbox at 30 messages a second, up to
`DEFAULT_CONCURRENCY` calls at once; the test kills it once about a third has gone, starts it
again, and compares the emulator's copies with the outbox rows.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from bot.catalogue import t
from bot.clock import SystemClock
from bot.delivery import DEFAULT_CONCURRENCY
from emulator import Emulator
from storage.outbox import Outgoing
from storage.store import Store
from tests.test_process import BotProcess, wait_until

pytestmark = pytest.mark.process

MEMBERS = 300
FIRST_ID = 5001
AUTHOR = 4999  # the facilitator who sent it, and gets the report
TEXT = "The library opens late on Thursdays now."


async def test_a_broadcast_to_300_members_survives_sigkill_without_a_second_copy(
    tmp_path: Path, emulator: Emulator
) -> None:
    process = BotProcess(tmp_path, emulator, QUIET_HOURS="", LOG_LEVEL="INFO")
    ids = range(FIRST_ID, FIRST_ID + MEMBERS)
    # They joined before: members in the database, with chats open in Telegram.
    store = await Store.open(process.db, SystemClock("Europe/London").now)
    try:
        members = [
            await store.members.join(
                telegram_user_id=user_id,
                chat_id=user_id,
                language="en",
                consent_version="1",
                agreed_to=["stories"],
            )
            for user_id in ids
        ]
        batch_id = await store.outbox.enqueue_batch(
            "broadcast",
            1,
            [Outgoing(m.id, m.chat_id, TEXT) for m in members],
            author_chat_id=AUTHOR,
        )
    finally:
        await store.close()
    for user_id in (*ids, AUTHOR):
        emulator.open_chat(user_id)

    def delivered() -> int:
        return sum(emulator.sent_to(user_id) for user_id in ids)

    await process.start()
    await wait_until(lambda: delivered() >= MEMBERS // 3)
    await process.kill()
    assert delivered() < MEMBERS, "killed before the end"

    await process.start()
    await wait_until(lambda: emulator.sent_to(AUTHOR) == 1, timeout=45)
    assert await process.terminate() == 0

    with sqlite3.connect(process.db) as conn:
        rows = conn.execute(
            "SELECT m.telegram_user_id, o.status, o.last_error FROM outbox o"
            " JOIN members m ON m.id = o.member_id WHERE o.batch_id = ?",
            (batch_id,),
        ).fetchall()
    status = {user_id: row_status for user_id, row_status, _ in rows}
    copies = {user_id: emulator.sent_to(user_id) for user_id in ids}
    calls = Counter(params["chat_id"] for params in emulator.calls_to("sendMessage"))

    # Every row is final: sent, or unconfirmed for at most the group in hand at the kill
    # (calls in flight, or answered but not yet recorded).
    assert len(rows) == MEMBERS and set(status) == set(ids)
    unconfirmed = [user_id for user_id, s in status.items() if s == "unconfirmed"]
    assert len(unconfirmed) <= DEFAULT_CONCURRENCY
    assert all(s == "sent" for user_id, s in status.items() if user_id not in unconfirmed)
    assert all(error == "interrupted" for _, s, error in rows if s == "unconfirmed")
    # Nobody got two copies, and nobody was even tried twice (there were no faults).
    assert max(calls[user_id] for user_id in ids) == 1
    # Sent means exactly one copy; an unconfirmed one has one copy or none (the kill came
    # after or before the request reached Telegram) and the report says "not sure".
    assert all(copies[user_id] == 1 for user_id, s in status.items() if s == "sent")
    assert all(copies[user_id] <= 1 for user_id in unconfirmed)
    sent = MEMBERS - len(unconfirmed)
    assert sent <= sum(copies.values()) <= sent + len(unconfirmed)

    [report] = emulator.user(AUTHOR).messages
    lines = [
        t("en", "delivery.report.done"),
        t("en", "delivery.report.reached", sent=sent, total=MEMBERS),
    ]
    if unconfirmed:
        lines.append(t("en", "delivery.report.unconfirmed", count=len(unconfirmed)))
    assert report.text == "\n".join(lines)
    log = process.log.read_text()
    assert TEXT not in log, "message text never reaches the log"

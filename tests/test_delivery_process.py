"""Whole process: a broadcast survives a SIGKILL part-way; nobody gets it twice, and only the
calls truly in flight at the kill are left unconfirmed (and named in the report).

`cocreate run` (python -m bot run) sends from the outbox at BROADCAST_RATE messages a second,
evenly, a row marked 'sending' only as its request leaves; the tests kill it part-way, start it
again, and compare the emulator's copies with the outbox rows. They run it at 100 a second
(more calls in flight at once than at the default 30, and quicker); tests/test_delivery_budget.py
checks the pacing at the defaults.
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

RATE = "100"  # BROADCAST_RATE
MEMBERS = 300
FIRST_ID = 5001
AUTHOR = 4999  # the facilitator who sent it, and gets the report
TEXT = "The library opens late on Thursdays now."


async def test_a_broadcast_to_300_members_survives_sigkill_without_a_second_copy(
    tmp_path: Path, emulator: Emulator
) -> None:
    process = BotProcess(tmp_path, emulator, QUIET_HOURS="", LOG_LEVEL="INFO", BROADCAST_RATE=RATE)
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

    # Every row is final: sent, or unconfirmed for at most the rows handed to the budget at
    # the kill whose request had left (calls in flight, or answered but not yet recorded).
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
        store = await Store.open(process.db, SystemClock("Europe/London").now)
        try:
            by_user = {m.telegram_user_id: m.id for m in members}
            names = [await store.pseudonyms.of(by_user[u]) for u in sorted(unconfirmed)]
        finally:
            await store.close()
        lines.append(t("en", "delivery.report.unconfirmed_names", names=", ".join(names)))
    assert report.text == "\n".join(lines)
    log = process.log.read_text()
    assert TEXT not in log, "message text never reaches the log"


KILL_MEMBERS = 199
KILL_FIRST = 6001
KILL_AUTHOR = 5999
HANGING = KILL_FIRST + 85  # Telegram takes its time to answer this one: in flight at the kill
WRITERS = range(KILL_FIRST, KILL_FIRST + 80)
QUESTION = "What should the youth club do in the holidays?"


async def test_a_sigkill_mid_broadcast_leaves_unconfirmed_only_the_calls_in_flight(
    tmp_path: Path, emulator: Emulator
) -> None:
    process = BotProcess(tmp_path, emulator, QUIET_HOURS="", LOG_LEVEL="INFO", BROADCAST_RATE=RATE)
    ids = range(KILL_FIRST, KILL_FIRST + KILL_MEMBERS)
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
            "question",
            1,
            [Outgoing(m.id, m.chat_id, QUESTION) for m in members],
            author_chat_id=KILL_AUTHOR,
        )
    finally:
        await store.close()
    for user_id in (*ids, KILL_AUTHOR):
        emulator.open_chat(user_id)
    emulator.faults.add("sendMessage", delay=60, chat_id=HANGING)

    def asked() -> Counter[int]:
        """sendMessage calls with the question, by chat."""
        return Counter(
            int(p["chat_id"]) for p in emulator.calls_to("sendMessage") if p["text"] == QUESTION
        )

    def copies(user_id: int) -> int:
        return sum(1 for m in emulator.user(user_id).messages if m.text == QUESTION)

    def replies() -> int:
        return sum(len(emulator.user(u).messages) - copies(u) for u in WRITERS)

    await process.start()
    await wait_until(lambda: HANGING in asked() and all(copies(u) for u in WRITERS))
    # Members who already have the question write to the bot: its replies share the budget.
    for user_id in WRITERS:
        emulator.user(user_id).send("/help")
    await wait_until(lambda: replies() >= 30)
    await process.kill()
    in_flight_at_kill = {u for u in asked() if copies(u) == 0}
    emulator.faults.clear()

    await process.start()
    await wait_until(lambda: emulator.sent_to(KILL_AUTHOR) == 1, timeout=45)
    assert await process.terminate() == 0

    with sqlite3.connect(process.db) as conn:
        rows = conn.execute(
            "SELECT m.telegram_user_id, o.status FROM outbox o"
            " JOIN members m ON m.id = o.member_id WHERE o.batch_id = ?",
            (batch_id,),
        ).fetchall()
    status = dict(rows)
    calls = asked()
    unconfirmed = sorted(user_id for user_id, s in status.items() if s == "unconfirmed")
    assert all(s in ("sent", "unconfirmed") for s in status.values())
    assert max(calls[u] for u in ids) == 1, "nobody is tried twice"
    # Every row that had not left at the kill (still queued) went out after the restart, once.
    assert all(copies(u) == 1 for u in ids if u not in unconfirmed)
    # Unconfirmed: the calls in flight at the kill (Telegram had them and had not answered, or
    # had answered and the answer was not recorded), and at most the one whose request was
    # leaving at that very instant. Never a row that was still waiting for its turn.
    assert HANGING in unconfirmed
    assert in_flight_at_kill <= set(unconfirmed)
    never_left = [u for u in unconfirmed if calls[u] == 0]
    assert len(never_left) <= 1, never_left

    # The author's report names them (pseudonyms), with a button to send to them again.
    store = await Store.open(process.db, SystemClock("Europe/London").now)
    try:
        by_user = {m.telegram_user_id: m.id for m in members}
        names = [await store.pseudonyms.of(by_user[u]) for u in unconfirmed]
    finally:
        await store.close()
    [report] = emulator.user(KILL_AUTHOR).messages
    sent = KILL_MEMBERS - len(unconfirmed)
    assert report.text == "\n".join(
        [
            t("en", "delivery.report.done"),
            t("en", "delivery.report.reached", sent=sent, total=KILL_MEMBERS),
            t("en", "delivery.report.unconfirmed", count=len(unconfirmed)),
            t("en", "delivery.report.unconfirmed_names", names=", ".join(names)),
        ]
    )
    assert report.buttons == [[t("en", "delivery.send_again", count=len(unconfirmed))]]

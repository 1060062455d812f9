"""Regression tests for what the multi-process test (tests/test_processes_pg.py) found, each
small enough to run on both databases without starting processes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock, SystemClock
from conversations.onboarding import AGREED_TO, CONSENT_VERSION
from emulator import Emulator
from storage.questions import audience_query
from storage.store import Store
from tests.test_process import BotProcess, wait_until


async def test_a_question_still_being_sent_takes_answers_already(
    store: Store, clock: FakeClock
) -> None:
    """Telegram can show a member the question before the sender has recorded its row 'sent'
    (rows are recorded several at a time; a sender killed meanwhile leaves it 'sending' until
    another process marks it unconfirmed). A member pressing its button has it: the answer
    counts, it is not "this question has closed"."""
    member = await store.members.join(
        telegram_user_id=4242,
        chat_id=4242,
        language="en",
        consent_version=CONSENT_VERSION,
        agreed_to=AGREED_TO,
    )
    await store.members.mark_onboarded(member.id)
    now = clock.now()
    await store.questions.create(
        author_id=9,
        author_chat_id=9,
        author_language="en",
        text="Should the hall open on Sundays?",
        kind="yesno",
        options=[],
        audience="everyone",
        repeat="once",
        starts_at=now,
        reminder_hours=None,
    )
    [(round_, _)] = await store.questions.due_rounds(now)
    texts = {"en": ("Should the hall open on Sundays?", None)}
    batch_id, queued = await store.outbox.enqueue_query(
        "question", round_.id, audience_query("everyone"), texts, "en"
    )
    assert queued == 1 and batch_id is not None
    await store.questions.mark_round_sent(
        round_.id,
        batch_id=batch_id,
        sent_at=now,
        closes_at=now + timedelta(days=7),
        reminder_due_at=None,
        next_due_at=None,
    )
    assert await store.questions.open_rounds_for(member.id, now) == []  # not sent yet
    [row] = await store.outbox.rows_of(batch_id)
    assert await store.outbox.mark_sending(row.id) == "sending"  # its request has left
    assert [r.id for r, _ in await store.questions.open_rounds_for(member.id, now)] == [round_.id]


@pytest.mark.process
async def test_an_answer_button_pressed_as_the_process_dies_is_stored_after_the_restart(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The choice is stored before the button is answered: answering it commits the update
    as applied, so a kill just then used to lose the answer (the replay only asked again)."""
    process = BotProcess(tmp_path, emulator, QUIET_HOURS="", LOG_LEVEL="INFO")
    store = await Store.open(process.db, SystemClock("Europe/London").now)
    try:
        member = await store.members.join(
            telegram_user_id=4343,
            chat_id=4343,
            language="en",
            consent_version=CONSENT_VERSION,
            agreed_to=AGREED_TO,
        )
        await store.members.mark_onboarded(member.id)
        await store.questions.create(
            author_id=9,
            author_chat_id=9,
            author_language="en",
            text="Should the hall open on Sundays?",
            kind="yesno",
            options=[],
            audience="everyone",
            repeat="once",
            starts_at=datetime.now(UTC),
            reminder_hours=None,
        )
    finally:
        await store.close()
    ann = emulator.open_chat(4343)
    await process.start()
    [question] = await ann.wait_messages(1, timeout=30)
    # Telegram takes its time over the button's answer: the process dies meanwhile.
    emulator.faults.add(method="answerCallbackQuery", delay=8.0, times=1)
    yes = next(text for row in question.buttons for text in row if text.endswith("Yes"))
    ann.press(yes, message_id=question.message_id)
    await wait_until(lambda: any(m == "answercallbackquery" for m, _ in emulator.calls))
    await process.kill()
    await process.start()
    await wait_until(lambda: process.unfinished() == 0)
    assert await process.terminate() == 0
    with sqlite3.connect(process.db) as conn:
        assert conn.execute("SELECT choice FROM answers").fetchall() == [("yes",)]

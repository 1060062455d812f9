"""Regression tests for what the multi-process test (tests/test_processes_pg.py) found, each
small enough to run on both databases without starting processes."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FakeClock
from conversations.onboarding import AGREED_TO, CONSENT_VERSION
from storage.questions import audience_query
from storage.store import Store


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
    assert queued == 1
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

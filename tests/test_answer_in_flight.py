"""A typed answer to a question Telegram showed before the sender recorded it 'sent'.

The outbox's sender records its rows 'sent' (with the message id Telegram gave) several at a
time, after their requests came back; with several processes, or under load, a while later.
A member who types their answer the moment the question arrives can be quicker: the answer
must still count, not get "Sorry, I did not get that" (seen once in CI on PostgreSQL,
tests/test_typing.py::test_answering_and_answering_back_end_with_the_menu_button).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9100
QUESTION = "What would make the park safer?"


async def as_if_still_sending(store: Store, kind: str) -> None:
    """Once the sender has recorded the batch's row 'sent', puts it back as it was between
    the request coming back and that record: 'sending', no message id yet (the window a
    quick member can hit)."""
    for _ in range(200):
        row = await store.db.fetch_one(
            "SELECT o.id FROM outbox o JOIN delivery_batches b ON b.id = o.batch_id"
            " WHERE b.kind = ? AND o.status = 'sent'",
            (kind,),
        )
        if row is not None:
            break
        await asyncio.sleep(0.05)
    assert row is not None
    await store.db.execute(
        "UPDATE outbox SET status = 'sending', telegram_message_id = NULL WHERE id = ?",
        (row["id"],),
    )


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def test_a_typed_answer_counts_while_its_question_is_still_being_recorded(
    person: MakePerson, store: Store
) -> None:
    fran = person(STAFF, "Fran")
    bo = person(1002, "Bo")
    await join(bo)
    await fran.says("/ask")
    await fran.says(QUESTION)
    for label in ("In their own words", "All members", "Now", "No reminder", "Send"):
        await fran.taps(label)
    await bo.user.wait_messages(1, timeout=10)
    assert (bo.user.messages[-1].text or "").startswith(QUESTION)
    await as_if_still_sending(store, "question")
    [saved] = await bo.says("More lights.")
    assert saved.startswith(t("en", "questions.saved", when="").split("{")[0][:20])
    answers = await store.db.fetch_all("SELECT text FROM answers")
    assert [a["text"] for a in answers] == ["More lights."]

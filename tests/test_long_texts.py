"""Long texts never break a view: every view that quotes a member's words works when those
words are as long as Telegram allows (4,096 characters), though its heading makes the whole
longer than one message may be. The emulator refuses a longer message, as Telegram does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t
from conversations.replies import TELEGRAM_LIMIT, split_text
from emulator import BotMessage
from storage.store import Store
from tests.test_approving import share_idea
from tests.test_voting import SEE
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9400
QUESTION = "What would make the bus better?"
WORDS = ("the", "bus", "was", "late", "again", "and", "nobody", "came")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


def long_words(opening: str = "", size: int = TELEGRAM_LIMIT) -> str:
    """Ordinary words, exactly `size` characters in all."""
    words = itertools.cycle(WORDS)
    text = opening
    while len(text) < size:
        text += f"{next(words)} "
    return text[: size - 1] + "s"


def whole(messages: list[BotMessage]) -> str:
    """The text of several messages as one (they were cut at spaces)."""
    assert all(len(m.text or "") <= TELEGRAM_LIMIT for m in messages)
    return " ".join(m.text or "" for m in messages)


async def ask_open(staff: Person, question: str, when: str = "Now", at: str = "") -> None:
    await staff.says("/ask")
    await staff.says(question)
    await staff.taps("In their own words")
    await staff.taps("All members")
    await staff.taps(when)
    if at:
        await staff.says(at)
    await staff.taps("No reminder")
    await staff.taps("Send")


async def answered_at_length(
    person: MakePerson, store: Store, words: str
) -> tuple[Person, Person, str]:
    """The organiser asks an open question; Ann answers with `words`. Returns her pseudonym."""
    staff = person(STAFF, "Fran")
    await staff.says("/roles")
    ann = person(7400, "Ann")
    await join(ann)
    await ask_open(staff, QUESTION)
    await ann.user.wait_messages(1, timeout=10)
    await staff.user.wait_messages(1, timeout=10)  # the delivery report
    await ann.says(words)
    member_row = await store.members.by_telegram_id(ann.user.id)
    assert member_row is not None
    return staff, ann, await store.pseudonyms.of(member_row.id)


def test_split_text_cuts_between_words_and_keeps_everything() -> None:
    words = long_words()
    pieces = split_text("From Blue Heron (an answer):\n\n", words)
    assert len(pieces) == 2 and all(len(p) <= TELEGRAM_LIMIT for p in pieces)
    assert " ".join(pieces) == f"From Blue Heron (an answer):\n\n{words}"
    assert pieces[0].split()[-1] in WORDS and pieces[1].split()[0] in WORDS  # no word cut
    assert split_text("Your answer: ", "short", suffix=". You can change it.") == [
        "Your answer: short. You can change it."
    ]
    # A word longer than a message has to be cut; emoji count twice, as Telegram counts.
    assert [len(p) for p in split_text("", "x" * 9000)] == [4096, 4096, 808]
    assert [len(p) for p in split_text("", "😀" * 4096)] == [2048, 2048]


async def test_read_it_shows_the_longest_flagged_words(person: MakePerson, store: Store) -> None:
    words = long_words("Some days I want to die. ")
    staff, _, pseudonym = await answered_at_length(person, store, words)
    [alert] = await staff.user.wait_messages(1, timeout=10)
    assert alert.text == t("en", "safeguarding.alert", pseudonym=pseudonym)
    await staff.taps(t("en", "safeguarding.read"))
    shown = staff.user.messages[-2:]
    assert whole(shown) == t(
        "en", "safeguarding.item", pseudonym=pseudonym, what=QUESTION, text=words
    )


async def test_responses_keeps_the_write_back_button_of_a_long_answer(
    person: MakePerson, store: Store
) -> None:
    words = long_words()
    staff, _, pseudonym = await answered_at_length(person, store, words)
    await staff.says("/responses")
    header, first, last = await staff.taps(QUESTION)
    assert header.startswith(f"“{QUESTION}”")
    assert f"{first} {last}" == f"{pseudonym}: {words}"
    *_, before, after = staff.user.messages
    assert before.buttons == [] and after.buttons == [[t("en", "staff.responses.reply")]]
    assert await staff.taps(t("en", "staff.responses.reply")) == [
        t("en", "staff.reply.ask", pseudonym=pseudonym)
    ]


async def test_a_long_answer_back_arrives_whole(person: MakePerson, store: Store) -> None:
    staff, ann, pseudonym = await answered_at_length(person, store, "Fewer stops.")
    await staff.says("/responses")
    await staff.taps(QUESTION)
    await staff.taps(t("en", "staff.responses.reply"))
    await staff.says("Which stops?")
    await ann.user.wait_messages(1, timeout=10)
    await ann.taps(t("en", "reply.answer_back"))
    words = long_words()
    assert await ann.says(words) == [t("en", "reply.passed_on")]
    back = await staff.user.wait_messages(2, timeout=10)
    assert whole(back) == t("en", "staff.reply.answered_back", pseudonym=pseudonym, text=words)
    query = (
        "SELECT o.status FROM outbox o JOIN delivery_batches b ON b.id = o.batch_id"
        " WHERE b.kind = 'reply' AND o.member_id IS NULL"
    )
    async with asyncio.timeout(10):  # until the sender has recorded the second one
        while True:
            statuses = [r["status"] for r in await store.db.fetch_all(query)]
            if "sending" not in statuses:
                break
            await asyncio.sleep(0.05)
    assert statuses == ["sent", "sent"]


async def test_questions_shows_a_long_answer_with_the_buttons_last(
    person: MakePerson, store: Store
) -> None:
    words = long_words()
    _, ann, _ = await answered_at_length(person, store, words)
    first, last = await ann.says("/questions")
    question = f"{QUESTION}\n\n{t('en', 'questions.hint.open')}"
    assert f"{first} {last}" == f"{question}\n\n{t('en', 'questions.your_answer', answer=words)}"
    *_, before, after = ann.user.messages
    assert before.buttons == [] and after.buttons == [[f"1. {t('en', 'common.skip')}"]]


async def test_responses_offers_only_questions_already_sent(
    person: MakePerson, store: Store
) -> None:
    staff, _, _ = await answered_at_length(person, store, "Fewer stops.")
    await ask_open(staff, "Will you come next week?", "At a date and time", "05/12/2026 10:00")
    await staff.says("/responses")
    assert staff.buttons == [QUESTION]


def joined(parts: list[str]) -> str:
    """Messages split between words, put back together (a space where they were cut)."""
    return " ".join(parts)


async def test_an_idea_as_long_as_telegram_allows_is_approved_shown_and_weighed(
    person: MakePerson, store: Store
) -> None:
    """Issue 12's views quote a member's idea whole: the waiting list, the author's "it is
    approved", the idea shown to weigh, and /myvotes all work with 4,096 characters."""
    olu = person(STAFF, "Olu")
    await olu.says("hello")
    olu.user.unread()
    ann, bo = person(9401, "Ann"), person(9402, "Bo")
    await join(ann)
    await join(bo)
    idea = long_words("A bench ")
    await share_idea(ann, idea)
    await ann.taps("Others, without my name")
    ann.user.unread()

    await olu.says("/ideas")
    waiting = await olu.taps(t("en", "ideas.desk.wait"))
    assert len(waiting) > 1 and idea in joined(waiting)  # split, every word kept
    assert olu.buttons[0] == "Approve"  # the buttons come with the last part
    assert (await olu.taps("Approve"))[0] == t("en", "approving.approved")
    told = await ann.user.wait_messages(2, timeout=10)
    assert idea in joined([m.text or "" for m in told])

    await bo.says("/menu")
    shown = await bo.taps(SEE)
    assert len(shown) > 1 and idea in joined(shown)
    assert "Agree" in bo.buttons
    await bo.taps("Agree")
    mine = await bo.says("/myvotes")
    assert mine and all(len(text) <= TELEGRAM_LIMIT for text in mine)
    counted = await store.db.fetch_one("SELECT votes FROM statements")
    assert counted is not None and counted["votes"] == 1

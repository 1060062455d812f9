"""The one door: words that suggest a risk get help first, at every step and before joining;
a member's words are also flagged for staff; a risky message is never answered as if it made
no sense; an update handed in twice is applied once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from telegram import Update

from bot.catalogue import t
from bot.receiving import CocreateApplication
from emulator import Emulator
from storage.store import Store
from tests.transcript import NOT_STARTED, Person, join

MakePerson = Callable[..., Person]
STAFF = 9501
HELP = t("en", "safeguarding.help")
NOT_UNDERSTOOD = {
    t("en", key)
    for key in ("bad.idle", "bad.choice", "sharing.choose", "bad.not_started", "bad.not_text")
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def flags(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.db.fetch_all("SELECT * FROM safeguarding_flags")]


async def alerted(staff: Person, store: Store) -> str:
    """The alert staff got for the newest flag (through the outbox), and that it holds no words."""
    [alert] = await staff.user.wait_messages(1, timeout=10)
    [*_, newest] = await flags(store)
    member = await store.db.fetch_one("SELECT id FROM members WHERE id = ?", (newest["member_id"],))
    assert member is not None
    pseudonym = await store.pseudonyms.of(int(member["id"]))
    assert alert.text == t("en", "safeguarding.alert", pseudonym=pseudonym)
    return pseudonym


async def test_at_the_menu_risky_words_get_help_a_flag_and_an_alert(
    person: MakePerson, store: Store
) -> None:
    staff = person(STAFF, "Sam")
    await staff.says("/help")  # staff have opened the bot
    ann = person(5101, "Ann")
    await join(ann)
    replies = await ann.says("I feel suicidal tonight")
    assert replies[0] == HELP
    assert not NOT_UNDERSTOOD & set(replies)
    [flag] = await flags(store)
    assert flag["words"] == "I feel suicidal tonight" and flag["place"] == "menu"
    pseudonym = await alerted(staff, store)
    # Staff read the words from the alert.
    [read] = await staff.taps("Read it")
    assert "I feel suicidal tonight" in read and pseudonym in read


async def test_at_a_storys_review_step_the_help_comes_and_the_story_waits(
    person: MakePerson, store: Store
) -> None:
    bo = person(5102, "Bo")
    await join(bo)
    await bo.taps("Share your story")
    for _ in range(3):
        await bo.taps("Skip")
    replies = await bo.says("Honestly I want to die")
    assert replies[0] == HELP
    assert not NOT_UNDERSTOOD & set(replies)
    [flag] = await flags(store)
    assert flag["submission_id"] is not None and flag["place"] == "share:review"
    # The story is still there to save.
    assert await bo.taps("Save") == [t("en", "story.saved"), t("en", "sharing.next")]


async def test_an_answer_back_with_risky_words_gets_help_first(
    person: MakePerson, store: Store
) -> None:
    staff = person(STAFF, "Sam")
    cai = person(5103, "Cai")
    await join(cai)
    await staff.says("/ask")
    await staff.says("What would make the park safer?")
    for label in ("In their own words", "All members", "Now", "No reminder", "Send"):
        await staff.taps(label)
    await cai.user.wait_messages(1, timeout=10)
    await cai.says("More lights on the path.")
    await staff.says("/responses")
    await staff.taps("What would make the park safer?")
    await staff.taps("Write back")
    await staff.says("Thank you. Which path?")
    await cai.user.wait_messages(1, timeout=10)
    await cai.taps("Answer back")
    replies = await cai.says("I want to kill myself")
    assert replies[0] == HELP
    assert replies[1:] == [t("en", "reply.passed_on")]
    [flag] = await flags(store)
    assert flag["words"] == "I want to kill myself"


async def test_before_joining_help_comes_and_nothing_is_kept(
    person: MakePerson, store: Store
) -> None:
    dee = person(5104, "Dee")
    replies = await dee.says("hello, I want to die")
    assert replies == [HELP]
    assert await flags(store) == []
    assert await store.db.fetch_all("SELECT * FROM sessions") == []
    assert await store.db.fetch_all("SELECT * FROM members") == []
    # Half-way through joining, before consent: help, and still nothing flagged.
    await dee.says("/start")
    replies = await dee.says("I want to end my life")
    assert replies[0] == HELP
    assert not NOT_UNDERSTOOD & set(replies)
    assert await flags(store) == []


async def test_the_same_update_handed_in_twice_is_applied_once(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    eve = person(5105, "Eve")
    await join(eve)
    await eve.taps("Share your story")
    update_id = eve.user.send("The lift was broken again.")
    await bot.wait_handled(update_id)
    payload = {  # the same update again, as Telegram sent it
        "update_id": update_id,
        "message": {
            "message_id": 10_000,
            "date": 1_764_496_800,
            "chat": {"id": 5105, "type": "private", "first_name": "Eve"},
            "from": {"id": 5105, "is_bot": False, "first_name": "Eve"},
            "text": "The lift was broken again.",
        },
    }
    # A replay: the same update handled again (as after a crash before its done-mark).
    await bot.process_update(Update.de_json(payload, bot.bot))
    drafts = await store.db.fetch_all("SELECT part, text FROM submission_parts")
    assert [(r["part"], r["text"]) for r in drafts] == [
        ("what_happened", "The lift was broken again.")
    ]
    session = await store.sessions.get(5105)
    assert (session.flow, session.state) == ("share", "how_it_affected")


async def test_staff_who_never_joined_are_never_sent_into_member_sign_up(
    person: MakePerson,
) -> None:
    olu = person(STAFF, "Olu")
    await olu.says("/ask")
    await olu.says("Should the park stay open later?")
    await olu.taps(t("en", "staff.kind.yesno"))
    await olu.taps("All members")
    await olu.taps("Now")
    await olu.taps("No reminder")
    # A button of the preview itself: what members will see, pressed by the organiser.
    replies = await olu.taps(t("en", "questions.yes"), on=olu.user.messages[-2].message_id)
    assert replies == [t("en", "staff.not_a_member")]
    assert NOT_STARTED not in replies
    assert await olu.says("/help") == [t("en", "help.text"), t("en", "staff.not_a_member")]
    # /ask goes on: Send still works.
    assert (await olu.taps("Send"))[0] != t("en", "bad.old_button")


async def test_if_the_help_cannot_be_sent_the_flag_and_the_alert_still_go(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    staff = person(STAFF, "Sam")
    await staff.says("/help")
    fay = person(5106, "Fay")
    await join(fay)
    emulator.faults.add(method="sendMessage", status=500, chat_id=5106, times=1)
    await fay.says("I want to die")
    [flag] = await flags(store)
    assert flag["words"] == "I want to die"
    await alerted(staff, store)


async def test_a_refused_staff_command_looks_exactly_like_an_unknown_one(
    person: MakePerson,
) -> None:
    gus = person(5107, "Gus")
    await join(gus)

    async def answer(command: str) -> list[tuple[str | None, list[list[str]]]]:
        before = len(gus.user.messages)
        await gus.says(command)
        return [(m.text, m.buttons) for m in gus.user.messages[before:]]

    unknown = await answer("/frobnicate")
    assert unknown and unknown[-1][1], "the unknown command's answer has its Menu button"
    for staff_command in ("/ask", "/export", "/invite"):
        assert await answer(staff_command) == unknown

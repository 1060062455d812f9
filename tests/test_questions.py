"""Facilitators ask questions and close the loop; members answer. Through the real bot and
the emulator, with the FakeClock moved by hand: no test waits for real time to pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from emulator import Emulator
from storage.store import Store
from tests.media_samples import voice
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9100
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF], "about_areas": ["Grangetown", "Splott"]}


async def members(person: MakePerson, *names: str) -> list[Person]:
    people = []
    for i, name in enumerate(names):
        someone = person(7000 + i, name)
        await join(someone)
        people.append(someone)
    return people


async def texts(someone: Person, n: int = 1) -> list[str]:
    """The next n messages the bot sends them (delivered by the outbox's worker)."""
    return [m.text or "" for m in await someone.user.wait_messages(n, timeout=10)]


async def ask(
    staff: Person,
    question: str,
    kind: str,
    *,
    options: str = "",
    when: str = "Now",
    at: str = "",
    audience: str = "All members",
    tag: str = "",
    reminder: str = "No reminder",
) -> None:
    """Goes through /ask with buttons."""
    assert await staff.says("/ask") == [t("en", "staff.ask.text")]
    assert await staff.says(question) == [t("en", "staff.ask.kind")]
    await staff.taps(kind)
    if options:
        await staff.says(options)
    await staff.taps(audience)
    if tag:
        await staff.says(tag)
    await staff.taps(when)
    if at:
        await staff.says(at)
    await staff.taps(reminder)


async def test_a_choice_question_sent_now_and_answered_by_button_and_typing(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo, cy = await members(person, "Ann", "Bo", "Cy")
    await ask(
        staff, "Which day suits you?", "Pick one from a list", options="Monday\nWednesday\nSaturday"
    )
    replies = staff.user.messages
    assert [m.text for m in replies[-3:-1]] == [
        t("en", "staff.ask.preview_intro"),
        "Which day suits you?\n\n" + t("en", "questions.hint.choice"),
    ]
    assert staff.buttons == ["Send", "Change something", "Cancel it"]
    assert "(3 now)" in (replies[-1].text or "")
    assert await staff.taps("Send") == [t("en", "staff.ask.sending")]

    for someone in (ann, bo, cy):
        [question] = await texts(someone)
        assert question == "Which day suits you?\n\n" + t("en", "questions.hint.choice")
        assert someone.buttons == ["Monday", "Wednesday", "Saturday", "Skip"]
    [report] = await texts(staff)
    assert "3" in report

    [saved] = await ann.taps("Wednesday")
    assert saved.startswith("Thank you. We have saved your answer.")
    await bo.says("3")
    await cy.says("saturday!")
    [question_row] = await store.questions.recent(1)
    per_choice, answered, sent = await store.answers.counts(question_row.id)
    assert per_choice == {"2": 1, "3": 2} and answered == 3 and sent == 3
    # A member can change their answer while the question is open.
    await ann.says("/questions")
    await ann.taps("Monday")
    per_choice, _, _ = await store.answers.counts(question_row.id)
    assert per_choice == {"1": 1, "3": 2}
    entries = [e.action for e in await store.audit.entries()]
    assert "question_created" in entries and "question_sent" in entries


async def test_a_weekly_question_arrives_twice_over_two_weeks(
    person: MakePerson, store: Store, clock: FakeClock, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    [ann] = await members(person, "Ann")
    await ask(
        staff, "How was your week?", "A number from 1 to 5", when="Every week", at="Monday 18:00"
    )
    assert (await staff.taps("Send"))[0].startswith("Saved.")
    await bot.scheduler.run_due()
    assert ann.user.unread() == []  # Monday 10:00: not yet

    clock.set(datetime(2026, 11, 30, 18, 0, tzinfo=LONDON))
    await bot.scheduler.run_due()
    [first] = await texts(ann)
    assert first.startswith("How was your week?")
    assert ann.buttons == ["1", "2", "3", "4", "5", "Skip"]
    await ann.taps("4")

    clock.set(datetime(2026, 12, 7, 18, 0, tzinfo=LONDON))
    await bot.scheduler.run_due()
    [second] = await texts(ann)
    assert second.startswith("How was your week?")
    await ann.says("5")
    rounds = await store.db.fetch_all("SELECT * FROM answers ORDER BY id")
    assert [r["choice"] for r in rounds] == ["4", "5"]
    assert len({r["round_id"] for r in rounds}) == 2


async def test_quiet_hours_hold_a_question_until_morning(
    person: MakePerson,
    store: Store,
    clock: FakeClock,
    bot: CocreateApplication,
    emulator: Emulator,
) -> None:
    staff = person(STAFF, "Fran")
    [ann] = await members(person, "Ann")
    await ask(
        staff, "Did you sleep well?", "Yes or no", when="At a date and time", at="30/11/2026 22:00"
    )
    await staff.taps("Send")
    clock.set(datetime(2026, 11, 30, 22, 0, tzinfo=LONDON))
    before = emulator.sent_to(ann.user.id)
    await bot.scheduler.run_due()

    async def held() -> bool:
        row = await store.db.fetch_one(
            "SELECT held_for_quiet_hours FROM outbox WHERE member_id IS NOT NULL"
        )
        return row is not None and bool(row["held_for_quiet_hours"])

    async with asyncio.timeout(10):
        while not await held():
            bot.delivery.wake()
            await asyncio.sleep(0.05)
    assert emulator.sent_to(ann.user.id) == before

    clock.set(datetime(2026, 12, 1, 8, 0, 1, tzinfo=LONDON))
    bot.delivery.wake()
    [question] = await texts(ann)
    assert question.startswith("Did you sleep well?")
    assert ann.buttons == ["Yes", "No", "Skip"]


async def test_a_reminder_reaches_only_those_who_did_not_answer(
    person: MakePerson, store: Store, clock: FakeClock, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo = await members(person, "Ann", "Bo")
    await ask(staff, "Is the library open enough?", "Yes or no", reminder="After 24 hours")
    await staff.taps("Send")
    await texts(ann)
    await texts(bo)
    await ann.taps("Yes")

    clock.advance(timedelta(hours=24, minutes=1))
    await bot.scheduler.run_due()
    [reminder] = await texts(bo)
    assert reminder.startswith(t("en", "questions.reminder"))
    await bo.taps("No")
    reminder_text = t("en", "questions.reminder")
    assert not any((m.text or "").startswith(reminder_text) for m in ann.user.messages)
    answers = await store.db.fetch_all("SELECT choice FROM answers ORDER BY id")
    assert [a["choice"] for a in answers] == ["yes", "no"]


async def test_an_open_answer_by_voice_note_and_the_reply_relay(
    person: MakePerson, store: Store, settings: Any
) -> None:
    staff = person(STAFF, "Fran")
    [ann] = await members(person, "Ann")
    await ask(staff, "What would make the park safer?", "In their own words")
    await staff.taps("Send")
    [question] = await texts(ann)
    assert question.endswith(t("en", "questions.hint.open"))
    spoken = voice(3)
    [saved] = await ann.does(lambda u: u.send_voice(spoken, duration=9))
    assert saved.startswith("Thank you. We have saved your answer.")
    [answer] = await store.db.fetch_all("SELECT * FROM answers")
    [media_row] = await store.db.fetch_all(
        "SELECT * FROM media WHERE answer_id = ?", (answer["id"],)
    )
    assert (settings.media_dir / media_row["file_name"]).read_bytes() == spoken

    member_row = await store.members.by_telegram_id(ann.user.id)
    assert member_row is not None
    pseudonym = await store.pseudonyms.of(member_row.id)
    await texts(staff)  # the delivery report
    await staff.says("/responses")
    replies = await staff.taps("What would make the park safer?")
    assert replies[0].startswith("“What would make the park safer?”")
    assert replies[1].startswith(f"{pseudonym}: (voice note")
    assert await staff.taps("Write back") == [t("en", "staff.reply.ask", pseudonym=pseudonym)]
    assert await staff.says("Thank you, Ann's idea is a good one. Where exactly?") == [
        t("en", "staff.reply.sent", pseudonym=pseudonym)
    ]
    [relayed] = await texts(ann)
    assert relayed.startswith(
        t("en", "reply.from_team", question="What would make the park safer?")
    )
    assert "Fran" not in relayed and str(STAFF) not in relayed
    assert await ann.taps("Answer back") == [t("en", "reply.ask")]
    assert await ann.says("By the pond, near the gate.") == [t("en", "reply.passed_on")]
    [back] = await texts(staff)
    assert back == t(
        "en", "staff.reply.answered_back", pseudonym=pseudonym, text="By the pond, near the gate."
    )
    assert "Ann" not in back and str(ann.user.id) not in back
    # Only once.
    await ann.does(lambda u: u.press_callback(f"back:{1}"))
    assert ann.user.messages[-1].text == t("en", "reply.already")


async def test_a_round_due_while_the_bot_was_down(
    person: MakePerson, store: Store, clock: FakeClock, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    await staff.says("/scheduled")
    [ann] = await members(person, "Ann")
    now = clock.now()

    async def create(text: str, late: timedelta) -> None:
        await store.questions.create(
            author_id=STAFF,
            author_chat_id=STAFF,
            author_language="en",
            text=text,
            kind="yesno",
            options=[],
            audience="everyone",
            repeat="once",
            starts_at=now - late,
            reminder_hours=None,
        )

    await create("Two hours late?", timedelta(hours=2))
    await create("A day and more late?", timedelta(hours=30))
    await bot.scheduler.run_due()
    [late] = await texts(ann)
    assert late.startswith("Two hours late?")
    staff_texts = await texts(staff, 2)
    assert any(x.startswith("Your question “A day and more late?”") for x in staff_texts)
    statuses = await store.db.fetch_all("SELECT status FROM question_rounds ORDER BY id")
    assert [s["status"] for s in statuses] == ["sent", "missed"]


async def test_questions_lists_what_is_still_open(
    person: MakePerson, store: Store, clock: FakeClock, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    [ann] = await members(person, "Ann")
    await ask(staff, "Do you use the bus?", "Yes or no")
    await staff.taps("Send")
    await texts(ann)
    await ann.says("/menu")  # away doing something else; then comes back
    assert (await ann.says("/questions"))[0].startswith("Do you use the bus?")
    assert await ann.says("yes") != [t("en", "bad.idle")]
    answer = await store.db.fetch_one("SELECT choice FROM answers")
    assert answer is not None and answer["choice"] == "yes"
    clock.advance(timedelta(days=8))
    assert await ann.says("/questions") == [t("en", "questions.none")]
    await ann.does(lambda u: u.press_callback("ans:1:no"))
    assert ann.user.messages[-1].text == t("en", "questions.closed")


async def test_a_broadcast_to_those_who_answered(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo = await members(person, "Ann", "Bo")
    await ask(staff, "Is the path too dark?", "Yes or no")
    await staff.taps("Send")
    await texts(ann)
    await texts(bo)
    await ann.taps("Yes")
    await texts(staff)  # report
    assert await staff.says("/broadcast") == [t("en", "staff.broadcast.text")]
    await staff.says("You said the path was dark. We have put in three new lights.")
    await staff.taps("Those who answered a question")
    await staff.taps("Is the path too dark?")
    await staff.taps("Now")
    assert "(1 now)" in (staff.user.messages[-1].text or "")
    assert await staff.taps("Send") == [t("en", "staff.broadcast.sending")]
    [news] = await texts(ann)
    assert news == (
        f"{t('en', 'broadcast.header')}\n\n"
        "You said the path was dark. We have put in three new lights."
    )
    [report] = await texts(staff)
    assert "1" in report
    assert all("three new lights" not in (m.text or "") for m in bo.user.messages)
    entries = [e.action for e in await store.audit.entries()]
    assert "broadcast_created" in entries and "broadcast_sent" in entries


async def test_scheduled_lists_and_cancels(
    person: MakePerson, store: Store, clock: FakeClock, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    ann = person(7100, "Ann")
    await ann.says("/start")
    for button in ("English", "Yes, I agree", "Stay anonymous", "Skip", "Splott", "Skip"):
        await ann.taps(button)
    assert await staff.says("/scheduled") == [t("en", "staff.scheduled.none")]
    await ask(
        staff,
        "Any news?",
        "In their own words",
        when="Every day",
        at="18:00",
        audience="People tagged with a word",
        tag="Splott",
    )
    await staff.taps("Send")
    replies = await staff.says("/scheduled")
    assert replies and "Any news?" in replies[0]
    [planned] = await store.questions.audience("tag:splott")
    assert planned.telegram_user_id == 7100  # she would get it, but for the Cancel
    assert await staff.taps("Cancel it") == [t("en", "staff.scheduled.cancel_ask")]
    assert await staff.taps("Yes, cancel it") == [t("en", "staff.scheduled.cancelled")]
    ann.user.unread()
    clock.set(datetime(2026, 11, 30, 18, 0, tzinfo=LONDON))
    await bot.scheduler.run_due()
    assert await store.db.fetch_all("SELECT * FROM outbox WHERE member_id IS NOT NULL") == []
    assert ann.user.unread() == []


async def test_a_member_who_blocked_the_bot_is_skipped_until_they_write_again(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo = await members(person, "Ann", "Bo")
    emulator.block(ann.user.id)
    await ask(staff, "First question?", "Yes or no")
    await staff.taps("Send")
    await texts(bo)
    [report] = await texts(staff)
    assert "1" in report
    ann_row = await store.members.by_telegram_id(ann.user.id)
    assert ann_row is not None and ann_row.unreachable_at is not None

    emulator.unblock(ann.user.id)
    await ann.says("/menu")  # she unblocked the bot and wrote: she can be reached again
    ann_row = await store.members.by_telegram_id(ann.user.id)
    assert ann_row is not None and ann_row.unreachable_at is None
    await ask(staff, "Second question?", "Yes or no")
    await staff.taps("Send")
    [second] = await texts(ann)
    assert second.startswith("Second question?")


async def test_typed_words_answer_whichever_came_last_a_question_or_a_one_step_prompt(
    person: MakePerson, store: Store, clock: FakeClock
) -> None:
    """A member at "Share one more?" who then gets a question answers the question by typing
    its number; one who gets the question first and then a one-step prompt answers the
    prompt. (On SMS, people reply to the last text they got.)"""
    staff = person(STAFF, "Fran")
    [ann] = await members(person, "Ann")
    await ann.says("/delete")  # a one-step prompt: "Delete it all?" 1. Yes 2. No
    clock.advance(timedelta(minutes=1))
    await ask(staff, "Is the path too dark?", "Yes or no")
    await staff.taps("Send")
    [question] = await texts(ann)
    assert question.startswith("Is the path too dark?")
    await texts(staff)  # the report
    # "2" is No to the question, not "No, keep it" to the prompt before it.
    [saved] = await ann.says("2")
    assert saved.startswith(t("en", "questions.saved", when="").split("{")[0][:30])
    [asked] = await store.questions.recent(1)
    per_choice, answered, _ = await store.answers.counts(asked.id)
    assert per_choice == {"no": 1} and answered == 1
    assert await store.members.by_telegram_id(7000) is not None

    # The other way round: a question came first, then the prompt; "2" answers the prompt.
    clock.advance(timedelta(minutes=1))
    await ask(staff, "Is the bus on time?", "Yes or no")
    await staff.taps("Send")
    await texts(ann)
    await texts(staff)
    clock.advance(timedelta(minutes=1))
    assert await ann.says("/delete") == [t("en", "delete.ask")]
    assert await ann.says("2") == [t("en", "delete.kept"), t("en", "menu.title")]
    [bus, _] = await store.questions.recent(2)
    assert (await store.answers.counts(bus.id))[1] == 0


async def test_a_question_that_arrives_after_the_list_takes_what_they_type_next(
    person: MakePerson, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The soak (seed 579254) found it: /questions listed a question already answered, a new
    # one arrived just after, and the member's reply to the new one replaced the old answer.
    staff = person(STAFF, "Fran")
    [ann] = await members(person, "Ann")
    await ask(staff, "What would make the park safer?", "In their own words")
    await staff.taps("Send")
    await texts(ann)
    [saved] = await ann.says("More lights by the gate")
    assert saved.startswith("Thank you. We have saved your answer.")
    listed = await ann.says("/questions")  # the answered question, to change it
    assert listed[0].startswith("What would make the park safer?")
    await texts(staff)  # the delivery report
    await ask(staff, "What would help at the library?", "In their own words")
    await staff.taps("Send")
    [newer] = await texts(ann)
    assert newer.startswith("What would help at the library?")
    [saved] = await ann.says("3")  # answers the last message they got
    assert saved.startswith("Thank you. We have saved your answer.")
    assert await open_answers(store) == {
        "What would make the park safer?": "More lights by the gate",
        "What would help at the library?": "3",
    }
    # With nothing newer since the list, typed words change the answer it put first.
    first = (await ann.says("/questions"))[0].partition("\n")[0]
    reads: list[str] = []
    fetch_one, fetch_all = store.db.fetch_one, store.db.fetch_all

    async def one(sql: str, params: Any = ()) -> Any:
        reads.append(sql)
        return await fetch_one(sql, params)

    async def every(sql: str, params: Any = ()) -> Any:
        reads.append(sql)
        return await fetch_all(sql, params)

    monkeypatch.setattr(store.db, "fetch_one", one)
    monkeypatch.setattr(store.db, "fetch_all", every)
    await ann.says("Open on Sundays")
    monkeypatch.undo()
    assert (await open_answers(store))[first] == "Open on Sundays"
    # Which of the two open questions reached them after the list: one read for both.
    assert len([sql for sql in reads if "FROM outbox o JOIN question_rounds" in sql]) == 1


async def open_answers(store: Store) -> dict[str, str]:
    """Each question's text, and the words it was answered with."""
    rows = await store.db.fetch_all(
        "SELECT q.text AS question, a.text FROM answers a"
        " JOIN question_rounds r ON r.id = a.round_id JOIN questions q ON q.id = r.question_id"
    )
    return {row["question"]: row["text"] for row in rows}

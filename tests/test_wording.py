"""What facilitators are told before they send: when it really goes out (quiet hours), how
many can get it, that nobody would, and a second question before cancelling something
planned. Through the real bot and the emulator, with the FakeClock set by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue import t
from bot.clock import FakeClock
from conversations.when import parse_at, parse_time
from storage.store import Store
from storage.times import to_db
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9100
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=LONDON)  # a Monday, as the clock fixture


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF], "quiet_hours": "21:00-08:00"}


async def members(person: MakePerson, *names: str) -> list[Person]:
    people = []
    for i, name in enumerate(names):
        someone = person(7000 + i, name)
        await join(someone)
        people.append(someone)
    return people


async def broadcast(staff: Person, text: str, *, when: str = "Now", at: str = "") -> list[str]:
    """Goes through /broadcast to all members; returns the preview's messages."""
    await staff.says("/broadcast")
    await staff.says(text)
    await staff.taps("All members")
    if not at:
        return await staff.taps(when)
    await staff.taps("At a date and time")
    return await staff.says(at)


def summary(count: int, when: str, audience: str = "all members") -> str:
    return t("en", "staff.broadcast.summary", audience=audience, count=count, when=when)


# ---- quiet hours: the preview and the confirmation say when it really goes out


async def test_a_broadcast_in_quiet_hours_says_it_waits_until_morning(
    person: MakePerson, clock: FakeClock
) -> None:
    await members(person, "Ann")
    fran = person(STAFF, "Fran")
    clock.set(datetime(2026, 11, 30, 22, 30, tzinfo=LONDON))
    until = "Tuesday 1 December 2026, 08:00"
    preview = await broadcast(fran, "We fixed the light.")
    assert preview[-1] == summary(1, t("en", "staff.when.held_now", until=until))
    assert t("en", "staff.when.is_now") not in preview[-1]
    assert await fran.taps("Send") == [t("en", "staff.ask.held", until=until)]


async def test_a_question_at_a_time_in_quiet_hours_says_when_it_goes_out(
    person: MakePerson,
) -> None:
    await members(person, "Ann")
    fran = person(STAFF, "Fran")
    await fran.says("/ask")
    await fran.says("Is the bus on time?")
    await fran.taps("Yes or no")
    await fran.taps("All members")
    await fran.taps("At a date and time")
    await fran.says("today 23:00")
    replies = await fran.taps("No reminder")
    held = t(
        "en",
        "staff.when.held_once",
        when="Monday 30 November 2026, 23:00",
        until="Tuesday 1 December 2026, 08:00",
    )
    assert replies[-1] == t(
        "en",
        "staff.ask.summary",
        audience="all members",
        count=1,
        when=held,
        reminder=t("en", "staff.reminder.none"),
    )


async def test_outside_quiet_hours_it_goes_out_now(person: MakePerson) -> None:
    await members(person, "Ann")
    fran = person(STAFF, "Fran")
    preview = await broadcast(fran, "We fixed the light.")
    assert preview[-1] == summary(1, t("en", "staff.when.is_now"))
    assert await fran.taps("Send") == [t("en", "staff.broadcast.sending")]


# ---- who can get it


async def test_preview_counts_leave_out_stopped_and_unreachable_members(
    person: MakePerson, store: Store
) -> None:
    _, bo, cy = await members(person, "Ann", "Bo", "Cy")
    await bo.says("/stop")
    await store.db.execute(
        "UPDATE members SET unreachable_at = ? WHERE telegram_user_id = ?",
        (to_db(NOW), cy.user.id),
    )
    fran = person(STAFF, "Fran")
    preview = await broadcast(fran, "We fixed the light.")
    assert preview[-1] == summary(1, t("en", "staff.when.is_now"))


async def test_a_broadcast_nobody_can_get_says_so_before_send(person: MakePerson) -> None:
    [ann] = await members(person, "Ann")
    await ann.says("/stop")
    fran = person(STAFF, "Fran")
    preview = await broadcast(fran, "We fixed the light.")
    assert preview[-1] == t("en", "staff.broadcast.nobody", audience="all members")
    assert fran.buttons == ["Choose who gets it", "Cancel it"]
    # Send is not one of the choices, typed or tapped.
    assert (await fran.says("send"))[0] == t("en", "staff.not_understood")
    assert await fran.taps("Choose who gets it") == [t("en", "staff.ask.audience")]


# ---- /scheduled asks before cancelling


async def test_cancelling_something_planned_asks_first(person: MakePerson, store: Store) -> None:
    await members(person, "Ann")
    fran = person(STAFF, "Fran")
    await broadcast(fran, "See you on Friday.", at="tomorrow 9am")
    await fran.taps("Send")
    [listed] = await fran.says("/scheduled")
    assert "See you on Friday." in listed and "Tuesday 1 December 2026, 09:00" in listed
    assert await fran.taps("Cancel it") == [t("en", "staff.scheduled.cancel_ask")]
    assert fran.buttons == ["Yes, cancel it", "No, keep it"]
    assert await fran.taps("No, keep it") == [t("en", "staff.scheduled.kept")]
    assert len(await store.broadcasts.scheduled()) == 1

    await fran.says("/scheduled")
    await fran.taps("Cancel it")
    assert await fran.taps("Yes, cancel it") == [t("en", "staff.scheduled.cancelled")]
    assert await store.broadcasts.scheduled() == []


# ---- times typed in everyday words


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("today 18:00", datetime(2026, 11, 30, 18, 0)),
        ("Today 6pm", datetime(2026, 11, 30, 18, 0)),
        ("tomorrow 9am", datetime(2026, 12, 1, 9, 0)),
        ("tomorrow at 9 am", datetime(2026, 12, 1, 9, 0)),
        ("Tomorrow, 9am", datetime(2026, 12, 1, 9, 0)),
        ("18:00 tomorrow", datetime(2026, 12, 1, 18, 0)),
        ("9pm", datetime(2026, 11, 30, 21, 0)),
        ("9am", datetime(2026, 12, 1, 9, 0)),  # already gone today: the next one
        ("yfory 9am", datetime(2026, 12, 1, 9, 0)),
        ("24/12/2026 18:00", datetime(2026, 12, 24, 18, 0)),
        ("18:00 24/12/2026", datetime(2026, 12, 24, 18, 0)),
        ("today", None),
        ("tomorrow 25:00", None),
        ("9", None),
        ("today ²:00", None),
        ("next week", None),
    ],
)
def test_one_off_times_in_everyday_words(typed: str, expected: datetime | None) -> None:
    found = parse_at(typed, NOW, LONDON)
    assert found == (expected.replace(tzinfo=LONDON) if expected else None)


def test_times_of_day() -> None:
    assert parse_time("18:00") == time(18, 0)
    assert parse_time("6:30 pm") == time(18, 30)
    assert parse_time("12am") == time(0, 0)
    assert parse_time("²") is None


async def test_a_broadcast_typed_for_tomorrow_morning(person: MakePerson) -> None:
    await members(person, "Ann")
    fran = person(STAFF, "Fran")
    preview = await broadcast(fran, "See you on Friday.", at="tomorrow 9am")
    when = t("en", "staff.when.is_once", when="Tuesday 1 December 2026, 09:00")
    assert preview[-1] == summary(1, when)

"""What bench/scale.py made fast still means what it meant: /stats counts (now one statement
through indexes), and broadcasts, question rounds and reminders (now queued by one
INSERT … SELECT, in each member's language) to exactly the members they were for."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from storage.stats import ABOUT_FIELDS, Group, Membership
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9500
WHEN = "2026-11-01T10:00:00+00:00"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


def group_key(answer: str | None, database: str = "sqlite") -> str | None:
    """An answer's group: the database's lower(). SQLite's folds ASCII letters only;
    PostgreSQL's (in a UTF-8 locale, storage/migrations_pg.py) every letter."""
    if answer is None:
        return None
    if database == "postgresql":
        return answer.lower()
    return "".join(c.lower() if c.isascii() else c for c in answer)


async def test_stats_count_each_member_as_the_old_queries_did(store: Store, database: str) -> None:
    rng = random.Random(5)
    states = ["active", "active", "active", "stopped", "unreachable", "joining", "stopped+blocked"]
    # Typed answers that differ only in case are one group, shown by their smallest spelling;
    # "Ÿnys" and "ÿnys" are two on SQLite (its lower() folds ASCII letters only), one on
    # PostgreSQL.
    areas = ["Splott", "splott", "SPLOTT", "Grangetown", "Ÿnys", "ÿnys", None]
    people = []
    for i in range(1, 301):
        state = rng.choice(states)
        answers = {
            "age_band": rng.choice(["16_24", "25_44", "prefer_not_to_say", None]),
            "area": rng.choice(areas),
            "extra": rng.choice(["Yes", "No", None, None]),
        }
        shared = rng.choice(["submitted", "draft", "cancelled", None, None])
        answered = rng.random() < 0.3
        people.append((i, state, answers, shared, answered))
    async with store.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO questions (id, author_id, author_chat_id, text, kind, audience,"
            " starts_at, created_at) VALUES (1, 1, 1, 'Q', 'open', 'everyone', ?, ?)",
            (WHEN, WHEN),
        )
        await conn.execute(
            "INSERT INTO question_rounds (id, question_id, due_at, status)"
            " VALUES (1, 1, ?, 'sent')",
            (WHEN,),
        )
        for i, state, answers, shared, answered in people:
            await conn.execute(
                "INSERT INTO members (id, telegram_user_id, chat_id, joined_at, onboarded_at,"
                " stopped_at, unreachable_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    i,
                    5000 + i,
                    5000 + i,
                    WHEN,
                    None if state == "joining" else WHEN,
                    WHEN if state.startswith("stopped") else None,
                    WHEN if state in ("unreachable", "stopped+blocked") else None,
                ),
            )
            for field, answer in answers.items():
                if answer is not None:
                    await conn.execute(
                        "INSERT INTO about_you (member_id, field, answer, answered_at)"
                        " VALUES (?, ?, ?, ?)",
                        (i, field, answer, WHEN),
                    )
            if shared is not None:
                await conn.execute(
                    "INSERT INTO submissions (member_id, kind, status, language, created_at)"
                    " VALUES (?, 'idea', ?, 'en', ?)",
                    (i, shared, WHEN),
                )
            if answered:
                await conn.execute(
                    "INSERT INTO answers (round_id, member_id, text, answered_at, updated_at)"
                    " VALUES (1, ?, 'yes', ?, ?)",
                    (i, WHEN, WHEN),
                )

    took = {i for i, _, _, shared, answered in people if shared == "submitted" or answered}
    status = Counter("stopped" if s.startswith("stopped") else s for _, s, _, _, _ in people)
    expected = Membership(
        joined=300,
        active=status["active"],
        stopped=status["stopped"],
        unreachable=status["unreachable"],
        joining=status["joining"],
        took_part=len(took),
    )
    overview = await store.stats.overview(ABOUT_FIELDS)
    assert overview.membership == expected
    for field in ABOUT_FIELDS:
        keys = {i: group_key(a[field], database) for i, _, a, _, _ in people}
        spellings: dict[str | None, list[str]] = {}
        for i, _, answers, _, _ in people:
            spellings.setdefault(keys[i], []).append(answers[field] or "")
        joined = Counter(keys.values())
        took_part = Counter(keys[i] for i in took)
        groups = [
            Group(None if key is None else min(spellings[key]), n, took_part[key])
            for key, n in joined.items()
        ]
        groups.sort(key=lambda g: (g.answer is None, -g.joined, g.answer or ""))
        assert overview.breakdowns[field] == groups, field
    splott = next(g for g in overview.breakdowns["area"] if g.answer == "SPLOTT")
    assert splott.joined == joined_as(people, "area", "splott")
    ynys = {g.answer for g in overview.breakdowns["area"]} & {"Ÿnys", "ÿnys"}
    assert ynys == ({"ÿnys"} if database == "postgresql" else {"Ÿnys", "ÿnys"})  # smallest


def joined_as(people: list[Any], field: str, key: str) -> int:
    return sum(1 for _, _, a, _, _ in people if group_key(a[field]) == key)


async def test_stats_of_nobody_and_of_a_question_no_one_answered(store: Store) -> None:
    overview = await store.stats.overview(("area",))
    assert overview.membership == Membership(0, 0, 0, 0, 0, 0)
    assert overview.breakdowns == {"area": []}
    member = await store.members.join(
        telegram_user_id=5001, chat_id=5001, language="en", consent_version="1", agreed_to=[]
    )
    await store.about.answer(member.id, "area", "Splott")
    overview = await store.stats.overview(("area", "age_band"))
    assert overview.membership.joined == overview.membership.joining == 1
    assert overview.breakdowns == {
        "area": [Group("Splott", 1, 0)],
        "age_band": [Group(None, 1, 0)],
    }


async def test_a_broadcast_reaches_each_member_in_their_language_and_no_one_else(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    ann, bryn, cai = person(7201, "Ann"), person(7202, "Bryn"), person(7203, "Cai")
    await join(ann)
    await join(bryn, "Cymraeg")
    await cai.says("/start")  # not done joining: not in "everyone"
    dai = person(7204, "Dai")
    await join(dai)
    await dai.says("/stop")  # queued for, and skipped by the sender: not counted as reached
    dai.user.unread()
    await staff.says("/broadcast")
    await staff.says("The hall is open late on Fridays now.")
    await staff.taps("All members")
    await staff.taps("Now")
    assert "(2 now)" in (staff.user.messages[-1].text or "")
    await staff.taps("Send")
    [to_ann] = await ann.user.wait_messages(1, timeout=10)
    [to_bryn] = await bryn.user.wait_messages(1, timeout=10)
    assert to_ann.text == f"{t('en', 'broadcast.header')}\n\nThe hall is open late on Fridays now."
    assert to_bryn.text == f"{t('cy', 'broadcast.header')}\n\nThe hall is open late on Fridays now."
    rows = await store.db.fetch_all(
        "SELECT o.member_id, o.chat_id FROM outbox o JOIN broadcasts b ON b.batch_id = o.batch_id"
        " ORDER BY o.id"
    )
    members = [await store.members.by_telegram_id(u) for u in (7201, 7202, 7204)]
    assert [(r["member_id"], r["chat_id"]) for r in rows] == [
        (m.id, m.chat_id) for m in members if m is not None
    ]
    assert cai.user.unread() == [] and dai.user.unread() == []
    entries = [e for e in await store.audit.entries() if e.action == "broadcast_sent"]
    assert [json.loads(e.detail)["to"] for e in entries] == [3]


async def test_a_question_and_its_reminder_in_each_members_language(
    person: MakePerson, store: Store, bot: CocreateApplication, clock: FakeClock
) -> None:
    staff = person(STAFF, "Fran")
    ann, bryn, cai = person(7301, "Ann"), person(7302, "Bryn"), person(7303, "Cai")
    await join(ann)
    await join(bryn, "Cymraeg")
    await join(cai)
    await staff.says("/ask")
    await staff.says("Is the bus on time?")
    for label in ("Yes or no", "All members", "Now", "After 24 hours", "Send"):
        await staff.taps(label)
    [to_ann] = await ann.user.wait_messages(1, timeout=10)
    [to_bryn] = await bryn.user.wait_messages(1, timeout=10)
    await cai.user.wait_messages(1, timeout=10)
    assert to_ann.text == f"Is the bus on time?\n\n{t('en', 'questions.hint.choice')}"
    assert to_bryn.text == f"Is the bus on time?\n\n{t('cy', 'questions.hint.choice')}"
    assert bryn.buttons == [
        t("cy", "questions.yes"),
        t("cy", "questions.no"),
        t("cy", "common.skip"),
    ]
    await cai.taps("Yes")
    dai = person(7304, "Dai")
    await join(dai)  # joined after the round went out: no reminder of a question never sent

    clock.advance(timedelta(hours=24, minutes=1))
    await bot.scheduler.run_due()
    [ann_reminder] = await ann.user.wait_messages(1, timeout=10)
    [bryn_reminder] = await bryn.user.wait_messages(1, timeout=10)
    assert ann_reminder.text == f"{t('en', 'questions.reminder')}\n\n{to_ann.text}"
    assert bryn_reminder.text == f"{t('cy', 'questions.reminder')}\n\n{to_bryn.text}"
    rows = await store.db.fetch_all(
        "SELECT o.chat_id FROM outbox o JOIN delivery_batches b ON b.id = o.batch_id"
        " WHERE b.kind = 'reminder' ORDER BY o.id"
    )
    assert [r["chat_id"] for r in rows] == [7301, 7302]

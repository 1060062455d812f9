"""What happened to ideas: a facilitator sets a status with a reason from /ideas; the author and
supporters (or a round's answerers) each get one "You said: … We did: …" in their language,
through the outbox; /updates lists it. Through the real bot and the emulator; the outbox's
sender runs as in the bot and the clock stands still.

Statements and votes have no flows in this branch yet (issue 12's other parts): the tests
write them with SQL, as the migration's columns say.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from telegram import Update

from bot.catalogue import t, tn
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from emulator import SimUser
from storage.outbox import Outgoing
from storage.store import Store
from storage.tracker import SETTABLE, Item, ReasonNeeded
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9300
REASON = "The council said yes. Buses start in May."
NOW = "2026-11-30T10:00:00+00:00"
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def member_id(store: Store, someone: Person) -> int:
    member = await store.members.by_telegram_id(someone.user.id)
    assert member is not None
    return member.id


async def idea(store: Store, someone: Person, words: str) -> int:
    """A submitted idea of the member's (as "Share an idea" stores it); returns its id."""
    mid = await member_id(store, someone)
    draft = await store.sharing.start(member_id=mid, kind="idea", project_id=None, language="en")
    await store.sharing.answer(draft.id, mid, "idea", words)
    await store.sharing.answer(draft.id, mid, "who_it_helps", None)
    await store.sharing.submit(draft.id)
    return draft.id


async def statement(
    store: Store, text: str, *, submission: int | None = None, state: str = "approved"
) -> int:
    """A statement members may see and vote on (approved, perhaps edited); returns its id."""
    await store.db.execute(
        "INSERT INTO statements (submission_id, visibility, state, text, edited, created_by,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            submission,
            "anonymous" if submission else "team",
            state,
            text,
            int(submission is not None),
            None if submission else STAFF,
            NOW,
        ),
    )
    row = await store.db.fetch_one("SELECT MAX(id) AS id FROM statements")
    assert row is not None
    return int(row["id"])


async def vote(store: Store, someone: Person, statement_id: int, choice: str) -> None:
    await store.db.execute(
        "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, ?, ?, ?)",
        (await member_id(store, someone), statement_id, choice, NOW),
    )


async def choose(staff: Person, status: str, item: str = "1") -> list[str]:
    """/ideas → What happened to ideas → the item (typed: newest is 1) → the status."""
    await staff.says("/ideas")
    shown = await staff.taps(t("en", "ideas.desk.status"))
    assert shown[-1].startswith(t("en", "tracking.pick"))
    await staff.says(item)
    return await staff.taps(t("en", f"tracking.status.{status}"))


async def changes(store: Store) -> list[tuple[Any, ...]]:
    rows = await store.db.fetch_all("SELECT * FROM status_changes ORDER BY id")
    return [(r["submission_id"], r["statement_id"], r["round_id"], r["status"]) for r in rows]


async def test_going_ahead_reaches_author_and_supporters_once_each_in_their_language(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    ann, cy, dai, eve = (person(9301 + i, name) for i, name in enumerate("Ann Cy Dai Eve".split()))
    bryn = person(9310, "Bryn")
    for someone in (ann, cy, dai, eve):
        await join(someone)
    await join(bryn, "Cymraeg")
    submission = await idea(store, ann, "Later buses at night, my street is dark at 11.")
    shared = await statement(store, "Buses should run after 11 pm.", submission=submission)
    await vote(store, ann, shared, "agree")  # the author agreed too: still one message
    await vote(store, bryn, shared, "agree")
    await vote(store, cy, shared, "agree")
    await vote(store, dai, shared, "disagree")
    await vote(store, eve, shared, "unsure")
    await cy.says("/stop")

    asked = await choose(staff, "going_ahead")
    assert asked == [t("en", "tracking.reason")]
    preview = await staff.says(REASON)
    did = f"{t('en', 'tracking.did.going_ahead')}\n{t('en', 'tracking.why', reason=REASON)}"
    said = "Later buses at night, my street is dark at 11."
    told_ann = t("en", "tracking.told.author", said=said, did=did)
    assert preview == [
        t("en", "tracking.preview_intro"),
        told_ann,
        tn("en", "tracking.summary", 2, count=2),  # Ann and Bryn; Cy used /stop
    ]
    assert staff.buttons == ["Send", "Cancel it"]
    assert await staff.taps("Send") == [tn("en", "tracking.saved", 2, count=2)]

    [to_ann] = await ann.user.wait_messages(1, timeout=10)
    assert to_ann.text == told_ann
    [to_bryn] = await bryn.user.wait_messages(1, timeout=10)
    assert to_bryn.text is not None
    assert to_bryn.text.startswith(t("cy", "tracking.told.supporter", said="X", did="Y")[:20])
    assert "Buses should run after 11 pm." in to_bryn.text  # the approved words, not Ann's
    assert "my street" not in to_bryn.text
    assert t("cy", "tracking.did.going_ahead") in to_bryn.text and REASON in to_bryn.text
    [report] = await staff.user.wait_messages(1, timeout=10)  # every row is final
    assert report.text is not None and report.text.startswith(t("en", "delivery.report.done"))

    # Exactly one row each for Ann, Bryn and Cy (skipped: /stop); none for the others.
    rows = await store.db.fetch_all(
        "SELECT member_id, status, skip_reason, words_of FROM outbox o"
        " JOIN delivery_batches b ON b.id = o.batch_id WHERE b.kind = 'status' ORDER BY o.id"
    )
    ids = {name: await member_id(store, p) for name, p in (("ann", ann), ("bryn", bryn))}
    cy_id = await member_id(store, cy)
    assert [(r["member_id"], r["status"], r["skip_reason"], r["words_of"]) for r in rows] == [
        (ids["ann"], "sent", None, None),
        (cy_id, "skipped", "stopped", ids["ann"]),
        (ids["bryn"], "sent", None, ids["ann"]),
    ]
    for someone in (ann, bryn, cy, dai, eve):
        assert someone.user.unread() == []
    assert await changes(store) == [(submission, None, None, "going_ahead")]
    [history] = await store.tracker.history(Item("idea", submission))
    assert (history.status, history.reason, history.changed_by) == ("going_ahead", REASON, STAFF)
    [entry] = [e for e in await store.audit.entries() if e.action == "status_changed"]
    assert entry.actor == f"telegram:{STAFF}" and "council" not in entry.detail

    # /updates lists it: Ann sees her own words, Bryn the approved ones, in Welsh.
    [news] = await ann.says("/updates")
    assert t("en", "tracking.updates.own", text=said) in news
    assert REASON in news and t("en", "tracking.did.going_ahead") in news
    assert ann.buttons == [t("en", "menu.button")]
    [news] = await bryn.says("/updates")
    assert t("cy", "tracking.updates.idea", text="Buses should run after 11 pm.") in news
    assert "my street" not in news
    # Dai disagreed; he sees it too: the idea was approved for everyone.
    [news] = await dai.says("/updates")
    assert "my street" not in news and "Buses should run after 11 pm." in news


async def test_not_possible_now_needs_a_reason_asked_for_kindly(
    person: MakePerson, store: Store
) -> None:
    staff = person(STAFF, "Fran")
    ann = person(9320, "Ann")
    await join(ann)
    submission = await idea(store, ann, "A bench by the bus stop.")

    assert await choose(staff, "not_possible") == [t("en", "tracking.reason_needed")]
    assert not staff.user.messages[-1].buttons  # no Skip
    assert await staff.says("skip") == [t("en", "tracking.reason_needed")]
    # Skip from an earlier message of this step (or forged) is refused the same way.
    assert await staff.does(lambda u: u.press_callback("trk:3:skip")) == [
        t("en", "tracking.reason_needed")
    ]
    assert await changes(store) == []
    preview = await staff.says("The pavement is too narrow there.")
    assert preview[-1] == tn("en", "tracking.summary", 1, count=1)
    await staff.taps("Send")
    [message] = await ann.user.wait_messages(1, timeout=10)
    assert t("en", "tracking.did.not_possible") in (message.text or "")
    assert "The pavement is too narrow there." in (message.text or "")
    assert await changes(store) == [(submission, None, None, "not_possible")]
    # The storage refuses it too, whoever calls it.
    with pytest.raises(ReasonNeeded):
        await store.tracker.change(
            Item("idea", submission), "not_possible", "  ", changed_by=STAFF, tell=lambda r: []
        )


async def test_a_status_can_be_set_without_a_reason_where_allowed_and_cancel_changes_nothing(
    person: MakePerson, store: Store
) -> None:
    staff = person(STAFF, "Fran")
    own = await statement(store, "The library should open on Sundays.")
    await choose(staff, "looking")
    assert await staff.says("/cancel") == [t("en", "tracking.cancelled")]
    assert await changes(store) == []
    await choose(staff, "looking")
    preview = await staff.taps("Skip")
    assert preview[1] == t(
        "en",
        "tracking.told.supporter",
        said="The library should open on Sundays.",
        did=t("en", "tracking.did.looking"),
    )
    assert preview[-1] == tn("en", "tracking.summary", 0, count=0)
    assert await staff.taps("Send") == [t("en", "tracking.saved_nobody")]
    assert await changes(store) == [(None, own, None, "looking")]
    assert await store.tracker.status(Item("statement", own)) == "looking"


async def test_members_cannot_set_statuses_even_with_forged_buttons(
    person: MakePerson, store: Store
) -> None:
    ann = person(9330, "Ann")
    await join(ann)
    submission = await idea(store, ann, "Free swimming for carers.")
    unknown_command = await ann.says("/frobnicate")
    unknown_button = await ann.does(lambda u: u.press_callback("nonsense:1"))
    assert await ann.says("/ideas") == unknown_command
    for data in (
        "ideas:status",
        f"trk:1:i{submission}",
        "trk:2:done",
        "trk:3:skip",
        "trk:4:send",
    ):
        forged = functools.partial(SimUser.press_callback, data=data)
        assert await ann.does(forged) == unknown_button, data
    session = await store.sessions.get(9330)
    assert session.flow is None
    assert await changes(store) == []
    assert await store.db.fetch_all("SELECT * FROM delivery_batches WHERE kind = 'status'") == []


async def test_a_replayed_send_changes_nothing_twice(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo = person(9340, "Ann"), person(9341, "Bo")
    await join(ann)
    await join(bo)
    submission = await idea(store, ann, "More bins in the park.")
    shared = await statement(store, "More bins in the park.", submission=submission)
    await vote(store, bo, shared, "agree")
    await choose(staff, "done")
    await staff.says("We put in six new bins.")
    update_id = staff.user.send("1")  # Send, typed
    await bot.wait_handled(update_id)
    payload = {  # the same update again, as after a crash before its done-mark
        "update_id": update_id,
        "message": {
            "message_id": 10_000,
            "date": 1_764_496_800,
            "chat": {"id": STAFF, "type": "private", "first_name": "Fran"},
            "from": {"id": STAFF, "is_bot": False, "first_name": "Fran"},
            "text": "1",
        },
    }
    await bot.process_update(Update.de_json(payload, bot.bot))
    await ann.user.wait_messages(1, timeout=10)
    await bo.user.wait_messages(1, timeout=10)
    assert await changes(store) == [(submission, None, None, "done")]
    rows = await store.db.fetch_all(
        "SELECT o.member_id FROM outbox o JOIN delivery_batches b ON b.id = o.batch_id"
        " WHERE b.kind = 'status'"
    )
    assert len(rows) == 2
    # The same status and reason again (a second Send) changes nothing either.
    again = await store.tracker.change(
        Item("idea", submission),
        "done",
        "We put in six new bins.",
        changed_by=STAFF,
        tell=lambda r: [],
    )
    assert again is None
    assert len(await store.tracker.history(Item("idea", submission))) == 1


async def test_a_question_rounds_status_reaches_those_who_answered(
    person: MakePerson, store: Store
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo = person(9350, "Ann"), person(9351, "Bo")
    await join(ann)
    await join(bo)
    await staff.says("/ask")
    await staff.says("Should the hall open later?")
    await staff.taps(t("en", "staff.kind.yesno"))
    await staff.taps("All members")
    await staff.taps("Now")
    await staff.taps("No reminder")
    await staff.taps("Send")
    await ann.user.wait_messages(1, timeout=10)
    await bo.user.wait_messages(1, timeout=10)
    await staff.user.wait_messages(1, timeout=10)  # the delivery report
    await ann.taps("Yes")  # Bo does not answer

    await choose(staff, "going_ahead")
    preview = await staff.says("It opens until 10 pm from Monday.")
    assert preview[1] == t(
        "en",
        "tracking.told.answered",
        question="Should the hall open later?",
        said="Yes",
        did=f"{t('en', 'tracking.did.going_ahead')}\n"
        + t("en", "tracking.why", reason="It opens until 10 pm from Monday."),
    )
    assert preview[-1] == tn("en", "tracking.summary", 1, count=1)
    await staff.taps("Send")
    [message] = await ann.user.wait_messages(1, timeout=10)
    assert message.text == preview[1]
    await staff.user.wait_messages(1, timeout=10)  # the report: every row is final
    assert bo.user.unread() == []
    [round_row] = await store.db.fetch_all("SELECT id FROM question_rounds")
    assert await changes(store) == [(None, None, round_row["id"], "going_ahead")]
    # Bo was sent the question, so /updates shows him what became of it.
    [news] = await bo.says("/updates")
    assert t("en", "tracking.updates.round", text="Should the hall open later?") in news
    assert "It opens until 10 pm from Monday." in news


async def test_updates_with_nothing_yet_and_from_the_menu(person: MakePerson) -> None:
    ann = person(9360, "Ann")
    await join(ann)
    assert await ann.says("/updates") == [t("en", "tracking.updates.none")]
    await ann.says("/menu")
    assert await ann.taps(t("en", "menu.updates")) == [t("en", "tracking.updates.none")]


async def test_staff_page_through_ideas_newest_first_and_members_page_through_news(
    person: MakePerson, store: Store, clock: FakeClock
) -> None:
    staff = person(STAFF, "Fran")
    ann = person(9370, "Ann")
    await join(ann)
    submissions = []
    for n in range(1, 10):
        clock.advance(timedelta(minutes=1))
        submissions.append(await idea(store, ann, f"Idea number {n}"))
    await staff.says("/ideas")
    await staff.taps(t("en", "ideas.desk.status"))
    assert staff.buttons == [
        *(f"💡 Idea number {n} · {t('en', 'tracking.status.new')}" for n in range(9, 1, -1)),
        t("en", "tracking.more"),
    ]
    await staff.taps(t("en", "tracking.more"))
    assert staff.buttons == [f"💡 Idea number 1 · {t('en', 'tracking.status.new')}"]
    await staff.taps(f"💡 Idea number 1 · {t('en', 'tracking.status.new')}")
    assert staff.buttons == [t("en", f"tracking.status.{s}") for s in SETTABLE]

    # Six changes: /updates shows five, newest first, then the sixth.
    for n, submission in enumerate(submissions[:6], start=1):
        clock.advance(timedelta(minutes=1))
        await store.tracker.change(
            Item("idea", submission), "looking", f"Reason {n}", changed_by=STAFF, tell=lambda r: []
        )
    [first] = await ann.says("/updates")
    assert [n for n in range(1, 7) if f"Reason {n}" in first] == [2, 3, 4, 5, 6]
    assert first.index("Reason 6") < first.index("Reason 2")
    assert ann.buttons == [t("en", "tracking.updates.more"), t("en", "menu.button")]
    [second] = await ann.taps(t("en", "tracking.updates.more"))
    assert "Reason 1" in second and "Reason 2" not in second
    assert ann.buttons == [t("en", "menu.button")]


async def test_quiet_hours_hold_the_news_and_unreachable_members_are_skipped(
    person: MakePerson, store: Store, clock: FakeClock, bot: CocreateApplication
) -> None:
    staff = person(STAFF, "Fran")
    ann, bo = person(9380, "Ann"), person(9381, "Bo")
    await join(ann)
    await join(bo)
    submission = await idea(store, ann, "A crossing by the school.")
    shared = await statement(store, "A crossing by the school.", submission=submission)
    await vote(store, bo, shared, "agree")
    await store.db.execute(  # Telegram said Bo blocked the bot
        "UPDATE members SET unreachable_at = ? WHERE id = ?", (NOW, await member_id(store, bo))
    )
    clock.set(datetime(2026, 11, 30, 22, 0, tzinfo=LONDON))
    await choose(staff, "looking")
    preview = await staff.taps("Skip")
    assert preview[-1] == tn("en", "tracking.summary", 1, count=1)  # not Bo
    await staff.taps("Send")

    async def held() -> bool:
        row = await store.db.fetch_one(
            "SELECT held_for_quiet_hours FROM outbox WHERE member_id = ?",
            (await member_id(store, ann),),
        )
        return row is not None and bool(row["held_for_quiet_hours"])

    async with asyncio.timeout(10):
        while not await held():
            bot.delivery.wake()
            await asyncio.sleep(0.05)
    assert ann.user.unread() == []

    clock.set(datetime(2026, 12, 1, 8, 0, 1, tzinfo=LONDON))
    bot.delivery.wake()
    [message] = await ann.user.wait_messages(1, timeout=10)
    assert t("en", "tracking.did.looking") in (message.text or "")
    await staff.user.wait_messages(1, timeout=10)  # the report: every row is final
    rows = await store.db.fetch_all(
        "SELECT member_id, status, skip_reason FROM outbox WHERE member_id = ?",
        (await member_id(store, bo),),
    )
    assert [(r["status"], r["skip_reason"]) for r in rows] == [("skipped", "unreachable")]
    assert bo.user.unread() == []


async def new_member(store: Store, telegram_id: int, language: str = "en") -> int:
    member = await store.members.join(
        telegram_user_id=telegram_id,
        chat_id=telegram_id,
        language=language,
        consent_version="test",
        agreed_to=["test"],
    )
    await store.members.mark_onboarded(member.id)
    return member.id


async def test_only_approved_words_go_to_others_and_each_member_once(store: Store) -> None:
    author, fan, other = [await new_member(store, 9400 + i) for i in range(3)]
    draft = await store.sharing.start(member_id=author, kind="idea", project_id=None, language="en")
    await store.sharing.answer(draft.id, author, "idea", None)  # a voice note: no words
    await store.sharing.submit(draft.id)
    item = Item("idea", draft.id)
    # The facilitator's summary waits for the author's OK: nobody else sees it yet.
    await store.db.execute(
        "INSERT INTO statements (submission_id, visibility, state, text, created_at)"
        " VALUES (?, 'anonymous', 'summary', 'A summary not approved yet', ?)",
        (draft.id, NOW),
    )
    row = await store.db.fetch_one("SELECT id FROM statements")
    assert row is not None
    for member, choice in ((author, "agree"), (fan, "agree"), (other, "disagree")):
        await store.db.execute(
            "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, ?, ?, ?)",
            (member, row["id"], choice, NOW),
        )
    [only] = await store.tracker.recipients(item)
    assert (only.member_id, only.role, only.text) == (author, "author", None)
    # Approved by its author: the summary is what the author and the supporter are shown.
    await store.db.execute("UPDATE statements SET state = 'approved' WHERE id = ?", (row["id"],))
    found = await store.tracker.recipients(item)
    assert [(r.member_id, r.role, r.text, r.words_of) for r in found] == [
        (author, "author", "A summary not approved yet", None),
        (fan, "supporter", "A summary not approved yet", author),
    ]
    made = await store.tracker.change(
        item,
        "done",
        None,
        changed_by=STAFF,
        tell=lambda rs: [Outgoing(r.member_id, r.chat_id, "news", words_of=r.words_of) for r in rs],
    )
    assert made is not None and made.told == 2 and made.batch_id is not None
    # A status that cannot be set, and an item that cannot have one, are refused.
    with pytest.raises(ValueError, match="cannot set"):
        await store.tracker.change(item, "new", None, changed_by=STAFF, tell=lambda r: [])
    with pytest.raises(ValueError, match="cannot have a status"):
        await store.tracker.change(
            Item("round", 999), "done", None, changed_by=STAFF, tell=lambda r: []
        )
    assert [n.text for n in await store.tracker.news_for(other)] == ["A summary not approved yet"]
    assert [n.own for n in await store.tracker.news_for(author)] == [True]

"""Sharing an idea with others, by choice, and a facilitator's OK before anyone sees it:
through the real bot and the emulator, read as transcripts."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest
from telegram import Update

from bot.catalogue import t, tn
from bot.receiving import CocreateApplication, DurableUpdateQueue
from conversations import approving, asking, broadcasting, reviewing, tracking
from emulator import SimUser
from storage.models import AuditEntry
from storage.roles import STAFF_FLOWS
from storage.store import Store
from tests.dbs import outbox_settled
from tests.media_samples import voice
from tests.test_answer_in_flight import as_if_still_sending
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9301
RISKY = "Nobody listens and some days I want to die."
# Not what members or staff did: the inbox, sessions, and (PostgreSQL) the sending pace.
NOT_DOMAIN = {"inbox", "sessions", "send_pace"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def member(person: MakePerson, user_id: int, name: str, *, named: bool = False) -> Person:
    """Someone who joined: anonymous, or with their first name."""
    someone = person(user_id, name)
    if not named:
        await join(someone)
        return someone
    await someone.says("/start")
    await someone.taps("English")
    await someone.taps(t("en", "consent.agree"))
    replies = await someone.taps(t("en", "naming.named"))
    assert replies[0] == t("en", "naming.named_ok", name=name)
    for _ in range(3):
        await someone.taps(t("en", "common.skip"))
    return someone


async def share_idea(someone: Person, idea: str) -> list[str]:
    """Shares an idea in words, skipping the rest; returns what Save brings."""
    await someone.says("/menu")
    await someone.taps("Share an idea")
    await someone.says(idea)
    await someone.taps("Skip")  # who it would help
    await someone.taps("Skip")  # would you help
    return await someone.taps("Save")


async def statements(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.db.fetch_all("SELECT * FROM statements ORDER BY id")]


async def audit(store: Store) -> list[AuditEntry]:
    """The audit log's entries about ideas and statements (not roles granted at start)."""
    return [e for e in await store.audit.entries() if e.action.startswith(("statement", "summary"))]


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    await outbox_settled(store.db)  # what was sent before is recorded sent
    tables = {
        name: [tuple(r) for r in await store.db.fetch_all(f"SELECT * FROM {name} ORDER BY 1")]
        for name in await store.db.table_names()
        if name not in NOT_DOMAIN
    }
    # Nobody is moved into approval's questions (other flows may be left as after any old
    # button).
    sessions = await store.db.fetch_all(
        "SELECT user_id, flow FROM sessions WHERE flow LIKE 'approve%' OR flow = 'statement'"
    )
    tables["sessions"] = sorted(tuple(r) for r in sessions)
    return tables


def waiting_view(count: int, how: str, idea: str) -> str:
    return f"{tn('en', 'approving.waiting', count, count=count)}\n{how}\n\n{idea}"


async def test_who_may_see_an_idea_is_chosen_by_button_or_by_typing(
    person: MakePerson, store: Store
) -> None:
    ann = await member(person, 3001, "Ann", named=True)
    saved = await share_idea(ann, "A bench at the bus stop.")
    assert saved == [t("en", "idea.saved"), t("en", "approving.share.ask")]
    assert ann.buttons == [
        "Only the team",
        "Others, without my name",
        "Others, with my first name",
    ]
    assert await ann.taps("Others, with my first name") == [
        t("en", "approving.share.named_ok"),
        t("en", "sharing.next"),
    ]
    assert "A person from the team will check it first. Then others can see it." in t(
        "en", "approving.share.anonymous_ok"
    )

    # Someone who joined anonymous is never offered their name; they type the number.
    bo = await member(person, 3002, "Bo")
    await share_idea(bo, "Later buses.")
    assert bo.buttons == ["Only the team", "Others, without my name"]
    assert await bo.says("2") == [t("en", "approving.share.anonymous_ok"), t("en", "sharing.next")]

    # The words work too.
    cy = await member(person, 3003, "Cy", named=True)
    await share_idea(cy, "A crossing by the school.")
    assert await cy.says("with my first name") == [
        t("en", "approving.share.named_ok"),
        t("en", "sharing.next"),
    ]

    rows = await statements(store)
    assert [(r["visibility"], r["state"], r["text"]) for r in rows] == [
        ("named", "waiting", None),
        ("anonymous", "waiting", None),
        ("named", "waiting", None),
    ]
    ideas = await store.db.fetch_all(
        "SELECT s.id FROM submissions s JOIN members m ON m.id = s.member_id"
        " WHERE s.kind = 'idea' ORDER BY s.id"
    )
    assert [r["submission_id"] for r in rows] == [r["id"] for r in ideas]


async def test_only_the_team_is_the_default(person: MakePerson, store: Store) -> None:
    dai = await member(person, 3004, "Dai", named=True)
    await share_idea(dai, "More bins.")
    assert await dai.taps("Only the team") == [
        t("en", "approving.share.team_ok"),
        t("en", "sharing.next"),
    ]
    await share_idea(dai, "Fewer bins.")
    assert await dai.says("skip") == [t("en", "approving.share.team_ok"), t("en", "sharing.next")]
    await share_idea(dai, "Green bins.")
    assert await dai.says("STOP") == [t("en", "approving.share.team_ok"), t("en", "sharing.next")]
    await share_idea(dai, "Blue bins.")
    assert await dai.says("/menu") == [t("en", "menu.title")]  # leaving it: only the team
    # An unnamed member cannot pick the name, even by typing its number.
    eli = await member(person, 3005, "Eli")
    await share_idea(eli, "A park bench.")
    unknown = await eli.does(lambda u: u.press_callback("nonsense:1"))
    await share_idea(eli, "A park bench.")
    assert await eli.does(lambda u: u.press_callback("share_with_named:named")) == unknown
    await share_idea(eli, "A park gate.")
    await eli.says("with my first name")
    assert await statements(store) == []
    submitted = await store.db.fetch_one(
        "SELECT COUNT(*) AS n FROM submissions WHERE status = 'submitted'"
    )
    assert submitted is not None and submitted["n"] == 7


async def test_a_facilitator_approves_with_an_edit_and_the_author_sees_it(
    person: MakePerson, store: Store
) -> None:
    olu = person(STAFF, "Olu")
    assert await olu.says("/ideas") == [t("en", "ideas.desk")]
    assert await olu.taps("Waiting for your OK") == [t("en", "approving.none")]

    ann = await member(person, 3011, "Ann", named=True)
    await share_idea(ann, "Ann Jones on Elm Street wants a bench.")
    await ann.taps("Others, with my first name")
    ann.user.unread()

    await olu.says("/ideas")
    assert await olu.taps("Waiting for your OK") == [
        waiting_view(
            1,
            t("en", "approving.how.named", name="Ann"),
            "Ann Jones on Elm Street wants a bench.",
        )
    ]
    assert olu.buttons == ["Approve", "Edit, then approve", "Decline", "Next"]
    assert await olu.taps("Edit, then approve") == [
        t("en", "approving.edit.ask"),
        "Ann Jones on Elm Street wants a bench.",
    ]
    assert await olu.says("A bench by the bus stop.") == [
        t("en", "approving.approved"),
        t("en", "approving.none"),
    ]
    [row] = await statements(store)
    assert (row["state"], row["text"], row["edited"], row["decided_by"]) == (
        "approved",
        "A bench by the bus stop.",
        1,
        STAFF,
    )
    # The author is told through the outbox, with the edited words.
    [told] = await ann.user.wait_messages(1, timeout=10)
    assert told.text == t("en", "approving.author.edited", text="A bench by the bus stop.")
    outbox = await settled(store, "member_id, status")
    assert outbox == [{"member_id": await member_id(store, 3011), "status": "sent"}]
    # The audit log says who approved which, and holds no words.
    [entry] = await audit(store)
    assert (entry.actor, entry.action, json.loads(entry.detail)) == (
        f"telegram:{STAFF}",
        "statement_edited",
        {"statement": row["id"]},
    )
    assert "bench" not in repr(await store.audit.entries())


async def settled(store: Store, columns: str) -> list[dict[str, Any]]:
    """The outbox's rows (`columns`, with status; in id order) once the delivery worker has
    settled them all, and their batches are marked finished: it does at once (no clock is
    involved), but a message can reach its chat before the worker has marked it sent."""

    async def rows() -> list[dict[str, Any]]:
        while True:
            found = await store.db.fetch_all(f"SELECT {columns} FROM outbox ORDER BY id")
            if found:
                await outbox_settled(store.db)
                found = await store.db.fetch_all(f"SELECT {columns} FROM outbox ORDER BY id")
                return [dict(r) for r in found]
            await asyncio.sleep(0.02)

    async with asyncio.timeout(10):
        return await rows()


async def member_id(store: Store, telegram_id: int) -> int:
    found = await store.members.by_telegram_id(telegram_id)
    assert found is not None
    return found.id


async def test_approving_as_written_by_typing_and_declining(
    person: MakePerson, store: Store
) -> None:
    olu = person(STAFF, "Olu")
    bo = await member(person, 3012, "Bo")
    cy = await member(person, 3013, "Cy")
    await share_idea(bo, "  Later buses at night.  ")
    await bo.says("2")
    await share_idea(cy, "Ban all cars.")
    await cy.says("2")
    bo.user.unread()
    cy.user.unread()

    await olu.says("/ideas")
    anonymous = t("en", "approving.how.anonymous")
    assert await olu.taps("Waiting for your OK") == [
        waiting_view(2, anonymous, "  Later buses at night.".strip())
    ]
    # Next, then Next again comes back round to the first.
    assert await olu.taps("Next") == [waiting_view(2, anonymous, "Ban all cars.")]
    assert await olu.says("next") == [waiting_view(2, anonymous, "Later buses at night.")]
    assert await olu.says("1") == [  # Approve, typed
        t("en", "approving.approved"),
        waiting_view(1, anonymous, "Ban all cars."),
    ]
    assert await olu.taps("Decline") == [t("en", "approving.declined"), t("en", "approving.none")]
    first, second = await statements(store)
    assert (first["state"], first["text"], first["edited"]) == (
        "approved",
        "Later buses at night.",
        0,
    )
    assert (second["state"], second["text"]) == ("declined", None)
    [told] = await bo.user.wait_messages(1, timeout=10)
    assert told.text == t("en", "approving.author.approved", text="Later buses at night.")
    actions = [(e.action, json.loads(e.detail)) for e in await audit(store)]
    assert actions == [
        ("statement_approved", {"statement": first["id"]}),
        ("statement_declined", {"statement": second["id"]}),
    ]
    # A second press on the decided idea changes nothing.
    before = await snapshot(store)
    assert await olu.does(lambda u: u.press_callback(f"approve:{first['id']}:ok")) == [
        t("en", "approving.gone"),
        t("en", "approving.none"),
    ]
    assert await snapshot(store) == before
    assert cy.user.unread() == []  # a declined idea's author is not messaged


async def test_a_flagged_idea_is_never_offered(person: MakePerson, store: Store) -> None:
    olu = person(STAFF, "Olu")
    await olu.says("hello")  # staff must have opened the bot to get alerts
    olu.user.unread()
    ivy = await member(person, 3014, "Ivy")
    await ivy.says("/menu")
    await ivy.taps("Share an idea")
    assert await ivy.says(RISKY) == [t("en", "safeguarding.help"), t("en", "idea.who_it_helps")]
    await ivy.taps("Skip")
    await ivy.taps("Skip")
    await ivy.taps("Save")
    await ivy.taps("Others, without my name")
    await olu.user.wait_messages(1, timeout=10)  # the safeguarding alert
    [row] = await statements(store)
    assert row["state"] == "waiting"

    await olu.says("/ideas")
    assert await olu.taps("Waiting for your OK") == [t("en", "approving.none")]
    assert await store.statements.count_waiting() == 0
    # Not even a forged button, nor the repository, approves it.
    before = await snapshot(store)
    for action in ("ok", "edit", "sum", "no"):
        assert await olu.does(
            functools.partial(SimUser.press_callback, data=f"approve:{row['id']}:{action}")
        ) == [
            t("en", "approving.gone"),
            t("en", "approving.none"),
        ]
    assert await store.statements.approve(row["id"], STAFF) is None
    assert await store.statements.approve(row["id"], STAFF, "Edited") is None
    assert await store.statements.summarise(row["id"], STAFF, "Summary") is None
    assert await snapshot(store) == before


async def test_a_facilitator_adds_a_statement(person: MakePerson, store: Store) -> None:
    olu = person(STAFF, "Olu")
    await olu.says("/ideas")
    assert await olu.taps("Add a statement") == [t("en", "approving.statement.ask")]
    assert await olu.says("Buses should run after 11 pm.") == [t("en", "approving.statement.added")]
    [row] = await statements(store)
    assert {k: row[k] for k in ("submission_id", "visibility", "state", "text", "created_by")} == {
        "submission_id": None,
        "visibility": "team",
        "state": "approved",
        "text": "Buses should run after 11 pm.",
        "created_by": STAFF,
    }
    [entry] = await audit(store)
    assert (entry.action, json.loads(entry.detail)) == ("statement_added", {"statement": row["id"]})
    # Too long: asked again, nothing kept.
    await olu.says("/ideas")
    await olu.taps("Add a statement")
    assert await olu.says("x" * 301) == [tn("en", "staff.ask.text_bad.letters", 300, max=300)]
    assert await olu.says("Parks should stay open late.") == [t("en", "approving.statement.added")]
    assert len(await statements(store)) == 2


async def voice_idea(someone: Person) -> list[str]:
    """Shares an idea as a voice note, with no name; returns the last replies."""
    await someone.says("/menu")
    await someone.taps("Share an idea")
    await someone.does(lambda u: u.send_voice(voice(3), duration=9))
    await someone.taps("Skip")
    await someone.taps("Skip")
    await someone.taps("Save")
    return await someone.taps("Others, without my name")


async def test_a_voice_idea_is_summarised_and_its_author_approves(
    person: MakePerson, store: Store
) -> None:
    olu = person(STAFF, "Olu")
    gus = await member(person, 3015, "Gus")
    assert await voice_idea(gus) == [
        t("en", "approving.share.anonymous_ok"),
        t("en", "sharing.next"),
    ]
    gus.user.unread()

    await olu.says("/ideas")
    shown = await olu.taps("Waiting for your OK")
    header = "\n".join(
        [
            tn("en", "approving.waiting", 1, count=1),
            t("en", "approving.how.anonymous"),
            tn("en", "approving.voice", 9, seconds=9),
        ]
    )
    assert shown == ["", header]  # the voice note itself, then what to do
    assert olu.user.messages[-2].kind == "voice"
    assert olu.buttons == ["Write a summary", "Decline", "Next"]
    [row] = await statements(store)
    assert await store.statements.approve(row["id"], STAFF) is None  # no words to approve

    assert await olu.taps("Write a summary") == [t("en", "approving.summary.ask")]
    assert await olu.says("Buses should wait for wheelchairs.") == [
        t("en", "approving.summary_sent"),
        t("en", "approving.none"),
    ]
    [asked] = await gus.user.wait_messages(1, timeout=10)
    assert asked.text == t(
        "en", "approving.author.summary", text="Buses should wait for wheelchairs."
    )
    assert gus.buttons == ["Yes", "No"]
    [row] = await statements(store)
    assert (row["state"], row["text"]) == ("summary", "Buses should wait for wheelchairs.")

    # The author says no by typing: it goes back to the team; the team writes it again.
    assert await gus.says("no") == [t("en", "approving.summary.thanks_no")]
    [row] = await statements(store)
    assert (row["state"], row["text"]) == ("waiting", None)
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    await olu.taps("Write a summary")
    await olu.says("Bus drivers should wait for wheelchairs.")
    await gus.user.wait_messages(1, timeout=10)
    # Now yes, by button: other members may see it.
    assert await gus.taps("Yes") == [t("en", "approving.summary.thanks_yes")]
    [row] = await statements(store)
    assert (row["state"], row["text"]) == ("approved", "Bus drivers should wait for wheelchairs.")
    actions = [e.action for e in await audit(store)]
    assert actions == [
        "statement_summarised",
        "summary_refused",
        "statement_summarised",
        "summary_approved",
    ]
    # Pressing Yes again (a forged or old button) changes nothing.
    before = await snapshot(store)
    unknown = await gus.does(lambda u: u.press_callback("nonsense:1"))
    assert await gus.does(lambda u: u.press_callback(f"summary:{row['id']}:no")) == unknown
    assert await snapshot(store) == before


async def test_members_cannot_approve_edit_or_decline(person: MakePerson, store: Store) -> None:
    ann = await member(person, 3016, "Ann")
    bo = await member(person, 3017, "Bo")
    await share_idea(ann, "Street lights on Oak Road.")
    await ann.says("2")
    [row] = await statements(store)
    sid = row["id"]
    stranger = person(3018, "Sid")
    await stranger.says("hello")
    # Bo is not the author: the author's summary buttons are not his either.
    forged = [f"approve:{sid}:{a}" for a in ("ok", "edit", "sum", "no", "next")]
    forged += ["approve:0:ok", "approve:x:ok", f"summary:{sid}:yes", "ideas:wait", "ideas:add"]
    before = await snapshot(store)
    for someone in (ann, bo, stranger):
        unknown = await someone.does(lambda u: u.press_callback("nonsense:1"))
        for data in forged:
            got = await someone.does(functools.partial(SimUser.press_callback, data=data))
            assert got == unknown, (someone.user.id, data)
        # Typed words after a forged Edit approve nothing.
        await someone.does(lambda u: u.press_callback(f"approve:{sid}:edit"))
        await someone.says("Edited by a member")
        assert await someone.says("/ideas") == await someone.says("/frobnicate")
    assert await snapshot(store) == before
    assert (await statements(store))[0]["state"] == "waiting"


async def test_a_replayed_update_makes_no_second_statement(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    ann = await member(person, 3019, "Ann")
    await share_idea(ann, "A later last bus.")
    text, message_id = ann.button("Others, without my name")
    update_id = ann.user.press(text, message_id=message_id)
    await bot.wait_handled(update_id)
    ann.user.unread()
    assert len(await statements(store)) == 1
    # The same update again, as after a crash before Telegram heard it was handled.
    user = {"id": 3019, "is_bot": False, "first_name": "Ann"}
    raw = {
        "update_id": update_id,
        "callback_query": {
            "id": "replayed-1",
            "from": user,
            "chat_instance": "3019",
            "data": "share_with:anonymous",
            "message": {
                "message_id": message_id,
                "date": 1_790_000_000,
                "chat": {"id": 3019, "type": "private", "first_name": "Ann"},
                "text": t("en", "approving.share.ask"),
            },
        },
    }
    queue = bot.update_queue
    assert isinstance(queue, DurableUpdateQueue)
    await queue.requeue(Update.de_json(raw, bot.bot))
    await bot.wait_handled(update_id)
    # A fresh press of the same (old) button, and the repository asked twice.
    await ann.does(lambda u: u.press_callback("share_with:anonymous", message_id=message_id))
    [row] = await statements(store)
    again = await store.statements.share(row["submission_id"], "anonymous")
    assert again is not None and again.id == row["id"]
    assert len(await statements(store)) == 1


async def test_an_author_who_used_stop_is_not_told(person: MakePerson, store: Store) -> None:
    olu = person(STAFF, "Olu")
    hal = await member(person, 3020, "Hal")
    await share_idea(hal, "Buses on Sundays.")
    await hal.says("2")
    assert await hal.says("/stop") == [t("en", "stop.done")]
    hal.user.unread()
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    assert await olu.taps("Approve") == [t("en", "approving.approved"), t("en", "approving.none")]
    [row] = await statements(store)
    assert row["state"] == "approved"

    [outcome] = await settled(store, "status, skip_reason")
    assert outcome == {"status": "skipped", "skip_reason": "stopped"}
    assert hal.user.unread() == []


async def test_cancel_ends_an_edit_a_summary_or_a_statement_and_changes_nothing(
    person: MakePerson, store: Store
) -> None:
    olu = person(STAFF, "Olu")
    ann = await member(person, 3021, "Ann")
    await share_idea(ann, "A bench by the shops.")
    await ann.says("2")
    gus = await member(person, 3022, "Gus")
    await gus.says("/menu")
    await gus.taps("Share an idea")
    await gus.does(lambda u: u.send_voice(voice(3), duration=9))
    await gus.taps("Skip")
    await gus.taps("Skip")
    await gus.taps("Save")
    await gus.taps("Others, without my name")
    idle = await olu.says("hello")  # staff who are not members are told what to do
    await olu.says("/ideas")  # the bot learns the facilitator's name
    before = await snapshot(store)
    cancelled = [t("en", "approving.cancelled")]

    # /cancel, or CANCEL typed, while the facilitator types an edit, a summary or a
    # statement, or chooses what to do with a waiting idea: nothing is approved.
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    await olu.taps("Edit, then approve")
    assert await olu.says("/cancel") == cancelled
    assert await olu.says("Now these words are nobody's edit") == idle
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    assert await olu.says("cancel") == cancelled  # at the choice itself
    await olu.taps("Next")  # Gus's voice note
    await olu.taps("Write a summary")
    assert await olu.says("Cancel") == cancelled
    await olu.says("/ideas")
    await olu.taps("Add a statement")
    assert await olu.says("/cancel") == cancelled
    assert await olu.says("Buses all night") == idle
    assert await snapshot(store) == before
    assert [r["state"] for r in await statements(store)] == ["waiting", "waiting"]
    assert await audit(store) == []


async def test_a_facilitator_removed_mid_edit_approves_nothing_when_invited_back(
    person: MakePerson, store: Store
) -> None:
    olu = person(STAFF, "Olu")
    ann = await member(person, 3023, "Ann")
    await share_idea(ann, "A zebra crossing on Park Road.")
    await ann.says("2")

    async def invited(someone: Person) -> None:
        [link] = await olu.says("/invite")
        token = link.split("start=invite-")[1].split()[0]
        await someone.says(f"/start invite-{token}")

    fay = person(3024, "Fay")
    await invited(fay)
    for question in ("edit", "statement"):
        await fay.says("/ideas")
        if question == "edit":
            await fay.taps("Waiting for your OK")
            await fay.taps("Edit, then approve")
        else:
            await fay.taps("Add a statement")
        # Removed half-way: the question she was at ends with her role.
        await olu.says("/roles")
        await olu.taps(t("en", "roles.remove", name="Fay"))
        await olu.taps(t("en", "roles.remove.yes"))
        session = await store.sessions.get(3024)
        assert session.flow is None, question
        # Invited back later, her first words are not taken as an edit or a statement.
        await invited(fay)
        await fay.says("Thanks, I am back")
        assert [(r["state"], r["text"]) for r in await statements(store)] == [("waiting", None)]
        assert await audit(store) == []


def test_every_staff_question_ends_with_the_role() -> None:
    staff_flows = {approving.CHOOSE, approving.EDIT, approving.SUMMARY, approving.STATEMENT}
    staff_flows |= {reviewing.REPLY, tracking.DRAFT, asking.FLOW.name, broadcasting.FLOW.name}
    assert staff_flows <= set(STAFF_FLOWS)


async def test_a_typed_no_counts_while_the_summary_question_is_still_being_recorded(
    person: MakePerson, store: Store
) -> None:
    """The sender records a row 'sent', with its message id, a moment after Telegram showed
    it: a quick "no" in between still answers the summary (it got "Sorry, I did not get
    that" under load)."""
    olu = person(STAFF, "Olu")
    gus = await member(person, 3016, "Gus")
    await voice_idea(gus)
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    await olu.taps("Write a summary")
    await olu.says("Buses should wait for wheelchairs.")
    await gus.user.wait_messages(1, timeout=10)
    await as_if_still_sending(store, "summary")
    assert await gus.says("no") == [t("en", "approving.summary.thanks_no")]

"""Only staff, only now: staff act, and are written to, only in their own private chat (whose
id is their user id); a role that ends takes everything with it (answers back, reports,
queued staff messages); an invite dies with its maker's organiser role.

An unsigned update can claim any user id from any chat (webhook mode without a secret, or a
bug upstream): `forge` and `forge_press` build exactly such updates in the emulator.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from conversations.commands import command_list
from emulator import Emulator, SimUser
from emulator.formatting import bot_command_entities
from emulator.state import CallbackQueryRecord
from storage.outbox import Outgoing
from storage.roles import Redemption
from storage.sessions import Session
from storage.store import Store
from tests.transcript import NOT_STARTED, Person, join

MakePerson = Callable[..., Person]
OLU, OTTO = 9301, 9302  # organisers
FAY, HAL, MAL = 9303, 9304, 9305  # a facilitator, someone invited, someone who forges
LONDON = ZoneInfo("Europe/London")
_forged_ids = itertools.count(1)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [OLU]}


def forge(emulator: Emulator, claimed: int, chat: SimUser, text: str) -> int:
    """A message that says it is from user `claimed` but comes in `chat`."""
    state = emulator.state
    into = state.chat(chat.id)
    into.started = True
    content: dict[str, Any] = {"text": text}
    if entities := bot_command_entities(text):
        content["entities"] = entities
    return state.push_update(
        "message",
        {
            "message_id": into.take_message_id(),
            "from": state.chat(claimed).member.user_dict(),
            "chat": into.member.chat_dict(),
            "date": state.now(),
            **content,
        },
    )


def forge_press(emulator: Emulator, claimed: int, chat: SimUser, data: str) -> int:
    """A button press that says it is from user `claimed`, on the newest message in `chat`."""
    state = emulator.state
    into = state.chat(chat.id)
    message = into.bot_messages[-1]
    query_id = str(9_000_000_000 + next(_forged_ids))
    state.callback_queries[query_id] = CallbackQueryRecord(into.id, data)
    return state.push_update(
        "callback_query",
        {
            "id": query_id,
            "from": state.chat(claimed).member.user_dict(),
            "chat_instance": into.chat_instance,
            "data": data,
            "message": state.message_json(into, message),
        },
    )


async def handled(bot: CocreateApplication, someone: Person, update_id: int) -> list[str]:
    await bot.wait_handled(update_id)
    return [m.text or "" for m in someone.user.unread()]


async def delivered_all(store: Store, bot: CocreateApplication) -> None:
    """Waits until the outbox has sent everything, reports included."""

    async def done() -> bool:
        counts = await store.outbox.status_counts()
        return not (
            counts.get("queued")
            or counts.get("sending")
            or await store.outbox.has_open_batches()
            or await store.outbox.finished_unreported_batches()
        )

    async with asyncio.timeout(10):
        while True:
            if await done():
                return
            bot.delivery.wake()
            await asyncio.sleep(0.05)


async def stored_chat_ids(store: Store) -> dict[int, int]:
    rows = await store.db.fetch_all("SELECT telegram_user_id, chat_id FROM roles")
    return {r["telegram_user_id"]: r["chat_id"] for r in rows}


async def a_facilitator(olu: Person, person: MakePerson, user_id: int, name: str) -> Person:
    [link] = await olu.says("/invite")
    found = re.search(r"start=invite-([\w-]+)", link)
    assert found is not None
    someone = person(user_id, name)
    await someone.says(f"/start invite-{found.group(1)}")
    return someone


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


async def test_an_update_from_another_chat_gets_nothing_of_the_organisers(
    person: MakePerson, store: Store, emulator: Emulator, bot: CocreateApplication
) -> None:
    olu = person(OLU, "Olu")
    await olu.says("/roles")
    mal = person(MAL, "Mal")
    await mal.says("hello")
    unknown = [t("en", "bad.unknown_command")]

    # Claiming to be the organiser from Mal's chat: as if the commands did not exist.
    for command in ("/invite", "/roles", "/ask", "/broadcast", "/responses", "/export"):
        assert await handled(bot, mal, forge(emulator, OLU, mal.user, command)) == unknown
    assert await store.roles.invites() == []
    assert await stored_chat_ids(store) == {OLU: OLU}
    assert emulator.commands.get(f"chat:{MAL}") is None  # no staff menu set in Mal's chat
    assert olu.user.unread() == []

    # A member's risky words: the alert goes to the organiser's own chat, and only there.
    ann = person(7301, "Ann")
    await join(ann)
    await ask_open(olu, "How are things?")
    await ann.user.wait_messages(1, timeout=10)
    await ann.says("Some days I want to die.")
    alerts = await olu.user.wait_messages(2, timeout=10)  # the delivery report, the alert
    assert t("en", "safeguarding.read") in [b for m in alerts for row in m.buttons for b in row]
    assert all("want to die" not in (m.text or "") for m in mal.user.messages)

    # The alert's "Read it", pressed in Mal's chat in the organiser's name: the words stay put.
    [flag] = await store.db.fetch_all("SELECT id FROM safeguarding_flags")
    forged = await handled(bot, mal, forge_press(emulator, OLU, mal.user, f"flag:{flag['id']}"))
    assert forged == [NOT_STARTED]
    assert all("want to die" not in (m.text or "") for m in mal.user.messages)
    assert await stored_chat_ids(store) == {OLU: OLU}


async def test_a_removed_facilitator_gets_nothing_more(
    person: MakePerson, store: Store, emulator: Emulator, bot: CocreateApplication, clock: FakeClock
) -> None:
    olu = person(OLU, "Olu")
    await olu.says("/roles")
    fay = await a_facilitator(olu, person, FAY, "Fay")
    ann = person(7302, "Ann")
    await join(ann)
    await ask_open(fay, "What would help?")
    await ann.user.wait_messages(1, timeout=10)
    await ann.says("More buses.")
    await fay.user.wait_messages(1, timeout=10)  # her delivery report
    await fay.says("/responses")
    await fay.taps("What would help?")
    await fay.taps(t("en", "staff.responses.reply"))
    await fay.says("Which route?")
    await ann.user.wait_messages(1, timeout=10)
    # She also asks a question for tomorrow, then is removed before it goes.
    await ask_open(fay, "Did the bus come?", when="At a date and time", at="01/12/2026 10:00")
    await olu.says("/roles")
    await olu.taps(t("en", "roles.remove", name="Fay"))
    await olu.taps(t("en", "roles.remove.yes"))
    fay.user.unread()
    olu.user.unread()

    # Ann answers back: she is thanked as always; an organiser gets it instead of Fay.
    member_row = await store.members.by_telegram_id(ann.user.id)
    assert member_row is not None
    pseudonym = await store.pseudonyms.of(member_row.id)
    await ann.taps(t("en", "reply.answer_back"))
    assert await ann.says("The number 6.") == [t("en", "reply.passed_on")]
    [instead] = await olu.user.wait_messages(1, timeout=10)
    assert instead.text == t(
        "en", "staff.reply.answered_back_instead", pseudonym=pseudonym, text="The number 6."
    )

    # Her question for tomorrow goes out, but no report comes to her; nor do alerts.
    clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=LONDON))
    await bot.scheduler.run_due()
    [question] = await ann.user.wait_messages(1, timeout=10)
    assert (question.text or "").startswith("Did the bus come?")
    await ann.says("I want to die.")
    await olu.user.wait_messages(1, timeout=10)  # the alert
    await delivered_all(store, bot)
    assert fay.user.unread() == []


async def test_an_invite_dies_with_its_makers_organiser_role(
    person: MakePerson, store: Store, clock: FakeClock
) -> None:
    await store.roles.sync_organisers([OLU, OTTO])
    otto = person(OTTO, "Otto")
    [link] = await otto.says("/invite")
    found = re.search(r"start=invite-([\w-]+)", link)
    assert found is not None
    token = found.group(1)
    await store.roles.sync_organisers([OLU])  # Otto is taken off ORGANISER_IDS
    hal = person(HAL, "Hal")
    assert await hal.says(f"/start invite-{token}") == [t("en", "invite.withdrawn")]
    # Made an organiser again later: what they made before still does not work.
    clock.advance(timedelta(minutes=5))
    await store.roles.sync_organisers([OLU, OTTO])
    assert await hal.says(f"/start invite-{token}") == [t("en", "invite.withdrawn")]
    assert await store.roles.role_of(HAL) is None
    [invite] = await store.roles.invites()
    assert invite.used_at is None
    # One made now works.
    [link] = await otto.says("/invite")
    found = re.search(r"start=invite-([\w-]+)", link)
    assert found is not None
    assert await hal.says(f"/start invite-{found.group(1)}") == [
        t("en", "invite.welcome", commands=command_list("facilitator", "en"))
    ]


# ---- storage


@pytest.fixture
async def roles_store(tmp_path: Path) -> Any:
    clock = FakeClock(datetime(2026, 11, 30, 10, 0, tzinfo=LONDON))
    store = await Store.open(tmp_path / "roles.db", clock.now)
    yield store
    await store.close()


async def test_seen_records_only_a_name_and_removal_ends_waiting_staff_mail(
    roles_store: Store,
) -> None:
    store = roles_store
    await store.roles.sync_organisers([1])
    await store.roles.grant_facilitator(10, "Fay", granted_by=1)
    await store.roles.seen(10, "Fay R")
    assert await stored_chat_ids(store) == {1: 1, 10: 10}
    # Waiting when she is removed: a report owed to her, and staff messages queued for her.
    owed = await store.outbox.enqueue_batch(
        "broadcast", 1, [Outgoing(None, 555, "news")], author_chat_id=10
    )
    queued = await store.outbox.enqueue_batch(
        "reply", 1, [Outgoing(None, 10, "answer back"), Outgoing(None, 1, "for Olu")]
    )
    # She is half-way through /ask, and Olu through /export.
    await store.sessions.save(Session(10, "ask", "WHEN", {"ask": {"text": "Parks?"}}))
    await store.sessions.save(Session(1, "export", "WHAT", {"export": {}}))
    await store.roles.remove(10, by=1)
    assert await store.sessions.get(10) == Session(10)  # her open flow ends with her role
    assert (await store.sessions.get(1)).flow == "export"
    batch = await store.outbox.batch(owed)
    assert batch is not None and batch.author_chat_id is None
    to_her, to_olu = await store.outbox.rows_of(queued)
    assert (to_her.status, to_her.last_error) == ("failed", "role_ended")
    assert to_olu.status == "queued"
    assert await store.roles.staff_chat(10) is None and await store.roles.staff_chat(1) == 1
    assert await store.roles.redeem("nothing", 11, "Ivy") is Redemption.UNKNOWN

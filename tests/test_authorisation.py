"""Every facilitator and organiser command, and every staff button (forged), from a plain
member, from someone who never joined, and from a removed facilitator: each is refused
exactly like an unknown command or an unknown button, and nothing changes in the database.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from telegram.ext import BaseHandler, CommandHandler

from bot.catalogue import t
from conversations.commands import MEMBER_COMMANDS, ORGANISER_COMMANDS
from conversations.routes import build_routes
from emulator import SimUser
from storage.store import Store
from tests.dbs import outbox_settled
from tests.media_samples import voice
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ORGANISER = 9201
STAFF_COMMANDS = (
    "/ask",
    "/broadcast",
    "/responses",
    "/scheduled",
    "/invite",
    "/roles",
    "/ideas",
    "/stats",
    "/export",
    "/workbench",
)
# Bookkeeping, not what the project stores about anyone: the inbox, and in sessions which
# update was applied last and which message last asked something (compared by flow below).
# Not what anyone did: the inbox, sessions, and (PostgreSQL) the pace of sending, which
# moves whenever anything is sent (a reply to a refused button too).
NOT_DOMAIN = {"inbox", "sessions", "send_pace"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER]}


def press(user: SimUser, data: str) -> int:
    """Forges a button press with the given callback data."""
    return user.press_callback(data)


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    await outbox_settled(store.db)  # what was sent before is recorded sent
    tables = {
        name: [tuple(r) for r in await store.db.fetch_all(f"SELECT * FROM {name} ORDER BY 1")]
        for name in await store.db.table_names()
        if name not in NOT_DOMAIN
    }
    # Nobody is moved into (or out of) a flow, and no draft changes.
    sessions = await store.db.fetch_all("SELECT user_id, flow, state, data FROM sessions")
    tables["sessions"] = sorted(
        (r["user_id"], r["flow"], r["state"], json.loads(r["data"]).get("ask")) for r in sessions
    )
    return tables


async def test_staff_commands_and_buttons_are_refused_to_everyone_else(
    person: MakePerson, store: Store
) -> None:
    olu = person(ORGANISER, "Olu")
    # A facilitator joins by invite, asks a question, then is removed.
    [link] = await olu.says("/invite")
    found = re.search(r"start=invite-([\w-]+)", link)
    assert found is not None
    fay = person(9202, "Fay")
    await fay.says(f"/start invite-{found.group(1)}")
    ann = person(9203, "Ann")
    await join(ann)
    await fay.says("/ask")
    await fay.says("Is the hall warm enough?")
    await fay.taps("In their own words")
    await fay.taps("All members")
    await fay.taps("Now")
    await fay.taps("No reminder")
    await fay.taps("Send")
    await ann.user.wait_messages(1, timeout=10)
    await fay.user.wait_messages(1, timeout=10)  # her delivery report
    await ann.says("It is cold on Tuesdays.")
    await olu.says("/roles")
    await olu.taps(t("en", "roles.remove", name="Fay"))
    await olu.taps(t("en", "roles.remove.yes"))
    assert await store.roles.role_of(9202) is None

    question = (await store.questions.recent(1))[0]
    answer = await store.db.fetch_one("SELECT id FROM answers")
    assert answer is not None
    forged = [
        "ask:1:open",
        "ask:10:send",
        "bc:8:send",
        "resp:q:0:0",
        f"resp:q:{question.id}:0",
        f"resp:reply:{answer['id']}",
        f"sched:q:{question.id}",
        "sched:b:1",
        f"roles:remove:{ORGANISER}",
        "roles:confirm:9202",
        "flag:1",
    ]
    stranger = person(9204, "Sid")
    await stranger.says("hello")
    before = await snapshot(store)
    for someone, is_member in ((ann, True), (fay, False), (stranger, False)):
        unknown_command = await someone.says("/frobnicate")
        unknown_button = await someone.does(lambda u: u.press_callback("nonsense:1"))
        for command in STAFF_COMMANDS:
            assert await someone.says(command) == unknown_command, (someone.user.id, command)
        for data in forged:
            got = await someone.does(functools.partial(press, data=data))
            assert got == unknown_button, (someone.user.id, data)
        # Typed words after a forged Reply reach no one (the snapshot shows no reply queued).
        await someone.does(lambda u: u.press_callback(f"resp:reply:{answer['id']}"))
        await someone.says("Hello from me")
        if is_member:
            assert unknown_command == [t("en", "bad.unknown_command")]
    assert await snapshot(store) == before


async def test_ideas_staff_buttons_and_unapproved_ideas_are_refused_to_members(
    person: MakePerson, store: Store
) -> None:
    """Issue 12: members (and a removed facilitator, and strangers) cannot open /ideas,
    approve, edit, summarise, set a status, read where people agree, nor see or vote on an
    idea that is not approved (or their own), even with forged button data."""
    olu = person(ORGANISER, "Olu")
    ann, bo, gus = person(9211, "Ann"), person(9212, "Bo"), person(9213, "Gus")
    for someone in (ann, bo, gus):
        await join(someone)

    async def share(someone: Person, idea: str | None) -> None:
        await someone.says("/menu")
        await someone.taps("Share an idea")
        if idea is None:
            await someone.does(lambda u: u.send_voice(voice(2), duration=5))
        else:
            await someone.says(idea)
        await someone.taps("Skip")
        await someone.taps("Skip")
        await someone.taps("Save")
        await someone.taps("Others, without my name")

    await share(ann, "Free tea at the library.")  # left waiting
    await share(bo, "A later last bus.")  # approved
    await share(gus, None)  # a voice note: a summary waits for Gus's OK
    waiting, approved, summary = (
        r["id"] for r in await store.db.fetch_all("SELECT id FROM statements ORDER BY id")
    )
    await olu.says("/ideas")
    await olu.taps("Waiting for your OK")
    await olu.taps("Next")
    await olu.taps("Approve")  # Bo's
    await olu.taps("Write a summary")  # Gus's
    await olu.says("Buses should wait for wheelchairs.")
    await gus.user.wait_messages(1, timeout=10)
    await bo.user.wait_messages(1, timeout=10)  # approved: Bo is told
    states = [
        r["state"] for r in await store.db.fetch_all("SELECT state FROM statements ORDER BY id")
    ]
    assert states == ["waiting", "approved", "summary"]
    [submission] = await store.db.fetch_all(
        "SELECT submission_id FROM statements WHERE id = ?", (waiting,)
    )
    # A facilitator who is removed, and a stranger.
    [link] = await olu.says("/invite")
    found = re.search(r"start=invite-([\w-]+)", link)
    assert found is not None
    fay = person(9214, "Fay")
    await fay.says(f"/start invite-{found.group(1)}")
    await olu.says("/roles")
    await olu.taps(t("en", "roles.remove", name="Fay"))
    await olu.taps(t("en", "roles.remove.yes"))
    stranger = person(9215, "Sid")
    await stranger.says("hello")

    staff_buttons = [
        "ideas:wait",
        "ideas:add",
        "ideas:agree",
        "ideas:status",
        *(f"approve:{waiting}:{a}" for a in ("ok", "edit", "sum", "no", "next")),
        f"approve:{summary}:sum",
        f"trk:1:i{submission['submission_id']}",
        f"trk:1:s{approved}",
        "trk:2:done",
        "trk:3:skip",
        "trk:4:send",
    ]
    # Ideas nobody but staff may see yet: waiting, and a summary its author has not OK'd.
    unapproved = [
        *(f"vote:{s}:agree" for s in (waiting, summary)),
        *(f"revote:{s}:disagree" for s in (waiting, summary)),
        *(f"myvotes:{s}" for s in (waiting, summary)),
        f"summary:{summary}:yes",  # Gus's summary is his to OK, no one else's
        f"summary:{summary}:no",
    ]
    own = [f"vote:{approved}:agree", f"revote:{approved}:agree", f"myvotes:{approved}"]
    not_members = ["upd:0", "upd:5", "myvotes:page:0", f"vote:{approved}:agree"]
    everyone: tuple[tuple[Person, list[str]], ...] = (
        (ann, []),
        (bo, own),
        (fay, not_members),
        (stranger, not_members),
    )
    for someone in (ann, bo):
        await someone.says("/cancel")  # past "share another?"
    gus.user.unread()
    before = await snapshot(store)
    for someone, extra in everyone:
        unknown_command = await someone.says("/frobnicate")
        unknown_button = await someone.does(lambda u: u.press_callback("nonsense:1"))
        assert await someone.says("/ideas") == unknown_command, someone.user.id
        for data in (*staff_buttons, *unapproved, *extra):
            got = await someone.does(functools.partial(press, data=data))
            assert got == unknown_button, (someone.user.id, data)
        # Typed words after a forged Edit or status step approve and change nothing.
        for data in (f"approve:{waiting}:edit", "trk:3:skip", "ideas:add"):
            await someone.does(functools.partial(press, data=data))
            await someone.says("Edited by someone else")
    assert await snapshot(store) == before
    # "See others' ideas" shows members only the approved idea (Bo: his own, so none).
    assert await ann.says("/menu") == [t("en", "menu.title")]
    assert await ann.taps(t("en", "menu.vote")) == [
        t("en", "voting.idea", text="A later last bus.")
    ]
    assert await bo.says("other ideas") == [t("en", "voting.none_left")]
    assert gus.user.unread() == []


def test_every_command_is_in_a_menu_and_every_staff_one_is_tried_here() -> None:
    """Every command the bot answers is in the members' menu or the staff's (so staff can
    find /ideas), and every staff command is among those refused to everyone else above."""
    registered: set[str] = set()
    handlers: list[BaseHandler[Any, Any, Any]] = list(build_routes())
    while handlers:
        handler = handlers.pop()
        if isinstance(handler, CommandHandler):
            registered |= set(handler.commands)
        handlers += [*getattr(handler, "entry_points", ()), *getattr(handler, "fallbacks", ())]
    assert registered == set(MEMBER_COMMANDS) | set(ORGANISER_COMMANDS)
    assert {c.removeprefix("/") for c in STAFF_COMMANDS} == set(ORGANISER_COMMANDS)

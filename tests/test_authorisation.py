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

from bot.catalogue import t
from emulator import SimUser
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ORGANISER = 9201
STAFF_COMMANDS = ("/ask", "/broadcast", "/responses", "/scheduled", "/invite", "/roles")
# Bookkeeping, not what the project stores about anyone: the inbox, and in sessions which
# update was applied last and which message last asked something (compared by flow below).
NOT_DOMAIN = {"inbox", "sessions"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER]}


def press(user: SimUser, data: str) -> int:
    """Forges a button press with the given callback data."""
    return user.press_callback(data)


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
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

"""Staff roles: organisers from settings, invites that make facilitators, /roles and removal,
the guard on staff commands and buttons, and each staff chat's command menu.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.catalogue import t, tn
from bot.clock import FakeClock
from conversations.commands import FACILITATOR_COMMANDS, ORGANISER_COMMANDS
from emulator import Emulator, SimUser
from storage.roles import Redemption, token_hash
from storage.store import Store
from tests.transcript import NOT_STARTED, Person, join

MakePerson = Callable[..., Person]
ORGANISER_ID = 9101
FAY, GUS, HAL = 2001, 2002, 2003
MEMBER_COMMANDS = ["start", "menu", "help", "language"]  # the first few, in order
LINK = re.compile(r"https://t\.me/(\w+)\?start=invite-([\w-]+)")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER_ID]}


def token_in(replies: list[str]) -> str:
    [reply] = replies
    found = LINK.search(reply)
    assert found is not None, reply
    return found.group(2)


async def tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables that hold roles and invites, to show that nothing changed."""
    return {
        name: [tuple(row) for row in await store.db.fetch_all(f"SELECT * FROM {name} ORDER BY 1")]
        for name in ("roles", "invites")
    }


def commands_of(emulator: Emulator, chat_id: int) -> list[str] | None:
    menu = emulator.commands.get(f"chat:{chat_id}")
    return None if menu is None else [c["command"] for c in menu]


# ---- through the bot


async def test_organisers_come_from_settings(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    assert await store.roles.role_of(ORGANISER_ID) == "organiser"
    [organiser] = await store.roles.staff()
    assert organiser.from_settings and organiser.chat_id == ORGANISER_ID
    assert organiser.name is None  # not seen yet
    menu = commands_of(emulator, ORGANISER_ID)
    assert menu is not None and menu[-len(ORGANISER_COMMANDS) :] == list(ORGANISER_COMMANDS)

    olu = person(ORGANISER_ID, "Olu")
    [listing] = await olu.says("/roles")
    assert listing.splitlines()[:2] == [
        t("en", "roles.title"),
        t("en", "roles.line.organiser", name="Olu", since="30 November 2026"),
    ]
    assert t("en", "roles.no_facilitators") in listing
    assert olu.buttons == []
    seen = await store.roles.get(ORGANISER_ID)
    assert seen is not None and seen.name == "Olu"  # learnt when they used a staff command


async def test_invite_redeem_refuse_list_and_remove(
    person: MakePerson, store: Store, emulator: Emulator, clock: FakeClock
) -> None:
    olu = person(ORGANISER_ID, "Olu")
    replies = await olu.says("/invite")
    token = token_in(replies)
    link = f"https://t.me/{emulator.state.bot_username}?start=invite-{token}"
    assert replies == [tn("en", "invite.link.days", 7, link=link, days=7, until="7 December 2026")]

    # Fay opens the link and is a facilitator, with the staff commands in her menu.
    fay = person(FAY, "Fay")
    welcome = t(
        "en",
        "invite.welcome",
        commands="\n".join(f"/{c} – {t('en', f'command.{c}')}" for c in FACILITATOR_COMMANDS),
    )
    assert await fay.says(f"/start invite-{token}") == [welcome]
    for command in ("/ask", "/broadcast", "/responses", "/scheduled"):
        assert command in welcome
    assert await store.roles.role_of(FAY) == "facilitator"
    menu = commands_of(emulator, FAY)
    assert menu is not None
    assert menu[: len(MEMBER_COMMANDS)] == MEMBER_COMMANDS
    assert menu[-len(FACILITATOR_COMMANDS) :] == list(FACILITATOR_COMMANDS)
    assert "invite" not in menu and "roles" not in menu

    # The same link again, from someone else: refused, and nothing changes.
    gus = person(GUS, "Gus")
    assert await gus.says(f"/start invite-{token}") == [t("en", "invite.used")]
    assert await store.roles.role_of(GUS) is None
    assert commands_of(emulator, GUS) is None

    # A link older than 7 days: refused.
    late = token_in(await olu.says("/invite"))
    clock.advance(timedelta(days=8))
    hal = person(HAL, "Hal")
    assert await hal.says(f"/start invite-{late}") == [t("en", "invite.expired")]
    assert await hal.says("/start invite-not-a-real-token") == [t("en", "invite.unknown")]
    assert await store.roles.role_of(HAL) is None

    # /roles lists both, with a Remove button for the facilitator only.
    [listing] = await olu.says("/roles")
    assert t("en", "roles.line.organiser", name="Olu", since="30 November 2026") in listing
    assert t("en", "roles.line.facilitator", name="Fay", since="30 November 2026") in listing
    assert olu.buttons == [t("en", "roles.remove", name="Fay")]
    assert await olu.taps(t("en", "roles.remove", name="Fay")) == [
        t("en", "roles.remove.ask", name="Fay")
    ]
    assert await olu.taps(t("en", "roles.remove.yes")) == [t("en", "roles.removed", name="Fay")]

    # Removed at once: staff commands are unknown to her again, her menu is the member one.
    assert await store.roles.role_of(FAY) is None
    assert [r.telegram_user_id for r in await store.roles.staff()] == [ORGANISER_ID]
    assert commands_of(emulator, FAY) is None
    default = emulator.commands["default"]
    assert [c["command"] for c in default][: len(MEMBER_COMMANDS)] == MEMBER_COMMANDS
    unknown = [t("en", "bad.unknown_command")]
    for command in ("/ask", "/responses", "/roles", "/invite"):
        assert await fay.says(command) == unknown

    # The audit log has the invites, the grant, the refusals and the removal; no token.
    entries = [(e.actor, e.action, json.loads(e.detail)) for e in await store.audit.entries()]
    mine = [e for e in entries if e[1].startswith(("invite", "role"))]
    assert mine == [
        ("settings", "role_granted", {"role": "organiser", "user": ORGANISER_ID}),
        (f"telegram:{ORGANISER_ID}", "invite_created", {"days": 7, "invite": 1}),
        (f"telegram:{FAY}", "invite_used", {"invite": 1}),
        (f"telegram:{ORGANISER_ID}", "role_granted", {"role": "facilitator", "user": FAY}),
        (f"telegram:{GUS}", "invite_refused", {"invite": 1, "reason": "used"}),
        (f"telegram:{ORGANISER_ID}", "invite_created", {"days": 7, "invite": 2}),
        (f"telegram:{HAL}", "invite_refused", {"invite": 2, "reason": "expired"}),
        (f"telegram:{HAL}", "invite_refused", {"invite": None, "reason": "unknown"}),
        (f"telegram:{ORGANISER_ID}", "role_removed", {"role": "facilitator", "user": FAY}),
    ]
    everything = json.dumps(await tables(store)) + json.dumps(entries)
    assert token not in everything and late not in everything
    assert token_hash(token) in everything


async def test_an_organiser_opening_an_invite_stays_organiser_and_leaves_it_unused(
    person: MakePerson, store: Store
) -> None:
    olu = person(ORGANISER_ID, "Olu")
    token = token_in(await olu.says("/invite"))
    assert await olu.says(f"/start invite-{token}") == [t("en", "invite.already_staff")]
    assert await store.roles.role_of(ORGANISER_ID) == "organiser"
    [invite] = await store.roles.invites()
    assert invite.used_at is None
    fay = person(FAY, "Fay")
    await fay.says(f"/start invite-{token}")
    assert await store.roles.role_of(FAY) == "facilitator"


async def test_a_welsh_member_gets_the_welcome_and_menu_in_welsh(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    token = await store.roles.create_invite(ORGANISER_ID)
    cai = person(FAY, "Cai")
    await join(cai, "Cymraeg")
    [welcome] = await cai.says(f"/start invite-{token}")
    assert welcome.startswith(t("cy", "invite.welcome", commands="").split("\n")[0])
    assert f"/ask – {t('cy', 'command.ask')}" in welcome
    menu = emulator.commands[f"chat:{FAY}"]
    assert {"command": "ask", "description": t("cy", "command.ask")} in menu
    assert {"command": "help", "description": t("cy", "command.help")} in menu


# ---- who may not


def pressing(data: str) -> Callable[[SimUser], int]:
    """A press of a button with any callback data: an old, or a forged, one."""
    return lambda user: user.press_callback(data)


async def removed_facilitator(person: MakePerson, store: Store) -> Person:
    token = await store.roles.create_invite(ORGANISER_ID)
    hal = person(HAL, "Hal")
    await hal.says(f"/start invite-{token}")
    assert await store.roles.role_of(HAL) == "facilitator"
    assert await store.roles.remove(HAL, by=ORGANISER_ID) is not None
    return hal


async def test_staff_commands_look_unknown_to_everyone_else(
    person: MakePerson, store: Store
) -> None:
    member = person(GUS, "Gus")
    await join(member)
    stranger = person(2004, "Ivy")
    removed = await removed_facilitator(person, store)
    token = await store.roles.create_invite(ORGANISER_ID)
    facilitator = person(FAY, "Fay")
    await facilitator.says(f"/start invite-{token}")

    before = await tables(store)
    for someone in (member, stranger, removed, facilitator):
        unknown = await someone.says("/frobnicate")
        assert unknown == [t("en", "bad.unknown_command")]
        for command in ("/invite", "/roles"):
            assert await someone.says(command) == unknown, (someone.user.first_name, command)
    assert await tables(store) == before


async def test_forged_team_buttons_look_like_old_buttons(person: MakePerson, store: Store) -> None:
    member = person(GUS, "Gus")
    await join(member)
    stranger = person(2004, "Ivy")
    await stranger.says("hello")
    removed = await removed_facilitator(person, store)
    token = await store.roles.create_invite(ORGANISER_ID)
    fay = person(FAY, "Fay")
    await fay.says(f"/start invite-{token}")

    before = await tables(store)
    old_button = {
        member: [t("en", "bad.old_button"), t("en", "menu.title")],
        stranger: [NOT_STARTED],
        removed: [NOT_STARTED],
        # Staff who never joined are not sent into member sign-up.
        fay: [t("en", "staff.not_a_member")],
    }
    for someone, expected in old_button.items():
        assert await someone.does(pressing("nonsense:1")) == expected
        for data in (f"roles:remove:{FAY}", f"roles:confirm:{FAY}", f"roles:confirm:{HAL}"):
            forged = await someone.does(pressing(data))
            assert forged == expected, (someone.user.first_name, data)
    assert await tables(store) == before
    assert await store.roles.role_of(FAY) == "facilitator"


# ---- storage


@pytest.fixture
async def roles_store(tmp_path: Path) -> Any:
    clock = FakeClock(datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Europe/London")))
    store = await Store.open(tmp_path / "roles.db", clock.now)
    yield store, clock
    await store.close()


async def test_sync_organisers_grants_and_takes_back_only_what_settings_gave(
    roles_store: tuple[Store, FakeClock],
) -> None:
    store, _ = roles_store
    roles = store.roles
    await roles.sync_organisers([1, 2])
    await roles.sync_organisers([1, 2])  # twice changes nothing
    assert [(r.telegram_user_id, r.role) for r in await roles.staff()] == [
        (1, "organiser"),
        (2, "organiser"),
    ]
    await roles.grant_facilitator(3, "Fay", granted_by=1)
    await roles.sync_organisers([1, 3])  # 2 is no longer listed; 3 is promoted
    assert await roles.role_of(2) is None
    assert await roles.role_of(3) == "organiser"
    assert await roles.remove(3, by=1) is None  # organisers cannot be removed in chat
    assert await roles.role_of(3) == "organiser"
    await roles.sync_organisers([1, 2, 3])
    assert await roles.role_of(2) == "organiser"
    actions = [(e.action, json.loads(e.detail)["user"]) for e in await store.audit.entries()]
    assert actions == [
        ("role_granted", 1),
        ("role_granted", 2),
        ("role_granted", 3),
        ("role_granted", 3),
        ("role_removed", 2),
        ("role_granted", 2),
    ]


async def test_an_invite_is_used_once_even_when_two_open_it_together(
    roles_store: tuple[Store, FakeClock],
) -> None:
    store, clock = roles_store
    await store.roles.sync_organisers([1])  # invites work only while their maker organises
    token = await store.roles.create_invite(1)
    results = await asyncio.gather(
        *(store.roles.redeem(token, user, f"User {user}") for user in (10, 11, 12))
    )
    assert sorted(results) == sorted([Redemption.OK, Redemption.USED, Redemption.USED])
    [facilitator] = [r for r in await store.roles.staff() if r.role == "facilitator"]
    assert facilitator.granted_by == 1
    [invite] = await store.roles.invites()
    assert invite.used_by == facilitator.telegram_user_id

    almost = await store.roles.create_invite(1)
    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert await store.roles.redeem(almost, 20, "Ann") is Redemption.OK
    expired = await store.roles.create_invite(1)
    clock.advance(timedelta(days=7))
    assert await store.roles.redeem(expired, 21, "Bo") is Redemption.EXPIRED


async def test_a_removed_facilitator_can_be_invited_again(
    roles_store: tuple[Store, FakeClock],
) -> None:
    store, _ = roles_store
    await store.roles.sync_organisers([1])
    first = await store.roles.create_invite(1)
    assert await store.roles.redeem(first, 10, "Fay") is Redemption.OK
    removed = await store.roles.remove(10, by=1)
    assert removed is not None and removed.role == "facilitator"
    assert await store.roles.remove(10, by=1) is None
    again = await store.roles.create_invite(1)
    assert await store.roles.redeem(again, 10, "Fay") is Redemption.OK
    assert await store.roles.role_of(10) == "facilitator"
    assert [r.telegram_user_id for r in await store.roles.everyone()] == [1, 10]

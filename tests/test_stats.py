"""/stats: who is (and is not) taking part, with small numbers hidden, through the real bot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t
from conversations.stats import shown
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ORGANISER = 9400
FEWER = "fewer than 10"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "about_areas": ["Grangetown", "Splott"]}


def test_counts_from_one_to_nine_are_hidden() -> None:
    assert [shown(n, "en") for n in (0, 1, 9, 10, 250)] == ["0", FEWER, FEWER, "10", "250"]
    assert shown(3, "cy") == t("cy", "stats.fewer_than_10")


async def test_stats_show_who_takes_part_and_hide_small_groups(
    person: MakePerson, store: Store
) -> None:
    olu = person(ORGANISER, "Olu")
    token = await store.roles.create_invite(ORGANISER)
    fay = person(9401, "Fay")
    await fay.says(f"/start invite-{token}")
    grangetown = []
    for user_id, name in ((7101, "Ann"), (7102, "Bo"), (7103, "Cy")):
        someone = person(user_id, name)
        await someone.says("/start")
        for label in ("English", "Yes, I agree", "Stay anonymous", "25 to 34", "Grangetown"):
            await someone.taps(label)
        await someone.taps("Skip")
        grangetown.append(someone)
    ann, bo, cy = grangetown
    dai = person(7104, "Dai")
    await join(dai)
    await cy.says("/stop")
    # A question for everyone: Cy has stopped, so it reaches three; Ann and Bo answer.
    await olu.says("/ask")
    await olu.says("Is the hall warm enough?")
    for label in ("Yes or no", "All members", "Now", "No reminder", "Send"):
        await olu.taps(label)
    for someone in (ann, bo, dai):
        await someone.user.wait_messages(1, timeout=10)
    await olu.user.wait_messages(1, timeout=10)  # the delivery report
    await ann.taps("Yes")
    await bo.taps("No")

    members, questions, age, area, extra, note = await fay.says("/stats")
    assert members.splitlines() == [
        t("en", "stats.title"),
        "Joined: 4",
        "Active: 3",
        "Stopped (sent /stop): 1",
        "Cannot be reached (blocked the bot): 0",
        "Not done joining yet: 0",
        "Took part: 2",
        "",
        t("en", "stats.took_part_note"),
    ]
    assert questions.splitlines() == [
        t("en", "stats.questions"),
        "“Is the hall warm enough?”: 2 of 3 answered (67%)",
    ]
    assert age.splitlines() == [
        "Who took part, by age",
        f"25 to 34: {FEWER} took part, of {FEWER} who joined",
        f"Did not say: 0 took part, of {FEWER} who joined",
    ]
    assert area.splitlines() == [
        "Who took part, by area",
        f"Grangetown: {FEWER} took part, of {FEWER} who joined",
        f"Did not say: 0 took part, of {FEWER} who joined",
    ]
    assert extra.splitlines() == [
        "Who took part, by “Do you look after someone?”",
        f"Did not say: {FEWER} took part, of {FEWER} who joined",
    ]
    assert note == t("en", "stats.small_note")
    # Organisers see the same; a member is answered as for any unknown command.
    assert len(await olu.says("/stats")) == 6
    assert await ann.says("/stats") == await ann.says("/frobnicate")
    views = [e for e in await store.audit.entries() if e.action == "stats_viewed"]
    assert [e.actor for e in views] == [f"telegram:{fay.user.id}", f"telegram:{ORGANISER}"]

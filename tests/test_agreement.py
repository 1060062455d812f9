"""Where people agree (/ideas), through the real bot: twelve members vote by button and by
typing; staff see each idea's counts and shares, by "about you" group, with the common ground
first and no count from 1 to 9 shown or derivable; members cannot reach it. And the rule on
its own: common ground, and the suppression of a result's counts on random results."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

import pytest

from bot.catalogue import t
from emulator import SimUser
from storage.store import Store
from storage.votes import COUNTED, VOTERS, GroupTally, Tally, common_ground, hidden_in_result
from tests.test_stats import worked_out
from tests.test_voting import SEE, counts, statement, voters
from tests.transcript import Person

MakePerson = Callable[..., Person]
ORGANISER = 9500
HIDDEN = "*"
AGREE = t("en", "ideas.desk.agree")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "about_areas": ["Grangetown", "Splott"]}


# ---- the rule


def test_common_ground_needs_60_percent_in_every_group_of_ten() -> None:
    def group(agree: int, disagree: int) -> GroupTally:
        return GroupTally("g", Tally(agree, disagree))

    # Every group of 10 or more agrees (70%, 60%); a group of 5 that disagrees does not count.
    groups = {"area": [group(7, 3), group(6, 4), group(0, 5)]}
    assert common_ground(Tally(13, 12), groups) is False  # but only 52% agree in all
    groups = {"area": [group(14, 6), group(6, 4), group(0, 5)]}
    assert common_ground(Tally(20, 15), groups) is False  # 57% in all
    groups = {"area": [group(14, 2), group(6, 4), group(1, 3)]}
    assert common_ground(Tally(21, 9), groups) is True
    groups["age_band"] = [group(10, 8), group(11, 1)]  # 56% in one age group of 18
    assert common_ground(Tally(21, 9), groups) is False
    # No group has 10 voters: 10 voters and 60% in all are needed.
    small = {"area": [group(4, 1), group(3, 1)]}
    assert common_ground(Tally(7, 2), small) is False
    small = {"area": [group(5, 1), group(4, 1)]}
    assert common_ground(Tally(9, 2), small) is True
    assert common_ground(Tally(), {}) is False


def result_sums(
    tally: Tally, breakdowns: dict[str, list[GroupTally]]
) -> tuple[dict[Hashable, int], list[tuple[Hashable, Sequence[Hashable]]]]:
    """Every count of a result as shown, and every sum a reader can see ties them."""
    whats = (*COUNTED, VOTERS)
    values: dict[Hashable, int] = {("all", 0, w): tally.count(w) for w in whats}
    sums: list[tuple[Hashable, Sequence[Hashable]]] = [
        (("all", 0, VOTERS), [("all", 0, c) for c in COUNTED])
    ]
    for name, groups in breakdowns.items():
        for i, g in enumerate(groups):
            values.update({(name, i, w): g.tally.count(w) for w in whats})
            sums.append(((name, i, VOTERS), [(name, i, c) for c in COUNTED]))
        for w in whats:
            sums.append((("all", 0, w), [(name, i, w) for i in range(len(groups))]))
    return values, sums


def random_result(rng: random.Random) -> tuple[Tally, dict[str, list[GroupTally]]]:
    people = [
        (rng.choice(COUNTED), rng.randrange(3), rng.randrange(4))
        for _ in range(rng.choice((3, 12, 25, 60, 140)))
    ]
    tally = Tally(*(sum(1 for p in people if p[0] == c) for c in COUNTED))
    breakdowns = {}
    for name, place in (("area", 1), ("age_band", 2)):
        breakdowns[name] = [
            GroupTally(
                str(g),
                Tally(*(sum(1 for p in people if p[place] == g and p[0] == c) for c in COUNTED)),
            )
            for g in sorted({p[place] for p in people})
        ]
    return tally, breakdowns


def test_no_hidden_count_of_a_result_can_be_worked_out() -> None:
    rng = random.Random(12)
    hid_some = 0
    for _ in range(300):
        tally, breakdowns = random_result(rng)
        hidden = hidden_in_result(tally, breakdowns)
        values, sums = result_sums(tally, breakdowns)
        assert {k for k in hidden if not isinstance(k, tuple) or k not in values} == set()
        assert all(not 0 < n < 10 for k, n in values.items() if k not in hidden)
        assert worked_out(sums, frozenset(hidden)) == set()
        hid_some += bool(hidden)
    assert hid_some > 100


# ---- through the bot


async def join_in(someone: Person, area: str) -> None:
    await someone.says("/start")
    for label in ("English", "Yes, I agree", "Stay anonymous", "Skip", area, "Skip"):
        await someone.taps(label)


async def test_where_people_agree_shows_counts_and_common_ground_and_no_small_count(
    person: MakePerson, store: Store
) -> None:
    buses = await statement(store, "Buses should run after 11 pm")
    lights = await statement(store, "More lights in the park")
    close = await statement(store, "Close the park at 6")
    waiting = await statement(store, "Not approved yet", state="waiting")
    # Ten more from Grangetown voted before (as the bot would have stored it).
    for member_id in await voters(store, 8600, 10):
        await store.about.answer(member_id, "area", "Grangetown")
        await store.votes.record(member_id, buses, "agree")
        await store.votes.record(member_id, lights, "disagree")
    # Twelve members: six from Grangetown, six from Splott, half by button, half typing.
    members = []
    for i in range(12):
        someone = person(8500 + i, f"M{i}")
        await join_in(someone, "Grangetown" if i < 6 else "Splott")
        members.append(someone)
    for i, someone in enumerate(members):
        by_button = i % 2 == 0
        await (someone.taps(SEE) if by_button else someone.says("3"))
        # Fewest votes first: the park's closing (0 votes) comes first, for the first three.
        if i < 3:
            await (someone.taps("Agree") if by_button else someone.says("agree"))
        else:
            await (someone.taps("Skip") if by_button else someone.says("4"))
        # Buses next (they are older than the lights, with as many votes): all agree.
        await (someone.taps("Agree") if by_button else someone.says("1"))
        # Lights: Grangetown agree, Splott disagree.
        if i < 6:
            await (someone.taps("Agree") if by_button else someone.says("Agree"))
        else:
            await (someone.taps("Disagree") if by_button else someone.says("2"))
    assert await counts(store, buses) == (22, Tally(agree=22))
    assert await counts(store, lights) == (22, Tally(agree=6, disagree=16))
    assert await counts(store, close) == (3, Tally(agree=3))

    token = await store.roles.create_invite(ORGANISER)
    fay = person(9501, "Fay")
    await fay.says(f"/start invite-{token}")
    await fay.says("/ideas")
    page = "\n".join(await fay.taps(AGREE))
    lines = page.splitlines()
    assert lines[0] == t("en", "agreement.title").splitlines()[0]
    # Common ground first: buses (100% in all, and in Grangetown, the one group of 10).
    start = lines.index(t("en", "agreement.common"))
    assert lines[start + 1 :][:2] == ["- “Buses should run after 11 pm”", ""]
    assert page.index("- “Buses") < page.index("Idea 1:")
    # Then every approved idea, the most voted first; never one not approved.
    assert "Not approved yet" not in page
    ideas = [line for line in lines if line.startswith("Idea ")]
    assert ideas == [
        "Idea 1: “Buses should run after 11 pm”",
        "Idea 2: “More lights in the park”",
        "Idea 3: “Close the park at 6”",
    ]
    buses_block = lines[lines.index(ideas[0]) : lines.index(ideas[1])]
    assert buses_block[1] == "All: 22 voted. Agree 22 (100%), disagree 0 (0%), not sure 0 (0%)."
    # Splott's 6 is hidden, and so is Grangetown's 16, which would give it away (22 - 16).
    assert buses_block[2:5] == [
        "By age:",
        "Did not say: 22 voted. Agree 22 (100%), disagree 0 (0%), not sure 0 (0%).",
        "By area:",
    ]
    assert buses_block[5:7] == [
        f"Grangetown: {HIDDEN} voted. Agree {HIDDEN}, disagree 0, not sure 0.",
        f"Splott: {HIDDEN} voted. Agree {HIDDEN}, disagree 0, not sure 0.",
    ]
    lights_block = lines[lines.index(ideas[1]) : lines.index(ideas[2])]
    # 6 agree: hidden, and the 16 who disagree with it.
    assert lights_block[1] == f"All: 22 voted. Agree {HIDDEN}, disagree {HIDDEN}, not sure 0 (0%)."
    close_block = lines[lines.index(ideas[2]) :]
    assert close_block[1] == f"All: {HIDDEN} voted. Agree {HIDDEN}, disagree 0, not sure 0."
    # No count from 1 to 9 anywhere (the labels' numbers aside).
    figures = re.findall(r"(\d+) voted|(?:Agree|disagree|not sure) (\d+)", page)
    shown = [int(a or b) for a, b in figures]
    assert shown and not [n for n in shown if 0 < n < 10]
    # Every view is in the audit log; a member pressing the desk's button is refused.
    views = [e for e in await store.audit.entries() if e.action == "agreement_viewed"]
    assert [e.actor for e in views] == [f"telegram:{fay.user.id}"]
    ann = members[0]
    refused = await ann.does(partial(SimUser.press_callback, data="ideas:agree"))
    assert refused == [t("en", "bad.old_button"), t("en", "menu.title")]
    assert await ann.says("/ideas") == [t("en", "bad.unknown_command")]
    # A member sees no result of an idea not approved, even with a forged button.
    refused = await ann.does(partial(SimUser.press_callback, data=f"vote:{waiting}:agree"))
    assert refused == [t("en", "bad.old_button"), t("en", "menu.title")]


async def test_no_ideas_yet(person: MakePerson, store: Store) -> None:
    olu = person(ORGANISER, "Olu")
    await olu.says("/ideas")
    assert await olu.taps(AGREE) == [f"{t('en', 'agreement.title')}\n\n{t('en', 'agreement.none')}"]

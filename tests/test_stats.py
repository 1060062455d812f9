"""/stats: who is (and is not) taking part, with small numbers hidden, through the real bot;
and the suppression rule (storage/suppression.py) on its own, checked on random counts."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from fractions import Fraction
from typing import Any

import pytest

from bot.catalogue import t
from storage.stats import (
    JOINED,
    MEMBERSHIP_PARTS,
    NOT_TOOK_PART,
    TOOK_PART,
    Group,
    Membership,
    hidden_in_question,
    hidden_in_stats,
)
from storage.store import Store
from storage.suppression import hidden_counts
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ORGANISER = 9400
HIDDEN = "*"
Sums = Sequence[tuple[Hashable, Sequence[Hashable]]]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "about_areas": ["Grangetown", "Splott"]}


# ---- the rule


def worked_out(sums: Sums, hidden: frozenset[Hashable]) -> set[Hashable]:
    """The hidden counts a reader can work out exactly from the shown ones, using every sum
    together (not only one subtraction). Each sum is an equation in the hidden counts; in
    its reduced row echelon form a count is fixed when its pivot row has no free count."""
    order = sorted(hidden, key=repr)
    rows: list[list[Fraction]] = []
    for total, parts in sums:
        row = dict.fromkeys(order, Fraction(0))
        if total in hidden:
            row[total] += 1
        for part in parts:
            if part in hidden:
                row[part] -= 1
        rows.append([row[k] for k in order])
    pivots: list[int] = []
    for col in range(len(order)):
        found = len(pivots)
        pivot = next((i for i in range(found, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[found], rows[pivot] = rows[pivot], rows[found]
        rows[found] = [a / rows[found][col] for a in rows[found]]
        for i, other in enumerate(rows):
            if i != found and other[col] != 0:
                rows[i] = [a - other[col] * b for a, b in zip(other, rows[found], strict=True)]
        pivots.append(col)
    free = set(range(len(order))) - set(pivots)
    return {
        order[col]
        for row, col in zip(rows, pivots, strict=False)  # rows past the pivots are all 0
        if all(row[f] == 0 for f in free)
    }


def breakdown(total: int, parts: Sequence[int]) -> tuple[dict[Hashable, int], Sums]:
    counts: dict[Hashable, int] = {"total": total, **dict(enumerate(parts))}
    return counts, [("total", list(range(len(parts))))]


def test_counts_from_one_to_nine_are_hidden_and_zero_is_shown() -> None:
    counts = {"none": 0, "one": 1, "nine": 9, "ten": 10, "many": 250}
    assert hidden_counts(counts) == {"one", "nine"}


def test_one_hidden_part_hides_the_next_smallest_shown_part_above_zero() -> None:
    # "Took part: 3" beside groups of 0, 3, 12 and 25: the 3 is hidden, and so is the 12,
    # else 40 - 0 - 12 - 25 gives the 3 away. The 0 is no help: it stays shown.
    counts, sums = breakdown(40, [0, 3, 12, 25])
    assert hidden_counts(counts, sums) == {1, 2}
    # Two small parts protect each other: nothing more is hidden.
    counts, sums = breakdown(40, [4, 3, 12, 21])
    assert hidden_counts(counts, sums) == {0, 1}
    # A small total hides itself; its parts are all small or 0, so they hide too.
    counts, sums = breakdown(3, [0, 3])
    assert hidden_counts(counts, sums) == {"total", 1}


def test_a_count_hidden_for_one_sum_is_protected_in_every_sum_it_is_in() -> None:
    # b is small, so a is hidden too (a + b = x). a is also all of y (a + 0 = y): y would
    # give a away, and there is no part above 0 left to hide, so y is hidden.
    counts: dict[Hashable, int] = {"x": 30, "a": 25, "b": 5, "y": 25, "zero": 0}
    sums: Sums = [("x", ["a", "b"]), ("y", ["a", "zero"])]
    assert hidden_counts(counts, sums) == {"a", "b", "y"}


def test_the_check_finds_counts_that_can_be_worked_out() -> None:
    _, sums = breakdown(40, [0, 3, 12, 25])
    assert worked_out(sums, frozenset({1})) == {1}  # 40 - 0 - 12 - 25
    assert worked_out(sums, frozenset({1, 2})) == set()
    # Two sums together: x - a is known from the first, and a from the second.
    two: Sums = [("x", ["a", "b"]), ("y", ["a", "c"])]
    assert worked_out(two, frozenset({"a", "x"})) == {"a", "x"}
    assert worked_out(two, frozenset({"a", "x", "c"})) == set()


def test_no_hidden_count_can_be_worked_out_from_a_breakdown() -> None:
    rng = random.Random(20261201)
    for _ in range(2000):
        size = rng.randint(1, 8)
        parts = [rng.choice([0, 0, rng.randint(1, 9), rng.randint(10, 40)]) for _ in range(size)]
        counts, sums = breakdown(sum(parts), parts)
        hidden = hidden_counts(counts, sums)
        small = {k for k, n in counts.items() if 0 < n < 10}
        assert small <= hidden, counts  # every count from 1 to 9 is hidden
        assert all(counts[k] > 0 for k in hidden), counts  # 0 is shown
        shown_parts = [n for i, n in enumerate(parts) if i not in hidden]
        hidden_parts = [i for i in range(size) if i in hidden]
        if "total" not in hidden:  # total - sum(shown) is the sum of two or more hidden parts
            assert len(hidden_parts) != 1, (parts, sum(parts) - sum(shown_parts))
        assert worked_out(sums, hidden) == set(), counts
        assert len(hidden - small) <= 1, counts  # one more at most: the next smallest


def random_project(rng: random.Random) -> tuple[Membership, dict[str, list[Group]]]:
    """Members with a random status, whether they took part, and answers, counted as
    storage/stats.py counts them."""
    size = rng.choice([rng.randint(0, 12), rng.randint(10, 40), rng.randint(30, 120)])
    took_part_rate = rng.random()
    people = [
        (
            rng.choices(MEMBERSHIP_PARTS, weights=[12, 2, 1, 1])[0],
            rng.random() < took_part_rate,
            rng.choice(["16 to 24", "25 to 34", "25 to 34", None]),
            rng.choice(["Grangetown", "Grangetown", "Splott", "Adamsdown", None]),
        )
        for _ in range(size)
    ]
    statuses = Counter(p[0] for p in people)
    members = Membership(
        joined=size,
        **{name: statuses[name] for name in MEMBERSHIP_PARTS},
        took_part=sum(p[1] for p in people),
    )
    breakdowns: dict[str, list[Group]] = {}
    for field, answers in (("age_band", [p[2] for p in people]), ("area", [p[3] for p in people])):
        took_part = Counter(a for p, a in zip(people, answers, strict=True) if p[1])
        breakdowns[field] = [
            Group(answer, joined, took_part[answer])
            for answer, joined in Counter(answers).most_common()
        ]
    return members, breakdowns


def sums_on_the_page(members: Membership, breakdowns: dict[str, list[Group]]) -> Sums:
    """Every sum a reader of /stats can use, written out here on their own."""
    sums: list[tuple[Hashable, Sequence[Hashable]]] = [
        (JOINED, MEMBERSHIP_PARTS),
        (JOINED, (TOOK_PART, NOT_TOOK_PART)),
    ]
    for field, groups in breakdowns.items():
        rows = range(len(groups))
        sums += [(what, [(field, i, what) for i in rows]) for what in (JOINED, TOOK_PART)]
        for i in rows:
            sums.append(((field, i, JOINED), [(field, i, TOOK_PART), (field, i, NOT_TOOK_PART)]))
        sums.append((NOT_TOOK_PART, [(field, i, NOT_TOOK_PART) for i in rows]))
    return sums


def test_no_hidden_count_on_the_stats_page_can_be_worked_out() -> None:
    rng = random.Random(7)
    secondary = given_away = 0
    for _ in range(300):
        members, breakdowns = random_project(rng)
        hidden = hidden_in_stats(members, breakdowns)
        counts: dict[Hashable, int] = {
            name: getattr(members, name) for name in (JOINED, TOOK_PART, *MEMBERSHIP_PARTS)
        }
        counts[NOT_TOOK_PART] = members.joined - members.took_part
        for field, groups in breakdowns.items():
            for i, group in enumerate(groups):
                counts[(field, i, JOINED)] = group.joined
                counts[(field, i, TOOK_PART)] = group.took_part
                counts[(field, i, NOT_TOOK_PART)] = group.joined - group.took_part
        assert set(hidden) <= set(counts)
        assert {k for k, n in counts.items() if 0 < n < 10} <= hidden
        assert all(counts[k] > 0 for k in hidden)
        sums = sums_on_the_page(members, breakdowns)
        assert worked_out(sums, hidden) == set(), counts
        small = frozenset(k for k, n in counts.items() if 0 < n < 10)
        given_away += bool(worked_out(sums, small))  # as /stats was: only small ones hidden
        secondary += len(hidden - small)
    assert secondary > 0 and given_away > 0, "the random projects never needed more hidden"


def test_a_question_line_hides_both_counts_when_one_is_small() -> None:
    assert hidden_in_question(2, 3) == {"answered", "sent", "not_answered"}
    assert hidden_in_question(11, 12) == {"answered", "not_answered"}  # 12 - 11 is 1
    assert hidden_in_question(0, 12) == set()
    assert hidden_in_question(30, 45) == set()


# ---- through the bot


async def test_stats_for_a_small_project_give_no_count_away(
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
    # 4 joined, 3 active, 1 stopped, 2 took part: every count from 1 to 9 is hidden, in the
    # totals and the question line too; only the 0s show, and they give nothing away.
    assert members.splitlines() == [
        t("en", "stats.title"),
        f"Joined: {HIDDEN}",
        f"Active: {HIDDEN}",
        f"Stopped (sent /stop): {HIDDEN}",
        "Cannot be reached (blocked the bot): 0",
        "Not done joining yet: 0",
        f"Took part: {HIDDEN}",
        "",
        t("en", "stats.took_part_note"),
    ]
    assert questions.splitlines() == [
        t("en", "stats.questions"),
        f"“Is the hall warm enough?”: {HIDDEN} of {HIDDEN} answered",
    ]
    assert age.splitlines() == [
        "Who took part, by age",
        f"25 to 34: {HIDDEN} took part, of {HIDDEN} who joined",
        f"Did not say: 0 took part, of {HIDDEN} who joined",
    ]
    assert area.splitlines() == [
        "Who took part, by area",
        f"Grangetown: {HIDDEN} took part, of {HIDDEN} who joined",
        f"Did not say: 0 took part, of {HIDDEN} who joined",
    ]
    assert extra.splitlines() == [
        "Who took part, by “Do you look after someone?”",
        f"Did not say: {HIDDEN} took part, of {HIDDEN} who joined",
    ]
    # Besides the labels, no figure but 0 is on the page.
    counts = re.sub(r"25 to 34|1 to 9", "", "\n".join((members, questions, age, area, extra)))
    assert set(re.findall(r"\d+", counts)) == {"0"}
    assert note == t("en", "stats.small_note")
    # Organisers see the same; a member is answered as for any unknown command.
    assert len(await olu.says("/stats")) == 6
    assert await ann.says("/stats") == await ann.says("/frobnicate")
    views = [e for e in await store.audit.entries() if e.action == "stats_viewed"]
    assert [e.actor for e in views] == [f"telegram:{fay.user.id}", f"telegram:{ORGANISER}"]


async def test_stats_hide_a_big_count_that_would_give_a_small_one_away(
    person: MakePerson, store: Store
) -> None:
    # 25 members: Grangetown 12, who all took part; Splott 13, of whom 10 took part.
    grangetown = [True] * 12
    splott = [True] * 10 + [False] * 3
    for n, (area, took_part) in enumerate(
        [("Grangetown", p) for p in grangetown] + [("Splott", p) for p in splott]
    ):
        member = await store.members.join(
            telegram_user_id=8000 + n,
            chat_id=8000 + n,
            language="en",
            consent_version="1",
            agreed_to=["take_part"],
        )
        await store.members.mark_onboarded(member.id)
        await store.about.answer(member.id, "area", area)
        if took_part:
            draft = await store.sharing.start(
                member_id=member.id, kind="idea", project_id=None, language="en"
            )
            await store.sharing.submit(draft.id)
    token = await store.roles.create_invite(ORGANISER)
    fay = person(9401, "Fay")
    await fay.says(f"/start invite-{token}")

    members, questions, age, area, extra, _ = await fay.says("/stats")
    # 3 did not take part: hidden. "Took part: 22" would give it away (25 - 22), so it is
    # hidden too; then Splott's 10 would give the 22 away (12 + 10), so it is hidden as well.
    assert members.splitlines()[1:7] == [
        "Joined: 25",
        "Active: 25",
        "Stopped (sent /stop): 0",
        "Cannot be reached (blocked the bot): 0",
        "Not done joining yet: 0",
        f"Took part: {HIDDEN}",
    ]
    assert questions == t("en", "stats.no_questions")
    assert area.splitlines()[1:] == [
        "Splott: * took part, of 13 who joined",
        "Grangetown: 12 took part, of 12 who joined",
    ]
    for by_everyone in (age, extra):
        assert by_everyone.splitlines()[1:] == ["Did not say: * took part, of 25 who joined"]

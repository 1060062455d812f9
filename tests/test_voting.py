"""See others' ideas and /myvotes, through the real bot: members weigh approved ideas by button
and by typing, each once, fewest votes first; the offer every 5 votes; the result after a
vote with no count from 1 to 9; changing a vote; forged buttons; a replayed vote.

Approving ideas is another flow (conversations/approving.py): here statements are put in
the table as that flow leaves them (`statement`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from telegram import Update

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from emulator import SimUser
from storage.store import Store
from storage.votes import Choice, Tally
from tests.transcript import NOT_STARTED, Person, join

MakePerson = Callable[..., Person]
SEE = t("en", "menu.vote")


async def statement(
    store: Store,
    text: str | None,
    *,
    state: str = "approved",
    project_id: int | None = None,
    visibility: str = "team",
    submission_id: int | None = None,
) -> int:
    """A statement as the approval flow leaves it."""
    await store.db.execute(
        "INSERT INTO statements (project_id, submission_id, visibility, state, text, created_at)"
        " VALUES (?, ?, ?, ?, ?, '2026-11-30T10:00:00+00:00')",
        (project_id, submission_id, visibility, state, text),
    )
    row = await store.db.fetch_one("SELECT max(id) AS id FROM statements")
    assert row is not None
    return int(row["id"])


async def voters(store: Store, first: int, n: int) -> list[int]:
    """n members joined straight in the database (they never talk to the bot)."""
    ids = []
    for user in range(first, first + n):
        member = await store.members.join(
            telegram_user_id=user,
            chat_id=user,
            language="en",
            consent_version="1",
            agreed_to=["take_part"],
        )
        ids.append(member.id)
    return ids


async def preload(store: Store, statement_id: int, first: int, **choices: int) -> None:
    """Votes on a statement by members who never talk to the bot: agree=12, … ."""
    for choice, n in choices.items():
        for member_id in await voters(store, first, n):
            picked: Choice = "agree"
            for known in ("agree", "disagree", "unsure", "skip"):
                if known == choice:
                    picked = known
            assert await store.votes.record(member_id, statement_id, picked) == "new"
        first += n


async def member_id(store: Store, someone: Person) -> int:
    member = await store.members.by_telegram_id(someone.user.id)
    assert member is not None
    return member.id


def idea(text: str, key: str = "voting.idea", **values: str) -> str:
    return t("en", key, text=text, **values)


async def counts(store: Store, statement_id: int) -> tuple[int, Tally]:
    """The statement's kept count of votes, and its votes counted afresh."""
    row = await store.db.fetch_one("SELECT votes FROM statements WHERE id = ?", (statement_id,))
    assert row is not None
    return int(row["votes"]), await store.votes.tally(statement_id)


# ---- weighing ideas


async def test_twelve_members_vote_by_button_and_by_typing_each_idea_once(
    person: MakePerson, store: Store
) -> None:
    parks = await store.projects.add("parks", "Parks")
    buses = await store.projects.add("buses", "Buses")
    night = await statement(store, "Buses should run after 11 pm")
    lights = await statement(store, "More lights in the park", project_id=parks.id)
    benches = await statement(store, "More benches at stops", project_id=parks.id)
    # Never shown: waiting for a facilitator, declined, a voice idea whose summary the author
    # has not approved, one with no text, one for another project.
    hidden = [
        await statement(store, "Free parking", state="waiting"),
        await statement(store, "Close the park", state="declined"),
        await statement(store, "A summary", state="summary"),
        await statement(store, None),
        await statement(store, "Bus lanes everywhere", project_id=buses.id),
    ]
    members = [person(6100 + i, f"M{i}") for i in range(12)]
    choices = ("agree", "disagree", "unsure")
    for i, someone in enumerate(members):
        await join(someone, start="/start parks")
        by_button = i % 2 == 0
        seen = []
        replies = await (someone.taps(SEE) if by_button else someone.says("see others' ideas"))
        for _ in range(3):
            shown = replies[-1]
            seen.append(shown)
            choice = choices[(i + len(seen)) % 3]
            label = t("en", f"voting.{'unsure' if choice == 'unsure' else choice}")
            if by_button:
                replies = await someone.taps(label)
            else:  # by number, then by word
                typed = str(choices.index(choice) + 1) if len(seen) % 2 else label.lower()
                replies = await someone.says(typed)
            assert replies[0].startswith("Thank you.")
        assert replies[-1] == t("en", "voting.none_left")
        # Each idea once, and only the approved ones of their projects (or everyone's).
        texts = {night: "Buses should run after 11 pm", lights: "More lights in the park"}
        texts[benches] = "More benches at stops"
        assert sorted(seen) == sorted(idea(x, "voting.idea.team") for x in texts.values())
        # Nothing more to weigh: asking again says so.
        assert await someone.says(SEE) == [t("en", "voting.none_left")]
    rows = await store.db.fetch_all("SELECT statement_id, COUNT(*) AS n FROM votes GROUP BY 1")
    assert {r["statement_id"]: r["n"] for r in rows} == {night: 12, lights: 12, benches: 12}
    for statement_id in (night, lights, benches):
        kept, tally = await counts(store, statement_id)
        assert kept == tally.voters == 12
    for statement_id in hidden:
        assert await counts(store, statement_id) == (0, Tally())


async def test_ideas_with_the_fewest_votes_come_first_then_the_oldest(
    person: MakePerson, store: Store
) -> None:
    first = await statement(store, "First idea")
    second = await statement(store, "Second idea")
    third = await statement(store, "Third idea")
    fourth = await statement(store, "Fourth idea")
    await preload(store, first, 7000, agree=2)
    await preload(store, second, 7100, skip=3)  # skips are not votes: still 0
    await preload(store, third, 7200, disagree=1)
    ann = person(6201, "Ann")
    await join(ann)
    shown = [(await ann.taps(SEE))[-1]]
    for _ in range(3):
        shown.append((await ann.taps(t("en", "voting.skip")))[-1])
    assert shown[:4] == [
        idea("Second idea", "voting.idea.team"),
        idea("Fourth idea", "voting.idea.team"),
        idea("Third idea", "voting.idea.team"),
        idea("First idea", "voting.idea.team"),
    ]
    # Skipped ideas are seen: not shown again.
    assert await ann.taps(t("en", "voting.skip")) == [t("en", "voting.none_left")]
    assert (await counts(store, fourth))[0] == 0


async def test_who_an_idea_is_from(person: MakePerson, store: Store) -> None:
    authors = await voters(store, 7300, 2)
    await store.members.set_display_name(authors[0], "Rhian")
    ideas = []
    for author in authors:
        draft = await store.sharing.start(
            member_id=author, kind="idea", project_id=None, language="en"
        )
        await store.sharing.submit(draft.id)
        ideas.append(draft.id)
    await statement(store, "Named idea", visibility="named", submission_id=ideas[0])
    await statement(store, "Anonymous idea", visibility="anonymous", submission_id=ideas[1])
    await statement(store, "Team idea", visibility="team")
    bo = person(6202, "Bo")
    await join(bo)
    shown = [(await bo.taps(SEE))[-1]]
    shown.append((await bo.says("skip"))[-1])
    shown.append((await bo.says("skip"))[-1])
    assert shown == [
        idea("Named idea", "voting.idea.named", name="Rhian"),
        idea("Anonymous idea"),
        idea("Team idea", "voting.idea.team"),
    ]
    # Stop: typed, it stops weighing ideas (not messages), and the menu comes back.
    assert (await bo.says(SEE))[-1] == idea("Team idea", "voting.idea.team")  # not weighed yet
    assert await bo.says("stop") == [t("en", "voting.stopped"), t("en", "menu.title")]
    member = await store.members.by_telegram_id(6202)
    assert member is not None and not member.stopped


async def test_an_author_is_not_asked_to_weigh_their_own_idea(
    person: MakePerson, store: Store
) -> None:
    cy = person(6203, "Cy")
    await join(cy)
    mine = await store.sharing.start(
        member_id=await member_id(store, cy), kind="idea", project_id=None, language="en"
    )
    await store.sharing.submit(mine.id)
    own = await statement(store, "My own idea", visibility="anonymous", submission_id=mine.id)
    assert await cy.taps(SEE) == [t("en", "voting.none_left")]
    assert await cy.does(lambda u: u.press_callback(f"vote:{own}:agree")) == [
        t("en", "bad.old_button"),
        t("en", "menu.title"),
    ]
    assert await counts(store, own) == (0, Tally())


async def test_every_five_votes_the_member_is_offered_their_own_idea(
    person: MakePerson, store: Store
) -> None:
    for n in range(12):
        await statement(store, f"Idea {n}")
    dee = person(6204, "Dee")
    await join(dee)
    await dee.taps(SEE)
    for n in range(4):
        assert (await dee.says("1"))[-1] == idea(f"Idea {n + 1}", "voting.idea.team")
    # A skip is not a vote: the offer waits for the fifth vote.
    assert (await dee.says("skip"))[-1] == idea("Idea 5", "voting.idea.team")
    replies = await dee.says("agree")
    assert replies[-1] == t("en", "voting.five", count=5)
    assert dee.buttons == [
        t("en", "voting.more"),
        t("en", "voting.add_idea"),
        t("en", "menu.button"),
    ]
    # Typed: "1" is more ideas.
    assert (await dee.says("1"))[-1] == idea("Idea 6", "voting.idea.team")
    for _ in range(4):
        await dee.taps(t("en", "voting.disagree"))
    assert (await dee.taps(t("en", "voting.unsure")))[-1] == t("en", "voting.five", count=10)
    # Add my own idea: the idea flow starts.
    replies = await dee.taps(t("en", "voting.add_idea"))
    session = await store.sessions.get(6204)
    assert session.flow == "share"
    assert replies[-1] == t("en", "idea.idea")


# ---- the result after a vote


async def test_the_result_after_a_vote_shows_no_count_from_one_to_nine(
    person: MakePerson, store: Store
) -> None:
    few = await statement(store, "Few have voted")
    many = await statement(store, "Many have voted")
    close = await statement(store, "A close one")
    await preload(store, few, 7400, agree=3, disagree=2)
    await preload(store, many, 7500, agree=12, disagree=10)
    await preload(store, close, 7600, agree=11, disagree=1)
    eve = person(6205, "Eve")
    await join(eve)
    await eve.taps(SEE)
    replies = await eve.taps(t("en", "voting.agree"))  # "Few have voted": 6 in all
    assert replies[0] == t("en", "voting.result.not_yet")
    # Fewest votes first: "A close one" (12 votes) comes next. 11 agree and, with Eve, 2
    # disagree: the 2 is hidden, and so is the 11 that would give it away.
    replies = await eve.taps(t("en", "voting.disagree"))
    result = replies[0]
    assert result.splitlines() == [
        t("en", "voting.result", voters=13),
        t("en", "voting.result.few", choice="Agree"),
        t("en", "voting.result.few", choice="Disagree"),
        "Not sure: 0 (0%)",
    ]
    assert set(re.findall(r"\d+", result)) == {"13", "0"}
    replies = await eve.taps(t("en", "voting.agree"))  # "Many have voted": 13, 10, 0
    assert replies[0].splitlines() == [
        t("en", "voting.result", voters=23),
        "Agree: 13 (57%)",
        "Disagree: 10 (43%)",
        "Not sure: 0 (0%)",
    ]


# ---- /myvotes


async def test_myvotes_changes_a_vote_by_button_and_by_typing(
    person: MakePerson, store: Store
) -> None:
    ideas = [await statement(store, f"Idea {n}") for n in range(7)]
    fay = person(6206, "Fay")
    await join(fay)
    assert await fay.says("/myvotes") == [t("en", "voting.mine.none")]
    await fay.taps(SEE)
    for n in range(7):
        await fay.says("skip" if n == 6 else "agree")
        if n == 4:
            await fay.says("more")  # the offer after 5 votes
    fid = await member_id(store, fay)
    [page] = await fay.says("/myvotes")
    lines = page.splitlines()
    assert lines[0] == t("en", "voting.mine.title", first=1, last=5, total=7)
    # Newest first: the skipped Idea 6, then Idea 5 …
    assert lines[2:4] == ["1. “Idea 6”", t("en", "voting.mine.skipped")]
    assert lines[5:7] == ["2. “Idea 5”", t("en", "voting.mine.said", choice="Agree")]
    assert fay.buttons[-2:] == [t("en", "voting.mine.more"), t("en", "menu.button")]

    # By button: Idea 5, from agree to disagree. The count of votes stays; the counts follow.
    replies = await fay.taps("Idea 5")
    assert replies == [t("en", "voting.change", choice="Agree", text="Idea 5")]
    replies = await fay.taps(t("en", "voting.disagree"))
    assert replies[0] == t("en", "voting.changed")
    assert replies[1] == t("en", "voting.result.not_yet")
    assert replies[2].startswith(t("en", "voting.mine.title", first=1, last=5, total=7))
    assert await store.votes.choice_of(fid, ideas[5]) == "disagree"
    assert await counts(store, ideas[5]) == (1, Tally(disagree=1))

    # By typing: the skipped Idea 6 (number 1) becomes a vote, so it is counted now.
    assert await fay.says("1") == [idea("Idea 6", "voting.change.skipped.team")]
    await fay.says("not sure")
    assert await counts(store, ideas[6]) == (1, Tally(unsure=1))
    # Keep my vote changes nothing.
    await fay.says("2")
    assert (await fay.says("keep"))[0] == t("en", "voting.kept")
    assert await store.votes.choice_of(fid, ideas[5]) == "disagree"

    # The next page, typed: "6" is More; the two oldest are there.
    [second] = await fay.says("6")
    assert second.splitlines()[0] == t("en", "voting.mine.title", first=6, last=7, total=7)
    assert "1. “Idea 1”" in second and "2. “Idea 0”" in second
    await fay.says("2")
    await fay.taps(t("en", "voting.unsure"))
    assert await store.votes.choice_of(fid, ideas[0]) == "unsure"
    # Typed words that are no choice: said so, and the page again.
    replies = await fay.says("blue")
    assert replies[0] == t("en", "bad.choice")
    assert replies[1].startswith(t("en", "voting.mine.title", first=6, last=7, total=7))
    assert await fay.says("menu") == [t("en", "menu.title")]


# ---- what members may not do


async def test_forged_and_stale_buttons_change_nothing(person: MakePerson, store: Store) -> None:
    parks = await store.projects.add("parks", "Parks")
    buses = await store.projects.add("buses", "Buses")
    open_idea = await statement(store, "Open idea", project_id=parks.id)
    waiting = await statement(store, "Waiting idea", state="waiting")
    declined = await statement(store, "Declined idea", state="declined")
    summary = await statement(store, "Voice summary", state="summary")
    elsewhere = await statement(store, "Other project", project_id=buses.id)
    await preload(store, waiting, 7700, agree=12)
    gus = person(6207, "Gus")
    await join(gus, start="/start parks")
    unknown = [t("en", "bad.old_button"), t("en", "menu.title")]
    for forged in (
        f"vote:{waiting}:agree",
        f"vote:{declined}:disagree",
        f"vote:{summary}:agree",
        f"vote:{elsewhere}:agree",
        "vote:99999:agree",
        f"vote:{open_idea}:frobnicate",
        f"revote:{waiting}:agree",
        f"myvotes:{waiting}",
        f"myvotes:{elsewhere}",
    ):
        replies = await gus.does(partial(SimUser.press_callback, data=forged))
        assert replies == unknown, forged
    gid = await member_id(store, gus)
    assert await store.db.fetch_all("SELECT * FROM votes WHERE member_id = ?", (gid,)) == []
    assert await counts(store, waiting) == (12, Tally(agree=12))
    # Typed, the session's idea is the open one only.
    assert (await gus.taps(SEE))[-1] == idea("Open idea", "voting.idea.team")
    # A button for an idea the member may weigh works, even from an older message.
    replies = await gus.does(lambda u: u.press_callback(f"vote:{open_idea}:agree"))
    assert replies[0] == t("en", "voting.result.not_yet")
    assert await store.votes.choice_of(gid, open_idea) == "agree"


async def test_a_replayed_vote_is_applied_once(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    first = await statement(store, "Replayed idea")
    await statement(store, "Next idea")
    hal = person(6208, "Hal")
    await join(hal)
    await hal.taps(SEE)
    shown = hal.user.messages[-1]
    update_id = hal.user.press(f"1. {t('en', 'voting.agree')}", message_id=shown.message_id)
    await bot.wait_handled(update_id)
    assert [m.text for m in hal.user.unread()][-1] == idea("Next idea", "voting.idea.team")
    # As after a crash once the vote was on disk but before the update was marked done in
    # the inbox (a process sharing the database would leave an update marked done alone).
    await store.inbox.flush()
    await store.db.execute("UPDATE inbox SET done_at = NULL WHERE update_id = ?", (update_id,))
    payload = {  # the same update again, as Telegram sent it
        "update_id": update_id,
        "callback_query": {
            "id": "replayed",
            "chat_instance": "6208",
            "from": {"id": 6208, "is_bot": False, "first_name": "Hal"},
            "data": f"vote:{first}:agree",
            "message": {
                "message_id": shown.message_id,
                "date": 1_764_496_800,
                "chat": {"id": 6208, "type": "private", "first_name": "Hal"},
                "text": shown.text,
            },
        },
    }
    await bot.process_update(Update.de_json(payload, bot.bot))
    # Applied once; the member is asked again what they were asked last (the reply may have
    # been lost with the process), not left with silence.
    assert [m.text for m in hal.user.unread()] == [idea("Next idea", "voting.idea.team")]
    assert await counts(store, first) == (1, Tally(agree=1))
    rows = await store.db.fetch_all("SELECT * FROM votes WHERE statement_id = ?", (first,))
    assert len(rows) == 1 and rows[0]["changed_at"] is None
    # And in storage: the same vote again writes nothing.
    hid = await member_id(store, hal)
    assert await store.votes.record(hid, first, "agree") == "same"
    assert await store.votes.record(hid, first, "unsure") == "changed"
    assert await counts(store, first) == (1, Tally(unsure=1))


# ---- storage


async def test_the_next_idea_merges_every_project_of_the_member_fewest_votes_first(
    store: Store, clock: FakeClock
) -> None:
    parks = await store.projects.add("parks", "Parks")
    buses = await store.projects.add("buses", "Buses")
    halls = await store.projects.add("halls", "Halls")
    [ann, *others] = await voters(store, 7800, 4)
    await store.members.join_project(ann, parks.id)
    await store.members.join_project(ann, buses.id)
    everyone = await statement(store, "For everyone")
    park = await statement(store, "Parks", project_id=parks.id)
    bus = await statement(store, "Buses", project_id=buses.id)
    await statement(store, "Halls", project_id=halls.id)
    for n, member in enumerate(others):  # everyone's has 3 votes, the park's 2, the bus's 1
        for statement_id in (everyone, park, bus)[: 3 - n]:
            await store.votes.record(member, statement_id, "agree")
    order = []
    while (found := await store.votes.next_for(ann)) is not None:
        order.append(found.id)
        await store.votes.record(ann, found.id, "skip")
        clock.advance(timedelta(minutes=1))
    assert order == [bus, park, everyone]
    # Skips are not counted; a skip turned into a vote is, and back again.
    assert await counts(store, bus) == (1, Tally(agree=1))
    assert await store.votes.record(ann, bus, "disagree") == "changed"
    assert await counts(store, bus) == (2, Tally(agree=1, disagree=1))
    assert await store.votes.record(ann, bus, "skip") == "changed"
    assert await counts(store, bus) == (1, Tally(agree=1))
    # Newest first (a changed vote keeps its place), a page at a time.
    mine, total = await store.votes.mine(ann, 0, 2)
    assert total == 3 and [v.statement_id for v in mine] == [everyone, park]
    mine, total = await store.votes.mine(ann, 2, 2)
    assert total == 3 and [v.statement_id for v in mine] == [bus]


async def test_before_joining_the_idea_commands_keep_nothing(
    person: MakePerson, store: Store
) -> None:
    """Someone who has not joined (no consent yet) gets the "type /start" answer to
    /myvotes, /updates and "See others' ideas", and nothing about them is kept."""
    stranger = person(9801, "Sam")
    for said in ("/myvotes", "/updates", SEE):
        assert await stranger.says(said) == [NOT_STARTED], said
    assert await store.members.by_telegram_id(9801) is None
    assert await store.db.fetch_all("SELECT * FROM sessions WHERE user_id = 9801") == []

"""Issue 12 as one whole, through the real bot and the emulator, using only what members and
staff can do (buttons and typed words; nothing is set up in SQL): ideas shared by choice and
approved with an edit, twelve members weigh one, staff see where people agree, a status with
a reason reaches the author and the supporters once each (never one who used /stop), /updates
lists it, and /delete takes a member's votes out of the counts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t, tn
from bot.settings import Settings
from storage.stats import ABOUT_FIELDS
from storage.store import Store
from storage.tracker import Item
from storage.votes import Tally, hidden_in_result
from tests.test_agreement import join_in, result_sums
from tests.test_approving import member, share_idea
from tests.test_stats import worked_out
from tests.test_voting import SEE, counts
from tests.transcript import Person

MakePerson = Callable[..., Person]
STAFF = 9600
WORDS = "Ann Jones of 4 Elm Street wants a bench at the bus stop."
EDITED = "A bench at the bus stop on Elm Street."
REASON = "The council will put one in by May."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF], "about_areas": ["Grangetown", "Splott"]}


async def member_id(store: Store, someone: Person) -> int:
    found = await store.members.by_telegram_id(someone.user.id)
    assert found is not None
    return found.id


async def test_ideas_shared_weighed_and_what_became_of_them(
    person: MakePerson, store: Store, settings: Settings
) -> None:
    olu = person(STAFF, "Olu")
    await olu.says("hello")  # staff open the bot, so their reports can reach them
    olu.user.unread()

    # 1) Three members share ideas: Ann with her first name, Bo without his name, Cy with
    #    the team only. The facilitator approves Ann's with an edit (her address goes).
    ann = await member(person, 9601, "Ann", named=True)
    await share_idea(ann, WORDS)
    assert await ann.taps("Others, with my first name") == [
        t("en", "approving.share.named_ok"),
        t("en", "sharing.next"),
    ]
    bo, cy = person(9602, "Bo"), person(9603, "Cy")
    await join_in(bo, "Grangetown")
    await join_in(cy, "Splott")
    await share_idea(bo, "Close the park at night.")
    assert (await bo.says("2"))[0] == t("en", "approving.share.anonymous_ok")  # typed
    await share_idea(cy, "My neighbour plays loud music.")
    assert (await cy.says("only the team"))[0] == t("en", "approving.share.team_ok")
    ann.user.unread()

    assert await olu.says("/ideas") == [t("en", "ideas.desk")]
    waiting = await olu.taps(t("en", "ideas.desk.wait"))
    assert waiting == [
        f"{tn('en', 'approving.waiting', 2, count=2)}\n"
        f"{t('en', 'approving.how.named', name='Ann')}\n\n{WORDS}"
    ]
    assert await olu.taps("Edit, then approve") == [t("en", "approving.edit.ask"), WORDS]
    after = await olu.says(EDITED)
    assert after[0] == t("en", "approving.approved")
    assert "Close the park at night." in after[1]  # Bo's waits next; Cy's never comes
    [told] = await ann.user.wait_messages(1, timeout=10)
    assert told.text == t("en", "approving.author.edited", text=EDITED)
    approved = await store.db.fetch_one("SELECT id FROM statements WHERE state = 'approved'")
    assert approved is not None
    shared = int(approved["id"])

    # 2) Twelve members weigh ideas, half by button and half typing: only Ann's edited idea
    #    is shown (Bo's is not approved yet, Cy's was for the team). Ten agree.
    others = [person(9610 + i, f"V{i}") for i in range(10)]
    for i, someone in enumerate(others):
        await join_in(someone, "Grangetown" if i < 5 else "Splott")
    voters = [bo, cy, *others]
    shown = t("en", "voting.idea.named", text=EDITED, name="Ann")
    choices = ["agree"] * 10 + ["disagree", "unsure"]
    typed = {"agree": "1", "disagree": "disagree", "unsure": "not sure"}
    labels = {c: t("en", f"voting.{c}") for c in typed}
    for i, (someone, choice) in enumerate(zip(voters, choices, strict=True)):
        by_button = i % 2 == 0
        await someone.says("/menu")
        idea = await (someone.taps(SEE) if by_button else someone.says("other ideas"))
        assert idea == [shown], someone.user.id
        got = await (someone.taps(labels[choice]) if by_button else someone.says(typed[choice]))
        result = t("en", "voting.result.not_yet") if i < 9 else got[0]
        assert got == [result, t("en", "voting.none_left")], someone.user.id
    assert await counts(store, shared) == (12, Tally(agree=10, disagree=1, unsure=1))
    # The twelfth saw what people think, with no count from 1 to 9.
    assert not [n for n in map(int, re.findall(r"\d+", result)) if 0 < n < 10]

    # 3) /ideas → Where people agree: the counts, the common ground, no small count.
    await olu.says("/ideas")
    page = "\n".join(await olu.taps(t("en", "ideas.desk.agree")))
    lines = page.splitlines()
    start = lines.index(t("en", "agreement.common"))
    assert lines[start + 1] == t("en", "agreement.common.item", text=EDITED)
    assert t("en", "agreement.idea", number=1, text=EDITED) in lines
    assert "Close the park" not in page and "loud music" not in page
    assert "All: 12 voted. Agree 10 (83%)" in page
    figures = re.findall(r"(\d+) voted|(?:Agree|disagree|not sure) (\d+)", page)
    assert figures and not [n for n in (int(a or b) for a, b in figures) if 0 < n < 10]
    fields = [f for f in ABOUT_FIELDS if f != "extra" or settings.about_extra_question]
    [result_row] = await store.votes.results(fields)
    hidden = hidden_in_result(result_row.tally, result_row.breakdowns)
    values, sums = result_sums(result_row.tally, result_row.breakdowns)
    assert all(not 0 < n < 10 for k, n in values.items() if k not in hidden)
    assert worked_out(sums, frozenset(hidden)) == set()
    assert hidden  # the 1s, and what would give them away, are hidden

    # 4) "Going ahead", with a reason. One supporter used /stop first.
    stopped = others[7]
    assert await stopped.says("/stop") == [t("en", "stop.done")]
    for someone in (ann, *voters):
        someone.user.unread()
    await olu.says("/ideas")
    await olu.taps(t("en", "ideas.desk.status"))
    [item] = [b for b in olu.buttons if "Ann Jones" in b or "bench" in b]
    await olu.taps(item)
    assert await olu.taps(t("en", "tracking.status.going_ahead")) == [t("en", "tracking.reason")]
    preview = await olu.says(REASON)
    supporters = [someone for someone, c in zip(voters, choices, strict=True) if c == "agree"]
    told_to = [ann, *(s for s in supporters if s is not stopped)]
    assert preview[-1] == tn("en", "tracking.summary", len(told_to), count=len(told_to))
    assert await olu.taps("Send") == [tn("en", "tracking.saved", 10, count=10)]
    did = f"{t('en', 'tracking.did.going_ahead')}\n{t('en', 'tracking.why', reason=REASON)}"
    for someone in told_to:
        [message] = await someone.user.wait_messages(1, timeout=10)
        role = "author" if someone is ann else "supporter"
        said = WORDS if someone is ann else EDITED  # the author's own words; others, the OK'd
        assert message.text == t("en", f"tracking.told.{role}", said=said, did=did)
    [report] = await olu.user.wait_messages(1, timeout=10)  # every row is final now
    assert (report.text or "").startswith(t("en", "delivery.report.done"))
    for someone in (ann, *voters):  # exactly one each; none to /stop, nor to who disagreed
        assert someone.user.unread() == [], someone.user.id
    rows = await store.db.fetch_all(
        "SELECT o.member_id, o.status, o.skip_reason FROM outbox o"
        " JOIN delivery_batches b ON b.id = o.batch_id WHERE b.kind = 'status'"
    )
    sent = sorted(r["member_id"] for r in rows if r["status"] == "sent")
    assert sent == sorted([await member_id(store, s) for s in told_to])
    skipped = [(r["member_id"], r["skip_reason"]) for r in rows if r["status"] != "sent"]
    assert skipped == [(await member_id(store, stopped), "stopped")]
    submission = await store.db.fetch_one(
        "SELECT submission_id FROM statements WHERE id = ?", (shared,)
    )
    assert submission is not None
    assert await store.tracker.status(Item("idea", submission["submission_id"])) == "going_ahead"

    # 5) /updates lists it: for the author (her words) and for a supporter (the OK'd words).
    [news] = await ann.says("/updates")
    assert t("en", "tracking.updates.own", text=WORDS) in news and REASON in news
    supporter = supporters[0]
    [news] = await supporter.says("/updates")
    assert t("en", "tracking.updates.idea", text=EDITED) in news and REASON in news
    assert "Ann Jones" not in news

    # 6) /mydata shows the supporter's vote; /delete removes it, and the counts follow.
    [summary, _file] = await supporter.says("/mydata")
    assert t("en", "mydata.votes", count=1) in summary
    [summary, _file] = await ann.says("/mydata")
    assert t("en", "mydata.ideas_shown", count=1) in summary
    gone = await member_id(store, supporter)
    await supporter.says("/delete")
    assert await supporter.taps(t("en", "delete.yes")) == [t("en", "delete.done")]
    assert await store.db.fetch_all("SELECT * FROM votes WHERE member_id = ?", (gone,)) == []
    assert await counts(store, shared) == (11, Tally(agree=9, disagree=1, unsure=1))
    await olu.says("/ideas")
    page = "\n".join(await olu.taps(t("en", "ideas.desk.agree")))
    assert "All: 11 voted." in page
    recipients = await store.tracker.recipients(Item("idea", submission["submission_id"]))
    assert gone not in [r.member_id for r in recipients]

"""The staff flows (/ask, /broadcast, /export) are each one `StaffFlow` (conversations/steps.py):
/cancel at any step drops the draft and ends the flow, "Cancel it" at a preview does the same,
and the steps they share (the words, who gets it, when) answer alike in each flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t, tn
from storage.store import Store
from tests.transcript import Person

MakePerson = Callable[..., Person]
STAFF = 9100
# Each flow, its first answer (one step on), and what /cancel says.
FLOWS = [
    ("ask", "Is the park safe?", "staff.ask.cancelled"),
    ("broadcast", "We fixed the light.", "staff.ask.cancelled"),
    ("export", "CSV", "export.cancelled"),
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


async def nothing_stored(store: Store) -> bool:
    made = {"question_created", "broadcast_created", "export"}
    return not [e for e in await store.audit.entries() if e.action in made]


@pytest.mark.parametrize(("flow", "answer", "cancelled"), FLOWS)
async def test_cancel_at_any_step_of_a_staff_flow_drops_its_draft_and_ends_it(
    person: MakePerson, store: Store, flow: str, answer: str, cancelled: str
) -> None:
    fran = person(STAFF, "Fran")
    await fran.says(f"/{flow}")
    await fran.says(answer)
    session = await store.sessions.get(STAFF)
    assert session.flow == flow and session.data[flow]
    assert await fran.says("/cancel") == [t("en", cancelled)]
    session = await store.sessions.get(STAFF)
    assert (session.flow, session.state) == (None, None) and flow not in session.data
    assert await nothing_stored(store)


@pytest.mark.parametrize("flow", ["ask", "broadcast"])
async def test_cancel_it_at_the_preview_sends_nothing(
    person: MakePerson, store: Store, flow: str
) -> None:
    fran = person(STAFF, "Fran")
    await fran.says(f"/{flow}")
    await fran.says("Is the park safe?")
    if flow == "ask":
        await fran.taps(t("en", "staff.kind.open"))
    await fran.taps(t("en", "staff.audience.everyone"))
    await fran.taps(t("en", "staff.when.now"))
    if flow == "ask":
        await fran.taps(t("en", "staff.reminder.none"))
    assert await fran.taps(t("en", "staff.cancel")) == [t("en", "staff.ask.cancelled")]
    session = await store.sessions.get(STAFF)
    assert session.flow is None and flow not in session.data
    assert await nothing_stored(store)


@pytest.mark.parametrize(("flow", "most"), [("ask", 1000), ("broadcast", 3000)])
async def test_the_shared_steps_answer_alike_in_ask_and_broadcast(
    person: MakePerson, store: Store, flow: str, most: int
) -> None:
    fran = person(STAFF, "Fran")
    asked = t("en", "staff.broadcast.text" if flow == "broadcast" else "staff.ask.text")
    assert await fran.says(f"/{flow}") == [asked]
    # The words: too long, said so; the step waits.
    too_long = [tn("en", "staff.ask.text_bad.letters", most, max=most)]
    assert await fran.says("x" * (most + 1)) == too_long
    await fran.says("Is the park safe?")
    if flow == "ask":
        await fran.taps(t("en", "staff.kind.open"))
    audience = t("en", "staff.ask.audience")
    # Who gets it: one project when there is none, a word too long, asked again.
    projects = await fran.taps(t("en", "staff.audience.project"))
    assert projects == [t("en", "staff.ask.no_projects"), audience]
    if flow == "broadcast":
        answered = await fran.taps(t("en", "staff.audience.answered"))
        assert answered == [t("en", "staff.responses.none"), audience]
    assert await fran.taps(t("en", "staff.audience.tag")) == [t("en", "staff.ask.tag")]
    assert await fran.says("y" * 41) == [t("en", "staff.not_understood"), t("en", "staff.ask.tag")]
    await fran.says("Splott")
    # When: a time already past, words that are no time, each said so.
    assert await fran.taps(t("en", "staff.when.once")) == [t("en", "staff.ask.at.once")]
    assert await fran.says("1/1/2020 10:00") == [t("en", "staff.ask.at_past")]
    nonsense = await fran.says("whenever")
    assert nonsense == [t("en", "staff.not_understood"), t("en", "staff.ask.at.once")]
    assert await fran.says("tomorrow 18:00") != nonsense
    session = await store.sessions.get(STAFF)
    assert session.data[flow]["audience"] == "tag:Splott"
    assert session.state == ("REMINDER" if flow == "ask" else "PREVIEW")

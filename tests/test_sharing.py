"""Sharing stories and ideas, through the real bot and the emulator, read as transcripts."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t
from bot.settings import Settings
from emulator import Emulator
from storage.store import Store
from tests.media_samples import png, voice
from tests.transcript import Person, holds_trace, join

MakePerson = Callable[..., Person]
STAFF_ID = 9001


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF_ID], "media_max_mb": 1}


async def member(person: MakePerson, user_id: int, name: str, **kwargs: Any) -> Person:
    someone = person(user_id, name)
    await join(someone, **kwargs)
    return someone


def review(parts: list[tuple[str, str]], noun: str = "story") -> str:
    lines = "\n\n".join(f"{label}: {text}" for label, text in parts)
    return t("en", f"{noun}.review", parts=lines)


async def test_a_story_told_in_text(person: MakePerson, store: Store) -> None:
    ann = await member(person, 2001, "Ann")
    assert await ann.taps("Share your story") == [t("en", "story.what_happened")]
    assert ann.buttons == ["Skip", "Stop"]
    assert await ann.says("The bus did not stop for my wheelchair.") == ["How did it affect you?"]
    assert await ann.says("I was late for my appointment.") == ["What would have made it better?"]
    assert await ann.says("A driver who waits.") == [
        review(
            [
                ("What happened", "The bus did not stop for my wheelchair."),
                ("How it affected you", "I was late for my appointment."),
                ("What would have made it better", "A driver who waits."),
            ]
        )
    ]
    assert ann.buttons == ["Save", "Change a part", "Throw it away"]
    assert await ann.taps("Save") == [t("en", "story.saved"), t("en", "sharing.next")]
    assert ann.buttons == ["Share one more story", "Menu"]

    member_row = await store.members.by_telegram_id(2001)
    assert member_row is not None
    [story] = await store.sharing.of_member(member_row.id)
    assert story.kind == "experience" and story.status == "submitted" and story.submitted_at
    parts = await store.sharing.parts(story.id)
    assert parts["what_happened"].text == "The bus did not stop for my wheelchair."
    assert parts["what_would_help"].text == "A driver who waits."
    assert await ann.taps("Menu") == [t("en", "menu.title")]


async def test_a_story_told_in_voice_notes_and_a_photo(
    person: MakePerson, store: Store, settings: Settings
) -> None:
    bo = await member(person, 2002, "Bo")
    await bo.says("story")
    spoken = voice(4)
    assert await bo.does(lambda u: u.send_voice(spoken, duration=12)) == ["How did it affect you?"]
    picture = png(3, 2)
    replies = await bo.does(lambda u: u.send_photo(picture, caption="The broken ramp"))
    assert replies == ["What would have made it better?"]
    assert await bo.says("skip") == [
        review(
            [
                ("What happened", "(voice note, 12 seconds)"),
                ("How it affected you", "(a photo) The broken ramp"),
                ("What would have made it better", "(skipped)"),
            ]
        )
    ]
    await bo.says("1")  # Save
    member_row = await store.members.by_telegram_id(2002)
    assert member_row is not None
    [story] = await store.sharing.of_member(member_row.id)
    parts = await store.sharing.parts(story.id)
    [voice_note] = parts["what_happened"].media
    [photo] = parts["how_it_affected"].media
    assert voice_note.kind == "voice" and voice_note.duration == 12
    assert (settings.media_dir / voice_note.file_name).read_bytes() == spoken
    assert (settings.media_dir / photo.file_name).read_bytes() == picture
    assert parts["how_it_affected"].text == "The broken ramp"
    assert parts["what_would_help"].skipped
    assert len(voice_note.file_name) > 20 and "2002" not in voice_note.file_name


async def test_skip_everything_then_change_a_part(person: MakePerson, store: Store) -> None:
    cy = await member(person, 2003, "Cy")
    await cy.says("/menu")
    await cy.taps("Share your story")
    await cy.taps("Skip")
    await cy.taps("Skip")
    await cy.says("SKIP")
    assert await cy.taps("Change a part") == [t("en", "sharing.change_which")]
    assert cy.buttons == [
        "What happened",
        "How it affected you",
        "What would have made it better",
        "Back",
    ]
    assert await cy.taps("How it affected you") == ["How did it affect you?"]
    # After a change the story comes back for review, not the next question.
    assert await cy.says("I felt ignored.") == [
        review(
            [
                ("What happened", "(skipped)"),
                ("How it affected you", "I felt ignored."),
                ("What would have made it better", "(skipped)"),
            ]
        )
    ]
    await cy.taps("Save")
    member_row = await store.members.by_telegram_id(2003)
    assert member_row is not None
    [story] = await store.sharing.of_member(member_row.id)
    assert story.status == "submitted"


async def test_cancel_asks_first_and_throws_the_draft_away(
    person: MakePerson, store: Store, settings: Settings
) -> None:
    dai = await member(person, 2004, "Dai")
    await dai.taps("Share your story")
    await dai.does(lambda u: u.send_voice(voice(), duration=3))
    assert await dai.says("/cancel") == [t("en", "story.cancel_ask")]
    assert await dai.taps("No, keep going") == ["How did it affect you?"]
    assert await dai.taps("Stop") == [t("en", "story.cancel_ask")]
    assert await dai.says("yes") == [t("en", "sharing.discarded")]
    member_row = await store.members.by_telegram_id(2004)
    assert member_row is not None
    assert await store.sharing.of_member(member_row.id) == []
    assert os.listdir(settings.media_dir) == []
    # Back at the menu: typed words are menu choices again.
    assert await dai.says("menu") == [t("en", "menu.title")]


async def test_an_idea_with_a_volunteer(person: MakePerson, store: Store) -> None:
    eve = await member(person, 2005, "Eve")
    assert await eve.taps("Share an idea") == [t("en", "idea.idea")]
    assert await eve.says("A bench at the bus stop.") == [t("en", "idea.who_it_helps")]
    assert await eve.says("Older people.") == [t("en", "idea.volunteer")]
    assert eve.buttons == ["Yes", "Maybe", "No", "Skip", "Stop"]
    assert await eve.taps("Maybe") == [
        review(
            [
                ("Your idea", "A bench at the bus stop."),
                ("Who it would help", "Older people."),
                ("Help make it happen", "Maybe"),
            ],
            "idea",
        )
    ]
    assert await eve.taps("Save") == [
        t("en", "idea.saved"),
        t("en", "idea.saved_volunteer"),
        t("en", "approving.share.ask"),
    ]
    # Who may see it (tests/test_approving.py): only the team.
    assert await eve.taps("Only the team") == [
        t("en", "approving.share.team_ok"),
        t("en", "sharing.next"),
    ]
    member_row = await store.members.by_telegram_id(2005)
    assert member_row is not None
    [idea] = await store.sharing.of_member(member_row.id)
    assert idea.kind == "idea" and idea.volunteer == "maybe" and idea.status == "submitted"
    # "Share one more" starts a new idea.
    assert await eve.says("1") == [t("en", "idea.idea")]


async def test_what_is_shared_is_linked_to_the_members_project(
    person: MakePerson, store: Store
) -> None:
    project = await store.projects.add("buses", "Better buses")
    fay = await member(person, 2006, "Fay", start="/start buses")
    await fay.taps("Share an idea")
    await fay.says("Later buses at night.")
    member_row = await store.members.by_telegram_id(2006)
    assert member_row is not None
    draft = await store.sharing.latest_draft(member_row.id, "idea")
    assert draft is not None and draft.project_id == project.id


async def test_bad_input_and_stale_buttons_mid_story(
    person: MakePerson, store: Store, emulator: Emulator
) -> None:
    gus = await member(person, 2007, "Gus")
    await gus.taps("Share your story")
    first_prompt = gus.user.messages[-1].message_id
    assert await gus.does(lambda u: u.send_sticker()) == [t("en", "sharing.bad_input")]
    assert await gus.does(lambda u: u.send_location(51.4, -3.1)) == [t("en", "sharing.bad_input")]
    big = b"x" * (1024 * 1024 + 1)
    assert await gus.does(lambda u: u.send_document(big, file_name="big.pdf")) == [
        t("en", "sharing.too_big", mb=1)
    ]
    await gus.says("It rained.")
    # The Skip button of the first question, pressed now, is old: nothing is skipped.
    old_skip = lambda u: u.press_callback(  # noqa: E731
        f"share:{_draft_id(gus)}:what_happened:skip", message_id=first_prompt
    )
    assert await gus.does(old_skip) == [t("en", "bad.old_button"), "How did it affect you?"]
    await gus.taps("Stop")
    await gus.taps("Yes, throw it away")
    # A button from a story that is gone does nothing harmful either.
    assert await gus.does(lambda u: u.press_callback("share:1:review:save")) == [
        t("en", "bad.old_button"),
        t("en", "menu.title"),
    ]


def _draft_id(person: Person) -> str:
    data = [d for row in person.user.messages[-1].callback_data for d in row if d]
    return data[0].split(":")[1]


async def test_menu_mid_story_keeps_it_for_later(person: MakePerson, store: Store) -> None:
    hal = await member(person, 2008, "Hal")
    await hal.taps("Share your story")
    await hal.says("The lift was broken.")
    assert await hal.says("/menu") == [
        t("en", "sharing.paused.experience"),
        t("en", "menu.title"),
    ]
    assert await hal.says("8") == [t("en", "help.text")]  # the menu works: 8 is Help
    assert await hal.taps("Share your story") == [
        t("en", "story.resume"),
        "How did it affect you?",
    ]
    member_row = await store.members.by_telegram_id(2008)
    assert member_row is not None
    [story] = await store.sharing.of_member(member_row.id)
    assert (await store.sharing.parts(story.id))["what_happened"].text == "The lift was broken."


async def test_safeguarding_mid_story(person: MakePerson, store: Store) -> None:
    staff = person(STAFF_ID, "Sam")
    await staff.says("hello")  # staff must have opened the bot to get alerts
    ivy = await member(person, 2009, "Ivy")
    await ivy.taps("Share your story")
    words = "Nobody listens and some days I want to die."
    assert await ivy.says(words) == [t("en", "safeguarding.help"), "How did it affect you?"]
    member_row = await store.members.by_telegram_id(2009)
    assert member_row is not None
    pseudonym = await store.pseudonyms.of(member_row.id)
    [alert] = await staff.user.wait_messages(1, timeout=10)  # alerts go through the outbox
    assert alert.text == t("en", "safeguarding.alert", pseudonym=pseudonym)
    assert words not in (alert.text or "") and "2009" not in (alert.text or "")
    flags = await store.db.fetch_all("SELECT * FROM safeguarding_flags")
    assert len(flags) == 1 and flags[0]["part"] == "what_happened"
    # The story goes on.
    assert await ivy.says("skip") == ["What would have made it better?"]
    # Staff read it from the alert; a member who forges the button sees nothing.
    [read] = await staff.taps("Read it")
    assert words in read and pseudonym in read
    assert await ivy.does(lambda u: u.press_callback(f"flag:{flags[0]['id']}")) == [
        t("en", "bad.old_button"),
        "What would have made it better?",
    ]
    assert not any(words in (m.text or "") for m in ivy.user.messages[-2:])


async def test_mydata_holds_exactly_the_members_own_data(person: MakePerson) -> None:
    jo = await member(person, 2010, "Jo")
    kit = await member(person, 2011, "Kit")
    for someone, text in ((jo, "Jo's own story"), (kit, "Kit's secret story")):
        await someone.taps("Share your story")
        await someone.says(text)
        await someone.says("skip")
        await someone.says("skip")
        await someone.taps("Save")
    await jo.says("/mydata")
    summary, document = jo.user.messages[-2:]
    assert summary.text is not None and "Stories: 1" in summary.text
    assert document.kind == "document" and document.file_name == "my-data.json"
    assert document.file_bytes is not None
    data = json.loads(document.file_bytes)
    assert data["profile"]["telegram_user_id"] == 2010
    assert data["stories"][0]["parts"]["what_happened"]["text"] == "Jo's own story"
    raw = document.file_bytes.decode()
    assert "Kit" not in raw and "2011" not in raw


async def test_delete_removes_every_row_and_file_of_the_member(
    person: MakePerson, store: Store, settings: Settings
) -> None:
    lee = await member(person, 2012, "Lee", start="/start")
    mo = await member(person, 2013, "Mo")
    for someone, text in ((lee, "Lee rides the 44"), (mo, "Mo rides the 61")):
        await someone.taps("Share your story")
        await someone.says(text)
        await someone.does(lambda u: u.send_voice(voice(2), duration=2))
        await someone.does(lambda u: u.send_photo(png(), caption=None))
        await someone.taps("Save")
    await lee.taps("Menu")
    await lee.taps("Share an idea")
    await lee.says("Lee wants a later bus")
    lee_row = await store.members.by_telegram_id(2012)
    mo_row = await store.members.by_telegram_id(2013)
    assert lee_row is not None and mo_row is not None
    lee_files = await store.sharing.media_files_of(lee_row.id)
    mo_files = await store.sharing.media_files_of(mo_row.id)
    assert len(lee_files) == 2 and len(mo_files) == 2

    await lee.says("/delete")
    assert await lee.taps("Yes, delete it all") == [t("en", "delete.done")]

    traces = ["2012", "Lee rides", "Lee wants", *lee_files]
    for table in await store.db.table_names():
        rows = await store.db.fetch_all(f"SELECT * FROM {table}")
        dump = repr([tuple(r) for r in rows])
        for trace in traces:
            assert not holds_trace(dump, trace), (table, trace)
    on_disk = set(os.listdir(settings.media_dir))
    assert on_disk == set(mo_files)
    assert await store.members.by_telegram_id(2013) == mo_row
    [mo_story] = await store.sharing.of_member(mo_row.id)
    assert (await store.sharing.parts(mo_story.id))["what_happened"].text == "Mo rides the 61"


async def test_audio_documents_and_video_notes_are_kept_too(
    person: MakePerson, store: Store, settings: Settings
) -> None:
    nia = await member(person, 2014, "Nia")
    await nia.taps("Share your story")
    await nia.does(lambda u: u.send_audio(b"ID3-audio", duration=5))
    await nia.does(lambda u: u.send_document(b"%PDF-1.4 letter", file_name="letter.pdf"))
    replies = await nia.does(lambda u: u.send_video_note(b"video-bytes", duration=7))
    assert replies == [
        review(
            [
                ("What happened", "(sound file)"),
                ("How it affected you", "(file)"),
                ("What would have made it better", "(video message)"),
            ]
        )
    ]
    member_row = await store.members.by_telegram_id(2014)
    assert member_row is not None
    [story] = await store.sharing.of_member(member_row.id)
    parts = await store.sharing.parts(story.id)
    kinds = {name: part.media[0] for name, part in parts.items()}
    assert kinds["what_happened"].kind == "audio" and kinds["what_happened"].duration == 5
    assert kinds["how_it_affected"].file_name.endswith(".pdf")
    stored = settings.media_dir / kinds["how_it_affected"].file_name
    assert stored.read_bytes() == b"%PDF-1.4 letter"
    assert kinds["what_would_help"].kind == "video_note"

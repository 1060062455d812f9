"""Typing instead of tapping, and the chat as a record: what a member types picks the same
option as the button; what matches nothing gets the buttons again; a pressed button leaves
its question and the choice in the chat. Through the real bot and the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.catalogue import t
from conversations.choices import Option, match, number
from emulator import Emulator
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
STAFF = 9100


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [STAFF]}


def numbered(labels: list[str]) -> list[list[str]]:
    """Buttons as the emulator shows them: one a row, numbered from 1."""
    return [[f"{i}. {label}"] for i, label in enumerate(labels, start=1)]


def newest_buttons(someone: Person) -> list[list[str]]:
    """The buttons under the bot's newest message (none if it has none)."""
    return someone.user.messages[-1].buttons


# ---- 1. "²" is a digit to str.isdigit, but not to int()


@pytest.mark.parametrize("typed", ["²", "1²", "³", "٣", "１"])
def test_digits_that_are_not_0_to_9_pick_nothing(typed: str) -> None:
    options = [Option("agree", "consent.agree"), Option("not_now", "consent.not_now")]
    assert number(typed) is None
    assert match(typed, options, "en") is None


async def test_typing_a_superscript_two_gets_the_choices_again(person: MakePerson) -> None:
    ann = person(1001, "Ann")
    await ann.says("/start")
    await ann.taps("English")
    assert await ann.says("²") == [t("en", "bad.choice")]
    assert newest_buttons(ann) == numbered(["Yes, I agree", "Not now"])


async def test_a_superscript_in_a_staff_button_or_step_is_not_understood(
    person: MakePerson,
) -> None:
    fran = person(STAFF, "Fran")
    # A forged /scheduled button carrying "²" instead of an id.
    replies = await fran.does(lambda user: user.press_callback("sched:q:²"))
    assert replies and t("en", "error.generic") not in replies
    # /ask's reminder step reads a typed number of hours.
    await fran.says("/ask")
    await fran.says("Is the bus on time?")
    await fran.taps("In their own words")
    await fran.taps("All members")
    await fran.taps("Now")
    replies = await fran.says("²")
    assert replies == [t("en", "staff.not_understood"), t("en", "staff.ask.reminder")]


# ---- 2. A button's text as shown, number and all, picks it


async def test_typing_a_button_with_its_number_picks_it(person: MakePerson, store: Store) -> None:
    ann = person(1001, "Ann")
    await ann.says("/start")
    await ann.taps("English")
    assert await ann.says("1. Yes, I agree") == [t("en", "naming.ask")]
    assert await ann.says("2) Use my first name") == [
        t("en", "naming.named_ok", name="Ann"),
        t("en", "about.intro"),
        t("en", "about.age"),
    ]
    member = await store.members.by_telegram_id(1001)
    assert member is not None and member.display_name == "Ann"


def test_a_number_and_a_label_that_disagree_pick_nothing() -> None:
    options = [Option("agree", "consent.agree"), Option("not_now", "consent.not_now")]
    assert match("1. Yes, I agree", options, "en") == options[0]
    assert match("2. Not now", options, "en") == options[1]
    assert match("2. Yes, I agree", options, "en") is None


# ---- 5. A pressed button leaves its question and what was chosen


async def test_a_pressed_button_leaves_the_question_and_the_choice(person: MakePerson) -> None:
    ann = person(1001, "Ann")
    await ann.says("/start")
    await ann.taps("English")
    consent = ann.user.messages[-1]
    await ann.taps("Yes, I agree")
    after = next(m for m in ann.user.messages if m.message_id == consent.message_id)
    assert after.text == f"{t('en', 'consent.text')}\n\n✓ {t('en', 'consent.agree')}"
    assert after.buttons == []


async def test_an_old_button_is_not_marked_as_chosen(person: MakePerson) -> None:
    ann = person(1001, "Ann")
    await join(ann)
    await ann.says("/language")
    asked = ann.user.messages[-1]
    await ann.says("/menu")  # the language question is not awaited any more
    assert await ann.taps("English", on=asked.message_id) == [
        t("en", "bad.old_button"),
        t("en", "menu.title"),
    ]
    after = next(m for m in ann.user.messages if m.message_id == asked.message_id)
    assert after.text == t("en", "language.ask") and after.buttons == []


async def test_a_staff_button_shows_the_choice_too(person: MakePerson) -> None:
    fran = person(STAFF, "Fran")
    await fran.says("/ask")
    await fran.says("Is the bus on time?")
    kind = fran.user.messages[-1]
    await fran.taps("In their own words")
    after = next(m for m in fran.user.messages if m.message_id == kind.message_id)
    assert after.text == f"{t('en', 'staff.ask.kind')}\n\n✓ {t('en', 'staff.kind.open')}"


# ---- 3. Typed words that match nothing get the choices again, with their buttons


async def test_joining_repeats_the_choices_after_a_typed_answer_that_fits_none(
    person: MakePerson,
) -> None:
    ann = person(1001, "Ann")
    await ann.says("/start")
    await ann.taps("English")
    await ann.taps("Yes, I agree")
    assert await ann.says("maybe later") == [t("en", "bad.choice")]
    assert newest_buttons(ann) == numbered(["Stay anonymous", "Use my first name"])
    assert await ann.taps("Stay anonymous") == [
        t("en", "naming.anonymous_ok"),
        t("en", "about.intro"),
        t("en", "about.age"),
    ]


async def test_a_story_repeats_its_choices_after_a_typed_answer_that_fits_none(
    person: MakePerson,
) -> None:
    ann = person(1001, "Ann")
    await join(ann)
    await ann.taps("Share your story")
    for part in ("The bus was late.", "I missed work.", "A bus on time."):
        await ann.says(part)
    assert await ann.says("hmm") == [t("en", "sharing.choose")]
    assert newest_buttons(ann) == numbered(["Save", "Change a part", "Throw it away"])
    assert await ann.taps("Save") == [t("en", "story.saved"), t("en", "sharing.next")]


async def test_a_one_step_question_repeats_its_choices(person: MakePerson, store: Store) -> None:
    ann = person(1001, "Ann")
    await join(ann)
    assert await ann.says("/delete") == [t("en", "delete.ask")]
    assert await ann.says("perhaps") == [t("en", "bad.choice")]
    assert newest_buttons(ann) == numbered(["Yes, delete it all", "No, keep it"])
    assert await ann.says("no") == [t("en", "delete.kept"), t("en", "menu.title")]
    assert await store.members.by_telegram_id(1001) is not None


async def test_a_staff_step_repeats_its_choices(person: MakePerson) -> None:
    fran = person(STAFF, "Fran")
    await fran.says("/ask")
    await fran.says("Is the bus on time?")
    assert await fran.says("banana") == [t("en", "staff.not_understood"), t("en", "staff.ask.kind")]
    assert newest_buttons(fran) == numbered(
        ["In their own words", "Pick one from a list", "A number from 1 to 5", "Yes or no"]
    )


# ---- 4. A reply after which there is nothing else to do offers the Menu button

MENU = [["Menu"]]


async def test_dead_ends_offer_the_menu_button(person: MakePerson) -> None:
    ann = person(1001, "Ann")
    await join(ann)
    assert await ann.says("/cancel") == [t("en", "cancel.nothing")]
    assert newest_buttons(ann) == MENU
    assert await ann.says("something odd") == [t("en", "bad.idle")]
    assert newest_buttons(ann) == MENU
    assert await ann.does(lambda user: user.send_sticker()) == [t("en", "bad.idle_media")]
    assert newest_buttons(ann) == MENU
    assert await ann.says("/nosuchthing") == [t("en", "bad.unknown_command")]
    assert newest_buttons(ann) == MENU
    assert await ann.says("/stop") == [t("en", "stop.done")]
    assert newest_buttons(ann) == MENU
    assert await ann.says("/stop") == [t("en", "stop.already")]
    assert newest_buttons(ann) == MENU
    assert await ann.says("/resume") == [t("en", "resume.done")]
    assert newest_buttons(ann) == MENU
    assert await ann.says("/resume") == [t("en", "resume.not_stopped")]
    assert newest_buttons(ann) == MENU
    await ann.says("/mydata")
    assert newest_buttons(ann) == MENU
    # The button shows the menu, and the message it was on keeps a record of the press.
    pressed = ann.user.messages[-1]
    assert await ann.taps("Menu") == [t("en", "menu.title")]
    after = next(m for m in ann.user.messages if m.message_id == pressed.message_id)
    assert after.text == f"{t('en', 'mydata.file_caption')}\n\n✓ Menu"


async def test_throwing_a_story_away_offers_the_menu_button(person: MakePerson) -> None:
    ann = person(1001, "Ann")
    await join(ann)
    await ann.taps("Share your story")
    await ann.taps("Stop")
    assert await ann.taps("Yes, throw it away") == [t("en", "sharing.discarded")]
    assert newest_buttons(ann) == MENU
    assert await ann.taps("Menu") == [t("en", "menu.title")]


async def test_stopping_while_joining_offers_the_menu_button(person: MakePerson) -> None:
    ann = person(1001, "Ann")
    await ann.says("/start")
    await ann.taps("English")
    await ann.taps("Yes, I agree")
    assert await ann.says("/stop") == [t("en", "stop.done")]
    assert newest_buttons(ann) == MENU
    assert await ann.taps("Menu") == [t("en", "menu.title")]


# ---- 6. The command menu follows the language the member chose


def commands_of(emulator: Emulator, chat_id: int) -> list[tuple[str, str]] | None:
    found = emulator.commands.get(f"chat:{chat_id}")
    return None if found is None else [(c["command"], c["description"]) for c in found]


async def test_a_member_who_picks_welsh_gets_the_command_menu_in_welsh(
    person: MakePerson, emulator: Emulator
) -> None:
    # Her Telegram app is in English, so Telegram's own choice of menu would be English.
    ann = person(1001, "Ann", language_code="en")
    await join(ann, "Cymraeg")
    menu = commands_of(emulator, 1001)
    assert menu is not None
    assert ("help", t("cy", "command.help")) in menu
    assert ("help", t("en", "command.help")) not in menu

    await ann.says("/language")
    await ann.taps("English")
    menu = commands_of(emulator, 1001)
    assert menu is not None and ("help", t("en", "command.help")) in menu


async def test_a_staff_menu_follows_the_staff_members_language(
    person: MakePerson, emulator: Emulator
) -> None:
    fran = person(STAFF, "Fran")
    await join(fran)
    await fran.says("/language")
    await fran.taps("Cymraeg")
    menu = commands_of(emulator, STAFF)
    assert menu is not None
    assert ("help", t("cy", "command.help")) in menu
    assert ("ask", t("cy", "command.ask")) in menu


async def test_answering_and_answering_back_end_with_the_menu_button(
    person: MakePerson,
) -> None:
    fran = person(STAFF, "Fran")
    bo = person(1002, "Bo")
    await join(bo)
    assert await bo.says("/questions") == [t("en", "questions.none")]
    assert newest_buttons(bo) == MENU
    await fran.says("/ask")
    await fran.says("What would make the park safer?")
    for label in ("In their own words", "All members", "Now", "No reminder", "Send"):
        await fran.taps(label)
    await bo.user.wait_messages(1, timeout=10)
    [saved] = await bo.says("More lights.")
    assert saved.startswith(t("en", "questions.saved", when="").split("{")[0][:20])
    assert newest_buttons(bo) == MENU
    await fran.says("/responses")
    await fran.taps("What would make the park safer?")
    await fran.taps("Write back")
    await fran.says("Thank you. Which path?")
    await bo.user.wait_messages(1, timeout=10)
    await bo.taps("Answer back")
    assert await bo.says("The one by the pond.") == [t("en", "reply.passed_on")]
    assert newest_buttons(bo) == MENU

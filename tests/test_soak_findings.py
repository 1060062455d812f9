"""What the soak (tests/test_soak.py) found, each pinned down on its own.

- A button pressed a while ago (handled late, after a restart) cannot be answered any more:
  Telegram refuses with "query is too old". The press is handled all the same.
- A story left for later and carried on after changing language is asked in the language
  the member chose, like every other reply (it was asked in the language it began in).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.catalogue import t
from emulator import Emulator
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def test_a_press_too_old_to_answer_is_still_handled(
    person: MakePerson, emulator: Emulator
) -> None:
    ann = person(7401, "Ann")
    await join(ann)
    emulator.faults.add("answerCallbackQuery", 400, description=TOO_OLD)
    assert await ann.taps("Help") == [t("en", "help.text")]
    assert t("en", "error.generic") not in [m.text for m in ann.user.messages]


async def test_a_story_carried_on_in_the_language_chosen_since(person: MakePerson) -> None:
    ann = person(7402, "Ann")
    await join(ann, "Cymraeg")
    assert await ann.taps(t("cy", "menu.story")) == [t("cy", "story.what_happened")]
    await ann.says("Roedd y bws yn hwyr.")
    await ann.says("/language")
    await ann.taps("English")
    assert await ann.taps(t("en", "menu.story")) == [
        t("en", "story.resume"),
        t("en", "story.how_it_affected"),
    ]
    assert ann.buttons == [t("en", "common.skip"), t("en", "sharing.stop")]
    await ann.says("I was late.")
    [review] = await ann.says("skip")
    assert review.startswith(t("en", "story.review").split("\n")[0])
    assert await ann.taps("Save") == [t("en", "story.saved"), t("en", "sharing.next")]

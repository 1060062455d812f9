"""`Person` makes a conversation test read like a transcript:

assert await ann.says("/start") == [hello(), choose_language()]
assert await ann.taps("English") == [t("en", "consent.text")]
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.catalogue import t
from bot.receiving import CocreateApplication
from emulator import SimUser
from emulator.state import BotMessage

# What someone whose language nobody knows (never joined, or said "Not now") is told:
# how to begin, in both languages, as the first hello is.
NOT_STARTED = f"{t('en', 'bad.not_started')}\n{t('cy', 'bad.not_started')}"
REPORTS = (t("en", "delivery.report.done"), t("cy", "delivery.report.done"))


def is_report(message: BotMessage) -> bool:
    """Whether a message is the outbox's report to the author of a broadcast or round."""
    return (message.text or "").startswith(REPORTS)


class Person:
    """A member in the emulator, whose every step waits until the bot has handled it."""

    def __init__(self, user: SimUser, app: CocreateApplication) -> None:
        self.user = user
        self.app = app

    async def _after(self, update_id: int) -> list[str]:
        """The bot's replies once it has handled the update. A delivery report is the outbox's,
        not a reply, and stays unread, wherever it came: a test reads it when it wants it (as
        `user.wait_messages`' first). It can come during any later step: the outbox sends to a
        small audience at the tests' rate, and on PostgreSQL marking an update handled waits
        for its commit and for the person's lock to be given back."""
        await self.app.wait_handled(update_id)
        return [m.text or "" for m in self.user.unread(leave=is_report)]

    async def says(self, text: str) -> list[str]:
        """Sends text (or a command) and returns the texts the bot sent back."""
        return await self._after(self.user.send(text))

    async def does(self, action: Callable[[SimUser], int]) -> list[str]:
        """Sends something else (a sticker, a voice note …) and returns the replies."""
        return await self._after(action(self.user))

    def button(self, label: str, message_id: int | None = None) -> tuple[str, int]:
        """Finds the button showing `label` (buttons are numbered "1. Label")."""
        messages = [m for m in self.user.messages if m.buttons]
        if message_id is not None:
            messages = [m for m in messages if m.message_id == message_id]
        for message in reversed(messages):
            for row in message.buttons:
                for text in row:
                    if text == label or text.partition(". ")[2] == label:
                        return text, message.message_id
        raise LookupError(f"no button {label!r}")

    async def taps(self, label: str, *, on: int | None = None) -> list[str]:
        """Presses a button (on the newest message that has it, or on message `on`)."""
        text, message_id = self.button(label, on)
        return await self._after(self.user.press(text, message_id=message_id))

    @property
    def buttons(self) -> list[str]:
        """The labels on the newest message with buttons, without their numbers."""
        with_buttons = [m for m in self.user.messages if m.buttons]
        if not with_buttons:
            return []
        return [text.partition(". ")[2] or text for row in with_buttons[-1].buttons for text in row]


def hello() -> str:
    return f"{t('en', 'start.hello')}\n{t('cy', 'start.hello')}"


def choose_language() -> str:
    return f"{t('en', 'start.choose_language')}\n{t('cy', 'start.choose_language')}"


async def join(person: Person, language: str = "English", *, start: str = "/start") -> None:
    """Goes through joining with buttons: agrees, stays anonymous, skips "about you"."""
    lang = "en" if language == "English" else "cy"
    await person.says(start)
    await person.taps(language)
    await person.taps(t(lang, "consent.agree"))
    await person.taps(t(lang, "naming.anonymous"))
    for _ in range(3):  # age, area, the organiser's question
        await person.taps(t(lang, "common.skip"))


def holds_trace(dump: str, trace: str) -> bool:
    """Whether a dump of rows holds a trace: a whole number as a number of its own (the
    digits of a time, 1796158563.920126, may hold "2012" by chance), anything else as it is."""
    if trace.isdigit():
        return re.search(rf"(?<![\d.]){trace}(?![\d.])", dump) is not None
    return trace in dump

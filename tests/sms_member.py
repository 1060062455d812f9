"""`Texter`: an SMS member, texting the bot through the provider's stand-in (emulator/sms.py),
each step waiting until the bot has handled the text, as tests/transcript.py's `Person`.

    sam = Texter(provider, bot, "+447700900123")
    replies = await sam.texts("PARK")       # the texts the bot sent back while handling it
    await sam.choose("Yes, I agree")        # texts the number of a choice in the last text
"""

from __future__ import annotations

import re

from bot.receiving import CocreateApplication
from emulator.sms import SmsProvider
from storage.sms import SMS_BASE

_CHOICE = re.compile(r"(\d+) (?:for|am) (.+?)(?=, \d+ (?:for|am) |\.$)")


def choices(body: str) -> dict[str, str]:
    """The choices a text's last line offers, by label: {"Yes": "1", "No": "2"}."""
    last = body.rsplit("\n", 1)[-1]
    return {label: number for number, label in _CHOICE.findall(last)}


class Texter:
    """A phone number texting the bot."""

    def __init__(self, provider: SmsProvider, app: CocreateApplication, number: str) -> None:
        self.provider = provider
        self.app = app
        self.number = number
        self.seen = 0  # texts from the bot read so far

    @property
    def received(self) -> list[str]:
        """Every text the bot sent this number."""
        return [sms.body for sms in self.provider.sent_to(self.number)]

    def unread(self) -> list[str]:
        """The texts not read yet (and marks them read)."""
        texts = self.received[self.seen :]
        self.seen += len(texts)
        return texts

    async def update_id(self, sid: str) -> int | None:
        """The update a received text became (None: it became none)."""
        row = await self.app.resources.store.db.fetch_one(
            "SELECT id FROM sms_inbound WHERE message_sid = ?", (sid,)
        )
        return None if row is None else SMS_BASE + int(row["id"])

    async def texts(self, body: str, *, media: list[str] | None = None) -> list[str]:
        """Texts the bot and returns what it texted back while handling it."""
        status, _ = await self.provider.text(self.number, body, media=media)
        assert status == 200, status
        sid = self.provider.received_from(self.number)[-1].sid
        update_id = await self.update_id(sid)
        if update_id is not None and body.strip():
            await self.app.wait_handled(update_id)
        return self.unread()

    async def choose(self, label: str) -> list[str]:
        """Texts the number of a choice the last text with choices offered."""
        for body in reversed(self.received):
            number = choices(body).get(label)
            if number is not None:
                return await self.texts(number)
        raise LookupError(f"no choice {label!r} in {self.received!r}")

    async def wait(self, count: int = 1) -> list[str]:
        """Waits for `count` more texts (sent by the outbox) and returns them."""
        await self.provider.wait_for(self.number, count=self.seen + count, timeout=10)
        return self.unread()

"""Which channel a chat is on: Telegram, or SMS (a third, such as WhatsApp, gets its own range).

Flows never ask. A member on another channel is given a chat id (and user id) outside every
id Telegram can use: Telegram's ids have at most 52 significant bits, so ids from 2**53 up
are free. SMS members' ids are `SMS_BASE + n`. The bot's Bot API calls pass one request
object (bot/sms.py's `ChannelRequest`), which sends a call for such a chat to that channel's
adapter instead of Telegram; so each member's messages come back on the channel they use.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Literal

Channel = Literal["telegram", "sms"]

SMS_BASE = 2**53  # chat and user ids from here to NEXT_BASE are SMS members
NEXT_BASE = 2**54  # the next channel's range starts here (none yet)


def channel_of(chat_id: int) -> Channel:
    """The channel a chat (or user) id belongs to."""
    return "sms" if SMS_BASE <= chat_id < NEXT_BASE else "telegram"


def is_sms(chat_id: int) -> bool:
    """Whether this chat is an SMS member's."""
    return SMS_BASE <= chat_id < NEXT_BASE


# The outbox row whose message is being sent (bot/delivery.py sets it around each row's
# call), so a channel's adapter can link what it sends to its row (bot/sms.py).
OUTBOX_ROW: ContextVar[int | None] = ContextVar("cocreate_outbox_row", default=None)

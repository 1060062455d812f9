"""Counting the bot's new messages, so a test can check Telegram's limits held: `RateCounter`.

Every new message the emulator accepted (the methods `faults.is_new_message` names) is
counted when it is accepted, by the monotonic clock, with its chat and whether it was a paid
broadcast; so are the member's actions per chat and every 429 answered. `RateCounter.report`
gives:

- the most new messages in any 1-second window over the whole run: all, free and paid
  (Telegram: about 30 a second free, 1,000 paid). A window is half-open, [t, t + 1): two
  messages exactly a second apart are in different windows;
- the most new messages one chat got in any 1-second window;
- per chat "close pairs": two messages to one chat less than `CLOSE_GAP` (0.9 s) apart.
  Telegram asks for about one a second per chat but allows short bursts; bot/budget.py lets
  a reply and the next question go together (a burst of up to 20 for anything that is not a
  broadcast) and makes a broadcast (`Bulk`) wait a second after the chat's last message. The
  emulator cannot see which call was which, so it counts every close pair, and separately
  the *unprompted* ones: those whose later message came more than `REPLY_WINDOW` (5 s) after
  the member last wrote or pressed a button in that chat. A bot that keeps the budget's rules
  has no unprompted close pair unless it answers a member more than 5 s late;
- the 429s answered: by the overall flood limit (`Emulator(rate_limit=True)`), and in all
  (injected faults too).

Memory is bounded: a running maximum, plus the messages of the last second overall and per
chat, and two numbers per chat.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CLOSE_GAP", "REPLY_WINDOW", "WINDOW", "RateCounter", "RateReport"]

WINDOW = 1.0  # seconds
CLOSE_GAP = 0.9  # seconds: two messages to one chat closer than this are a close pair
REPLY_WINDOW = 5.0  # seconds after a member's action in which the bot's messages are replies


class _Window:
    """The most events in any half-open WINDOW-second span, kept as events come in order."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self.most = 0

    def add(self, at: float) -> None:
        times = self._times
        while times and times[0] <= at - WINDOW:
            times.popleft()
        times.append(at)
        self.most = max(self.most, len(times))


@dataclass
class _ChatRate:
    window: _Window = field(default_factory=_Window)
    last_at: float | None = None  # the bot's last new message
    member_at: float | None = None  # the member's last message or button press


@dataclass(frozen=True)
class RateReport:
    """What `RateCounter.report` found; times are seconds."""

    messages: int  # new messages accepted
    paid_messages: int  # of those, sent with allow_paid_broadcast
    max_per_second: int  # most new messages in any 1-second window, free and paid together
    max_free_per_second: int
    max_paid_per_second: int
    max_chat_per_second: int  # most new messages one chat got in any 1-second window
    chat_close_pairs: int  # a chat's consecutive messages less than CLOSE_GAP apart
    chat_close_pairs_unprompted: int  # of those, the later not within REPLY_WINDOW of the member
    flood_refused: int  # 429s answered by the overall flood limit
    refused_429: int  # every 429 answered, injected faults included

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON."""
        return asdict(self)


class RateCounter:
    """Counts accepted new messages, member actions and 429s (see the module docstring)."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        reply_window: float = REPLY_WINDOW,
    ) -> None:
        self.monotonic = monotonic
        self._reply_window = reply_window
        self._all = _Window()
        self._by_paid = {False: _Window(), True: _Window()}
        self._chats: dict[int, _ChatRate] = {}
        self._messages = 0
        self._paid = 0
        self._chat_most = 0
        self._close = 0
        self._unprompted = 0
        self._flood_refused = 0
        self._refused = 0

    def message(self, chat_id: int | None, *, paid: bool) -> float:
        """The bot's new message was accepted now; returns the time it was counted at."""
        at = self.monotonic()
        self._messages += 1
        self._paid += paid
        self._all.add(at)
        self._by_paid[paid].add(at)
        if chat_id is not None:
            chat = self._chats.setdefault(chat_id, _ChatRate())
            chat.window.add(at)
            self._chat_most = max(self._chat_most, chat.window.most)
            if chat.last_at is not None and at - chat.last_at < CLOSE_GAP:
                self._close += 1
                if chat.member_at is None or at - chat.member_at > self._reply_window:
                    self._unprompted += 1
            chat.last_at = at
        return at

    def member_acted(self, chat_id: int) -> None:
        """The member wrote, edited or pressed a button in this chat now."""
        self._chats.setdefault(chat_id, _ChatRate()).member_at = self.monotonic()

    def refused(self, *, flood: bool) -> None:
        """A 429 was answered (`flood`: by the overall flood limit)."""
        self._refused += 1
        self._flood_refused += flood

    def report(self) -> RateReport:
        """Everything counted so far."""
        return RateReport(
            messages=self._messages,
            paid_messages=self._paid,
            max_per_second=self._all.most,
            max_free_per_second=self._by_paid[False].most,
            max_paid_per_second=self._by_paid[True].most,
            max_chat_per_second=self._chat_most,
            chat_close_pairs=self._close,
            chat_close_pairs_unprompted=self._unprompted,
            flood_refused=self._flood_refused,
            refused_429=self._refused,
        )

"""Bot API errors and fault injection: 429 with retry_after, 5xx, 403, slow answers, slow
file downloads (method "file": a download by the file_path getFile handed out); and
Telegram's overall flood limit (`FloodLimit`), when switched on.

Errors carry the real HTTP status because ptb maps them by status (400 → BadRequest,
403 → Forbidden, 409 → Conflict, 429 with retry_after → RetryAfter, anything else →
NetworkError), not by the JSON body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = [
    "ApiError",
    "Fault",
    "Faults",
    "FloodLimit",
    "default_description",
    "is_new_message",
]

BLOCKED = "Forbidden: bot was blocked by the user"


def default_description(status: int, retry_after: int | None = None) -> str:
    """The description Telegram sends with `status` when nothing more specific applies."""
    if status == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    if status == 403:
        return BLOCKED
    if status == 409:
        return (
            "Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running"
        )
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"


class ApiError(Exception):
    """A Bot API error answer: {"ok": false, "error_code": status, "description": ...}."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram sends with this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    """A 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {detail}")


@dataclass
class Fault:
    """One injected fault; `times=None` means it never runs out."""

    method: str | None  # lowercase Bot API method name, or None for any
    status: int | None
    retry_after: int | None
    times: int | None
    chat_id: int | None
    delay: float
    description: str | None
    accept_first: bool = False  # the call takes effect, then the answer comes after `delay`
    # Set to end the fault's delays at once (a test lets a slow download finish early).
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def matches(self, method: str, chat_id: int | None) -> bool:
        """Whether a call to `method` for `chat_id` is hit by this fault."""
        if self.method is not None and self.method != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def error(self) -> ApiError | None:
        """The error this fault answers with, or None for a pure delay."""
        if self.status is None:
            return None
        retry_after = self.retry_after
        if self.status == 429 and retry_after is None:
            retry_after = 1  # ptb only raises RetryAfter for a non-zero retry_after
        description = self.description or default_description(self.status, retry_after)
        return ApiError(self.status, description, retry_after=retry_after)


class Faults:
    """Faults checked in the order they were added; the first match is used up."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        method: str | None = None,
        status: int | None = None,
        *,
        retry_after: int | None = None,
        times: int | None = 1,
        chat_id: int | None = None,
        delay: float = 0.0,
        description: str | None = None,
        accept_first: bool = False,
    ) -> Fault:
        """Make the next `times` matching calls fail with `status` and/or answer after `delay`.

        With `accept_first`, a slow answer comes after the call took effect (Telegram has
        the message, the bot does not know yet): the slow-200 of a crash test.
        """
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay, or both")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for forever)")
        fault = Fault(
            method=method.lower() if method else None,
            status=status,
            retry_after=retry_after,
            times=times,
            chat_id=chat_id,
            delay=delay,
            description=description,
            accept_first=accept_first,
        )
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def take(self, method: str, chat_id: int | None) -> Fault | None:
        """The first fault matching this call, counting one use of it."""
        for fault in self._faults:
            if fault.matches(method, chat_id):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    @property
    def active(self) -> list[Fault]:
        """The faults still waiting to fire."""
        return list(self._faults)

    def __len__(self) -> int:
        return len(self._faults)


FREE_RATE = 30  # new messages a second Telegram takes from a bot, across all chats
PAID_RATE = 1000  # the same with allow_paid_broadcast (paid in Telegram Stars)


class FloodLimit:
    """Telegram's overall limit on new messages, when switched on (`Emulator(rate_limit=True)`):
    about `free` a second, or `paid` a second for those sent with allow_paid_broadcast. Each
    is a bucket of a second's worth that refills evenly; a message that finds its bucket empty
    gets 429 "retry after 1"."""

    def __init__(
        self,
        free: float = FREE_RATE,
        paid: float = PAID_RATE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rates = {False: float(free), True: float(paid)}
        self._tokens = dict(self._rates)
        self._at = {False: monotonic(), True: monotonic()}
        self._monotonic = monotonic
        self.refused = 0  # how many 429s it has answered

    def take(self, paid: bool) -> ApiError | None:
        """Counts one new message; the 429 to answer if it is over the limit."""
        now = self._monotonic()
        rate = self._rates[paid]
        tokens = min(rate, self._tokens[paid] + (now - self._at[paid]) * rate)
        self._at[paid] = now
        if tokens < 1:
            self._tokens[paid] = tokens
            self.refused += 1
            return ApiError(429, default_description(429, 1), retry_after=1)
        self._tokens[paid] = tokens - 1
        return None


def is_new_message(method: str) -> bool:
    """Whether a (lowercase) Bot API method sends a new message, which the limit counts."""
    if method in ("copymessage", "copymessages", "forwardmessage", "forwardmessages"):
        return True
    return method.startswith("send") and method != "sendchataction"

"""Reaching Telegram before the bot starts.

A token Telegram refuses stops `cocreate run` with one sentence (never the token). While
Telegram cannot be reached, each try is one log line, and the next comes 1, 2, 4 … and at
most 60 seconds later, until Telegram answers or the bot is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from urllib.parse import urlsplit

from telegram import Bot
from telegram.error import InvalidToken, RetryAfter, TelegramError

from bot.settings import Settings
from bot.transport import AiohttpRequest

logger = logging.getLogger(__name__)

FIRST_WAIT = 1
LONGEST_WAIT = 60


class TokenRejected(RuntimeError):
    """Telegram does not know the bot token."""

    def __init__(self) -> None:
        super().__init__(
            "Telegram refused the bot token: check that TELEGRAM_BOT_TOKEN (in the environment "
            "or in .env) is the one @BotFather gave you."
        )


def backoff(first: int = FIRST_WAIT, longest: int = LONGEST_WAIT) -> Iterator[int]:
    """Seconds to wait between tries: doubling from `first`, then `longest` for ever."""
    wait = first
    while True:
        yield wait
        wait = min(wait * 2, longest)


async def reach_telegram(
    settings: Settings, stop: asyncio.Event, waits: Iterable[float] | None = None
) -> bool:
    """Waits until Telegram answers with the bot's own account.

    Returns True once it has; False if `stop` was set first (or `waits` ran out). Raises
    TokenRejected if Telegram does not know the token.
    """
    probe = Bot(
        settings.token(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        request=AiohttpRequest(connection_pool_size=1),  # as the bot's own calls go
    )
    where = urlsplit(settings.telegram_api_base_url).netloc
    failed = False
    try:
        for wait in backoff() if waits is None else waits:
            try:
                await probe.initialize()
            except InvalidToken:
                raise TokenRejected() from None
            except RetryAfter as exc:
                wait = max(wait, seconds(exc.retry_after))
                logger.warning("Telegram asked us to wait; trying again in %g s", wait)
            except TelegramError as exc:  # NetworkError, TimedOut, a 5xx …
                logger.warning(
                    "Cannot reach Telegram at %s (%s); trying again in %g s", where, exc, wait
                )
            else:
                if failed:
                    logger.info("Telegram answered; starting")
                return True
            failed = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return False
        return False
    finally:
        await probe.shutdown()


def seconds(retry_after: timedelta | float) -> float:
    """RetryAfter.retry_after in seconds (a timedelta with PTB_TIMEDELTA, else a number)."""
    if isinstance(retry_after, timedelta):
        return retry_after.total_seconds()
    return float(retry_after)

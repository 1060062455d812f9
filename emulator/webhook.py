"""Webhook delivery: POST each update to the bot's URL, in order, until it answers 2xx.

Telegram only forgets an update once the webhook accepted it, and retries otherwise; the
bot's durable inbox relies on that, so the emulator does the same (with a short, bounded
backoff so tests stay fast).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from emulator.state import TelegramState, Webhook

__all__ = ["WebhookSender"]

logger = logging.getLogger(__name__)

FIRST_RETRY = 0.2  # seconds
LAST_RETRY = 2.0
POST_TIMEOUT = 10.0


class WebhookSender:
    """A background task delivering pending updates while a webhook is set."""

    def __init__(self, state: TelegramState) -> None:
        self._state = state
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start delivering (idle until a webhook is set)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT))
        self._task = asyncio.create_task(self._run(), name="emulator-webhook")

    async def stop(self) -> None:
        """Stop delivering and close the HTTP session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        state = self._state
        backoff = FIRST_RETRY
        while not state.closing.is_set():
            hook = state.webhook
            pending = state.updates.peek(1)
            if hook is None or not pending:
                await state.updates.changed.wait(None)
                continue
            update = pending[0]
            if await self._post(hook, update):
                # Delivered even if the webhook changed meanwhile: the bot has it.
                state.updates.confirm(update["update_id"])
                backoff = FIRST_RETRY
            else:
                await state.pause(backoff)
                backoff = min(backoff * 2, LAST_RETRY)

    async def _post(self, hook: Webhook, update: dict[str, object]) -> bool:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        try:
            async with self._session.post(
                hook.url, data=json.dumps(update), headers=headers
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return True
                error = f"Wrong response from the webhook: {response.status} {response.reason}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"Connection failed: {exc.__class__.__name__}"
        hook.last_error_date = self._state.now()
        hook.last_error_message = error
        logger.debug("webhook delivery of update %s failed: %s", update.get("update_id"), error)
        return False

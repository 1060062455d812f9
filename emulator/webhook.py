"""Webhook delivery: POST each update to the bot's URL until it answers 2xx.

Telegram only forgets an update once the webhook accepted it, and retries otherwise; the
bot's durable inbox relies on that, so the emulator does the same (with a short, bounded
backoff so tests stay fast).

By default one update is in flight at a time, in order. Two options make it look like a bot
running as several processes behind a reverse proxy:

- targets (`set_targets`): the addresses ("http://127.0.0.1:8001") of the processes. The
  emulator plays the proxy: each update goes to the next target in turn (round-robin), to
  the path and query of the webhook URL setWebhook gave, with its secret token header. A
  target that refuses the connection, fails or answers anything but 2xx is skipped: the same
  update goes straight to the next target; only when every target failed it does the update
  wait the backoff before going round again.
- parallel: up to this many POSTs in flight at once (capped by setWebhook's
  max_connections), as Telegram does; never two updates of the same chat, and an update of
  a chat leaves only after the chat's earlier updates were accepted, so each chat's updates
  arrive in order, as in Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from emulator.state import JSON, TelegramState, Webhook

__all__ = ["WebhookSender", "update_chat"]

logger = logging.getLogger(__name__)

FIRST_RETRY = 0.2  # seconds
LAST_RETRY = 2.0
POST_TIMEOUT = 10.0


def update_chat(update: JSON) -> int | None:
    """The chat an update belongs to (whose updates keep their order), if it has one."""
    for key, body in update.items():
        if key == "update_id" or not isinstance(body, dict):
            continue
        chat = body.get("chat")
        if chat is None and isinstance(body.get("message"), dict):
            chat = body["message"].get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        sender = body.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])  # a private chat's id is the user's
    return None


def _target_base(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook target is like http://127.0.0.1:8001, not {target!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a webhook target has no path: the webhook URL's is used ({target!r})")
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _at_target(base: str, webhook_url: str) -> str:
    parts = urlsplit(webhook_url)
    scheme, netloc = base.split("://", 1)
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


class WebhookSender:
    """Background tasks delivering pending updates while a webhook is set."""

    def __init__(
        self, state: TelegramState, *, targets: list[str] | None = None, parallel: int = 1
    ) -> None:
        self._state = state
        self._targets: list[str] = []
        self._parallel = 1
        self._next_target = 0
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # by update_id
        self._busy_chats: set[int] = set()
        self._backoff = FIRST_RETRY
        self._retry_now = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        # Updates each target (or the webhook URL, without targets) accepted.
        self.accepted: Counter[str] = Counter()
        self.most_in_flight = 0  # the most POSTs in flight at once so far
        self.backoffs = 0  # times an update waited the backoff: every target had failed
        self.set_targets(targets or [])
        self.parallel = parallel

    # ---- settings

    @property
    def targets(self) -> list[str]:
        """The proxy's targets, as "scheme://host:port" (empty: the webhook URL itself)."""
        return list(self._targets)

    def set_targets(self, targets: list[str]) -> None:
        """Send updates to these targets in turn (an empty list: to the webhook URL)."""
        self._targets = [_target_base(target) for target in targets]
        self._next_target = 0
        self._wake_retries()

    @property
    def parallel(self) -> int:
        """How many POSTs may be in flight at once (never two of the same chat)."""
        return self._parallel

    @parallel.setter
    def parallel(self, value: int) -> None:
        if value < 1:
            raise ValueError("webhook_parallel is at least 1")
        self._parallel = value
        self._state.updates.changed.notify()

    def _wake_retries(self) -> None:
        """Updates waiting out a backoff go again now (the targets changed)."""
        self._backoff = FIRST_RETRY
        self._retry_now.set()
        self._retry_now = asyncio.Event()
        self._state.updates.changed.notify()

    # ---- lifecycle

    async def start(self) -> None:
        """Start delivering (idle until a webhook is set)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT))
        self._task = asyncio.create_task(self._run(), name="emulator-webhook")

    async def stop(self) -> None:
        """Stop delivering and close the HTTP session."""
        tasks = [task for task in (self._task, *self._in_flight.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- delivering

    async def _run(self) -> None:
        state = self._state
        while not state.closing.is_set():
            hook = state.webhook
            if hook is not None:
                self._launch(hook)
            # Woken by a new update, a confirmation, a changed webhook or a finished POST.
            await state.updates.changed.wait(None)

    def _launch(self, hook: Webhook) -> None:
        """Start POSTs for the oldest updates whose chat has none in flight, up to the limit."""
        limit = max(1, min(self._parallel, hook.max_connections))
        if len(self._in_flight) >= limit:
            return
        held = set(self._busy_chats)  # chats whose next update must wait
        for update in self._state.updates.waiting():
            update_id = update["update_id"]
            if update_id in self._in_flight:
                continue
            chat = update_chat(update)
            if chat is not None:
                if chat in held:
                    continue
                held.add(chat)
                self._busy_chats.add(chat)
            self._in_flight[update_id] = asyncio.create_task(
                self._deliver(update, chat), name=f"emulator-webhook-{update_id}"
            )
            self.most_in_flight = max(self.most_in_flight, len(self._in_flight))
            if len(self._in_flight) >= limit:
                return

    async def _deliver(self, update: JSON, chat: int | None) -> None:
        """One update: each target once; the backoff if they all failed."""
        state = self._state
        update_id = update["update_id"]
        try:
            delivered = await self._round(update)
            if delivered:
                # Delivered even if the webhook changed meanwhile: the bot has it.
                state.updates.confirm(update_id)
                self._backoff = FIRST_RETRY
            elif delivered is not None:
                self.backoffs += 1
                backoff = self._backoff
                self._backoff = min(backoff * 2, LAST_RETRY)
                await state.pause(backoff, self._retry_now)
        finally:
            self._in_flight.pop(update_id, None)
            if chat is not None:
                self._busy_chats.discard(chat)
            state.updates.changed.notify()

    async def _round(self, update: JSON) -> bool | None:
        """True once a target accepted it; False if all failed; None if the webhook went."""
        targets = self._targets
        for _ in range(len(targets) or 1):
            hook = self._state.webhook
            if hook is None:
                return None
            if targets:
                base = targets[self._next_target % len(targets)]
                self._next_target += 1
                url = _at_target(base, hook.url)
            else:
                base = url = hook.url
            if await self._post(hook, url, update):
                self.accepted[base] += 1
                return True
        return False

    async def _post(self, hook: Webhook, url: str, update: JSON) -> bool:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        try:
            async with self._session.post(
                url, data=json.dumps(update), headers=headers
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

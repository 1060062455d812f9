"""`Emulator`: one isolated Telegram on 127.0.0.1, with its members and fault switches.

async with Emulator(token="123456:TEST-TOKEN") as emu:
    bot = telegram.Bot(emu.token, base_url=emu.base_url, base_file_url=emu.file_base_url)
    ann = emu.user(1001, first_name="Ann")
    ann.send("/start")
    ...
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from emulator.control import ControlRoutes
from emulator.faults import Faults, FloodLimit
from emulator.member import SimUser
from emulator.methods import BotApi
from emulator.rates import RateReport
from emulator.server import BotApiRoutes
from emulator.sms import SmsProvider
from emulator.state import BotMessage, TelegramState, wait_until
from emulator.webhook import WebhookSender

__all__ = ["DEFAULT_TOKEN", "Emulator"]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
HOST = "127.0.0.1"  # never reachable from outside the machine
MAX_UPLOAD = 60 * 1024 * 1024  # above Telegram's 50 MB bot upload limit


class Emulator:
    """A Bot API server for one bot token, plus the member-side controls tests use."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "cocreate_test_bot",
        bot_first_name: str = "cocreate test bot",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        first_id: int = 1,
        rate_limit: bool = False,
        webhook_targets: list[str] | None = None,
        webhook_parallel: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
            raise ValueError("a bot token looks like 123456:ABC-def")
        self.token = token
        self.state = TelegramState(
            token,
            bot_username=bot_username,
            bot_first_name=bot_first_name,
            clock=clock,
            monotonic=monotonic,
        )
        if rate_limit:  # Telegram's ~30 new messages a second (1,000 when paid), else 429
            self.state.flood = FloodLimit(monotonic=monotonic)
        self._api = BotApi(self.state)
        self._users: dict[int, SimUser] = {}
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        # webhook_targets: the emulator also plays a reverse proxy in front of several bot
        # processes (see emulator/webhook.py); webhook_parallel: POSTs in flight at once.
        self._webhook = WebhookSender(
            self.state, targets=webhook_targets, parallel=webhook_parallel
        )
        # update_ids and each new chat's message_ids start at first_id: a bot that keeps its
        # database across runs (`cocreate try --db`) needs ids above those it has seen, as
        # Telegram keeps counting.
        self._first_id = max(1, first_id)
        self.state.updates._next_id = self._first_id
        # Who the chat page (GET /) offers to be: {"id", "name", "role", "hint"}; when empty,
        # every member so far.
        self.people: list[dict[str, Any]] = []
        # Called with the user's id when the chat page opens their chat (`cocreate try`).
        self.on_open: Callable[[int], None] | None = None
        # The SMS provider stand-in whose phone threads the chat page shows (`cocreate try`).
        self.sms: SmsProvider | None = None

    # ---- lifecycle

    async def start(self) -> Emulator:
        """Listen on 127.0.0.1 (a free port unless one was given)."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self.state.closing.clear()  # in case it is started again after stop()
        app = web.Application(client_max_size=MAX_UPLOAD)
        BotApiRoutes(self.state, self._api).add_to(app)
        ControlRoutes(self).add_to(app)
        # A short shutdown timeout: long polls are woken on stop, anything else is cancelled.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        await self._webhook.start()
        return self

    async def stop(self) -> None:
        """Answer waiting requests, stop webhook delivery, close the server."""
        if self._runner is None:
            return
        self.state.close()
        await self._webhook.stop()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- addresses

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """ptb's base_url: the token is appended to it."""
        return f"{self.url}/bot"

    @property
    def file_base_url(self) -> str:
        """ptb's base_file_url."""
        return f"{self.url}/file/bot"

    # ---- members

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> SimUser:
        """The member with this id (the same object every time); given fields update them.

        A new member is "User <id>" with language "en" unless told otherwise. They can be
        written to by the bot only after they have sent something, as in Telegram.
        """
        if user_id <= 0:
            raise ValueError("a user id is a positive integer")
        chat = self.state.chat(
            user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        user = self._users.get(user_id)
        if user is None:
            if not chat.bot_messages and not chat.member_messages:
                chat.next_message_id = max(chat.next_message_id, self._first_id)
            user = self._users[user_id] = SimUser(self.state, chat)
        return user

    def open_chat(self, user_id: int, **profile: Any) -> SimUser:
        """A member who wrote to the bot before, so it may write to them; no update is queued.

        For tests that need many members already in the bot's database (e.g. a broadcast).
        """
        user = self.user(user_id, **profile)
        self.state.chat(user_id).started = True
        return user

    @property
    def users(self) -> list[SimUser]:
        """Every member created so far."""
        return list(self._users.values())

    def block(self, user_id: int, *, notify: bool = False) -> None:
        """The member blocks the bot: sending to them fails with 403.

        With `notify`, a my_chat_member update (status "kicked") is queued, as Telegram does.
        """
        self.user(user_id)
        self.state.chat(user_id).blocked = True
        if notify:
            self._member_status(user_id, "member", "kicked")

    def unblock(self, user_id: int, *, notify: bool = False) -> None:
        """The member unblocks the bot."""
        self.user(user_id)
        self.state.chat(user_id).blocked = False
        if notify:
            self._member_status(user_id, "kicked", "member")

    def _member_status(self, user_id: int, old: str, new: str) -> int:
        chat = self.state.chat(user_id)
        bot_user = self.state.bot_user()
        return self.state.push_update(
            "my_chat_member",
            {
                "chat": chat.member.chat_dict(),
                "from": chat.member.user_dict(),
                "date": self.state.now(),
                "old_chat_member": {"status": old, "user": bot_user},
                "new_chat_member": {"status": new, "user": bot_user, "until_date": 0}
                if new == "kicked"
                else {"status": new, "user": bot_user},
            },
        )

    # ---- what the bot did

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every Bot API call as (lowercase method, decoded params), in order."""
        return self.state.calls

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The params of every call to `method` (any case)."""
        wanted = method.lower()
        return [params for name, params in self.state.calls if name == wanted]

    def sent_to(self, chat_id: int) -> int:
        """How many messages the bot delivered to this chat (successful send* calls)."""
        return self.state.sent[chat_id]

    @property
    def commands(self) -> dict[str, list[dict[str, str]]]:
        """setMyCommands by scope key ("default", "chat:1001"…) plus "/<language>" if any."""
        return self.state.commands

    @property
    def webhook_url(self) -> str | None:
        """The webhook URL, or None in getUpdates mode."""
        return self.state.webhook.url if self.state.webhook else None

    @property
    def webhook_secret(self) -> str | None:
        """The webhook's secret token, if one was set."""
        return self.state.webhook.secret_token if self.state.webhook else None

    @property
    def webhook_targets(self) -> list[str]:
        """Where webhook POSTs go in turn, as "scheme://host:port" (empty: the webhook URL)."""
        return self._webhook.targets

    def set_webhook_targets(self, targets: list[str]) -> None:
        """Play a reverse proxy: POST each update to the next of these in turn, at the
        webhook URL's path, skipping any that fails (an empty list: to the webhook URL)."""
        self._webhook.set_targets(targets)

    @property
    def webhook_parallel(self) -> int:
        """How many webhook POSTs may be in flight at once (never two of one chat)."""
        return self._webhook.parallel

    @webhook_parallel.setter
    def webhook_parallel(self, value: int) -> None:
        self._webhook.parallel = value

    @property
    def webhook_accepted(self) -> dict[str, int]:
        """Updates accepted so far by each target (or by the webhook URL, without targets)."""
        return dict(self._webhook.accepted)

    @property
    def webhook_most_in_flight(self) -> int:
        """The most webhook POSTs that were in flight at once so far."""
        return self._webhook.most_in_flight

    @property
    def webhook_backoffs(self) -> int:
        """How many times an update waited the backoff because every target had failed."""
        return self._webhook.backoffs

    # ---- rates

    def rate_report(self) -> RateReport:
        """What the bot sent how fast, and the 429s answered (see emulator/rates.py)."""
        return self.state.rates.report()

    def bot_messages(self, chat_id: int) -> list[BotMessage]:
        """Every message the bot sent to this chat, in the order Telegram accepted them,
        deleted ones too; each has `sent_at` (monotonic seconds) and `message_id`."""
        chat = self.state.chats.get(chat_id)
        return list(chat.bot_messages) if chat is not None else []

    # ---- updates

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot."""
        return len(self.state.updates)

    def is_confirmed(self, update_id: int) -> bool:
        """Whether getUpdates confirmed the update (offset > id) or a webhook accepted it."""
        return self.state.updates.is_confirmed(update_id)

    def is_dropped(self, update_id: int) -> bool:
        """Whether the update was discarded (drop_pending_updates, allowed_updates)."""
        return self.state.updates.is_dropped(update_id)

    async def wait_confirmed(self, update_id: int, timeout: float = 5.0) -> None:
        """Wait until the bot has confirmed the update; raises TimeoutError."""
        updates = self.state.updates
        if not await wait_until(updates.changed, lambda: updates.is_confirmed(update_id), timeout):
            raise TimeoutError(f"update {update_id} was not confirmed within {timeout}s")

    # ---- faults

    @property
    def faults(self) -> Faults:
        """Injected faults: `emu.faults.add(method="sendMessage", status=429, retry_after=2)`."""
        return self.state.faults

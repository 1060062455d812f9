"""Everything one emulated Telegram remembers: chats, messages, updates, files, settings.

All state lives in memory on a single event loop, so no locks are needed; waiting is done
with `Signal`, a broadcast wake-up that long polls and test helpers await instead of
sleeping in a loop.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from emulator.faults import Faults, FloodLimit
from emulator.rates import RateCounter

__all__ = [
    "BotMessage",
    "Chat",
    "FileStore",
    "Member",
    "MemberMessage",
    "Signal",
    "StoredFile",
    "TelegramState",
    "UpdateQueue",
    "Webhook",
    "media_object",
    "wait_until",
]

JSON = dict[str, Any]

# Telegram sends these update types when a bot asks for "all" (an empty allowed_updates).
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


class Signal:
    """A broadcast wake-up: every coroutine waiting returns on the next `notify()`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter; later waiters wait for the next notify."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None) -> None:
        """Return on the next notify, or after `timeout` seconds."""
        event = self._event
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass


async def wait_until(signal: Signal, predicate: Callable[[], bool], timeout: float | None) -> bool:
    """Wait until `predicate()` holds, rechecking on each notify; False if time ran out."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while not predicate():
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return False
        await signal.wait(remaining)
    return True


@dataclass
class Member:
    """A simulated Telegram account talking to the bot."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"
    phone_number: str = ""

    def user_dict(self) -> JSON:
        """The Telegram User object."""
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def chat_dict(self) -> JSON:
        """The Telegram Chat object of the private chat with this member (id == user id)."""
        chat: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat


@dataclass(eq=False)
class StoredFile:
    """A file Telegram keeps: uploaded by a member or by the bot."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str | None
    file_name: str | None

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)


# kind → (folder on Telegram's file server, default extension)
_FILE_FOLDERS = {
    "voice": ("voice", "oga"),
    "photo": ("photos", "jpg"),
    "document": ("documents", "bin"),
    "audio": ("music", "mp3"),
    "video_note": ("video_notes", "mp4"),
    "sticker": ("stickers", "webp"),
}


class FileStore:
    """Files by file_id and by file_path (what getFile hands out for downloading)."""

    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._count = 0

    def add(
        self, kind: str, data: bytes, *, file_name: str | None = None, mime_type: str | None = None
    ) -> StoredFile:
        """Store `data` as a new file of `kind` ("voice", "photo", "document", ...)."""
        self._count += 1
        folder, extension = _FILE_FOLDERS.get(kind, ("documents", "bin"))
        suffix = PurePosixPath(file_name).suffix.lstrip(".") if file_name else ""
        extension = suffix or extension
        # The random part keeps tests from depending on exact ids, as with real Telegram.
        stored = StoredFile(
            file_id=f"emu-{kind}-{self._count}-{secrets.token_urlsafe(12)}",
            file_unique_id=f"u{self._count}{secrets.token_hex(4)}",
            data=data,
            file_path=f"{folder}/file_{self._count}.{extension}",
            mime_type=mime_type,
            file_name=file_name,
        )
        self._by_id[stored.file_id] = stored
        self._by_path[stored.file_path] = stored
        return stored

    def by_id(self, file_id: str) -> StoredFile | None:
        """The file with this file_id, if any."""
        return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        """The file with this file_path, if any."""
        return self._by_path.get(file_path)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, GIF or JPEG; a plausible default for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data) and data[i] == 0xFF:
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + int(length)
    return 640, 480


def media_object(kind: str, stored: StoredFile, **extra: Any) -> Any:
    """The Telegram object for a file message: Document, Voice, Audio, list of PhotoSize..."""
    base: JSON = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
    }
    if kind == "photo":
        width, height = image_size(stored.data)
        return [{**base, "width": width, "height": height}]
    if kind == "sticker":
        return {
            **base,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            **extra,
        }
    if kind in ("document", "audio") and stored.file_name:
        base["file_name"] = stored.file_name
    if kind in ("document", "voice", "audio") and stored.mime_type:
        base["mime_type"] = stored.mime_type
    if kind in ("voice", "audio", "video_note"):
        base["duration"] = 0
    base.update({key: value for key, value in extra.items() if value is not None})
    return base


def _keyboard_kind(markup: JSON | None) -> str | None:
    if not markup:
        return None
    for key, kind in (
        ("inline_keyboard", "inline"),
        ("keyboard", "reply"),
        ("remove_keyboard", "remove"),
        ("force_reply", "force_reply"),
    ):
        if key in markup:
            return kind
    return None


def _button_text(button: Any) -> str:
    return button if isinstance(button, str) else str(button.get("text", ""))


@dataclass(eq=False)
class BotMessage:
    """A message the bot sent to a member, as the member sees it now (edits apply in place)."""

    message_id: int
    chat_id: int
    date: int
    kind: str  # "text", "document", "photo", "voice", "audio"
    text: str | None  # the text, or the caption of a media message; markup already parsed
    entities: list[JSON] = field(default_factory=list)
    reply_markup: JSON | None = None  # as the bot sent it, reply keyboards included
    parse_mode: str | None = None
    file: StoredFile | None = None
    media: Any = None  # the Telegram object under message[kind]
    reply_to_message_id: int | None = None
    edited: bool = False
    edit_date: int | None = None
    deleted: bool = False
    version: int = 0  # the chat's change counter at this message's last change
    sent_at: float = 0.0  # when Telegram accepted it, by the monotonic clock (`state.rates`)

    @property
    def keyboard_kind(self) -> str | None:
        """ "inline", "reply", "remove", "force_reply", or None."""
        return _keyboard_kind(self.reply_markup)

    @property
    def buttons(self) -> list[list[str]]:
        """Button texts by row: the inline keyboard, or the reply keyboard."""
        rows = self._rows()
        return [[_button_text(button) for button in row] for row in rows]

    @property
    def callback_data(self) -> list[list[str | None]]:
        """Callback data by row, None for URL and other non-callback buttons."""
        if self.keyboard_kind != "inline":
            return [[None for _ in row] for row in self._rows()]
        return [[button.get("callback_data") for button in row] for row in self._rows()]

    def _rows(self) -> list[list[Any]]:
        markup = self.reply_markup or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [list(row) for row in rows]

    def inline_button(self, text_or_data: str) -> JSON | None:
        """The inline button with this text, else the one with this callback_data."""
        if self.keyboard_kind != "inline":
            return None
        buttons = [button for row in self._rows() for button in row]
        for button in buttons:
            if button.get("text") == text_or_data and "callback_data" in button:
                return dict(button)
        for button in buttons:
            if button.get("callback_data") == text_or_data:
                return dict(button)
        return None

    def reply_button(self, text: str) -> JSON | None:
        """The reply-keyboard button with this text, as a dict."""
        if self.keyboard_kind != "reply":
            return None
        for row in self._rows():
            for button in row:
                if _button_text(button) == text:
                    return {"text": button} if isinstance(button, str) else dict(button)
        return None

    @property
    def file_name(self) -> str | None:
        """The file name of a document or audio the bot sent."""
        return self.file.file_name if self.file else None

    @property
    def file_bytes(self) -> bytes | None:
        """The content of the file the bot sent."""
        return self.file.data if self.file else None

    @property
    def mime_type(self) -> str | None:
        """The MIME type of the file the bot sent."""
        return self.file.mime_type if self.file else None

    @property
    def file_id(self) -> str | None:
        """The file_id Telegram gave the file the bot sent."""
        return self.file.file_id if self.file else None

    def snapshot(self) -> BotMessage:
        """A copy frozen at this moment (for the edit history)."""
        return copy.deepcopy(self)


@dataclass(eq=False)
class MemberMessage:
    """A message a member sent, kept so replies and deletions can refer to it."""

    message_id: int
    payload: JSON
    version: int = 0


@dataclass(eq=False)
class Chat:
    """The private chat between the bot and one member."""

    member: Member
    chat_instance: str
    started: bool = False  # the member has written to the bot, so the bot may write back
    last_member_message_id: int | None = None
    blocked: bool = False
    next_message_id: int = 1
    bot_messages: list[BotMessage] = field(default_factory=list)
    member_messages: dict[int, MemberMessage] = field(default_factory=dict)
    edits: list[BotMessage] = field(default_factory=list)
    callback_answers: list[JSON] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    version: int = 0
    changed: Signal = field(default_factory=Signal)

    @property
    def id(self) -> int:
        """Private chat id == user id."""
        return self.member.id

    def take_message_id(self) -> int:
        """The next message_id; one counter per chat for both sides, as in Telegram."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def touch(self) -> int:
        """Record a change and wake whoever waits on this chat."""
        self.version += 1
        self.changed.notify()
        return self.version

    def bot_message(self, message_id: int) -> BotMessage | None:
        """The bot's message with this id, unless deleted."""
        for message in reversed(self.bot_messages):
            if message.message_id == message_id:
                return None if message.deleted else message
        return None

    def active_reply_keyboard(self) -> BotMessage | None:
        """The message whose reply keyboard is showing under the member's input field."""
        for message in reversed(self.bot_messages):
            if message.keyboard_kind == "remove":
                return None
            if message.keyboard_kind == "reply":
                return message
        return None


@dataclass
class Webhook:
    """What setWebhook stored."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


class UpdateQueue:
    """Updates waiting for the bot, in order; confirmed ones are forgotten like Telegram does."""

    def __init__(self) -> None:
        self._next_id = 1
        self._pending: list[JSON] = []
        self._confirmed: set[int] = set()
        self._dropped: set[int] = set()
        self.changed = Signal()

    def push(self, body: JSON) -> int:
        """Queue an update ({"message": ...} or the like); returns its update_id."""
        update_id = self._take_id()
        self._pending.append({"update_id": update_id, **body})
        self.changed.notify()
        return update_id

    def skip(self) -> int:
        """Use up an update_id for an update the bot did not ask for."""
        update_id = self._take_id()
        self._dropped.add(update_id)
        return update_id

    def _take_id(self) -> int:
        update_id = self._next_id
        self._next_id += 1
        return update_id

    def waiting(self) -> list[JSON]:
        """The unconfirmed updates themselves, oldest first: read them, never change them."""
        return self._pending

    def peek(self, limit: int) -> list[JSON]:
        """The oldest `limit` unconfirmed updates."""
        return [copy.deepcopy(update) for update in self._pending[:limit]]

    def confirm_below(self, offset: int) -> None:
        """getUpdates(offset): forget every update with update_id < offset."""
        self._forget([u for u in self._pending if u["update_id"] < offset], self._confirmed)

    def keep_last(self, count: int) -> None:
        """getUpdates with a negative offset: forget all but the newest `count` updates."""
        self._forget(self._pending[: max(0, len(self._pending) - count)], self._confirmed)

    def confirm(self, update_id: int) -> None:
        """A webhook POST for this update got a 2xx answer."""
        self._forget([u for u in self._pending if u["update_id"] == update_id], self._confirmed)

    def drop_pending(self) -> None:
        """drop_pending_updates: discard everything not yet delivered."""
        self._forget(list(self._pending), self._dropped)

    def _forget(self, updates: list[JSON], into: set[int]) -> None:
        if not updates:
            return
        ids = {update["update_id"] for update in updates}
        self._pending = [u for u in self._pending if u["update_id"] not in ids]
        into.update(ids)
        self.changed.notify()

    def is_confirmed(self, update_id: int) -> bool:
        """Whether the bot confirmed (or a webhook accepted) this update."""
        return update_id in self._confirmed

    def is_dropped(self, update_id: int) -> bool:
        """Whether the update was discarded (drop_pending_updates or allowed_updates)."""
        return update_id in self._dropped

    def __len__(self) -> int:
        return len(self._pending)


@dataclass
class CallbackQueryRecord:
    """A callback query waiting for answerCallbackQuery."""

    chat_id: int
    data: str | None
    answered: bool = False


class TelegramState:
    """One isolated Telegram as seen by one bot."""

    def __init__(
        self,
        token: str,
        *,
        bot_username: str,
        bot_first_name: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.clock = clock
        self.chats: dict[int, Chat] = {}
        self.files = FileStore()
        self.updates = UpdateQueue()
        self.faults = Faults()
        self.flood: FloodLimit | None = None  # Telegram's overall limit, when switched on
        self.rates = RateCounter(monotonic)  # new messages and 429s, counted for tests
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.sent: Counter[int] = Counter()
        self.webhook: Webhook | None = None
        self.allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        self.menu_buttons: dict[int | None, JSON] = {}
        self.bot_texts: dict[str, str] = {}  # name/description/short_description per language
        self.closing = asyncio.Event()
        self._callback_count = 0

    def now(self) -> int:
        """Telegram dates are whole seconds since the epoch."""
        return int(self.clock())

    def bot_user(self) -> JSON:
        """The bot as a Telegram User (the "from" of its messages)."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def chat(self, user_id: int, **profile: Any) -> Chat:
        """The chat with member `user_id`, creating the member on first use."""
        chat = self.chats.get(user_id)
        if chat is None:
            member = Member(
                id=user_id,
                first_name=f"User {user_id}",
                phone_number=f"+1555{user_id % 10_000_000:07d}",
            )
            # Stable per chat and opaque, like Telegram's.
            instance = str((self.bot_id * 1_000_003 + user_id * 7919) % (2**62))
            chat = self.chats[user_id] = Chat(member=member, chat_instance=instance)
        for key, value in profile.items():
            if value is not None:
                setattr(chat.member, key, value)
        return chat

    async def pause(self, seconds: float, released: asyncio.Event | None = None) -> None:
        """Sleep, but wake at once when the emulator stops (or `released` is set)."""
        waits = [asyncio.ensure_future(self.closing.wait())]
        if released is not None:
            waits.append(asyncio.ensure_future(released.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def close(self) -> None:
        """Wake every waiter so long polls answer and the server can stop."""
        self.closing.set()
        self.updates.changed.notify()
        for chat in self.chats.values():
            chat.changed.notify()

    # ---- updates from members

    def push_update(self, kind: str, body: Any) -> int:
        """Queue an update of `kind` unless the bot's allowed_updates leaves it out."""
        if kind not in self.allowed_updates:
            return self.updates.skip()
        return self.updates.push({kind: body})

    def add_member_message(self, chat: Chat, content: JSON, *, reply_to: int | None = None) -> int:
        """A member sends a message; returns the update_id."""
        chat.started = True
        payload: JSON = {
            "message_id": chat.take_message_id(),
            "from": chat.member.user_dict(),
            "chat": chat.member.chat_dict(),
            "date": self.now(),
            **content,
        }
        if reply_to is not None:
            replied = self.message_json_by_id(chat, reply_to, with_reply=False)
            if replied is None:
                raise LookupError(f"no message {reply_to} in chat {chat.id} to reply to")
            payload["reply_to_message"] = replied
        chat.member_messages[payload["message_id"]] = MemberMessage(
            payload["message_id"], payload, chat.touch()
        )
        chat.last_member_message_id = payload["message_id"]
        self.rates.member_acted(chat.id)
        return self.push_update("message", payload)

    def edit_member_message(self, chat: Chat, message_id: int, content: JSON) -> int:
        """A member edits a message they sent; returns the update_id of edited_message."""
        sent = chat.member_messages.get(message_id)
        if sent is None:
            raise LookupError(f"no message {message_id} from the member in chat {chat.id}")
        payload = {**sent.payload, **content, "edit_date": self.now()}
        for key in ("entities", "caption_entities"):
            if key in payload and not payload[key]:
                del payload[key]
        sent.payload = payload
        sent.version = chat.touch()
        self.rates.member_acted(chat.id)
        return self.push_update("edited_message", payload)

    def add_callback_query(self, chat: Chat, message: BotMessage | None, data: str) -> int:
        """A member presses an inline button; returns the update_id."""
        chat.started = True
        self._callback_count += 1
        # Telegram's query ids are large numbers sent as strings.
        query_id = str(self.bot_id * 1000 + self._callback_count * 7_777_777)
        self.callback_queries[query_id] = CallbackQueryRecord(chat.id, data)
        query: JSON = {
            "id": query_id,
            "from": chat.member.user_dict(),
            "chat_instance": chat.chat_instance,
            "data": data,
        }
        if message is not None:
            query["message"] = self.message_json(chat, message)
        self.rates.member_acted(chat.id)
        return self.push_update("callback_query", query)

    # ---- the bot's messages

    def add_bot_message(self, chat: Chat, **fields: Any) -> BotMessage:
        """Store a message the bot sent and wake whoever waits for it."""
        message = BotMessage(
            message_id=chat.take_message_id(),
            chat_id=chat.id,
            date=self.now(),
            sent_at=self.rates.monotonic(),
            **fields,
        )
        chat.bot_messages.append(message)
        self.sent[chat.id] += 1
        message.version = chat.touch()
        return message

    def message_json(self, chat: Chat, message: BotMessage, *, with_reply: bool = True) -> JSON:
        """The Telegram Message object for one of the bot's messages."""
        data: JSON = {
            "message_id": message.message_id,
            "from": self.bot_user(),
            "chat": chat.member.chat_dict(),
            "date": message.date,
        }
        if message.kind == "text":
            data["text"] = message.text or ""
            if message.entities:
                data["entities"] = message.entities
        else:
            data[message.kind] = copy.deepcopy(message.media)
            if message.text:
                data["caption"] = message.text
                if message.entities:
                    data["caption_entities"] = message.entities
        # Like Telegram, only inline keyboards are echoed back in the Message.
        if message.keyboard_kind == "inline":
            data["reply_markup"] = copy.deepcopy(message.reply_markup)
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if with_reply and message.reply_to_message_id is not None:
            replied = self.message_json_by_id(chat, message.reply_to_message_id, with_reply=False)
            if replied is not None:
                data["reply_to_message"] = replied
        return data

    def message_json_by_id(self, chat: Chat, message_id: int, *, with_reply: bool) -> JSON | None:
        """The Message object of any message in the chat, whoever sent it."""
        member_message = chat.member_messages.get(message_id)
        if member_message is not None:
            payload = dict(member_message.payload)
            if not with_reply:
                payload.pop("reply_to_message", None)
            return payload
        bot_message = chat.bot_message(message_id)
        if bot_message is not None:
            return self.message_json(chat, bot_message, with_reply=with_reply)
        return None

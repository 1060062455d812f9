"""The Bot API methods the emulator answers, with Telegram's checks and error texts.

getMe, getUpdates, sendMessage, editMessageText, editMessageCaption,
editMessageReplyMarkup, deleteMessage, answerCallbackQuery, sendDocument, sendPhoto,
sendVoice, sendAudio, sendChatAction, getFile, getChat, set/get/deleteMyCommands,
set/get/deleteWebhook (getWebhookInfo), setChatMenuButton/getChatMenuButton,
setMyName/Description/ShortDescription and their getters, close, logOut.

Each method takes `Params` (the request parameters, whatever the encoding) and returns the
`result` or raises `ApiError`. Faults and HTTP are the server's business, not this module's.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from emulator.faults import BLOCKED, ApiError, bad_request
from emulator.formatting import FormatError, parse_text
from emulator.state import (
    DEFAULT_UPDATE_TYPES,
    JSON,
    BotMessage,
    Chat,
    StoredFile,
    TelegramState,
    Webhook,
    media_object,
    wait_until,
)

__all__ = ["BotApi", "Params", "UploadedFile", "normalize"]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart/form-data request."""

    filename: str | None
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"


# ptb (like most clients) sends every value as a string, JSON-encoding objects. Decoding the
# known fields once makes `emu.calls` readable and the methods simpler.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "menu_button",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
        "media",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "duration",
        "user_id",
        "reply_to_message_id",
        "message_thread_id",
        "cache_time",
        "max_connections",
        "width",
        "height",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "has_spoiler",
        "show_caption_above_media",
        "allow_paid_broadcast",
    }
)
_INT_TEXT = re.compile(r"-?\d+")


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode string values of known JSON, integer and boolean fields."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            if name in _JSON_FIELDS:
                try:
                    value = json.loads(value)
                except ValueError:
                    pass  # left as text; the method reports it
            elif name in _INT_FIELDS and _INT_TEXT.fullmatch(value.strip()):
                value = int(value)
            elif name in _BOOL_FIELDS and value.lower() in ("true", "false", "1", "0"):
                value = value.lower() in ("true", "1")
        values[name] = value
    return values


class Params:
    """Typed access to one request's parameters."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        raise bad_request(f'field "{name}" must be of type String')

    def get_int(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            return int(value)
        raise bad_request(f'field "{name}" must be of type Integer')

    def get_float(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Float') from None

    def get_bool(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def get_json(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def chat_id(self) -> int | None:
        """chat_id as an int when it is one (for fault matching); None otherwise."""
        try:
            return self.get_int("chat_id")
        except ApiError:
            return None


def _check_rows(markup: JSON, key: str, type_name: str) -> list[list[Any]]:
    rows = markup[key]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{key}" of the {type_name} must be an Array of Arrays')
    return rows


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not button["text"]:
        raise bad_request("BUTTON_TEXT_EMPTY")
    if not set(button) - {"text"}:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data is not None and (
        not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA
    ):
        raise bad_request("BUTTON_DATA_INVALID")


def _validate_markup(markup: Any, *, inline_only: bool = False) -> JSON | None:
    """Check reply_markup like Telegram; returns it, or None when absent."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = _check_rows(markup, "inline_keyboard", "InlineKeyboardMarkup")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        # An empty inline keyboard is no keyboard: Telegram does not echo it back.
        return markup if any(rows) else None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup:
        for row in _check_rows(markup, "keyboard", "ReplyKeyboardMarkup"):
            for button in row:
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise bad_request(
                        'can\'t parse keyboard button: Field "text" must be of type String'
                    )
        return markup
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise bad_request("can't parse reply keyboard markup JSON object")


class BotApi:
    """The Bot API over one `TelegramState`."""

    def __init__(self, state: TelegramState) -> None:
        self.state = state
        self._poll_generation = 0
        sync: dict[str, Callable[[Params], Any]] = {
            "getme": self.get_me,
            "sendmessage": self.send_message,
            "editmessagetext": self.edit_message_text,
            "editmessagecaption": self.edit_message_caption,
            "editmessagereplymarkup": self.edit_message_reply_markup,
            "deletemessage": self.delete_message,
            "answercallbackquery": self.answer_callback_query,
            "senddocument": lambda p: self.send_media(p, "document"),
            "sendphoto": lambda p: self.send_media(p, "photo"),
            "sendvoice": lambda p: self.send_media(p, "voice"),
            "sendaudio": lambda p: self.send_media(p, "audio"),
            "sendchataction": self.send_chat_action,
            "getfile": self.get_file,
            "getchat": self.get_chat,
            "setmycommands": self.set_my_commands,
            "getmycommands": self.get_my_commands,
            "deletemycommands": self.delete_my_commands,
            "setwebhook": self.set_webhook,
            "deletewebhook": self.delete_webhook,
            "getwebhookinfo": self.get_webhook_info,
            "setchatmenubutton": self.set_chat_menu_button,
            "getchatmenubutton": self.get_chat_menu_button,
            "setmyname": lambda p: self.set_bot_text(p, "name"),
            "getmyname": lambda p: self.get_bot_text(p, "name"),
            "setmydescription": lambda p: self.set_bot_text(p, "description"),
            "getmydescription": lambda p: self.get_bot_text(p, "description"),
            "setmyshortdescription": lambda p: self.set_bot_text(p, "short_description"),
            "getmyshortdescription": lambda p: self.get_bot_text(p, "short_description"),
            "close": lambda p: True,
            "logout": lambda p: True,
        }
        self._sync = sync
        self._async: dict[str, Callable[[Params], Awaitable[Any]]] = {
            "getupdates": self.get_updates,
        }

    def knows(self, method: str) -> bool:
        """Whether `method` (lowercase) exists."""
        return method in self._sync or method in self._async

    async def call(self, method: str, params: Params) -> Any:
        """Run `method` (lowercase); returns the result or raises ApiError."""
        if method in self._async:
            return await self._async[method](params)
        return self._sync[method](params)

    # ---- helpers

    def _chat(self, params: Params, *, sending: bool = True) -> Chat:
        """The target chat; Telegram only lets a bot write to members who wrote first."""
        raw = params.values.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        chat: Chat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next(
                (c for c in self.state.chats.values() if c.member.username == raw[1:]), None
            )
        else:
            chat_id = params.get_int("chat_id")
            chat = self.state.chats.get(chat_id) if chat_id is not None else None
        if chat is None or not chat.started:
            raise bad_request("chat not found")
        if sending and chat.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def _parse(self, params: Params, text: str, entities_field: str) -> tuple[str, list[JSON]]:
        entities = params.get_json(entities_field)
        parse_mode = params.get_str("parse_mode")
        if entities:
            if not isinstance(entities, list):
                raise bad_request(f"can't parse {entities_field} JSON object")
            return text, entities  # explicit entities win over parse_mode, as in Telegram
        try:
            return parse_text(text, parse_mode)
        except FormatError as error:
            raise bad_request(f"can't parse entities: {error}") from None
        except ValueError:
            raise bad_request(f'unsupported parse_mode "{parse_mode}"') from None

    def _text(self, params: Params) -> tuple[str, list[JSON]]:
        text = params.get_str("text") or ""
        if not text.strip():
            raise bad_request("message text is empty")
        plain, entities = self._parse(params, text, "entities")
        if not plain.strip():
            raise bad_request("message text is empty")
        if len(plain) > MAX_TEXT:
            raise bad_request("message is too long")
        return plain, entities

    def _caption(self, params: Params) -> tuple[str | None, list[JSON]]:
        caption = params.get_str("caption")
        if not caption:
            return None, []
        plain, entities = self._parse(params, caption, "caption_entities")
        if len(plain) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        return plain or None, entities

    def _reply_to(self, params: Params, chat: Chat) -> int | None:
        reply = params.get_json("reply_parameters")
        message_id: int | None
        allow_missing = params.get_bool("allow_sending_without_reply")
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            message_id = int(reply["message_id"])
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
        else:
            message_id = params.get_int("reply_to_message_id")
        if message_id is None:
            return None
        if self.state.message_json_by_id(chat, message_id, with_reply=False) is None:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return message_id

    def _message_to_edit(self, params: Params) -> tuple[Chat, BotMessage]:
        if params.values.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")  # no inline mode in the emulator
        chat = self._chat(params)
        message_id = params.get_int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = chat.bot_message(message_id)
        if message is None:
            if message_id in chat.member_messages:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        return chat, message

    def _apply_edit(self, chat: Chat, message: BotMessage, **changes: Any) -> JSON:
        if all(getattr(message, key) == value for key, value in changes.items()):
            raise bad_request(NOT_MODIFIED)
        for key, value in changes.items():
            setattr(message, key, value)
        message.edited = True
        message.edit_date = self.state.now()
        message.version = chat.touch()
        chat.edits.append(message.snapshot())
        return self.state.message_json(chat, message)

    @staticmethod
    def _markup_after_edit(message: BotMessage, markup: JSON | None) -> JSON | None:
        """An edit without reply_markup removes an inline keyboard (as in Telegram); a reply
        keyboard sent with the message is not part of it and stays."""
        if markup is None and message.keyboard_kind not in (None, "inline"):
            return message.reply_markup
        return markup

    def _input_file(self, params: Params, kind: str) -> StoredFile:
        value = params.values.get(kind)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.values.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            file_name = value.filename if kind in ("document", "audio") else None
            mime_type = value.content_type
            if not mime_type or mime_type == "application/octet-stream":
                guessed = mimetypes.guess_type(value.filename or "")[0]
                mime_type = guessed or mime_type or "application/octet-stream"
            if kind == "voice" and mime_type == "application/octet-stream":
                mime_type = "audio/ogg"
            return self.state.files.add(kind, value.data, file_name=file_name, mime_type=mime_type)
        if isinstance(value, str) and value:
            stored = self.state.files.by_id(value)
            if stored is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return stored
        raise bad_request(f"there is no {kind} in the request")

    # ---- methods

    def get_me(self, params: Params) -> JSON:
        return {
            **self.state.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def get_updates(self, params: Params) -> list[JSON]:
        state = self.state
        if state.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = params.get_int("offset") or 0
        limit = params.get_int("limit") or 100
        if not 1 <= limit <= 100:
            limit = 100
        timeout = max(0.0, params.get_float("timeout") or 0.0)
        allowed = params.get_json("allowed_updates")
        if isinstance(allowed, list):
            state.allowed_updates = frozenset(allowed) or DEFAULT_UPDATE_TYPES
        if offset > 0:
            state.updates.confirm_below(offset)
        elif offset < 0:
            state.updates.keep_last(-offset)
        # A newer getUpdates ends an older one still waiting, as Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        state.updates.changed.notify()

        def answerable() -> bool:
            return (
                bool(state.updates.peek(1))
                or generation != self._poll_generation
                or state.webhook is not None
                or state.closing.is_set()
            )

        await wait_until(state.updates.changed, answerable, timeout)
        if generation != self._poll_generation or state.webhook is not None:
            raise ApiError(
                409,
                WEBHOOK_CONFLICT
                if state.webhook is not None
                else "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        return state.updates.peek(limit)

    def send_message(self, params: Params) -> JSON:
        markup = _validate_markup(params.get_json("reply_markup"))
        text, entities = self._text(params)
        chat = self._chat(params)
        reply_to = self._reply_to(params, chat)
        message = self.state.add_bot_message(
            chat,
            kind="text",
            text=text,
            entities=entities,
            reply_markup=markup,
            parse_mode=params.get_str("parse_mode"),
            reply_to_message_id=reply_to,
        )
        return self.state.message_json(chat, message)

    def send_media(self, params: Params, kind: str) -> JSON:
        markup = _validate_markup(params.get_json("reply_markup"))
        caption, entities = self._caption(params)
        chat = self._chat(params)
        reply_to = self._reply_to(params, chat)
        stored = self._input_file(params, kind)
        extra: dict[str, Any] = {}
        if kind in ("voice", "audio"):
            extra["duration"] = params.get_int("duration") or 0
        if kind == "audio":
            extra["performer"] = params.get_str("performer")
            extra["title"] = params.get_str("title")
        message = self.state.add_bot_message(
            chat,
            kind=kind,
            text=caption,
            entities=entities,
            reply_markup=markup,
            parse_mode=params.get_str("parse_mode"),
            file=stored,
            media=media_object(kind, stored, **extra),
            reply_to_message_id=reply_to,
        )
        return self.state.message_json(chat, message)

    def edit_message_text(self, params: Params) -> JSON:
        markup = _validate_markup(params.get_json("reply_markup"), inline_only=True)
        text, entities = self._text(params)
        chat, message = self._message_to_edit(params)
        if message.kind != "text":
            raise bad_request("there is no text in the message to edit")
        markup = self._markup_after_edit(message, markup)
        return self._apply_edit(chat, message, text=text, entities=entities, reply_markup=markup)

    def edit_message_caption(self, params: Params) -> JSON:
        markup = _validate_markup(params.get_json("reply_markup"), inline_only=True)
        caption, entities = self._caption(params)
        chat, message = self._message_to_edit(params)
        if message.kind == "text":
            raise bad_request("there is no caption in the message to edit")
        markup = self._markup_after_edit(message, markup)
        return self._apply_edit(chat, message, text=caption, entities=entities, reply_markup=markup)

    def edit_message_reply_markup(self, params: Params) -> JSON:
        markup = _validate_markup(params.get_json("reply_markup"), inline_only=True)
        chat, message = self._message_to_edit(params)
        markup = self._markup_after_edit(message, markup)
        return self._apply_edit(chat, message, reply_markup=markup)

    def delete_message(self, params: Params) -> bool:
        chat = self._chat(params, sending=False)
        message_id = params.get_int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = chat.bot_message(message_id)
        if message is not None:
            message.deleted = True
            message.version = chat.touch()
            return True
        if chat.member_messages.pop(message_id, None) is not None:
            chat.touch()
            return True
        raise bad_request("message to delete not found")

    def answer_callback_query(self, params: Params) -> bool:
        query_id = params.get_str("callback_query_id") or ""
        record = self.state.callback_queries.get(query_id)
        if record is None or record.answered:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        record.answered = True
        chat = self.state.chats[record.chat_id]
        answer: JSON = {
            "callback_query_id": query_id,
            "text": params.get_str("text"),
            "show_alert": params.get_bool("show_alert"),
        }
        if params.values.get("url"):
            answer["url"] = params.get_str("url")
        chat.callback_answers.append(answer)
        chat.touch()
        return True

    def send_chat_action(self, params: Params) -> bool:
        action = params.get_str("action") or ""
        chat = self._chat(params)
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        chat.actions.append(action)
        return True

    def get_file(self, params: Params) -> JSON:
        stored = self.state.files.by_id(params.get_str("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    def get_chat(self, params: Params) -> JSON:
        chat = self._chat(params, sending=False)
        return {
            **chat.member.chat_dict(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    @staticmethod
    def _commands_key(params: Params) -> str:
        """ "default", "chat:1001", "chat_member:1001:2002"…, plus "/<language>" if given."""
        scope = params.get_json("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise bad_request("can't parse BotCommandScope JSON object")
        key = str(scope["type"])
        for part in ("chat_id", "user_id"):
            if part in scope:
                key += f":{scope[part]}"
        language = params.get_str("language_code")
        return f"{key}/{language}" if language else key

    def set_my_commands(self, params: Params) -> bool:
        commands = params.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands")
        cleaned: list[dict[str, str]] = []
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            description = command.get("description") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(params)
        if cleaned:
            self.state.commands[key] = cleaned
        else:
            self.state.commands.pop(key, None)  # an empty list deletes, as in Telegram
        return True

    def get_my_commands(self, params: Params) -> list[dict[str, str]]:
        return list(self.state.commands.get(self._commands_key(params), []))

    def delete_my_commands(self, params: Params) -> bool:
        self.state.commands.pop(self._commands_key(params), None)
        return True

    def set_webhook(self, params: Params) -> bool:
        url = params.get_str("url") or ""
        state = self.state
        if params.get_bool("drop_pending_updates"):
            state.updates.drop_pending()
        if not url:
            state.webhook = None
            state.updates.changed.notify()
            return True
        # Telegram insists on HTTPS; a local emulator accepts http:// so tests need no TLS.
        if not re.match(r"https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get_str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        allowed = params.get_json("allowed_updates")
        if isinstance(allowed, list):
            state.allowed_updates = frozenset(allowed) or DEFAULT_UPDATE_TYPES
        state.webhook = Webhook(
            url=url,
            secret_token=secret or None,
            max_connections=params.get_int("max_connections") or 40,
            allowed_updates=list(allowed) if isinstance(allowed, list) else None,
        )
        state.updates.changed.notify()
        return True

    def delete_webhook(self, params: Params) -> bool:
        if params.get_bool("drop_pending_updates"):
            self.state.updates.drop_pending()
        self.state.webhook = None
        self.state.updates.changed.notify()
        return True

    def get_webhook_info(self, params: Params) -> JSON:
        hook = self.state.webhook
        info: JSON = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.state.updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.allowed_updates is not None:
                info["allowed_updates"] = hook.allowed_updates
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def set_chat_menu_button(self, params: Params) -> bool:
        chat_id = params.get_int("chat_id")
        button = params.get_json("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or "type" not in button:
            raise bad_request("can't parse menu button JSON object")
        self.state.menu_buttons[chat_id] = button
        return True

    def get_chat_menu_button(self, params: Params) -> JSON:
        chat_id = params.get_int("chat_id")
        buttons = self.state.menu_buttons
        return buttons.get(chat_id) or buttons.get(None) or {"type": "default"}

    def set_bot_text(self, params: Params, kind: str) -> bool:
        language = params.get_str("language_code") or ""
        value = params.get_str(kind) or ""
        key = f"{kind}/{language}"
        if value:
            self.state.bot_texts[key] = value
        else:
            self.state.bot_texts.pop(key, None)
        return True

    def get_bot_text(self, params: Params, kind: str) -> JSON:
        language = params.get_str("language_code") or ""
        texts = self.state.bot_texts
        value = texts.get(f"{kind}/{language}") or texts.get(f"{kind}/") or ""
        if kind == "name" and not value:
            value = self.state.bot_first_name
        return {kind: value}

"""The member side: a simulated person who writes to the bot and reads what it sends.

`SimUser` is what tests drive: `send("/start")`, `press("English")`, voice notes and photos,
then `await next_message()` to read the bot's answer with its buttons. Everything a member
does becomes an update waiting for the bot, exactly as Telegram would queue it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.formatting import bot_command_entities
from emulator.state import JSON, BotMessage, Chat, TelegramState, media_object, wait_until

__all__ = ["SimUser"]

# Where a member is when a bot asks for their location (central London).
DEFAULT_LOCATION = (51.5074, -0.1278)
_CAPTIONED = ("voice", "photo", "document", "audio")


class SimUser:
    """One simulated member in a private chat with the bot (chat id == user id)."""

    def __init__(self, state: TelegramState, chat: Chat) -> None:
        self._state = state
        self._chat = chat
        # Unread: the messages at `_left` (passed over by unread(leave=...)), then every one
        # from index `_read` on.
        self._read = 0
        self._left: list[int] = []

    def __repr__(self) -> str:
        return f"SimUser({self.id}, {self.first_name!r})"

    # ---- who

    @property
    def id(self) -> int:
        """The Telegram user id, which is also the private chat id."""
        return self._chat.member.id

    @property
    def first_name(self) -> str:
        return self._chat.member.first_name

    @property
    def last_name(self) -> str | None:
        return self._chat.member.last_name

    @property
    def username(self) -> str | None:
        return self._chat.member.username

    @property
    def language_code(self) -> str | None:
        return self._chat.member.language_code

    @property
    def phone_number(self) -> str:
        """Shared when the member presses a request_contact button."""
        return self._chat.member.phone_number

    @property
    def blocked(self) -> bool:
        """Whether the member has blocked the bot."""
        return self._chat.blocked

    # ---- what the member does (each returns the update_id)

    def send(self, text: str, *, reply_to: int | None = None) -> int:
        """Send a text message; a leading /command gets its bot_command entity."""
        if not text:
            raise ValueError("Telegram clients do not send empty messages")
        content: JSON = {"text": text}
        entities = bot_command_entities(text)
        if entities:
            content["entities"] = entities
        return self._message(content, reply_to=reply_to)

    def edit(self, message_id: int, text: str) -> int:
        """Edit a text (or the caption) the member sent earlier: an edited_message update."""
        sent = self._chat.member_messages.get(message_id)
        if sent is None:
            raise LookupError(f"no message {message_id} from {self!r}")
        if "text" in sent.payload:
            content: JSON = {"text": text, "entities": bot_command_entities(text)}
        elif "caption" in sent.payload or any(k in sent.payload for k in _CAPTIONED):
            content = {"caption": text, "caption_entities": bot_command_entities(text)}
        else:
            raise ValueError("only texts and captions can be edited")
        return self._state.edit_member_message(self._chat, message_id, content)

    @property
    def last_sent_id(self) -> int | None:
        """The message_id of the member's newest message."""
        return self._chat.last_member_message_id

    def send_sticker(self, emoji: str = "😀") -> int:
        """Send a sticker showing `emoji`."""
        webp = b"RIFF\x00\x00\x00\x00WEBPVP8 "  # enough of a header to look like one
        stored = self._state.files.add("sticker", webp, mime_type="image/webp")
        return self._message({"sticker": media_object("sticker", stored, emoji=emoji)})

    def send_location(self, latitude: float, longitude: float) -> int:
        """Share a location."""
        return self._message({"location": {"latitude": latitude, "longitude": longitude}})

    def send_contact(
        self,
        phone_number: str,
        first_name: str,
        last_name: str | None = None,
        user_id: int | None = None,
    ) -> int:
        """Share a contact card (the member's own when user_id is their id)."""
        contact: JSON = {"phone_number": phone_number, "first_name": first_name}
        if last_name:
            contact["last_name"] = last_name
        if user_id is not None:
            contact["user_id"] = user_id
        return self._message({"contact": contact})

    def send_voice(
        self,
        data: bytes,
        duration: int = 3,
        mime_type: str = "audio/ogg",
        caption: str | None = None,
    ) -> int:
        """Send a voice note."""
        stored = self._state.files.add("voice", data, mime_type=mime_type)
        voice = media_object("voice", stored, duration=duration)
        return self._message({"voice": voice, **self._caption(caption)})

    def send_photo(self, data: bytes, caption: str | None = None) -> int:
        """Send a photo (one PhotoSize; its size is read from PNG/GIF/JPEG headers)."""
        stored = self._state.files.add("photo", data, mime_type="image/jpeg")
        return self._message({"photo": media_object("photo", stored), **self._caption(caption)})

    def send_document(
        self,
        data: bytes,
        file_name: str = "a.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> int:
        """Send a file as a document."""
        stored = self._state.files.add("document", data, file_name=file_name, mime_type=mime_type)
        document = media_object("document", stored)
        return self._message({"document": document, **self._caption(caption)})

    def send_audio(
        self,
        data: bytes,
        duration: int = 3,
        file_name: str = "audio.mp3",
        mime_type: str = "audio/mpeg",
        title: str | None = None,
        performer: str | None = None,
        caption: str | None = None,
    ) -> int:
        """Send a music file."""
        stored = self._state.files.add("audio", data, file_name=file_name, mime_type=mime_type)
        audio = media_object("audio", stored, duration=duration, title=title, performer=performer)
        return self._message({"audio": audio, **self._caption(caption)})

    def send_video_note(self, data: bytes, duration: int = 2, length: int = 240) -> int:
        """Send a round video message."""
        stored = self._state.files.add("video_note", data, mime_type="video/mp4")
        note = media_object("video_note", stored, duration=duration, length=length)
        return self._message({"video_note": note})

    def press(self, text: str, *, message_id: int | None = None) -> int:
        """Press a button by its text (or callback_data), as the member sees the chat.

        An inline button makes a callback_query; a reply-keyboard button sends its text (or
        the member's contact or location for request_contact / request_location buttons).
        Without `message_id`, the newest message with such a button is used. Raises
        LookupError when there is no such button.
        """
        chat = self._chat
        if message_id is not None:
            message = chat.bot_message(message_id)
            if message is None:
                raise LookupError(f"no message {message_id} from the bot in chat {self.id}")
            inline = message.inline_button(text)
            if inline is not None:
                return self._state.add_callback_query(chat, message, inline["callback_data"])
            reply = message.reply_button(text)
            if reply is not None:
                return self._press_reply_button(reply)
            raise LookupError(f"message {message_id} has no button {text!r}: {message.buttons}")
        visible = [m for m in reversed(chat.bot_messages) if not m.deleted]
        newest = next((m for m in visible if m.keyboard_kind in ("inline", "reply")), None)
        if newest is not None and newest.keyboard_kind == "reply":
            reply = newest.reply_button(text)
            if reply is not None:
                return self._press_reply_button(reply)
        for message in visible:
            inline = message.inline_button(text)
            if inline is not None:
                return self._state.add_callback_query(chat, message, inline["callback_data"])
        # A reply keyboard stays under the input field until the bot removes it.
        keyboard = chat.active_reply_keyboard()
        if keyboard is not None:
            reply = keyboard.reply_button(text)
            if reply is not None:
                return self._press_reply_button(reply)
        shown = [m.buttons for m in visible if m.buttons][:3]
        raise LookupError(f"no button {text!r} in chat {self.id}; newest keyboards: {shown}")

    def press_callback(self, data: str, *, message_id: int | None = None) -> int:
        """Make a callback_query with any data, e.g. a stale or forged button.

        The query carries the bot message `message_id`, else the newest bot message (or none).
        """
        chat = self._chat
        message: BotMessage | None
        if message_id is not None:
            message = chat.bot_message(message_id)
            if message is None:
                raise LookupError(f"no message {message_id} from the bot in chat {self.id}")
        else:
            message = next((m for m in reversed(chat.bot_messages) if not m.deleted), None)
        return self._state.add_callback_query(chat, message, data)

    def _press_reply_button(self, button: JSON) -> int:
        if button.get("request_contact"):
            member = self._chat.member
            return self.send_contact(
                member.phone_number, member.first_name, member.last_name, user_id=member.id
            )
        if button.get("request_location"):
            return self.send_location(*DEFAULT_LOCATION)
        return self.send(str(button["text"]))

    def _message(self, content: JSON, *, reply_to: int | None = None) -> int:
        return self._state.add_member_message(self._chat, content, reply_to=reply_to)

    @staticmethod
    def _caption(caption: str | None) -> dict[str, Any]:
        if not caption:
            return {}
        entities = bot_command_entities(caption)
        return {"caption": caption, **({"caption_entities": entities} if entities else {})}

    # ---- what the member sees

    @property
    def messages(self) -> list[BotMessage]:
        """Everything the bot sent to this chat, oldest first, as it looks now."""
        return list(self._chat.bot_messages)

    @property
    def last_message(self) -> BotMessage | None:
        """The newest message from the bot, if any."""
        return self._chat.bot_messages[-1] if self._chat.bot_messages else None

    @property
    def edits(self) -> list[BotMessage]:
        """A snapshot of a message after each edit the bot made, in order."""
        return list(self._chat.edits)

    @property
    def callback_answers(self) -> list[JSON]:
        """What answerCallbackQuery said to this member: {callback_query_id, text, show_alert}."""
        return list(self._chat.callback_answers)

    @property
    def actions(self) -> list[str]:
        """Chat actions ("typing", ...) the bot showed to this member."""
        return list(self._chat.actions)

    def unread(self, leave: Callable[[BotMessage], bool] | None = None) -> list[BotMessage]:
        """Messages not yet returned by unread()/next_message(); marks them read. With
        `leave`: those it is true of stay unread, wherever they are (the next read without
        it, or next_message(), returns them first)."""
        messages = self._chat.bot_messages
        fresh = self._unread()
        self._read, self._left = len(messages), []
        read: list[BotMessage] = []
        for i in fresh:
            if leave is not None and leave(messages[i]):
                self._left.append(i)
            else:
                read.append(messages[i])
        return read

    def _unread(self) -> list[int]:
        return self._left + list(range(self._read, len(self._chat.bot_messages)))

    async def next_message(self, timeout: float = 5.0) -> BotMessage:
        """The next unread message, waiting for the bot to send it if needed."""
        return (await self.wait_messages(1, timeout=timeout))[0]

    async def wait_messages(self, n: int, timeout: float = 5.0) -> list[BotMessage]:
        """The next `n` unread messages, waiting for them; raises TimeoutError."""
        chat = self._chat
        arrived = await wait_until(
            chat.changed,
            lambda: len(self._left) + len(chat.bot_messages) - self._read >= n,
            timeout,
        )
        unread = self._unread()
        if not arrived:
            got = [chat.bot_messages[i].text for i in unread]
            raise TimeoutError(
                f"{self!r} waited {timeout}s for {n} message(s) from the bot; got {got}"
            )
        self._read, self._left = len(chat.bot_messages), unread[n:]
        return [chat.bot_messages[i] for i in unread[:n]]

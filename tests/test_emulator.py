"""The Bot API emulator, driven by the real python-telegram-bot stack over HTTP (no mocks)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from aiohttp import web
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import filters
from telegram.request import HTTPXRequest

from emulator import BotMessage, Emulator, SimUser
from emulator.formatting import bot_command_entities, parse_text

TOKEN = "123456:TEST-TOKEN"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, bot_username="cocreate_test_bot") as emulator:
        yield emulator


def make_bot(emu: Emulator, read_timeout: float | None = None) -> Bot:
    request = HTTPXRequest(read_timeout=read_timeout) if read_timeout else None
    return Bot(TOKEN, base_url=emu.base_url, base_file_url=emu.file_base_url, request=request)


@pytest.fixture
async def tg(emu: Emulator) -> AsyncIterator[Bot]:
    async with make_bot(emu) as bot:
        yield bot


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


async def started(emu: Emulator, tg: Bot, user_id: int = 1001, name: str = "Ann") -> SimUser:
    """A member who has written to the bot (so the bot may write back), updates cleared."""
    user = emu.user(user_id, first_name=name)
    update_id = user.send("/start")
    await tg.get_updates(offset=update_id + 1)
    return user


# ---------------------------------------------------------------- the Telegram side


async def test_get_me_describes_the_bot(tg: Bot) -> None:
    me = await tg.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.first_name == "cocreate test bot"
    assert me.username == "cocreate_test_bot"
    assert me.can_join_groups is True


async def test_wrong_token_unknown_method_and_encodings(emu: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        wrong = await http.post("/bot999:WRONG/getMe")
        assert wrong.status_code == 401
        assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        unknown = await http.post(f"/bot{TOKEN}/sendTelepathy")
        assert unknown.status_code == 404
        assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        # Method names are case-insensitive; GET with a query string works too.
        assert (await http.get(f"/bot{TOKEN}/GETME")).json()["result"]["id"] == 123456
        emu.user(7).send("hi")
        by_json = await http.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": 7, "text": "json"})
        by_query = await http.get(f"/bot{TOKEN}/sendmessage", params={"chat_id": 7, "text": "q"})
        markup = json.dumps({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
        by_form = await http.post(
            f"/bot{TOKEN}/sendMessage",
            data={"chat_id": "7", "text": "form", "reply_markup": markup},
        )
    assert [r.status_code for r in (by_json, by_query, by_form)] == [200, 200, 200]
    assert [m.text for m in emu.user(7).messages] == ["json", "q", "form"]
    assert emu.user(7).messages[-1].buttons == [["A"]]
    assert emu.calls[-1] == (
        "sendmessage",
        {"chat_id": 7, "text": "form", "reply_markup": json.loads(markup)},
    )


async def test_a_message_with_an_inline_keyboard_reaches_the_member(emu: Emulator, tg: Bot) -> None:
    ann = await started(emu, tg)
    sent = await tg.send_message(
        1001, "Pick a language", reply_markup=keyboard([("English", "en"), ("Cymraeg", "cy")])
    )
    assert sent.chat.id == 1001 and sent.from_user is not None and sent.from_user.is_bot
    assert sent.reply_markup is not None  # inline keyboards are echoed back
    assert isinstance(sent.date.timestamp(), float)
    message = await ann.next_message()
    assert isinstance(message, BotMessage)
    assert message.message_id == sent.message_id == 2  # one counter per chat, both sides
    assert message.text == "Pick a language"
    assert message.kind == "text"
    assert message.buttons == [["English", "Cymraeg"]]
    assert message.callback_data == [["en", "cy"]]
    assert isinstance(message.date, int)
    assert emu.sent_to(1001) == 1

    # A reply keyboard is shown to the member but, like Telegram, not echoed back.
    reply = await tg.send_message(
        1001, "Or type", reply_markup=ReplyKeyboardMarkup([["Menu", "Help"]])
    )
    assert reply.reply_markup is None
    assert ann.messages[-1].buttons == [["Menu", "Help"]]
    await tg.send_message(1001, "Gone", reply_markup=ReplyKeyboardRemove())
    await tg.send_message(1001, "Say", reply_markup=ForceReply())
    assert [m.text for m in ann.unread()] == ["Or type", "Gone", "Say"]
    assert ann.unread() == []


async def test_unread_can_leave_messages_for_a_later_read(emu: Emulator, tg: Bot) -> None:
    # tests/transcript.py leaves delivery reports unread: they are not replies to the update,
    # wherever they come among them, and the test reads them when it wants them.
    ann = await started(emu, tg)

    def report(message: BotMessage) -> bool:
        return (message.text or "").startswith("Report")

    for text in ("Report: 2 of 2", "Sending it now.", "Report: 3 of 3"):
        await tg.send_message(1001, text)
    assert [m.text for m in ann.unread(leave=report)] == ["Sending it now."]
    assert [m.text for m in ann.unread(leave=report)] == []  # still unread
    await tg.send_message(1001, "Menu")
    assert [m.text for m in ann.unread(leave=report)] == ["Menu"]
    assert [m.text for m in await ann.wait_messages(1)] == ["Report: 2 of 2"]
    await tg.send_message(1001, "Report: 1 of 1")
    assert [m.text for m in await ann.wait_messages(2)] == ["Report: 3 of 3", "Report: 1 of 1"]
    await tg.send_message(1001, "Back")
    assert [m.text for m in ann.unread()] == ["Back"]


async def test_send_message_errors_are_telegrams(emu: Emulator, tg: Bot) -> None:
    # ptb drops "Bad Request: " and capitalizes the rest, so match without case.
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await tg.send_message(4242, "hello?")  # never wrote to the bot
    await started(emu, tg)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await tg.send_message(1001, "")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await tg.send_message(1001, "x" * 4097)
    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "name" at byte offset 2'):
        await tg.send_message(1001, "a <name> b", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)character '.' is reserved"):
        await tg.send_message(1001, "Version 1.0", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await tg.send_message(1001, "x", reply_markup=keyboard([("A", "a" * 65)]))
    assert emu.sent_to(1001) == 0
    await tg.send_message(1001, "x" * 4096)
    assert emu.sent_to(1001) == 1


async def test_get_updates_offset_limit_and_confirmation(emu: Emulator, tg: Bot) -> None:
    ann = emu.user(1001, first_name="Ann")
    ids = [ann.send(f"m{i}") for i in range(5)]
    assert emu.pending_updates == 5

    first = await tg.get_updates(limit=2)
    assert [u.update_id for u in first] == ids[:2]
    assert [u.message.text for u in first if u.message] == ["m0", "m1"]
    assert not emu.is_confirmed(ids[0])  # fetching is not confirming

    rest = await tg.get_updates(offset=ids[2])
    assert [u.update_id for u in rest] == ids[2:]
    assert emu.is_confirmed(ids[0]) and emu.is_confirmed(ids[1])
    assert not emu.is_confirmed(ids[2])
    assert emu.pending_updates == 3

    # A negative offset keeps only the newest updates.
    assert [u.update_id for u in await tg.get_updates(offset=-1)] == ids[4:]
    assert emu.pending_updates == 1
    await tg.get_updates(offset=ids[4] + 1)
    await emu.wait_confirmed(ids[4], timeout=1)
    assert emu.pending_updates == 0


async def test_a_long_poll_answers_as_soon_as_a_member_writes(emu: Emulator, tg: Bot) -> None:
    ann = emu.user(1001)
    poll = asyncio.create_task(tg.get_updates(timeout=5))
    await asyncio.sleep(0.05)  # let the poll reach the emulator and wait there
    assert not poll.done()
    started_at = time.monotonic()
    update_id = ann.send("hello")
    updates = await asyncio.wait_for(poll, 2)
    assert time.monotonic() - started_at < 1
    assert [u.update_id for u in updates] == [update_id]


async def test_a_long_poll_with_nothing_to_say_ends_empty_after_its_timeout(emu: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        started_at = time.monotonic()
        answer = await http.post(f"/bot{TOKEN}/getUpdates", data={"timeout": "0.3"})
    assert answer.json() == {"ok": True, "result": []}
    assert 0.25 < time.monotonic() - started_at < 2


async def test_a_newer_get_updates_ends_an_older_one(emu: Emulator, tg: Bot) -> None:
    # Two instances of the same bot polling: Telegram ends the older request with a 409.
    older = asyncio.create_task(tg.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    async with make_bot(emu) as second_instance:
        assert await second_instance.get_updates() == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(older, 2)


async def test_stop_answers_a_waiting_long_poll(emu: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        poll = asyncio.create_task(http.post(f"/bot{TOKEN}/getUpdates", data={"timeout": "30"}))
        await asyncio.sleep(0.05)
        started_at = time.monotonic()
        await emu.stop()
        answer = await asyncio.wait_for(poll, 2)
    assert answer.json() == {"ok": True, "result": []}
    assert time.monotonic() - started_at < 1.5


async def test_a_command_carries_a_bot_command_entity_ptb_sees(emu: Emulator, tg: Bot) -> None:
    ann = emu.user(1001)
    ann.send("/start abc")
    ann.send("/start@cocreate_test_bot x")
    ann.send("just words")
    updates = await tg.get_updates()
    start, addressed, words = updates
    assert start.message is not None and start.message.entities[0].offset == 0
    assert start.message.entities[0].length == 6
    assert addressed.message is not None
    assert addressed.message.entities[0].length == len("/start@cocreate_test_bot")
    assert filters.COMMAND.check_update(start)
    assert filters.COMMAND.check_update(addressed)
    assert not filters.COMMAND.check_update(words)
    assert start.message.from_user is not None and start.message.from_user.id == 1001
    assert start.message.chat.id == 1001 and start.message.chat.type == "private"


def test_bot_command_entities_follow_telegrams_rules() -> None:
    assert bot_command_entities("hi /help now") == [
        {"type": "bot_command", "offset": 3, "length": 5}
    ]
    # Offsets count UTF-16 code units, so an emoji counts twice.
    assert bot_command_entities("😀 /go") == [{"type": "bot_command", "offset": 3, "length": 3}]
    assert bot_command_entities("a/b and /x/y and http://x.org/path") == []
    assert parse_text("<b>Ann &amp; 😀</b> <i>x</i>", "HTML") == (
        "Ann & 😀 x",
        [
            {"type": "bold", "offset": 0, "length": 8},
            {"type": "italic", "offset": 9, "length": 1},
        ],
    )
    assert parse_text(r"*Hi* \. [x](http://e.org)", "MarkdownV2")[0] == "Hi . x"


async def test_pressing_buttons_makes_callback_queries_ptb_parses(emu: Emulator, tg: Bot) -> None:
    ann = await started(emu, tg)
    old = await tg.send_message(1001, "Language?", reply_markup=keyboard([("English", "en")]))
    new = await tg.send_message(
        1001, "Consent?", reply_markup=keyboard([("Yes", "yes"), ("No", "no")])
    )
    update_id = ann.press("Yes")
    (update,) = await tg.get_updates(offset=1)
    assert isinstance(update, Update) and update.update_id == update_id
    query = update.callback_query
    assert query is not None
    assert query.data == "yes" and isinstance(query.id, str) and query.chat_instance
    assert query.from_user.id == 1001
    assert query.message is not None and query.message.message_id == new.message_id
    assert await query.answer("Thanks", show_alert=True)
    assert ann.callback_answers == [
        {"callback_query_id": query.id, "text": "Thanks", "show_alert": True}
    ]
    with pytest.raises(BadRequest, match="Query is too old"):
        await query.answer()  # only once, as in Telegram

    # By callback data, on an older message, and a forged one.
    ann.press("en")
    ann.press("English", message_id=old.message_id)
    ann.press_callback("anything", message_id=old.message_id)
    updates = await tg.get_updates(offset=update_id + 1)
    queries = [u.callback_query for u in updates if u.callback_query and u.callback_query.message]
    assert [(q.data, q.message.message_id) for q in queries if q.message] == [
        ("en", old.message_id),
        ("en", old.message_id),
        ("anything", old.message_id),
    ]
    with pytest.raises(LookupError):
        ann.press("Maybe")

    # Reply-keyboard buttons send their text (or the member's contact).
    await tg.send_message(
        1001,
        "Menu",
        reply_markup=ReplyKeyboardMarkup(
            [["Help"], [KeyboardButton("Share my number", request_contact=True)]]
        ),
    )
    ann.press("Help")
    ann.press("Share my number")
    typed, shared = await tg.get_updates(offset=updates[-1].update_id + 1)
    assert typed.message is not None and typed.message.text == "Help"
    assert shared.message is not None and shared.message.contact is not None
    assert shared.message.contact.user_id == 1001


async def test_edits_and_deletions_show_for_the_member(emu: Emulator, tg: Bot) -> None:
    ann = await started(emu, tg)
    sent = await tg.send_message(1001, "Step 1", reply_markup=keyboard([("Next", "next")]))
    edited = await tg.edit_message_text("Step 2", chat_id=1001, message_id=sent.message_id)
    assert not isinstance(edited, bool) and edited.edit_date is not None
    (message,) = ann.messages
    assert message.text == "Step 2" and message.edited
    assert message.buttons == []  # an edit without reply_markup drops the inline keyboard
    assert [e.text for e in ann.edits] == ["Step 2"]
    with pytest.raises(BadRequest, match="Message is not modified"):
        await tg.edit_message_text("Step 2", chat_id=1001, message_id=sent.message_id)
    await tg.edit_message_reply_markup(1001, sent.message_id, reply_markup=keyboard([("Go", "g")]))
    assert message.buttons == [["Go"]]
    with pytest.raises(BadRequest, match="Message is not modified"):
        await tg.edit_message_reply_markup(
            1001, sent.message_id, reply_markup=keyboard([("Go", "g")])
        )
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await tg.edit_message_text("x", chat_id=1001, message_id=999)
    assert await tg.delete_message(1001, sent.message_id)
    assert ann.messages[0].deleted
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await tg.delete_message(1001, sent.message_id)
    with pytest.raises(LookupError):
        ann.press("Go")


async def test_a_member_can_edit_what_they_sent(emu: Emulator, tg: Bot) -> None:
    ann = emu.user(1001)
    ann.send("helo")
    assert ann.last_sent_id is not None
    ann.edit(ann.last_sent_id, "hello")
    original, edit = await tg.get_updates()
    assert edit.edited_message is not None and edit.edited_message.text == "hello"
    assert original.message is not None
    assert edit.edited_message.message_id == original.message.message_id


# ---------------------------------------------------------------- files


async def test_a_members_voice_note_downloads_with_the_same_bytes(emu: Emulator, tg: Bot) -> None:
    audio = bytes(range(256)) * 40
    emu.user(1001).send_voice(audio, duration=3, caption="my story")
    (update,) = await tg.get_updates()
    assert update.message is not None and update.message.voice is not None
    assert update.message.caption == "my story"
    voice = update.message.voice
    assert voice.mime_type == "audio/ogg" and voice.file_size == len(audio)
    file = await tg.get_file(voice.file_id)
    assert file.file_size == len(audio)
    assert bytes(await file.download_as_bytearray()) == audio


async def test_photos_documents_and_other_member_messages_parse(emu: Emulator, tg: Bot) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x00\x80" + b"\x00" * 20
    ann = emu.user(1001)
    ann.send_photo(png, caption="a park")
    ann.send_document(b"%PDF-1.4", file_name="notes.pdf")
    ann.send_sticker(emoji="😀")
    ann.send_location(51.5, -0.1)
    ann.send_contact("+440000", "Ann")
    ann.send_audio(b"ID3", duration=4, title="Song")
    ann.send_video_note(b"\x00\x00\x00\x18ftypmp42", duration=2)
    photo, document, sticker, location, contact, audio, note = [
        u.message for u in await tg.get_updates()
    ]
    assert photo is not None and (photo.photo[-1].width, photo.photo[-1].height) == (256, 128)
    assert document is not None and document.document is not None
    assert document.document.file_name == "notes.pdf"
    downloaded = await (await tg.get_file(document.document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == b"%PDF-1.4"
    assert sticker is not None and sticker.sticker is not None and sticker.sticker.emoji == "😀"
    assert location is not None and location.location is not None
    assert location.location.latitude == 51.5
    assert contact is not None and contact.contact is not None
    assert contact.contact.phone_number == "+440000"
    assert audio is not None and audio.audio is not None and audio.audio.title == "Song"
    assert note is not None and note.video_note is not None


async def test_files_the_bot_sends_reach_the_member(emu: Emulator, tg: Bot) -> None:
    ann = await started(emu, tg)
    sent = await tg.send_document(1001, b"a,b\n1,2\n", filename="export.csv", caption="Your data")
    assert sent.document is not None and sent.document.file_name == "export.csv"
    (message,) = ann.unread()
    assert message.kind == "document" and message.text == "Your data"
    assert message.file_name == "export.csv" and message.file_bytes == b"a,b\n1,2\n"
    assert message.mime_type == "text/csv"
    # The bot can send a file again by its file_id, and download what it sent.
    again = await tg.send_document(1001, sent.document.file_id)
    assert again.document is not None
    assert again.document.file_unique_id == sent.document.file_unique_id
    file = await tg.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"a,b\n1,2\n"
    await tg.send_photo(1001, b"\xff\xd8\xff\xe0jpeg", caption="pic")
    await tg.send_voice(1001, b"OggS", duration=2)
    await tg.send_audio(1001, b"ID3", filename="a.mp3")
    assert [m.kind for m in ann.messages] == ["document", "document", "photo", "voice", "audio"]
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await tg.send_document(1001, "no-such-file-id")


# ---------------------------------------------------------------- faults


async def test_429_raises_retry_after(
    emu: Emulator, tg: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ptb warns about int retry_after unless opted in to timedelta; warnings are errors here.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    ann = await started(emu, tg)
    emu.faults.add(method="sendMessage", status=429, retry_after=2, times=1)
    with pytest.raises(RetryAfter) as caught:
        await tg.send_message(1001, "hi")
    assert caught.value.retry_after == timedelta(seconds=2)
    assert ann.messages == []  # a faulted call is not delivered
    await tg.send_message(1001, "hi")  # times=1: the next one goes through
    assert len(ann.messages) == 1


async def test_5xx_raise_network_error_until_the_fault_runs_out(emu: Emulator, tg: Bot) -> None:
    await started(emu, tg)
    emu.faults.add(method="sendMessage", status=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await tg.send_message(1001, "hi")
    await tg.send_message(1001, "hi")
    emu.faults.add(method="getUpdates", status=500, times=1)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await tg.get_updates()
    assert emu.sent_to(1001) == 1


async def test_faults_can_target_one_chat_and_last_forever(emu: Emulator, tg: Bot) -> None:
    await started(emu, tg, 1001)
    await started(emu, tg, 1002)
    emu.faults.add(status=503, chat_id=1002, times=None)
    await tg.send_message(1001, "fine")
    for _ in range(3):
        with pytest.raises(NetworkError):
            await tg.send_message(1002, "no")
    emu.faults.clear()
    await tg.send_message(1002, "yes")
    assert (emu.sent_to(1001), emu.sent_to(1002)) == (1, 1)


async def test_a_blocked_member_gives_forbidden(emu: Emulator, tg: Bot) -> None:
    ann = await started(emu, tg)
    emu.block(1001)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await tg.send_message(1001, "hi")
    with pytest.raises(Forbidden):
        await tg.send_document(1001, b"x", filename="x.txt")
    emu.unblock(1001)
    await tg.send_message(1001, "hi again")
    assert [m.text for m in ann.messages] == ["hi again"]


async def test_a_slow_answer_times_out_in_ptb_but_is_still_delivered(emu: Emulator) -> None:
    emu.user(1001).send("hi")
    async with make_bot(emu, read_timeout=0.1) as bot:
        await bot.get_updates(offset=2)
        emu.faults.add(method="sendMessage", delay=0.4, times=1)
        with pytest.raises(TimedOut):
            await bot.send_message(1001, "slow")
    # Like Telegram, the message may arrive although the caller gave up waiting.
    message = await emu.user(1001).next_message(timeout=2)
    assert message.text == "slow"


async def test_waiting_for_a_message_that_never_comes_times_out(emu: Emulator) -> None:
    with pytest.raises(TimeoutError):
        await emu.user(1001).next_message(timeout=0.05)
    with pytest.raises(TimeoutError):
        await emu.wait_confirmed(emu.user(1001).send("x"), timeout=0.05)


# ---------------------------------------------------------------- settings and webhooks


async def test_commands_are_stored_per_scope_and_language(emu: Emulator, tg: Bot) -> None:
    from telegram import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat

    await tg.set_my_commands([BotCommand("start", "Join"), BotCommand("help", "Help")])
    await tg.set_my_commands([BotCommand("help", "Cymorth")], language_code="cy")
    await tg.set_my_commands([BotCommand("ask", "Ask")], scope=BotCommandScopeChat(1001))
    await tg.set_my_commands([BotCommand("menu", "Menu")], scope=BotCommandScopeAllPrivateChats())
    assert emu.commands == {
        "default": [
            {"command": "start", "description": "Join"},
            {"command": "help", "description": "Help"},
        ],
        "default/cy": [{"command": "help", "description": "Cymorth"}],
        "chat:1001": [{"command": "ask", "description": "Ask"}],
        "all_private_chats": [{"command": "menu", "description": "Menu"}],
    }
    assert [c.command for c in await tg.get_my_commands(language_code="cy")] == ["help"]
    await tg.delete_my_commands(scope=BotCommandScopeChat(1001))
    assert "chat:1001" not in emu.commands
    with pytest.raises(BadRequest):
        await tg.set_my_commands([BotCommand("Bad Command", "x")])
    await started(emu, tg)
    assert await tg.send_chat_action(1001, "typing")
    assert emu.user(1001).actions == ["typing"]


async def test_webhook_delivery_with_secret_and_retries(emu: Emulator, tg: Bot) -> None:
    received: list[tuple[str | None, dict[str, object]]] = []
    answers = [500]  # the first POST fails, so the emulator must retry

    async def receive(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(status=answers.pop() if answers else 200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        assert await tg.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        assert emu.webhook_url == f"http://127.0.0.1:{port}/hook"
        assert emu.webhook_secret == "s3cret"
        with pytest.raises(Conflict, match="webhook is active"):
            await tg.get_updates()
        first = emu.user(1001).send("one")
        second = emu.user(1001).send("two")
        await emu.wait_confirmed(second, timeout=3)
        assert emu.is_confirmed(first)
        assert [secret for secret, _ in received] == ["s3cret"] * 3
        assert [body["update_id"] for _, body in received] == [first, first, second]
        info = await tg.get_webhook_info()
        assert info.pending_update_count == 0 and info.last_error_message
        assert await tg.delete_webhook()
        assert emu.webhook_url is None
        third = emu.user(1001).send("three")
        assert [u.update_id for u in await tg.get_updates()] == [third]
    finally:
        await runner.cleanup()


async def test_drop_pending_updates(emu: Emulator, tg: Bot) -> None:
    dropped = emu.user(1001).send("old")
    await tg.delete_webhook(drop_pending_updates=True)
    assert emu.pending_updates == 0 and emu.is_dropped(dropped)
    assert not emu.is_confirmed(dropped)


# ---------------------------------------------------------------- the member side over HTTP


async def test_the_member_api_over_http(emu: Emulator, tg: Bot) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        sent = await http.post(
            "/_emu/users/2001/send", json={"text": "/start", "first_name": "Bea"}
        )
        update_id = sent.json()["update_id"]
        (update,) = await tg.get_updates()
        assert update.update_id == update_id and update.message is not None
        assert update.message.from_user is not None
        assert update.message.from_user.first_name == "Bea"

        # A waiting reader hears about the bot's answer as soon as it is sent.
        waiting = asyncio.create_task(http.get("/_emu/chats/2001/wait?after=1&timeout=5"))
        await asyncio.sleep(0.05)
        reply = await tg.send_message(2001, "Hello Bea", reply_markup=keyboard([("OK", "ok")]))
        (message,) = (await asyncio.wait_for(waiting, 2)).json()
        assert message["message_id"] == reply.message_id
        assert message["text"] == "Hello Bea" and message["buttons"] == [["OK"]]
        assert message["callback_data"] == [["ok"]] and message["kind"] == "text"
        assert message["edited"] is False and isinstance(message["date"], int)

        # ... and about an edit of a message it already had.
        waiting = asyncio.create_task(
            http.get(f"/_emu/chats/2001/wait?after={reply.message_id}&timeout=5")
        )
        await asyncio.sleep(0.05)
        await tg.edit_message_text("Hello again", chat_id=2001, message_id=reply.message_id)
        (edited,) = (await asyncio.wait_for(waiting, 2)).json()
        assert edited["text"] == "Hello again" and edited["edited"] is True

        pressed = await http.post("/_emu/users/2001/press", json={"data": "ok"})
        assert pressed.status_code == 200
        missing = await http.post("/_emu/users/2001/press", json={"text": "Nope"})
        assert missing.status_code == 404

        voice = await http.post(
            "/_emu/users/2001/voice",
            files={"file": ("v.ogg", b"OggS-voice", "audio/ogg")},
            data={"duration": "4"},
        )
        assert voice.status_code == 200
        await tg.send_document(2001, b"report", filename="r.txt")
        messages = (await http.get("/_emu/chats/2001/messages?after=0")).json()
        assert [m["kind"] for m in messages] == ["text", "document"]
        downloaded = await http.get(messages[-1]["file_url"])
        assert downloaded.content == b"report"

        await http.post("/_emu/faults", json={"method": "sendMessage", "status": 502})
        with pytest.raises(NetworkError):
            await tg.send_message(2001, "lost")
        await http.post("/_emu/block/2001")
        with pytest.raises(Forbidden):
            await tg.send_message(2001, "blocked")
        await http.post("/_emu/unblock/2001")
        state = (await http.get("/_emu/state")).json()
        assert state["sent"] == {"2001": 2}
        assert state["pending_updates"] == 3  # /start (fetched, unconfirmed), press, voice

    updates = await tg.get_updates(offset=update_id + 1)
    assert updates[0].callback_query is not None and updates[0].callback_query.data == "ok"
    assert updates[1].message is not None and updates[1].message.voice is not None


async def test_chats_opened_in_bulk_may_be_written_to(emu: Emulator, tg: Bot) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        with pytest.raises(BadRequest):
            await tg.send_message(3001, "Hello")  # they never wrote to the bot
        opened = await http.post("/_emu/chats/open", json={"ids": [3001, 3002]})
        assert opened.json() == {"opened": 2}
        assert (await http.post("/_emu/chats/open", json={"ids": ["x"]})).status_code == 400
        await tg.send_message(3001, "Hello")
        await tg.send_message(3002, "Hello")
    assert emu.sent_to(3001) == emu.sent_to(3002) == 1
    assert emu.pending_updates == 0  # nobody wrote: no update for the bot


async def test_runs_standalone_from_the_command_line() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        "--token",
        "42:ABC",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        base_url = line.split("base_url ")[1].strip()
        async with httpx.AsyncClient() as http:
            me = (await http.get(f"{base_url}42:ABC/getMe")).json()
        assert me["ok"] and me["result"]["id"] == 42
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0

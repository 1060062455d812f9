"""The SMS adapter behind ptb's Bot (bot/sms.py): real ptb calls through `ChannelRequest`, to
the provider's stand-in (emulator/sms.py) or, for its refusals, to a provider that refuses.

An SMS chat's calls become texts (or nothing) and are answered as Telegram would; the
provider's refusals come back as Telegram's errors, which bot/delivery.py reads unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from telegram import Bot, BotCommandScopeChat, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.app import build_application
from bot.catalogue import t
from bot.channels import OUTBOX_ROW, SMS_BASE
from bot.clock import FakeClock
from bot.delivery import DeliveryWorker
from bot.sms import ChannelRequest, NumberKey, Pace, SmsAdapter, carrier_word
from bot.transport import AiohttpRequest
from emulator import Emulator
from emulator.sms import SmsProvider
from storage.outbox import Outgoing
from storage.store import Store
from tests.conftest import TOKEN, make_settings
from tests.test_sms_flow import KEY, NUMBER, SAM, SID, sms_settings


def yes_no(prefix: str = "q") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("1. Yes", callback_data=f"{prefix}:yes")],
            [InlineKeyboardButton("2. No", callback_data=f"{prefix}:no")],
        ]
    )


@pytest.fixture
async def provider() -> AsyncIterator[SmsProvider]:
    async with SmsProvider(account_sid=SID, auth_token="token", number=NUMBER) as stand_in:
        yield stand_in


async def sms_bot(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, base_url: str
) -> tuple[Bot, SmsAdapter]:
    """A ptb Bot whose calls pass ChannelRequest, with the SMS adapter sending to base_url."""
    overrides = {**sms_settings(base_url, 8080), "twilio_auth_token": "token"}
    settings = make_settings(tmp_path, emulator, **overrides)
    adapter = SmsAdapter(settings, store, clock)
    bot = Bot(TOKEN, base_url=emulator.base_url, request=ChannelRequest(AiohttpRequest(), adapter))
    await bot.initialize()
    return bot, adapter


async def sms_member(store: Store, number: str = SAM, language: str = "en") -> int:
    """Keeps a number and makes it a member, as joining by SMS does; returns its chat."""
    keys = NumberKey(KEY)
    known = await store.sms.add(keys.hash(number), keys.seal(number))
    await store.members.join(
        telegram_user_id=known.chat_id,
        chat_id=known.chat_id,
        language=language,
        consent_version="1",
        agreed_to=["stories"],
    )
    return known.chat_id


async def test_a_message_is_one_text_and_an_edit_is_sent_only_if_it_asks_something_new(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    bot, _ = await sms_bot(tmp_path, emulator, store, clock, provider.base_url)
    chat = await sms_member(store)
    try:
        message = await bot.send_message(
            chat, "<b>Is the path dark?</b>", parse_mode="HTML", reply_markup=yes_no()
        )
        assert message.chat.id == chat and message.text == "<b>Is the path dark?</b>"
        assert [s.body for s in provider.sent_to(SAM)] == [
            "Is the path dark?\nReply 1 for Yes, 2 for No."
        ]
        # The same buttons (a label ticked, as a choice is shown): nothing new is asked.
        ticked = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton("✓ 1. Yes", callback_data="q:yes")],
                [InlineKeyboardButton("2. No", callback_data="q:no")],
            ]
        )
        await bot.edit_message_text(
            "Is the path dark?", chat, message.message_id, reply_markup=ticked
        )
        await bot.edit_message_reply_markup(chat, message.message_id, reply_markup=None)
        await bot.edit_message_text("Saved.", chat, message.message_id)
        assert len(provider.sent_to(SAM)) == 1
        # New buttons on an edit ask something new: it is sent.
        await bot.edit_message_text("Sure?", chat, message.message_id, reply_markup=yes_no("s"))
        await bot.edit_message_reply_markup(chat, message.message_id, reply_markup=yes_no("t"))
        assert [s.body for s in provider.sent_to(SAM)][1:] == [
            "Sure?\nReply 1 for Yes, 2 for No.",
            "Reply 1 for Yes, 2 for No.",
        ]
        # A chat action, a deletion, a photo without a caption, a command menu for the chat:
        # nothing is texted, and nothing goes to Telegram.
        assert await bot.set_my_commands([("menu", "Menu")], scope=BotCommandScopeChat(chat))
        assert emulator.calls_to("setMyCommands") == []
        assert await bot.send_chat_action(chat, "typing") is True
        assert await bot.delete_message(chat, message.message_id) is True
        await bot.send_photo(chat, b"\x89PNG\r\n\x1a\n" + b"0" * 64)
        assert len(provider.sent_to(SAM)) == 3
        # A photo's caption is: without any address the member did not ask for.
        await bot.send_photo(
            chat, b"\x89PNG\r\n\x1a\n" + b"0" * 64, caption="Our poster: https://example.org/poster"
        )
        assert provider.sent_to(SAM)[-1].body == "Our poster:"
        # Every text sent is recorded, with its segments and the status the provider gave
        # (its callbacks move it on: tests/test_sms_flow.py, served over HTTP).
        sent = await store.sms.messages_to(chat)
        assert [m.segments for m in sent] == [1, 1, 1, 1]
        assert {m.sid for m in sent} == {s.sid for s in provider.sent_to(SAM)}
        assert {m.status for m in sent} == {"queued"}
    finally:
        await bot.shutdown()


async def test_telegram_chats_still_go_to_telegram(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    bot, _ = await sms_bot(tmp_path, emulator, store, clock, provider.base_url)
    ann = emulator.user(4101, first_name="Ann")
    emulator.open_chat(4101)
    try:
        await bot.send_message(4101, "Hello Ann")
        assert [m.text for m in ann.messages] == ["Hello Ann"]
        assert provider.sent == []
    finally:
        await bot.shutdown()


async def test_a_number_that_texted_stop_is_sent_nothing_but_the_reply_to_it(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    bot, adapter = await sms_bot(tmp_path, emulator, store, clock, provider.base_url)
    chat = await sms_member(store)
    try:
        await store.sms.set_stopped(chat, True)
        message = await bot.send_message(chat, "A message from the team")  # answered all the same
        assert message.chat.id == chat
        assert provider.sent_to(SAM) == []
        await adapter.send_text(chat, t("en", "sms.stopped"), force=True)
        assert [s.body for s in provider.sent_to(SAM)] == [t("en", "sms.stopped")]
    finally:
        await bot.shutdown()


async def test_a_text_from_the_outbox_records_its_row(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    bot, _ = await sms_bot(tmp_path, emulator, store, clock, provider.base_url)
    chat = await sms_member(store)
    try:
        token = OUTBOX_ROW.set(77)
        try:
            await bot.send_message(chat, "News")
        finally:
            OUTBOX_ROW.reset(token)
        await bot.send_message(chat, "A reply")
        assert [m.outbox_id for m in await store.sms.messages_to(chat)] == [77, None]
    finally:
        await bot.shutdown()


async def test_a_text_in_welsh_and_one_with_an_emoji_cost_what_they_cost(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    bot, _ = await sms_bot(tmp_path, emulator, store, clock, provider.base_url)
    chat = await sms_member(store, language="cy")
    try:
        await bot.send_message(chat, "Ydych chi'n hoffi'r parc?", reply_markup=yes_no())
        await bot.send_message(chat, "Dŵr " + "a" * 70)  # ŵ: UCS-2, 75 > 70
        await bot.send_message(chat, "x" * 161)  # GSM-7: 161 > 160
        # Curly quotes, a dash and dots are sent as the SMS alphabet has them: one SMS.
        await bot.send_message(chat, "\u201cWe\u2019re here\u201d \u2013 ok\u2026 " + "b" * 130)
        assert (
            provider.sent_to(SAM)[0].body == "Ydych chi'n hoffi'r parc?\nAtebwch 1 am Yes, 2 am No."
        )
        assert provider.sent_to(SAM)[3].body == '"We\'re here" - ok... ' + "b" * 130
        assert [m.segments for m in await store.sms.messages_to(chat)] == [1, 2, 2, 1]
    finally:
        await bot.shutdown()


# ---- the provider's refusals, as Telegram's


class Refusing:
    """A provider that refuses every text with one HTTP status and Twilio error code."""

    def __init__(self) -> None:
        self.answer = (400, 21211)
        self.calls = 0

    async def create(self, request: web.Request) -> web.Response:
        self.calls += 1
        status, code = self.answer
        body = {"code": code, "message": "refused", "more_info": "", "status": status}
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@pytest.fixture
async def refusing() -> AsyncIterator[tuple[Refusing, str]]:
    provider = Refusing()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", provider.create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield provider, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((400, 21610), Forbidden),  # the number opted out at the carrier: "blocked"
        ((429, 20429), RetryAfter),
        ((503, 20500), NetworkError),
        ((400, 21211), BadRequest),
    ],
)
async def test_the_providers_refusals_are_telegrams_errors(
    tmp_path: Path,
    emulator: Emulator,
    store: Store,
    clock: FakeClock,
    refusing: tuple[Refusing, str],
    answer: tuple[int, int],
    error: type[Exception],
) -> None:
    provider, url = refusing
    provider.answer = answer
    bot, _ = await sms_bot(tmp_path, emulator, store, clock, url)
    chat = await sms_member(store)
    try:
        with pytest.raises(error) as raised:
            await bot.send_message(chat, "Hello")
        if error is Forbidden:
            assert "blocked" in str(raised.value)
        [recorded] = await store.sms.messages_to(chat)
        assert recorded.status == "failed" and recorded.sid is None
    finally:
        await bot.shutdown()


async def test_a_provider_that_cannot_be_reached_is_a_network_error_never_sent(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock
) -> None:
    from tests.net import free_port

    bot, _ = await sms_bot(tmp_path, emulator, store, clock, f"http://127.0.0.1:{free_port()}")
    chat = await sms_member(store)
    try:
        with pytest.raises(NetworkError) as raised:
            await bot.send_message(chat, "Hello")
        assert "ClientConnectorError" in str(raised.value)
    finally:
        await bot.shutdown()


async def test_an_unknown_sms_chat_is_not_found(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, provider: SmsProvider
) -> None:
    bot, _ = await sms_bot(tmp_path, emulator, store, clock, provider.base_url)
    try:
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(SMS_BASE + 999, "Hello")
    finally:
        await bot.shutdown()


# ---- the pieces


async def test_the_pace_spaces_texts_at_sms_rate() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        now[0] += seconds

    pace = Pace(2.0, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await pace.turn()
    assert waits == [0.5, 0.5]  # the first at once, then one every half second
    now[0] += 10
    await pace.turn()
    assert waits == [0.5, 0.5]  # after a quiet spell, at once again


def test_numbers_are_sealed_and_hashed_with_the_key() -> None:
    keys = NumberKey(KEY)
    sealed = keys.seal(SAM)
    assert SAM not in sealed and SAM[1:] not in sealed and keys.open(sealed) == SAM
    assert keys.seal(SAM) != sealed  # sealed anew each time
    assert keys.hash(SAM) == NumberKey(KEY).hash(SAM)
    assert keys.hash(SAM) != NumberKey(KEY + "!").hash(SAM) != keys.hash("+447700900124")


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ("STOP", "stop"),
        (" stop ", "stop"),
        ("Unsubscribe", "stop"),
        ("stopall", "stop"),
        ("Cancel", "stop"),
        ("END", "stop"),
        ("quit", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("Help", "help"),
        ("INFO", "help"),
        ("yes", "yes"),
        ("stop the bus", None),
        ("please stop", None),
        ("2", None),
    ],
)
def test_carrier_words_are_the_whole_text_in_any_case(body: str, word: str | None) -> None:
    assert carrier_word(body) == word


async def test_a_number_that_opted_out_at_the_carrier_makes_its_member_unreachable(
    tmp_path: Path,
    emulator: Emulator,
    store: Store,
    clock: FakeClock,
    refusing: tuple[Refusing, str],
) -> None:
    provider, url = refusing
    provider.answer = (400, 21610)
    overrides = {**sms_settings(url, 8080), "twilio_auth_token": "token"}
    settings = make_settings(tmp_path, emulator, **overrides)
    application = build_application(settings, store, clock)  # the bot's own ChannelRequest
    chat = await sms_member(store)
    member = await store.members.by_telegram_id(chat)
    assert member is not None
    await store.outbox.enqueue_batch("broadcast", 1, [Outgoing(member.id, chat, "News")])
    await application.bot.initialize()
    try:
        await DeliveryWorker(application.bot, store, settings, clock).run_once()
    finally:
        await application.bot.shutdown()
    assert provider.calls == 1
    assert await store.outbox.status_counts() == {"skipped": 1}
    member = await store.members.by_telegram_id(chat)
    assert member is not None and member.unreachable_at is not None

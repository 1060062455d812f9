"""The bot's HTTP transport (bot/transport.py) against the emulator over real HTTP: Telegram's
answers and the network's failures become the same ptb errors, and the same delivery
verdicts (bot/delivery.py `judge`), as with ptb's own httpx transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest

from bot.delivery import judge
from bot.transport import AiohttpRequest, PoolTimeout
from emulator import Emulator
from tests.net import free_port

TOKEN = "123456:TEST-TOKEN"
SLOW = 1.0  # seconds an answer the emulator delays takes; above the test's read timeout
READ_TIMEOUT = 0.5  # above a loaded machine's answer time (0.2 s could be reached), below SLOW

Transport = Callable[..., BaseRequest]
TRANSPORTS: dict[str, Transport] = {"aiohttp": AiohttpRequest, "httpx": HTTPXRequest}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN) as emulator:
        emulator.open_chat(1001)
        yield emulator


async def failure(
    make: Transport, base_url: str, add_fault: Callable[[], object] = lambda: None
) -> TelegramError:
    """What sending a message raises, through `make`'s transport."""
    bot = Bot(TOKEN, base_url=base_url, request=make(read_timeout=READ_TIMEOUT))
    await bot.request.initialize()  # not bot.initialize(): no getMe, which may be the fault
    try:
        add_fault()
        with pytest.raises(TelegramError) as caught:
            await bot.send_message(1001, "Hello")
        return caught.value
    finally:
        await bot.request.shutdown()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "error", "verdict"),
    [
        (429, RetryAfter, ("pause", "flood_wait")),
        (400, BadRequest, ("failed", "bad_request")),
        (403, Forbidden, ("unreachable", "blocked")),
        (502, NetworkError, ("retry", "server_error")),
    ],
)
async def test_telegrams_refusals_are_the_same_errors_and_verdicts(
    emu: Emulator, transport: str, status: int, error: type[Exception], verdict: tuple[str, str]
) -> None:
    raised = await failure(
        TRANSPORTS[transport],
        emu.base_url,
        lambda: emu.faults.add("sendMessage", status, retry_after=3 if status == 429 else None),
    )
    assert type(raised) is error
    assert (judge(raised).action, judge(raised).code) == verdict
    if isinstance(raised, RetryAfter):
        assert judge(raised).wait == 3.0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_connection_was_never_sent_so_it_is_retried(transport: str) -> None:
    raised = await failure(TRANSPORTS[transport], f"http://127.0.0.1:{free_port()}/bot")
    assert type(raised) is NetworkError
    assert (judge(raised).action, judge(raised).code) == ("retry", "connect_error")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_slow_answer_times_out_and_may_have_arrived(emu: Emulator, transport: str) -> None:
    raised = await failure(
        TRANSPORTS[transport],
        emu.base_url,
        lambda: emu.faults.add("sendMessage", delay=SLOW, accept_first=True),
    )
    assert type(raised) is TimedOut
    assert (judge(raised).action, judge(raised).code) == ("unconfirmed", "read_timeout")
    assert emu.sent_to(1001) == 1  # it did arrive: never to be sent again


async def test_waiting_for_a_free_connection_times_out_before_anything_is_sent(
    emu: Emulator,
) -> None:
    request = AiohttpRequest(connection_pool_size=1, pool_timeout=0.1, read_timeout=5 * SLOW)
    async with Bot(TOKEN, base_url=emu.base_url, request=request) as bot:
        emu.faults.add("sendMessage", delay=SLOW, chat_id=1001)  # holds the one connection
        emu.open_chat(1002)
        slow = asyncio.create_task(bot.send_message(1001, "Slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimedOut) as caught:
            await bot.send_message(1002, "Waits for the connection")
        await slow
    assert (judge(caught.value).action, judge(caught.value).code) == ("retry", "pool_timeout")
    assert emu.sent_to(1002) == 0


async def test_a_call_passes_its_own_read_timeout(emu: Emulator) -> None:
    request = AiohttpRequest(read_timeout=5 * SLOW)
    async with Bot(TOKEN, base_url=emu.base_url, request=request) as bot:
        emu.faults.add("sendMessage", delay=SLOW)
        with pytest.raises(TimedOut):
            await bot.send_message(1001, "Hello", read_timeout=READ_TIMEOUT)
        assert (await bot.send_message(1001, "Again")).text == "Again"  # the default: 5 s


async def test_files_go_up_and_come_down_whole(emu: Emulator) -> None:
    data = bytes(range(256)) * 40
    async with Bot(
        TOKEN, base_url=emu.base_url, base_file_url=emu.file_base_url, request=AiohttpRequest()
    ) as bot:
        sent = await bot.send_document(
            1001, InputFile(data, filename="answers.csv"), caption="Your answers: ünïcode"
        )
        assert sent.document is not None and sent.caption == "Your answers: ünïcode"
        assert sent.document.file_name == "answers.csv"
        downloaded = await (await bot.get_file(sent.document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == data


async def test_text_and_buttons_arrive_as_sent(emu: Emulator) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Oui 👍", callback_data="y")]])
    async with Bot(TOKEN, base_url=emu.base_url, request=AiohttpRequest()) as bot:
        message = await bot.send_message(1001, "Ça va? «oui»", reply_markup=markup)
    assert message.text == "Ça va? «oui»"
    [received] = emu.user(1001).messages
    assert (received.text, received.buttons) == ("Ça va? «oui»", [["Oui 👍"]])


async def test_a_request_before_initialize_says_so() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:1/bot/getMe", "POST")


@pytest.mark.parametrize(
    ("cause", "verdict"),
    [
        (aiohttp.ConnectionTimeoutError("x"), ("retry", "connect_timeout")),
        (PoolTimeout(), ("retry", "pool_timeout")),
        (aiohttp.SocketTimeoutError("x"), ("unconfirmed", "read_timeout")),
        (TimeoutError(), ("unconfirmed", "timeout")),  # the whole request: maybe the write
    ],
)
def test_aiohttp_timeouts_are_read_like_httpx_ones(
    cause: BaseException, verdict: tuple[str, str]
) -> None:
    exc = TimedOut()
    exc.__cause__ = cause
    assert (judge(exc).action, judge(exc).code) == verdict


@pytest.mark.parametrize(
    ("cause", "verdict"),
    [
        (
            aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey("h", 1, False, False, None, None, None),
                OSError(111, "refused"),
            ),
            ("retry", "connect_error"),
        ),
        (aiohttp.ServerDisconnectedError(), ("unconfirmed", "connection_lost")),
        (aiohttp.ClientPayloadError("x"), ("unconfirmed", "connection_lost")),
    ],
)
def test_aiohttp_network_errors_are_read_like_httpx_ones(
    cause: BaseException, verdict: tuple[str, str]
) -> None:
    exc = NetworkError("x")
    exc.__cause__ = cause
    assert (judge(exc).action, judge(exc).code) == verdict

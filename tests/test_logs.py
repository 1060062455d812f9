"""The log: no member words, names or ids at any level, never the token, and a 429 that is
handled is not reported as an error with a traceback."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot import logs
from bot.receiving import CocreateApplication
from conversations.context import CocreateContext
from emulator import Emulator
from storage.outbox import Outgoing
from storage.store import Store
from tests.conftest import TOKEN
from tests.test_process import BotProcess, texts, wait_until
from tests.transcript import Person


@pytest.fixture
def tamed(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything captured at DEBUG, with the libraries' loggers as `cocreate run` sets them."""
    names = [*logs.LIBRARIES, logs.RATE_LIMITER]
    before = {n: (logging.getLogger(n).level, list(logging.getLogger(n).filters)) for n in names}
    caplog.set_level(logging.DEBUG)
    logs.tame_libraries("DEBUG")
    yield caplog
    for name, (level, filters) in before.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).filters[:] = filters


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [(r.name, r.getMessage()) for r in loud]


async def test_a_429_the_outbox_handles_is_a_warning_without_a_traceback(
    bot: CocreateApplication, store: Store, emulator: Emulator, tamed: pytest.LogCaptureFixture
) -> None:
    emulator.open_chat(2101)
    ann = await store.members.join(
        telegram_user_id=2101, chat_id=2101, language="en", consent_version="1", agreed_to=[]
    )
    emulator.faults.add("sendMessage", 429, retry_after=5, chat_id=2101)
    batch = await store.outbox.enqueue_batch("broadcast", None, [Outgoing(ann.id, 2101, "Hi")])
    CocreateContext(bot).delivery.wake()

    async def paused() -> bool:
        [row] = await store.outbox.rows_of(batch)
        return row.last_error == "flood_wait"

    async with asyncio.timeout(5):
        while not await paused():  # noqa: ASYNC110 - the sender task writes it
            await asyncio.sleep(0.02)
    assert any("wait" in r.getMessage() and r.levelno == logging.WARNING for r in tamed.records)
    no_errors(tamed)


async def test_a_429_on_a_reply_is_a_warning_without_a_traceback(
    person: Callable[..., Person], emulator: Emulator, tamed: pytest.LogCaptureFixture
) -> None:
    emulator.faults.add("sendMessage", 429, retry_after=1, times=1)
    await person(2102, "Bo").says("/start")
    [warning] = [r for r in tamed.records if "429" in r.getMessage() or "wait" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    no_errors(tamed)


PHRASE = "purple giraffes queue at the bus stop"
NAME = "Zebedee"
SURNAME = "Quixotica"
USER_ID = 7_305_551_234


@pytest.mark.process
async def test_at_debug_the_log_holds_no_member_words_names_ids_or_token(
    tmp_path: Path, emulator: Emulator
) -> None:
    process = BotProcess(tmp_path, emulator, LOG_LEVEL="DEBUG")
    await process.start()
    try:
        zed = emulator.user(USER_ID, first_name=NAME, last_name=SURNAME, username="zed_q")
        zed.send("/start")
        await texts(zed, 2)
        zed.send(PHRASE)  # not a language: asked again
        await texts(zed, 1)
        zed.press("1. English")
        await texts(zed, 1)
        zed.press("1. Yes, I agree")
        await texts(zed, 1)
        zed.press("2. Use my first name")
        await texts(zed, 3)
        await wait_until(lambda: process.unfinished() == 0)
        with sqlite3.connect(process.db) as conn:
            [(kept,)] = conn.execute("SELECT display_name FROM members").fetchall()
        assert kept == NAME  # the name went through the bot (and its database)
        assert await process.terminate() == 0
    finally:
        if process.proc is not None and process.proc.returncode is None:
            await process.kill()
    log = process.log.read_text()
    assert " DEBUG " in log, "DEBUG logging was on"
    for secret in (PHRASE, "giraffes", NAME, SURNAME, "zed_q", str(USER_ID), TOKEN.split(":")[1]):
        assert secret not in log, secret

"""Starting `cocreate run`: a token Telegram refuses, and Telegram out of reach at start.

Each is one sentence, never a traceback and never the token; out of reach, the bot tries
again (1, 2, 4 … 60 s apart) and starts as soon as Telegram answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from itertools import islice
from pathlib import Path

import pytest

from bot.startup import TokenRejected, backoff, reach_telegram
from emulator import Emulator
from tests.conftest import TOKEN, make_settings
from tests.net import free_port
from tests.test_process import wait_until
from tests.transcript import choose_language, hello

# Not the emulator's TOKEN: Telegram (the emulator) has never heard of this bot.
OTHER_TOKEN = "918273645:UNKNOWN-token-nobody-gave-out"


class Run:
    """`python -m bot run` with its stdout and stderr each in a file."""

    def __init__(self, tmp_path: Path, api: str, token: str = TOKEN, **env: str) -> None:
        self.out = tmp_path / "stdout.txt"
        self.err = tmp_path / "stderr.txt"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK"))}
        self.env = {
            **clean,
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE_URL": f"{api}/bot",
            "TELEGRAM_FILE_BASE_URL": f"{api}/file/bot",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'cocreate.db'}",
            "MEDIA_DIR": str(tmp_path / "media"),
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=err,
            )

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait()

    def stderr(self) -> str:
        return self.err.read_text()

    def both(self) -> str:
        return self.out.read_text() + self.err.read_text()


@pytest.mark.process
async def test_a_token_telegram_refuses_is_one_sentence_exit_2_and_never_shown(
    tmp_path: Path, emulator: Emulator
) -> None:
    run = Run(tmp_path, emulator.url, token=OTHER_TOKEN)
    await run.start()
    assert await run.wait() == 2
    lines = run.stderr().strip().splitlines()
    assert len(lines) == 1, run.stderr()
    assert lines[0].startswith("cocreate: ") and "TELEGRAM_BOT_TOKEN" in lines[0]
    bot_id, secret = OTHER_TOKEN.split(":")
    for part in (OTHER_TOKEN, secret, secret[:8], bot_id):
        assert part not in run.both()
    assert "Traceback" not in run.both()


@pytest.mark.process
async def test_telegram_out_of_reach_is_one_sentence_then_the_bot_starts_when_it_answers(
    tmp_path: Path,
) -> None:
    port = free_port()
    run = Run(tmp_path, f"http://127.0.0.1:{port}")
    await run.start()
    try:
        await wait_until(lambda: "Cannot reach Telegram" in run.stderr())
        assert run.proc is not None and run.proc.returncode is None
        async with Emulator(token=TOKEN, port=port) as emulator:
            # The next try (1 s after the first) finds it, and the bot starts as usual.
            await wait_until(lambda: any(m == "getupdates" for m, _ in emulator.calls))
            ann = emulator.user(3201, first_name="Ann")
            ann.send("/start")
            replies = await ann.wait_messages(2, timeout=30)
            assert [m.text for m in replies] == [hello(), choose_language()]
            assert await run.stop() == 0
    finally:
        if run.proc is not None and run.proc.returncode is None:
            run.proc.kill()
    err = run.stderr()
    assert "Traceback" not in err and TOKEN not in err
    [first, *_] = [line for line in err.splitlines() if "Cannot reach Telegram" in line]
    assert first.endswith("trying again in 1 s"), first
    assert f"127.0.0.1:{port}" in first


def test_the_waits_double_from_1_s_up_to_60_s() -> None:
    assert list(islice(backoff(), 9)) == [1, 2, 4, 8, 16, 32, 60, 60, 60]


async def test_a_stop_while_waiting_for_telegram_ends_the_wait_at_once(
    tmp_path: Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        tmp_path, emulator, telegram_api_base_url=f"{closed}/bot", telegram_file_base_url=closed
    )
    stop = asyncio.Event()
    waiting = asyncio.create_task(reach_telegram(settings, stop, waits=[600]))
    await wait_until(lambda: "Cannot reach Telegram" in caplog.text)
    stop.set()
    async with asyncio.timeout(5):
        assert await waiting is False
    assert all(record.levelno == logging.WARNING for record in caplog.records)
    assert all(record.exc_info is None for record in caplog.records)


async def test_reaching_telegram_with_a_refused_token_raises_token_rejected(
    tmp_path: Path, emulator: Emulator
) -> None:
    settings = make_settings(tmp_path, emulator, telegram_bot_token=OTHER_TOKEN)
    with pytest.raises(TokenRejected) as refused:
        await reach_telegram(settings, asyncio.Event())
    assert OTHER_TOKEN.split(":")[1] not in str(refused.value)
    assert await reach_telegram(make_settings(tmp_path, emulator), asyncio.Event()) is True

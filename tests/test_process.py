"""Whole-process tests: `cocreate run` as a subprocess on the emulator, killed and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.catalogue import t
from emulator import Emulator, SimUser
from tests.conftest import TOKEN
from tests.net import free_port

pytestmark = pytest.mark.process


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Waits for something another process does (checked every 20 ms)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the event happens in another process
            await asyncio.sleep(0.02)


class BotProcess:
    """`python -m bot run` in its own process, with its log in a file."""

    def __init__(self, tmp_path: Path, emulator: Emulator, **env: str) -> None:
        self.emulator = emulator
        self.db = tmp_path / "data" / "cocreate.db"
        self.log = tmp_path / "bot.log"
        self.cwd = tmp_path
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ABOUT_"))}
        self.env = {
            **clean,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_BASE_URL": emulator.base_url,
            "TELEGRAM_FILE_BASE_URL": emulator.file_base_url,
            "DATABASE_URL": f"sqlite:///{self.db}",
            "MEDIA_DIR": str(tmp_path / "media"),
            "ABOUT_EXTRA_QUESTION": "Do you look after someone?",
            "ABOUT_EXTRA_OPTIONS": "Yes,No",
            "WEB_PORT": str(free_port()),  # the workbench: never 8080, which may be taken
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        polls = self._polls()
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        # Ready once it has asked for updates since this start.
        await wait_until(lambda: self._polls() > polls or self._exited())
        assert not self._exited(), self.log.read_text()

    def _polls(self) -> int:
        return sum(1 for method, _ in self.emulator.calls if method == "getupdates")

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            return await self.proc.wait()

    def unfinished(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(
                conn.execute("SELECT COUNT(*) FROM inbox WHERE done_at IS NULL").fetchone()[0]
            )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN) as emu:
        yield emu


@pytest.fixture
async def bot_process(tmp_path: Path, emulator: Emulator) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path, emulator, LOG_LEVEL="DEBUG")
    yield process
    if process.proc is not None and process.proc.returncode is None:
        await process.kill()


async def texts(user: SimUser, n: int) -> list[str]:
    return [m.text or "" for m in await user.wait_messages(n, timeout=30)]


async def test_sigkill_mid_onboarding_then_the_member_finishes_where_they_were(
    bot_process: BotProcess, emulator: Emulator
) -> None:
    await bot_process.start()
    ann = emulator.user(3001, first_name="Ann")
    ann.send("/start")
    await texts(ann, 2)
    ann.press("1. English")
    assert await texts(ann, 1) == [t("en", "consent.text")]
    ann.press("1. Yes, I agree")
    await texts(ann, 1)
    ann.press("2. Use my first name")
    assert (await texts(ann, 3))[-1] == t("en", "about.age")
    await wait_until(lambda: bot_process.unfinished() == 0)

    await bot_process.kill()
    await bot_process.start()

    ann.press("3. 25 to 34")
    assert await texts(ann, 1) == [t("en", "about.area.typed")]
    ann.send("Grangetown")
    assert await texts(ann, 1) == ["Do you look after someone?"]
    ann.press("2. No")
    assert await texts(ann, 2) == [t("en", "onboarding.done"), t("en", "menu.title")]
    assert await bot_process.terminate() == 0

    with sqlite3.connect(bot_process.db) as conn:
        member = conn.execute("SELECT id, display_name, onboarded_at FROM members").fetchall()
        assert len(member) == 1 and member[0][1] == "Ann" and member[0][2]
        about = dict(conn.execute("SELECT field, answer FROM about_you").fetchall())
        assert about == {"age_band": "25_34", "area": "Grangetown", "extra": "No"}
        assert conn.execute("SELECT COUNT(*) FROM consent_receipts").fetchone()[0] == 1


async def test_an_update_fetched_but_not_handled_is_handled_after_sigkill(
    bot_process: BotProcess, emulator: Emulator
) -> None:
    await bot_process.start()
    bea = emulator.user(3002, first_name="Bea")
    # The bot's first reply hangs, so the update is fetched (and confirmed to Telegram by
    # the next poll) but its handling has not finished when the process dies.
    emulator.faults.add(method="sendMessage", delay=8.0, times=1)
    update_id = bea.send("/start")
    await wait_until(lambda: any(m == "sendmessage" for m, _ in emulator.calls))
    await emulator.wait_confirmed(update_id, timeout=30)
    assert bot_process.unfinished() == 1
    await bot_process.kill()

    await bot_process.start()
    await wait_until(lambda: choose_language_sent(bea))
    await wait_until(lambda: bot_process.unfinished() == 0)
    assert await bot_process.terminate() == 0


def choose_language_sent(user: SimUser) -> bool:
    wanted = f"{t('en', 'start.choose_language')}\n{t('cy', 'start.choose_language')}"
    return any(m.text == wanted for m in user.messages)


async def test_graceful_stop_and_the_token_never_reaches_the_log(
    bot_process: BotProcess, emulator: Emulator
) -> None:
    await bot_process.start()
    cy = emulator.user(3003, first_name="Cy")
    cy.send("/start")
    await texts(cy, 2)
    cy.press("2. Cymraeg")
    assert await texts(cy, 1) == [t("cy", "consent.text")]
    assert await bot_process.terminate() == 0
    log = bot_process.log.read_text()
    assert " DEBUG bot.logs: " in log, "DEBUG logging was on"
    assert TOKEN not in log
    assert TOKEN.split(":")[1] not in log
    # Commands were registered for the Telegram menu, in both languages.
    assert emulator.commands


async def test_sigkill_mid_story_then_resume_and_save(
    bot_process: BotProcess, emulator: Emulator
) -> None:
    await bot_process.start()
    dee = emulator.user(3004, first_name="Dee")
    dee.send("/start")
    await texts(dee, 2)
    for button, replies in (
        ("1. English", 1),
        ("1. Yes, I agree", 1),
        ("1. Stay anonymous", 3),
        ("8. Skip", 1),
        ("2. Skip", 1),
        ("4. Skip", 2),
        ("1. Share your story", 1),
    ):
        dee.press(button)
        await texts(dee, replies)
    dee.send("The clinic closed early.")
    assert await texts(dee, 1) == ["How did it affect you?"]
    await wait_until(lambda: bot_process.unfinished() == 0)

    await bot_process.kill()
    await bot_process.start()

    dee.send("I missed my check-up.")
    assert await texts(dee, 1) == ["What would have made it better?"]
    dee.press("1. Skip")
    [review] = await texts(dee, 1)
    assert "The clinic closed early." in review and "I missed my check-up." in review
    dee.press("1. Save")
    assert (await texts(dee, 2))[0] == t("en", "story.saved")
    assert await bot_process.terminate() == 0

    with sqlite3.connect(bot_process.db) as conn:
        stories = conn.execute("SELECT id, status FROM submissions").fetchall()
        assert [s[1] for s in stories] == ["submitted"]
        parts = conn.execute(
            "SELECT part, text, skipped FROM submission_parts ORDER BY part"
        ).fetchall()
        assert parts == [
            ("how_it_affected", "I missed my check-up.", 0),
            ("what_happened", "The clinic closed early.", 0),
            ("what_would_help", None, 1),
        ]

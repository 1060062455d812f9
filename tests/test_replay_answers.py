"""A member whose reply died with the process still gets an answer after the restart.

Each update's effects commit before its reply leaves (bot/receiving.py, CommitFirst), so a
SIGKILL while the reply is on its way leaves an update that was applied but never answered.
The restart replays it; the door knows it was applied and asks again where the person is
(conversations/routes.py `reask`). Found by the soak (tests/test_soak.py): a member who was
in no flow (at the menu) got nothing at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.catalogue import t
from emulator import Emulator
from tests.test_process import BotProcess, wait_until

pytestmark = pytest.mark.process

USER = 3401
JOINING = ("/start", "1", "1", "1", "skip", "skip", "2")  # English, agree, anonymous, skips


@pytest.fixture
async def bot_process(tmp_path: Path, emulator: Emulator) -> AsyncIterator[BotProcess]:
    process = BotProcess(tmp_path, emulator, QUIET_HOURS="")
    yield process
    if process.proc is not None and process.proc.returncode is None:
        await process.kill()


async def test_a_reply_lost_in_a_crash_is_made_good_outside_any_flow(
    bot_process: BotProcess, emulator: Emulator
) -> None:
    await bot_process.start()
    ann = emulator.user(USER, first_name="Ann")
    for said in JOINING:
        ann.send(said)
        await ann.wait_messages(1, timeout=30)
        await wait_until(lambda: bot_process.unfinished() == 0)
    await wait_until(lambda: (ann.messages[-1].text or "").startswith(t("en", "menu.title")))
    ann.unread()

    # The reply to HELP is on its way (Telegram has not got it yet) when the process dies.
    emulator.faults.add("sendMessage", delay=60, chat_id=USER)
    calls = len(emulator.calls_to("sendMessage"))
    ann.send("/help")
    await wait_until(lambda: len(emulator.calls_to("sendMessage")) > calls)
    await bot_process.kill()
    emulator.faults.clear()
    await bot_process.start()

    [reply] = await ann.wait_messages(1, timeout=30)
    assert reply.text == t("en", "restart.back")  # not silence
    await wait_until(lambda: bot_process.unfinished() == 0)

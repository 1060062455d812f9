"""A reply that leaves long after the member acted waits for its chat's second (bot/budget.py,
REPLY_BURST_FOR): to the member, and to Telegram, it is no longer an answer to what they just
did. Found by the multi-process test (tests/test_processes_pg.py): under load a join step's
three replies came more than 5 s after the press, 0.4 s apart (an unprompted close pair in the
emulator's count). On virtual time (tests/test_budget_pacing.py)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from telegram import Chat, Message, Update

from bot.budget import ANSWERING_SINCE, REPLY_BURST_FOR, Budget, acted_at
from tests.test_budget_pacing import VirtualTime, clock_driver  # noqa: F401 - a fixture


async def test_a_late_reply_waits_for_its_chat_s_second_a_prompt_one_does_not(
    clock_driver: Callable[[VirtualTime], None],  # noqa: F811 - the fixture
) -> None:
    virtual = VirtualTime()
    clock_driver(virtual)
    budget = Budget(30, monotonic=virtual.monotonic, sleep=virtual.sleep)
    left: list[float] = []

    async def call() -> bool:
        left.append(virtual.now)
        return True

    async def reply(since: float) -> None:
        token = ANSWERING_SINCE.set(since)
        try:
            await budget.process_request(call, (), {}, "sendMessage", {"chat_id": 5}, None)
        finally:
            ANSWERING_SINCE.reset(token)

    try:
        await asyncio.gather(*(reply(time.time()) for _ in range(3)))  # just now: a burst
        assert left[-1] - left[0] < 0.2
        prompt = len(left)
        late = time.time() - REPLY_BURST_FOR - 1  # the member acted a while ago
        await asyncio.gather(*(reply(late) for _ in range(3)))
    finally:
        await budget.shutdown()
    gaps = [b - a for a, b in itertools.pairwise(left[prompt - 1 :])]
    assert len(gaps) == 3 and all(gap >= 1.0 for gap in gaps), gaps


def test_when_the_member_acted_is_a_message_s_date_or_now() -> None:
    now = time.time()
    chat = Chat(5, Chat.PRIVATE)
    sent = datetime.fromtimestamp(int(now) - 2, UTC)
    message = Update(1, message=Message(7, sent, chat, text="hi"))
    assert acted_at(message, now) == int(now) - 2
    long_ago = datetime.fromtimestamp(now, UTC) - timedelta(days=3)  # a test's fake clock
    assert acted_at(Update(2, message=Message(8, long_ago, chat, text="hi")), now) == now
    assert acted_at(Update(3), now) == now  # no date (a button press): now

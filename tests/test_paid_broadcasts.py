"""Paid broadcasts: above BROADCAST_RATE 30 the outbox's messages carry allow_paid_broadcast,
and Telegram (the emulator, with its flood limit on) takes up to 1,000 a second of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from telegram import Bot
from telegram.error import RetryAfter

from bot.receiving import CocreateApplication
from bot.settings import Settings
from emulator import Emulator
from emulator.faults import FloodLimit
from storage.outbox import Outgoing
from storage.store import Store
from tests.conftest import TOKEN

TEXT = "The garden opens on Saturday."


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """Telegram with its flood limit on: 429 past ~30 new messages a second, unless paid."""
    async with Emulator(token=TOKEN, rate_limit=True) as emu:
        yield emu


@pytest.fixture(params=[30, 1000])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"broadcast_rate": request.param, "chat_burst": 20}


async def broadcast(
    bot: CocreateApplication, store: Store, emulator: Emulator, user_ids: range
) -> list[dict[str, Any]]:
    """Queues one message to each member and waits until Telegram has them all; returns the
    sendMessage calls that carried them."""
    members = []
    for user_id in user_ids:
        emulator.open_chat(user_id)
        members.append(
            await store.members.join(
                telegram_user_id=user_id,
                chat_id=user_id,
                language="en",
                consent_version="1",
                agreed_to=["stories"],
            )
        )
    await store.outbox.enqueue_batch(
        "broadcast", 1, [Outgoing(m.id, m.chat_id, TEXT) for m in members]
    )
    bot.delivery.wake()
    for user_id in user_ids:
        await emulator.user(user_id).wait_messages(1, timeout=30)
    return [p for p in emulator.calls_to("sendMessage") if p.get("text") == TEXT]


async def test_above_30_a_second_the_outbox_sends_paid_broadcasts(
    bot: CocreateApplication, store: Store, emulator: Emulator, settings: Settings
) -> None:
    user_ids = range(5001, 5101)  # more than Telegram takes free in a second
    calls = await broadcast(bot, store, emulator, user_ids)
    assert [emulator.sent_to(user_id) for user_id in user_ids] == [1] * len(user_ids)
    paid = [call.get("allow_paid_broadcast") for call in calls]
    if settings.broadcast_rate > 30:
        assert paid == [True] * len(user_ids)
    else:
        assert paid == [None] * len(user_ids)  # not even "false": the parameter is left out
    # Either way Telegram never had to refuse one: free ones are paced to 30 a second.
    assert emulator.state.flood is not None and emulator.state.flood.refused == 0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_emulator_refuses_new_messages_past_its_limit_unless_paid(
    emulator: Emulator,
) -> None:
    clock = FakeMonotonic()
    emulator.state.flood = FloodLimit(free=3, paid=5, monotonic=clock)
    emulator.open_chat(1001)
    async with Bot(TOKEN, base_url=emulator.base_url) as tg:
        for _ in range(3):
            await tg.send_message(1001, "free")
        await tg.send_chat_action(1001, "typing")  # not a message: not counted
        with pytest.raises(RetryAfter):
            await tg.send_message(1001, "one too many")
        for _ in range(5):
            await tg.send_message(1001, "paid", allow_paid_broadcast=True)
        with pytest.raises(RetryAfter):
            await tg.send_message(1001, "paid, one too many", allow_paid_broadcast=True)
        clock.now += 1.0  # a second later, each is whole again
        await tg.send_message(1001, "free again")
        await tg.send_message(1001, "paid again", allow_paid_broadcast=True)
    assert emulator.state.flood.refused == 2
    assert emulator.sent_to(1001) == 10
    async with httpx.AsyncClient(base_url=emulator.url) as http:  # as bench/fairness.py reads it
        assert (await http.get("/_emu/state")).json()["flood_refused"] == 2


def test_broadcast_rate_goes_up_to_telegrams_paid_ceiling() -> None:
    assert not Settings(_env_file=None).paid_broadcasts  # 30 by default: free
    assert Settings(_env_file=None, broadcast_rate=1000).paid_broadcasts
    with pytest.raises(ValidationError):
        Settings(_env_file=None, broadcast_rate=1001)

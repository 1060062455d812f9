"""The running bot: its handlers' replies and the outbox share one budget, and a row waiting
for its turn is still 'queued' (so a crash then cannot leave it unconfirmed and unsent)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
import pytest

from bot.budget import Budget
from bot.receiving import CocreateApplication
from emulator import Emulator
from storage.outbox import Outgoing
from storage.store import Store
from tests.dbs import sqlite_db

BROADCAST = range(8001, 8031)  # members who get the broadcast
WRITERS = range(8101, 8161)  # people the bot answers meanwhile
TEXT = "The youth club is open on Saturday."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The bot as it runs: BROADCAST_RATE, CHAT_BURST and CHAT_INTERVAL at their defaults."""
    return {"broadcast_rate": 30, "chat_burst": 20, "chat_interval": 1.0}


@pytest.mark.sqlite_only
async def test_a_row_is_marked_sending_only_as_its_request_leaves(
    bot: CocreateApplication, store: Store, emulator: Emulator
) -> None:
    members = []
    for user_id in BROADCAST:
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
    for user_id in WRITERS:
        emulator.open_chat(user_id)
    # Sixty replies at once (as handlers send them, through the application's bot), then a
    # broadcast: its rows wait for their turn behind the replies.
    replies = [
        asyncio.create_task(bot.bot.send_message(user_id, "Thank you.")) for user_id in WRITERS
    ]
    batch_id = await store.outbox.enqueue_batch(
        "broadcast", 1, [Outgoing(m.id, m.chat_id, TEXT) for m in members]
    )
    bot.delivery.wake()

    def reached() -> set[int]:
        return {int(p["chat_id"]) for p in emulator.calls_to("sendMessage") if p["text"] == TEXT}

    # Watch the rows while they go: a row 'sending' on disk whose request has not reached
    # Telegram would be left unconfirmed, and never sent, by a crash at that moment. What a
    # crash leaves is what is committed: read it as another process would, through a
    # connection of its own (the bot's own sees its writes before their group commit).
    worst: list[Any] = []
    uri = sqlite_db(store.db).file.resolve().as_uri() + "?mode=ro"
    async with aiosqlite.connect(uri, uri=True) as disk, asyncio.timeout(20):
        while len(reached()) < len(BROADCAST):
            rows = await disk.execute_fetchall(
                "SELECT chat_id FROM outbox WHERE batch_id = ? AND status = 'sending'",
                (batch_id,),
            )
            not_left = {int(row[0]) for row in rows} - reached()
            if len(not_left) > len(worst):
                worst = sorted(not_left)
            await asyncio.sleep(0.005)
    await asyncio.gather(*replies)
    # At most the one whose request is leaving as we look (claimed, not yet read by Telegram).
    assert len(worst) <= 1, worst
    assert [emulator.sent_to(u) for u in BROADCAST] == [1] * len(BROADCAST)


@pytest.mark.parametrize("settings_overrides", [{"chat_interval": 0.25}])
async def test_a_broadcast_waits_chat_interval_after_a_chats_last_message(
    bot: CocreateApplication, emulator: Emulator
) -> None:
    budget = bot.bot.rate_limiter
    budget = getattr(budget, "inner", budget)  # behind CommitFirst
    assert isinstance(budget, Budget)
    emulator.open_chat(8201)
    before = budget.monotonic()
    await bot.bot.send_message(8201, "Thank you.")
    after = budget.monotonic()
    assert before + 0.25 <= budget.bulk_free_at(8201) <= after + 0.25

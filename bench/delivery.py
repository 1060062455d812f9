"""Bench: how fast the outbox's sender goes when Telegram's 30 messages a second is not the limit.

    .venv/bin/python bench/delivery.py [--messages 2000] [--rate 1000000] [--db-dir DIR]

N members in distinct chats (so the one-message-a-second-per-chat rule never waits) get one
message each, with `rate_per_second` set far above Telegram's. Two runs, each on a fresh
SQLite file (WAL, synchronous=FULL, as the bot runs):

1. emulator: the real path, ptb → httpx → the in-process Bot API emulator over HTTP.
   Both ends share one Python process and core, so this is a floor, not a ceiling.
2. instant:  a bot that answers sendMessage at once with no network, so what is left is
   our own code: the outbox's SQLite commits and the worker's bookkeeping.

It prints messages per second, time per message, and commits per message for each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import Bot, Chat, Message

from bot.clock import SystemClock
from bot.delivery import DeliveryWorker
from bot.emulator import Emulator
from bot.settings import Settings
from storage.outbox import Outgoing
from storage.store import Store

TOKEN = "123456:BENCH-not-a-real-token"
FIRST_ID = 100_000


class InstantBot:
    """Answers sendMessage at once, without a network: leaves only our own cost."""

    def __init__(self) -> None:
        self._next_id = 0

    async def send_message(self, chat_id: int, text: str, reply_markup: Any = None) -> Message:
        self._next_id += 1
        return Message(self._next_id, datetime.now(UTC), Chat(chat_id, Chat.PRIVATE))


class CommitCounter:
    """Counts the write transactions the store opens (each one a commit) and their time."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        self.seconds = 0.0
        original = store.db.transaction

        @contextlib.asynccontextmanager
        async def counted() -> AsyncIterator[Any]:
            self.count += 1
            started = time.perf_counter()
            try:
                async with original() as conn:
                    yield conn
            finally:
                self.seconds += time.perf_counter() - started

        store.db.transaction = counted  # type: ignore[method-assign]


async def prepare(folder: Path, n: int) -> Store:
    """A fresh database with n members and one batch of n messages queued."""
    store = await Store.open(folder / "bench.db", SystemClock("UTC").now)
    members = [
        await store.members.join(
            telegram_user_id=FIRST_ID + i,
            chat_id=FIRST_ID + i,
            language="en",
            consent_version="1",
            agreed_to=["stories"],
        )
        for i in range(n)
    ]
    text = "Thank you for your ideas. Here is what we changed this month."
    await store.outbox.enqueue_batch(
        "broadcast", 1, [Outgoing(m.id, m.chat_id, text) for m in members]
    )
    return store


async def run(name: str, bot: Bot, folder: Path, n: int, rate: int) -> None:
    store = await prepare(folder, n)
    try:
        settings = Settings(_env_file=None, telegram_bot_token=TOKEN, quiet_hours="")
        worker = DeliveryWorker(
            bot, store, settings, SystemClock("UTC"), rate_per_second=rate, pass_size=500
        )
        commits = CommitCounter(store)
        started = time.perf_counter()
        calls = 0
        while (await store.outbox.status_counts()).get("queued"):
            calls += await worker.run_once()
        elapsed = time.perf_counter() - started
        sent = (await store.outbox.status_counts()).get("sent", 0)
        assert calls == n and sent == n, (calls, sent)
        per_message = elapsed / n * 1000
        in_commits = commits.seconds / n * 1000
        print(
            f"{name:9} {n} messages in {elapsed:6.2f} s = {n / elapsed:5.0f} msg/s; per message"
            f" {per_message:5.2f} ms, of which {in_commits:4.2f} ms in"
            f" {commits.count / n:.2f} commits"
        )
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=1_000_000, help="rate_per_second")
    parser.add_argument("--db-dir", type=Path, default=None, help="where the SQLite files go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.db_dir) as tmp:
        folder = Path(tmp)
        print(f"SQLite files in {folder} (synchronous=FULL); Telegram allows 30 msg/s")
        async with Emulator(token=TOKEN) as emu:
            for i in range(args.messages):
                emu.open_chat(FIRST_ID + i)
            async with Bot(TOKEN, base_url=emu.base_url) as bot:
                (folder / "emulator").mkdir()
                await run("emulator", bot, folder / "emulator", args.messages, args.rate)
        (folder / "instant").mkdir()
        instant = cast(Bot, InstantBot())
        await run("instant", instant, folder / "instant", args.messages, args.rate)


if __name__ == "__main__":
    asyncio.run(main())

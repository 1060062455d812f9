"""Bench: the outbox's sender against the emulator, with Telegram's rate limit off and on.

    .venv/bin/python bench/delivery.py [--messages 3000] [--concurrency 16] [--limited 300]
                                       [--rate 30] [--latency 0.05] [--pass-size 100] [--db-dir DIR]

Every run queues one message to each of N members in distinct chats (so the one message a
second per chat rule never waits) on a fresh SQLite file (WAL, synchronous=FULL, as the bot
runs), then calls `DeliveryWorker.run_once()` until nothing is queued. Every call passes the
bot's one budget (bot/budget.py), as in the bot; times are taken as each request leaves,
after the budget.

(a) Limiter off (Budget(None): no overall rate): how fast our code can go (goal: 1,000 msg/s,
    Telegram's paid-broadcast ceiling, so that we are never the bottleneck):
    emulator   ptb → httpx → the Bot API emulator in this same process over HTTP on 127.0.0.1.
               Both ends share one Python thread, so the emulator's own work is in the figure.
    emulator2  the same, with the emulator in a second process (this machine's other core),
               as with real Telegram, where the server's work is not ours.
    aiohttp2   emulator2 with ptb's requests made by aiohttp instead of httpx (a BaseRequest
               defined here, bench only): how much of the HTTP cost is ptb's httpx transport.
    instant    a bot that answers sendMessage at once with no network: what is left is our
               own code (the budget, the outbox's SQLite transactions and the worker's
               bookkeeping).
    Each prints messages per second, CPU of this process per message, write transactions
    (each one commit, fsync'd) per message, and this process's peak RSS during the run.
(b) Limiter on (Budget(--rate), 30 as the bot runs): --limited messages against the
    in-process emulator, and the rate they achieved (from the time each request left); then
    again with every answer --latency late (50 ms: a round trip to Telegram's servers), where
    one call at a time could not reach 30/s; then again with --replies direct replies (as
    handlers send them) to other chats while the broadcast goes, through the same bot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

import aiohttp
from telegram import Message
from telegram.ext import ExtBot
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.budget import Budget
from bot.clock import SystemClock
from bot.delivery import DEFAULT_CONCURRENCY, DeliveryWorker
from bot.settings import Settings
from emulator import Emulator
from storage.outbox import Outgoing
from storage.store import Store

TOKEN = "123456:BENCH-not-a-real-token"
FIRST_ID = 100_000
TEXT = "Thank you for your ideas. Here is what we changed this month."


class TimedRequest(HTTPXRequest):
    """ptb's httpx requests, noting when each sendMessage leaves (after the budget)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started: list[float] = []

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if url.endswith("/sendMessage"):
            self.started.append(time.monotonic())
        return await super().do_request(url, method, *args, **kwargs)


class AiohttpRequest(BaseRequest):
    """ptb's requests over aiohttp, not httpx (bench only: no timeouts or error mapping)."""

    def __init__(self, connections: int) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self.started: list[float] = []

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        assert self._session is not None
        if url.endswith("/sendMessage"):
            self.started.append(time.monotonic())
        data = request_data.json_parameters if request_data else None
        async with self._session.request(method, url, data=data) as response:
            return response.status, await response.read()


TimedBot = ExtBot[Any]


def timed_bot(
    base_url: str, rate: int | None, request: TimedRequest | AiohttpRequest | None = None
) -> tuple[TimedBot, list[float]]:
    """A bot as the application builds it (every call through a Budget at `rate`), and the
    list of times its sendMessage requests left."""
    request = request or TimedRequest(connection_pool_size=256)
    bot: TimedBot = ExtBot(TOKEN, base_url=base_url, request=request, rate_limiter=Budget(rate))
    return bot, request.started


@dataclass(frozen=True)
class Answer:
    """What the worker reads of Telegram's answer (ptb's Message, without parsing one)."""

    message_id: int


class InstantBot:
    """Answers sendMessage at once, without a network or ptb (but through the budget, as
    ExtBot would): leaves only our own cost."""

    def __init__(self) -> None:
        self._next_id = 0
        self.rate_limiter = Budget(None)

    async def send_message(
        self, chat_id: int, text: str, reply_markup: Any = None, rate_limit_args: Any = None
    ) -> Message:
        async def answer() -> dict[str, Any]:
            self._next_id += 1
            return {"message_id": self._next_id}

        result = await self.rate_limiter.process_request(
            answer, (), {}, "sendMessage", {"chat_id": chat_id}, rate_limit_args
        )
        assert isinstance(result, dict)
        return cast(Message, Answer(int(result["message_id"])))


class CommitCounter:
    """Counts the write transactions the store opens (each one a commit)."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        original = store.db.transaction

        @contextlib.asynccontextmanager
        async def counted() -> AsyncIterator[Any]:
            self.count += 1
            async with original() as conn:
                yield conn

        store.db.transaction = counted  # type: ignore[method-assign]


def reset_peak_rss() -> None:
    """Starts a new peak-RSS measurement (Linux: clear_refs 5 resets VmHWM)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def peak_rss_mb() -> float:
    """This process's peak resident memory since the last reset, in MB."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    await store.outbox.enqueue_batch(
        "broadcast", 1, [Outgoing(m.id, m.chat_id, TEXT) for m in members]
    )
    return store


@dataclass
class Options:
    folder: Path
    concurrency: int
    pass_size: int


async def run(
    name: str, bot: TimedBot | InstantBot, options: Options, n: int, replies: int = 0
) -> float:
    """Sends n messages (and `replies` direct replies meanwhile, through the same bot to other
    chats); prints what it took; returns the elapsed seconds."""
    store = await prepare(options.folder / name, n)
    try:
        settings = Settings(_env_file=None, telegram_bot_token=TOKEN, quiet_hours="")
        worker = DeliveryWorker(
            cast(TimedBot, bot),
            store,
            settings,
            SystemClock("UTC"),
            concurrency=options.concurrency,
            pass_size=options.pass_size,
        )
        commits = CommitCounter(store)
        reset_peak_rss()
        cpu, started = time.process_time(), time.perf_counter()
        calls = 0
        answering = [
            asyncio.create_task(answer_later(cast(TimedBot, bot), FIRST_ID + n + i, i / 30))
            for i in range(replies)
        ]
        while (await store.outbox.status_counts()).get("queued"):
            calls += await worker.run_once()
        await asyncio.gather(*answering)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rss = peak_rss_mb()
        counts = await store.outbox.status_counts()
        assert counts == {"sent": n}, counts
        assert calls == n, calls
        print(
            f"  {name:9} {n + replies:5} messages in {elapsed:5.2f} s ="
            f" {(n + replies) / elapsed:5.0f} msg/s;"
            f" CPU {cpu / n * 1000:4.2f} ms/msg; {commits.count / n:.3f} commits/msg;"
            f" peak RSS {rss:.0f} MB"
        )
        return elapsed
    finally:
        await store.close()


async def limiter_off(options: Options, n: int) -> None:
    print(
        f"(a) limiter off: {n} messages, concurrency {options.concurrency},"
        f" pass_size {options.pass_size}"
    )
    async with Emulator(token=TOKEN) as emu:
        for i in range(n):
            emu.open_chat(FIRST_ID + i)
        bot, _ = timed_bot(emu.base_url, None)
        async with bot:
            await run("emulator", bot, options, n)
    async with served_emulator(n) as base_url:
        bot, _ = timed_bot(base_url, None)
        async with bot:
            await run("emulator2", bot, options, n)
    async with served_emulator(n) as base_url:
        bot, _ = timed_bot(base_url, None, AiohttpRequest(options.concurrency))
        async with bot:
            await run("aiohttp2", bot, options, n)
    instant = InstantBot()
    await run("instant", instant, options, n)
    await instant.rate_limiter.shutdown()


async def limiter_on(options: Options, n: int, rate: int, latency: float, replies: int) -> None:
    print(f"(b) limiter on: Budget({rate}), {n} messages to the in-process emulator")
    runs = (
        ("limited", 0.0, 0),
        (f"{latency * 1000:.0f}ms", latency, 0),
        ("+replies", 0.0, replies),
    )
    for name, delay, answers in runs:
        async with Emulator(token=TOKEN) as emu:
            for i in range(n + answers):
                emu.open_chat(FIRST_ID + i)
            if delay:  # every answer takes this long, as from Telegram's servers far away
                emu.faults.add("sendMessage", delay=delay, times=None)
            bot, started = timed_bot(emu.base_url, rate)
            async with bot:
                await run(name, bot, options, n, answers)
            report_rate(sorted(started), rate)


async def answer_later(bot: TimedBot, chat_id: int, after: float) -> None:
    """A handler's direct reply to someone who just wrote (no Bulk: it goes first)."""
    await asyncio.sleep(after)
    await bot.send_message(chat_id, "Thank you. We read every answer.")


def report_rate(starts: list[float], rate: int) -> None:
    """Calls per second from the first, the most in any 1 s window, and the average."""
    first = starts[0]
    span = starts[-1] - first
    per_second = [0] * (int(span) + 1)
    for at in starts:
        per_second[int(at - first)] += 1
    most, j = 0, 0
    for i, at in enumerate(starts):
        while at - starts[j] >= 1.0:
            j += 1
        most = max(most, i - j + 1)
    print(
        f"  {len(starts)} calls over {span:.2f} s (first to last start): {per_second} per"
        f" second from the first; at most {most} in any 1 s window;"
        f" achieved {len(starts) / len(per_second):.1f} msg/s over {len(per_second)} whole"
        f" seconds (the setting: {rate}/s)"
    )


@contextlib.asynccontextmanager
async def served_emulator(n: int) -> AsyncIterator[str]:
    """The emulator in a second process, with n chats open; yields its base_url."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-emulator", str(n), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        yield line.decode().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


async def serve_emulator(n: int) -> None:
    """`--serve-emulator N`: runs the emulator with N chats open until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Emulator(token=TOKEN) as emu:
        for i in range(n):
            emu.open_chat(FIRST_ID + i)
        print(emu.base_url, flush=True)
        await stop.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="for (a)")
    parser.add_argument("--limited", type=int, default=300, help="messages for (b)")
    parser.add_argument("--rate", type=int, default=30, help="the budget's rate for (b)")
    parser.add_argument(
        "--replies", type=int, default=100, help="direct replies during (b)'s 3rd run"
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds each answer takes in (b)'s 2nd run"
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--pass-size", type=int, default=100, help="rows per pass")
    parser.add_argument("--db-dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument("--serve-emulator", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator is not None:
        await serve_emulator(args.serve_emulator)
        return
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.db_dir) as tmp:
        options = Options(Path(tmp), args.concurrency, args.pass_size)
        print(f"SQLite files in {tmp} (WAL, synchronous=FULL); {os.cpu_count()} CPUs")
        if importlib.util.find_spec("sniffio") is None:
            # anyio >= 4.11 no longer brings sniffio; httpcore 1.0.9 then retries the import
            # (a search of sys.path) in every request: encode/httpcore#1103.
            print("Note: sniffio is not installed, so each httpx request pays a failed import")
        if args.messages:
            await limiter_off(options, args.messages)
        if args.limited:
            await limiter_on(options, args.limited, args.rate, args.latency, args.replies)


if __name__ == "__main__":
    asyncio.run(main())

"""Bench: the outbox's sender against the emulator, with Telegram's rate limit off and on.

    .venv/bin/python bench/delivery.py [--messages 3000] [--rate 30 --rate 1000] [--seconds 5]
                                       [--concurrency 16] [--latency 0.05] [--db-dir DIR]

Every run queues one message to each of N members in distinct chats (so the one message a
second per chat rule never waits) on a fresh SQLite file (WAL, synchronous=FULL, as the bot
runs), then calls `DeliveryWorker.run_once()` until nothing is queued. Every call passes the
bot's one budget (bot/budget.py), as in the bot; times are taken as each request leaves,
after the budget. The Bot API emulator runs in a second process (this machine's other core),
as Telegram does: its work is not in our figures.

(a) Limiter off (Budget(None): no overall rate): how fast our code can go (goal: 1,000 msg/s,
    Telegram's paid-broadcast ceiling, so that we are never the bottleneck):
    httpx      ptb's default transport (HTTPXRequest: a pool of 256, HTTP/1.1).
    httpxN     HTTPXRequest tuned: a pool the size of the worker's concurrency N, all kept alive
               (ptb's keeps httpx's default of 20 alive).
    aiohttp    bot/transport.py's AiohttpRequest, which the bot uses.
    instant    a bot that answers sendMessage at once with no network: what is left is our
               own code (the budget, the outbox's SQLite transactions and the worker's
               bookkeeping).
    Each prints messages per second, CPU of this process per message, write transactions
    (each one commit, fsync'd) per message, and this process's peak RSS during the run.
(b) Limiter on (Budget(rate), BROADCAST_RATE as the bot runs, for each --rate; above 30 the
    messages are paid broadcasts): rate × --seconds messages through the bot's transport to
    the emulator with Telegram's flood limit on (429 past ~30 a second, 1,000 when paid).
    It prints the rate achieved from the time each request left (first to last) against the
    setting, the most in any 1 s window, and the 429s. For the first rate, again with every
    answer --latency late (50 ms: a round trip to Telegram's servers), where one call at a
    time could not keep the rate; then again with --replies direct replies (as handlers send
    them) to other chats while the broadcast goes, through the same bot.
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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

import httpx
from telegram import Message
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.budget import Budget
from bot.clock import SystemClock
from bot.delivery import DeliveryWorker, concurrency_for, pass_size_for
from bot.settings import PAID_RATE, Settings
from bot.transport import AiohttpRequest
from emulator import Emulator
from storage.outbox import Outgoing
from storage.store import Store

TOKEN = "123456:BENCH-not-a-real-token"
FIRST_ID = 100_000
TEXT = "Thank you for your ideas. Here is what we changed this month."


class Timing:
    """When each sendMessage left (after the budget), and the 429s Telegram answered."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.refused = 0

    def leaving(self, url: str) -> None:
        if url.endswith("/sendMessage"):
            self.started.append(time.monotonic())

    def answered(self, status: int) -> None:
        self.refused += status == 429


class TimedHttpx(HTTPXRequest):
    """ptb's httpx requests, timed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timing = Timing()

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self.timing.leaving(url)
        status, body = await super().do_request(url, method, *args, **kwargs)
        self.timing.answered(status)
        return status, body


class TimedAiohttp(AiohttpRequest):
    """The bot's aiohttp requests (bot/transport.py), timed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timing = Timing()

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self.timing.leaving(url)
        status, body = await super().do_request(url, method, *args, **kwargs)
        self.timing.answered(status)
        return status, body


TimedBot = ExtBot[Any]


def timed_bot(base_url: str, rate: int | None, request: TimedHttpx | TimedAiohttp) -> TimedBot:
    """A bot as the application builds it: every call through a Budget at `rate`."""
    return ExtBot(TOKEN, base_url=base_url, request=request, rate_limiter=Budget(rate))


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
        self,
        chat_id: int,
        text: str,
        reply_markup: Any = None,
        allow_paid_broadcast: bool | None = None,
        rate_limit_args: Any = None,
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
    concurrency: int | None  # None: the worker's default for the rate
    pass_size: int | None  # None: the worker's default for the rate


async def run(
    name: str,
    bot: TimedBot | InstantBot,
    options: Options,
    n: int,
    *,
    rate: int = 30,
    replies: int = 0,
) -> float:
    """Sends n messages (and `replies` direct replies meanwhile, through the same bot to other
    chats) with BROADCAST_RATE `rate`; prints what it took; returns the elapsed seconds."""
    store = await prepare(options.folder / name, n)
    try:
        settings = Settings(
            _env_file=None, telegram_bot_token=TOKEN, quiet_hours="", broadcast_rate=rate
        )
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
            if worker._paused_until is not None:  # a 429: wait as the running bot would
                await asyncio.sleep(1.0)
        await asyncio.gather(*answering)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rss = peak_rss_mb()
        counts = await store.outbox.status_counts()
        assert counts == {"sent": n}, counts
        print(
            f"  {name:12} {n + replies:5} messages in {elapsed:5.2f} s ="
            f" {(n + replies) / elapsed:5.0f} msg/s;"
            f" CPU {cpu / n * 1000:4.2f} ms/msg; {commits.count / n:.3f} commits/msg;"
            f" peak RSS {rss:.0f} MB"
        )
        return elapsed
    finally:
        await store.close()


async def limiter_off(options: Options, n: int) -> None:
    concurrency = options.concurrency or concurrency_for(PAID_RATE)
    pass_size = options.pass_size or pass_size_for(PAID_RATE)
    print(
        f"(a) limiter off: {n} messages, the worker as for BROADCAST_RATE={PAID_RATE}"
        f" (concurrency {concurrency}, pass_size {pass_size}),"
        " the emulator in a second process"
    )
    # ptb's pool keeps only httpx's default 20 connections alive: keep them all.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transports: list[tuple[str, Callable[[], TimedHttpx | TimedAiohttp]]] = [
        ("httpx", TimedHttpx),
        (f"httpx{concurrency}", lambda: TimedHttpx(httpx_kwargs={"limits": limits})),
        ("aiohttp", TimedAiohttp),
    ]
    for name, make in transports:
        async with served_emulator(n) as base_url:
            async with timed_bot(base_url, None, make()) as bot:
                await run(name, bot, options, n, rate=PAID_RATE)
    instant = InstantBot()
    await run("instant", instant, options, n, rate=PAID_RATE)
    await instant.rate_limiter.shutdown()


async def limiter_on(
    options: Options, rates: list[int], seconds: float, latency: float, replies: int
) -> None:
    print(
        "(b) limiter on: Budget(rate), the emulator in a second process with Telegram's flood"
        " limit on (~30/s; 1,000/s paid)"
    )
    for i, rate in enumerate(rates):
        n = max(int(rate * seconds), 2)
        runs = [(f"limited@{rate}", 0.0, 0)]
        if i == 0:
            runs += [
                (f"{latency * 1000:.0f}ms@{rate}", latency, 0),
                (f"+replies@{rate}", 0.0, replies),
            ]
        for name, delay, answers in runs:
            async with served_emulator(n + answers, latency=delay, rate_limit=True) as base_url:
                request = TimedAiohttp()
                async with timed_bot(base_url, rate, request) as bot:
                    await run(name, bot, options, n, rate=rate, replies=answers)
                report_rate(sorted(request.timing.started), rate, request.timing.refused)


async def answer_later(bot: TimedBot, chat_id: int, after: float) -> None:
    """A handler's direct reply to someone who just wrote (no Bulk: it goes first)."""
    await asyncio.sleep(after)
    await bot.send_message(chat_id, "Thank you. We read every answer.")


def report_rate(starts: list[float], rate: int, refused: int) -> None:
    """The rate from the first call to the last against the setting, the most calls in any
    1 s window, and the 429s."""
    span = starts[-1] - starts[0]
    achieved = (len(starts) - 1) / span if span > 0 else float("inf")
    most, j = 0, 0
    for i, at in enumerate(starts):
        while at - starts[j] >= 1.0:
            j += 1
        most = max(most, i - j + 1)
    print(
        f"    {len(starts)} calls over {span:.2f} s: achieved {achieved:.1f} msg/s, setting"
        f" {rate}/s ({(achieved / rate - 1) * 100:+.1f}%); at most {most} in any 1 s window;"
        f" {refused} answered 429"
    )


@contextlib.asynccontextmanager
async def served_emulator(
    n: int, *, latency: float = 0.0, rate_limit: bool = False
) -> AsyncIterator[str]:
    """The emulator in a second process, with n chats open; yields its base_url."""
    args = [__file__, "--serve-emulator", str(n), "--emulator-latency", str(latency)]
    if rate_limit:
        args.append("--emulator-rate-limit")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        yield line.decode().strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = await proc.communicate()
        print(rest.decode().rstrip())


async def serve_emulator(n: int, latency: float, rate_limit: bool) -> None:
    """`--serve-emulator N`: runs the emulator with N chats open until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Emulator(token=TOKEN, rate_limit=rate_limit) as emu:
        for i in range(n):
            emu.open_chat(FIRST_ID + i)
        if latency:  # every answer takes this long, as from Telegram's servers far away
            emu.faults.add("sendMessage", delay=latency, times=None)
        print(emu.base_url, flush=True)
        await stop.wait()
        cpu = time.process_time()
        calls = len(emu.state.calls)
        print(
            f"    (emulator: {calls} calls, CPU {cpu / max(calls, 1) * 1000:.2f} ms/call)",
            flush=True,
        )
        if emu.state.flood is not None and emu.state.flood.refused:
            print(f"emulator: {emu.state.flood.refused} answered 429", file=sys.stderr)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="for (a); 0: skip (a)")
    parser.add_argument(
        "--rate", type=int, action="append", help="BROADCAST_RATE for (b), repeatable (30)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="each (b) run; 0: skip (b)")
    parser.add_argument(
        "--replies", type=int, default=100, help="direct replies during (b)'s 3rd run"
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds each answer takes in (b)'s 2nd run"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="rows at once (the worker's default)"
    )
    parser.add_argument(
        "--pass-size", type=int, default=None, help="rows per pass (the worker's default)"
    )
    parser.add_argument("--db-dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument("--serve-emulator", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--emulator-latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--emulator-rate-limit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator is not None:
        await serve_emulator(args.serve_emulator, args.emulator_latency, args.emulator_rate_limit)
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
        if args.seconds:
            await limiter_on(options, args.rate or [30], args.seconds, args.latency, args.replies)


if __name__ == "__main__":
    asyncio.run(main())

"""Bench: how fast cocreate handles updates, against a bare python-telegram-bot bot.

    .venv/bin/python bench/updates.py [--members 300] [--only cocreate|bare]

In one run, the project's Bot API emulator runs in its own process and feeds the same streams,
first to a bare ptb bot that only replies ("ok" to every update, ptb's defaults), then to
cocreate (`python -m bot run`, its own process, on a fresh SQLite file with
synchronous=FULL as it always runs). Both bots are run with Telegram's rate limit off:
the bare bot has no limiter; cocreate runs with BROADCAST_RATE=1000 (its highest) and a
per-chat burst larger than any stream, so its budget never makes anyone wait.

Each simulated member works as a person does: sends one message, waits for the bot's
reply (all of it: cocreate's reply and next question may be two messages), then sends the
next. All members at once. The streams:

    start       newcomers send /start
    onboarding  each chooses a language, agrees, stays anonymous, skips the three "about
                you" questions (6 typed choices each)
    story       each starts a story, sends its three parts, and saves it (5 updates each)
    answers     each types an answer to an open question the organiser asked them all

For each stream it prints updates a second for both bots, their ratio (cocreate / bare;
the goal is at least 0.8 on every stream), and each bot's CPU time per update (user+system
of the bot's process only: the emulator and this driver are other processes).

BENCH_PROFILE=/tmp/prof.raw records py-spy's samples of cocreate's process while it runs
(`pip install py-spy` first; it is not a dependency), to find where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:BENCH-updates-not-a-real-token"
ORGANISER = 1
PROBE = 2
FIRST_MEMBER = 1000
TICKS = os.sysconf("SC_CLK_TCK")

ONBOARDING = ["English", "Yes, I agree", "Stay anonymous", "Skip", "Skip", "Skip"]
STORY = [
    "story",
    "The bus did not come for an hour, so I missed my appointment at the clinic.",
    "I felt let down and had to pay for a taxi I could not afford.",
    "A text when the bus is cancelled, and a later appointment.",
    "save",
]
ANSWER = "More buses in the evening, and a shelter at the stop near the shops."
ASK = ["/ask", "What would make the bus better?", "open", "All members", "Now", "No reminder"]


# ---- the bare bot (run as `bench/updates.py --bare-bot URL`)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bare_bot(base_url: str) -> None:
    """A python-telegram-bot bot that replies "ok" to every update, with ptb's defaults."""
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, TypeHandler

    async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.callback_query is not None:
            await update.callback_query.answer()
        if update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, "ok")

    app = ApplicationBuilder().token(TOKEN).base_url(base_url).build()
    app.add_handler(TypeHandler(Update, reply))
    app.run_polling(timeout=10)


# ---- processes


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    base_url: str
    file_url: str
    control: str


def start_emulator(*, rate_limit: bool = False) -> Emulator:
    flood = ["--rate-limit"] if rate_limit else []
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--token", TOKEN, *flood],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    base_url = lines[0].split("base_url ")[1].strip()
    file_url = lines[1].split("base_url ")[1].strip()
    control = lines[2].split("member API ")[1].split()[0].rstrip("/")
    return Emulator(process, base_url, file_url, control)


def start_cocreate(
    emulator: Emulator,
    folder: Path,
    *,
    rate: int = 1000,
    burst: int = 1000,
    extra: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`cocreate run` in its own process, on a SQLite file in `folder` unless `extra` (more
    settings, e.g. DATABASE_URL, WEBHOOK_URL, WEB_PORT) says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ABOUT_", "WEB"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=emulator.base_url,
        TELEGRAM_FILE_BASE_URL=emulator.file_url,
        DATABASE_URL=f"sqlite:///{folder / 'cocreate.db'}",
        MEDIA_DIR=str(folder / "media"),
        ORGANISER_IDS=str(ORGANISER),
        QUIET_HOURS="",
        BROADCAST_RATE=str(rate),
        CHAT_BURST=str(burst),
        LOG_LEVEL="WARNING",
        WEB_PORT=str(free_port()),  # the workbench, on a port nobody uses
    )
    env.update(extra or {})
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], cwd=folder, env=env, stderr=open(folder / "log", "a")
    )
    if os.environ.get("BENCH_PROFILE"):  # py-spy's samples of the bot, for finding hot spots
        out = os.environ["BENCH_PROFILE"]
        spy = ["py-spy", "record", "--format", "raw", "-r", "250", "-o", out, "-p", str(bot.pid)]
        subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return bot


def start_bare(emulator: Emulator) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--bare-bot", emulator.base_url],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ---- members, through the emulator's member API


class Driver:
    def __init__(self, http: aiohttp.ClientSession, control: str) -> None:
        self.http, self.control = http, control
        self.seen: dict[int, int] = {}

    async def send(self, user: int, text: str) -> None:
        async with self.http.post(f"{self.control}/users/{user}/send", json={"text": text}) as r:
            r.raise_for_status()

    async def replies(self, user: int, count: int, timeout: float = 60) -> list[str]:
        """Waits for `count` new bot messages in the chat; returns their texts."""
        texts: list[str] = []
        deadline = time.monotonic() + timeout
        while len(texts) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"user {user}: {len(texts)} of {count} replies")
            params = {"after": str(self.seen.get(user, 0)), "timeout": str(min(left, 20))}
            async with self.http.get(f"{self.control}/chats/{user}/wait", params=params) as r:
                messages = await r.json()
            fresh = [m for m in messages if m["message_id"] > self.seen.get(user, 0)]
            for message in sorted(fresh, key=lambda m: m["message_id"]):
                texts.append(message.get("text") or "")
                self.seen[user] = message["message_id"]
        return texts

    async def settle(self, user: int, quiet: float = 0.4) -> int:
        """Counts the bot's messages until it has been quiet for `quiet` seconds."""
        count = 0
        while True:
            params = {"after": str(self.seen.get(user, 0)), "timeout": str(quiet)}
            async with self.http.get(f"{self.control}/chats/{user}/wait", params=params) as r:
                fresh = [m for m in await r.json() if m["message_id"] > self.seen.get(user, 0)]
            if not fresh:
                return count
            count += len(fresh)
            self.seen[user] = max(m["message_id"] for m in fresh)

    async def step(self, user: int, text: str, expect: int) -> None:
        await self.send(user, text)
        await self.replies(user, expect)


async def calibrate(driver: Driver, user: int, steps: Sequence[str]) -> list[int]:
    """How many messages the bot sends for each step (one member, step by step)."""
    counts = []
    for text in steps:
        await driver.send(user, text)
        counts.append(await driver.settle(user))
    return counts


async def stream(driver: Driver, users: list[int], steps: Sequence[str], counts: list[int]) -> int:
    async def one(user: int) -> None:
        for text, count in zip(steps, counts, strict=True):
            await driver.step(user, text, max(count, 1))

    await asyncio.gather(*(one(u) for u in users))
    return len(users) * len(steps)


@dataclass
class Figure:
    updates: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.updates


async def run_streams(bot: str, emulator: Emulator, pid: int, members: int) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        driver = Driver(http, emulator.control)
        # Ready: the bot answers someone.
        deadline = time.monotonic() + 30
        await driver.send(PROBE, "/start")
        await driver.replies(PROBE, 1, timeout=deadline - time.monotonic())
        await driver.settle(PROBE)
        # One member (not timed) shows how many messages each step brings.
        scout = FIRST_MEMBER - 1
        plan = {
            "start": ["/start"],
            "onboarding": ONBOARDING,
            "story": STORY,
            "answers": [ANSWER],
        }
        counts = {name: await calibrate(driver, scout, steps) for name, steps in plan.items()}
        if bot == "bare":
            counts = {name: [1] * len(c) for name, c in counts.items()}
        users = list(range(FIRST_MEMBER, FIRST_MEMBER + members))
        for name, steps in plan.items():
            if name == "answers" and bot == "cocreate":
                for text in ASK:
                    await driver.send(ORGANISER, text)
                    await driver.settle(ORGANISER, quiet=0.3)
                await driver.send(ORGANISER, "Send")
                # Every member gets the question before the stream starts.
                await asyncio.gather(*(driver.replies(u, 1) for u in users))
                await driver.settle(ORGANISER, quiet=0.3)
            cpu = cpu_seconds(pid)
            started = time.monotonic()
            updates = await stream(driver, users, steps, counts[name])
            figures[name] = Figure(updates, time.monotonic() - started, cpu_seconds(pid) - cpu)
    return figures


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def main(members: int, only: str | None) -> None:
    results: dict[str, dict[str, Figure]] = {}
    for bot in ("bare", "cocreate"):
        if only and bot != only:
            continue
        emulator = start_emulator()
        with tempfile.TemporaryDirectory() as folder:
            process = (
                start_bare(emulator) if bot == "bare" else start_cocreate(emulator, Path(folder))
            )
            try:
                results[bot] = await run_streams(bot, emulator, process.pid, members)
            finally:
                stop(process)
                emulator.process.send_signal(signal.SIGTERM)
                emulator.process.wait(timeout=10)
                if bot == "cocreate":
                    log = (Path(folder) / "log").read_text()
                    if "Traceback" in log or "ERROR" in log:
                        print(log[-3000:], file=sys.stderr)
    print(f"{members} members at once; Telegram's rate limit off; {os.cpu_count()} CPUs")
    print(f"{'stream':<11} {'bare/s':>8} {'cocreate/s':>11} {'ratio':>6} {'CPU ms/update':>20}")
    for name in ("start", "onboarding", "story", "answers"):
        bare = results.get("bare", {}).get(name)
        ours = results.get("cocreate", {}).get(name)
        ratio = f"{ours.rate / bare.rate:6.2f}" if bare and ours else "     -"
        cpu = f"{bare.cpu_ms if bare else 0:6.2f} vs {ours.cpu_ms if ours else 0:6.2f}"
        print(
            f"{name:<11} {bare.rate if bare else 0:8.0f} {ours.rate if ours else 0:11.0f} "
            f"{ratio} {cpu:>20}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-bot":
        bare_bot(sys.argv[2])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--only", choices=["bare", "cocreate"])
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.members, args.only))

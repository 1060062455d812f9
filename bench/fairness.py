"""Bench: fair to everyone, and interactive before bulk.

    .venv/bin/python bench/fairness.py [--flood 600] [--tries 50] [--members 10000]

The project's Bot API emulator and cocreate (`python -m bot run`, BROADCAST_RATE=30 and
CHAT_BURST=20 as it runs by default) each run in their own process; this script plays the
people, through the emulator's member API.

(a) Flooding. One member sends --flood messages, 50 at once twice a second. Meanwhile 10
    other members write --tries times in all (each a second after their last answer, as a
    person reading it would) and time each reply. Prints their p50 / p95 / worst wait
    (goal: p95 within 1 s), and how many messages the flooder got back (goal: one calm "we
    got your messages", then an answer to their last one; not one each).
(b) Interactive before bulk. --members members are put straight into the database (and the
    emulator), then the organiser broadcasts to all of them through chat: 30 a second for
    about --members / 30 seconds. While it goes, 10 members write --tries times, as in (a).
    Prints their p50 / p95 / worst wait (goal: p95 within 1 s), and the most messages that
    reached the emulator in any 1-second window (goal: never above 30), and how many 429s the
    emulator, with Telegram's flood limit on, answered (goal: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.updates import (
    ONBOARDING,
    ORGANISER,
    Driver,
    start_cocreate,
    start_emulator,
    stop,
)
from storage.store import Store

FLOODER, FIRST_WRITER, WRITERS, FIRST_BULK = 7001, 7100, 10, 100_000
WRITER_IDS = list(range(FIRST_WRITER, FIRST_WRITER + WRITERS))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def join(driver: Driver, user: int) -> None:
    for text in ["/start", *ONBOARDING]:
        await driver.send(user, text)
        await driver.settle(user, quiet=0.3)


async def tries(driver: Driver, count: int) -> list[float]:
    """WRITERS members write `count` times in all, each once in a while as people do (a
    second or so after their last answer); the waits for their replies."""
    waits: list[float] = []

    async def writer(user: int, times: int) -> None:
        for _ in range(times):
            started = time.monotonic()
            await driver.send(user, "/help")
            await driver.replies(user, 1, timeout=60)
            waits.append(time.monotonic() - started)
            await driver.settle(user, quiet=1.0)  # reading (and the rest of the reply)

    share, extra = divmod(count, WRITERS)
    await asyncio.gather(*(writer(u, share + (i < extra)) for i, u in enumerate(WRITER_IDS)))
    return waits


def describe(name: str, waits: list[float]) -> str:
    return (
        f"{name}: {len(waits)} replies, p50 {percentile(waits, 0.5):.3f} s, "
        f"p95 {percentile(waits, 0.95):.3f} s, worst {max(waits):.3f} s (goal: p95 <= 1 s)"
    )


async def flooding(control: str, flood: int, count: int) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        driver = Driver(http, control)
        await asyncio.gather(*(join(driver, u) for u in [FLOODER, *WRITER_IDS]))

        async def flood_them() -> float:
            # 50 at once, twice a second: the flood lasts while the others write.
            started = time.monotonic()
            for start in range(0, flood, 50):
                await asyncio.gather(
                    *(driver.send(FLOODER, f"hello? {n}") for n in range(start, start + 50))
                )
                await asyncio.sleep(0.5)
            await driver.send(FLOODER, "menu")
            return time.monotonic() - started

        flood_task = asyncio.create_task(flood_them())
        await asyncio.sleep(0.2)  # the flood is under way
        waits = await tries(driver, count)
        sent_in = await flood_task
        got = await driver.settle(FLOODER, quiet=3.0)
        print(f"(a) one member sent {flood + 1} messages in {sent_in:.1f} s")
        print("    " + describe(f"{WRITERS} other members", waits))
        print(f"    the flooder got {got} messages back (not {flood + 1})")


def add_members(database: Path, count: int) -> None:
    with sqlite3.connect(database) as db:
        db.executemany(
            "INSERT INTO members (telegram_user_id, chat_id, language, joined_at, onboarded_at)"
            " VALUES (?, ?, 'en', '2026-11-01T10:00:00+00:00', '2026-11-01T10:00:00+00:00')",
            [(FIRST_BULK + n, FIRST_BULK + n) for n in range(count)],
        )


async def bulk(control: str, members: int, count: int) -> tuple[list[float], int]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        driver = Driver(http, control)
        # Each member has written to the bot before, so it may write to them.
        ids = list(range(FIRST_BULK, FIRST_BULK + members))
        async with http.post(f"{control}/chats/open", json={"ids": ids}) as r:
            r.raise_for_status()
        await asyncio.gather(*(join(driver, u) for u in WRITER_IDS))
        for text in ["/broadcast", "The new bus times start on Monday.", "All members", "Now"]:
            await driver.send(ORGANISER, text)
            await driver.settle(ORGANISER, quiet=0.3)
        sent: list[tuple[float, int]] = []

        async def watch() -> None:
            while True:
                async with http.get(f"{control}/state") as r:
                    state = await r.json()
                sent.append((time.monotonic(), sum(state["sent"].values())))
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch())
        await driver.send(ORGANISER, "Send")
        await asyncio.sleep(2)  # the broadcast is under way
        waits = await tries(driver, count)
        await asyncio.sleep(2)
        watcher.cancel()
        most = 0
        for i, (at, total) in enumerate(sent):
            later = [n for t, n in sent[i:] if t - at <= 1.0]
            most = max(most, later[-1] - total)
        (first_at, first), (last_at, last) = sent[0], sent[-1]
        print(f"    sent {last - first} in {last_at - first_at:.1f} s while measuring")
        async with http.get(f"{control}/state") as r:
            refused = (await r.json())["flood_refused"]
        print(f"    429s the emulator answered (Telegram's 30 a second): {refused}")
        return waits, most


async def main(flood: int, count: int, members: int) -> None:
    for part in ("flood", "bulk"):
        emulator = start_emulator(rate_limit=True)  # 429 past Telegram's 30 a second
        with tempfile.TemporaryDirectory() as folder:
            process = None
            try:
                if part == "bulk":
                    database = Path(folder) / "cocreate.db"
                    store = await Store.open(database, lambda: datetime.now(UTC))
                    await store.close()
                    add_members(database, members)
                process = start_cocreate(emulator, Path(folder), rate=30, burst=20)
                await asyncio.sleep(2)
                if part == "flood":
                    await flooding(emulator.control, flood, count)
                else:
                    waits, most = await bulk(emulator.control, members, count)
                    print(f"(b) a broadcast to {members} members at 30 a second")
                    print("    " + describe(f"{WRITERS} members writing meanwhile", waits))
                    print(f"    most messages in any 1-second window: {most} (goal: <= 30)")
            finally:
                if process is not None:
                    stop(process)
                emulator.process.terminate()
                emulator.process.wait(timeout=10)
                log = (Path(folder) / "log").read_text()
                if "Traceback" in log:
                    print(log[-3000:], file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=600)
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.flood, args.tries, args.members))

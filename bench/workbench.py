"""Bench: the staff workbench of `cocreate run` on a large database, against the emulator.

    .venv/bin/python bench/workbench.py [--members 100000] [--responses 1000000]
        [--requests 40] [--also "/path?q=words" ...] [--live 5] [--db-dir DIR] [--keep]

Builds the database as bench/scale.py does (its `build`: members with "about you" answers,
stories and ideas with their parts, answers over sent question rounds), starts
`python -m bot run` in its own process with the workbench on a free port, and signs the
organiser in through storage (a one-time link made and used with storage/web_sessions.py, as
the sign-in page does: the cookie is the session's token). Then it measures, each against
its goal (issue 13):
  pages   every page the workbench has now (the overview, and each page in the menu,
          bot/web/pages/), and a project's poster (PDF): --requests GETs each, one at a
          time; p95 ≤ 200 ms
  search  any --also path (say the reader's search, "/stories?q=bus"); p95 ≤ 300 ms
  live    an overview open (/live, server-sent events) while a member saves a story in the
          emulator: from the member's Save to the figures showing one story more; ≤ 1 s
          (--live times; the median and the worst are printed)
No timed test depends on these figures: they are printed, to be read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

import httpx

from bench.scale import (
    OLD_INBOX,
    STAFF,
    TOKEN,
    build,
    button,
    cpu_model,
    free_port,
    has_button,
    start_bot,
    stop_bot,
    wait_for,
)
from bot.catalogue import t
from bot.web import pages
from bot.web.access import SESSION_COOKIE
from emulator import Emulator, SimUser
from storage.store import Store

GOALS = {"page": 0.200, "search": 0.300, "live": 1.0}
STORIES = re.compile(r'<dd id="count-stories">([^<]*)</dd>')
WARM_UP = 3


def paths_to_measure() -> list[str]:
    """The overview, every page in the menu now, and the first project's poster."""
    found = ["/"]
    for page in pages.PAGES:
        if page.NAV is not None:
            found.append(page.NAV[0])
    if "/projects" in found:
        found.append("/projects/project-1/poster-en.pdf")
    return found


async def sign_in_through_storage(db: Path) -> str:
    """A session for the organiser, made as the sign-in page makes one; returns its token."""
    store = await Store.open(db, lambda: datetime.now(UTC))
    try:
        link = await store.web_sessions.make_link(STAFF)
        result = await store.web_sessions.sign_in(link)
        assert result.token is not None, result.state
        return result.token
    finally:
        await store.close()


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


async def timed_gets(http: httpx.AsyncClient, path: str, n: int) -> tuple[list[float], int]:
    """`n` GETs of a path, one at a time, after a warm-up; their seconds and the last status."""
    status = 0
    for _ in range(WARM_UP):
        status = (await http.get(path)).status_code
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = await http.get(path)
        await response.aread()
        times.append(time.perf_counter() - started)
        status = response.status_code
    return times, status


def report(name: str, times: list[float], goal: float, status: int) -> None:
    worst = p95(times)
    verdict = "ok" if worst <= goal and status == 200 else "MISSED"
    middle = statistics.median(times)
    print(
        f"  {name:44} p95 {worst * 1000:7.1f} ms  (median {middle * 1000:6.1f}, max "
        f"{max(times) * 1000:6.1f}; HTTP {status})  goal ≤ {goal * 1000:g} ms  {verdict}"
    )


async def figures(http: httpx.AsyncClient) -> AsyncIterator[tuple[float, str]]:
    """The overview's figures as /live sends them, each with when it came."""
    async with http.stream("GET", "/live", timeout=None) as stream:
        event, data = "", []
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
            elif not line and data:
                if event == "figures":
                    yield time.perf_counter(), "\n".join(data)
                event, data = "", []


def stories_in(html: str) -> str:
    found = STORIES.search(html)
    return found[1] if found else "?"


async def save_a_story(member: SimUser) -> float:
    """The member shares a story through the menu; returns when they pressed Save."""
    member.send("/menu")
    share = t("en", "menu.story")
    menu = await wait_for(member, has_button(share))
    member.press(button(menu, share), message_id=menu.message_id)
    await member.next_message(timeout=30)
    for n in range(8):
        member.send(f"Words for part {n + 1} of a story about the bus.")
        reply = await member.next_message(timeout=30)
        if has_button(t("en", "sharing.save"))(reply):
            break
    else:
        raise RuntimeError("the story never offered Save")
    saved = time.perf_counter()
    member.press(button(reply, t("en", "sharing.save")), message_id=reply.message_id)
    return saved


async def live(http: httpx.AsyncClient, member: SimUser, times: int) -> list[float]:
    """From each Save to the first figures with one story more."""
    events = figures(http)
    _, first = await anext(events)
    shown = stories_in(first)
    took = []
    for _ in range(times):
        saved = asyncio.create_task(save_a_story(member))
        async with asyncio.timeout(60):
            async for at, html in events:
                now = stories_in(html)
                if now != shown:
                    shown = now
                    took.append(at - await saved)
                    break
        await saved
    return took


def a_member(db: Path) -> int:
    """An English-speaking member who joined and is still in."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT telegram_user_id FROM members WHERE onboarded_at IS NOT NULL AND"
            " stopped_at IS NULL AND unreachable_at IS NULL AND language = 'en'"
            " ORDER BY id LIMIT 1"
        ).fetchone()
    return int(row[0])


async def measure(folder: Path, db: Path, args: argparse.Namespace) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ABOUT_"))},
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite:///{db}",
        "MEDIA_DIR": str(folder / "media"),
        "ORGANISER_IDS": str(STAFF),
        "ABOUT_EXTRA_QUESTION": "Do you look after someone?",
        "ABOUT_EXTRA_OPTIONS": "Yes,No",
        "QUIET_HOURS": "",
        "LOG_LEVEL": "INFO",
        "WEB_PORT": str(port),
    }
    # Update ids above the old handled ones the database holds (bench/scale.py's OLD_INBOX).
    async with Emulator(token=TOKEN, first_id=OLD_INBOX + 1) as emu:
        env["TELEGRAM_API_BASE_URL"] = emu.base_url
        env["TELEGRAM_FILE_BASE_URL"] = emu.file_base_url
        member = emu.open_chat(a_member(db))
        emu.open_chat(STAFF, first_name="Olu")
        with (folder / "bot.log").open("wb") as log:
            proc, ready, _ = await start_bot(emu, env, log, member)
            try:
                print(f"  (the bot answered {ready.wall:.1f} s after its start)")
                cookie = await sign_in_through_storage(db)
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    cookies={SESSION_COOKIE: cookie},
                    timeout=60,
                ) as http:
                    print(f"Figures ({args.requests} GETs each, one at a time):")
                    for path in paths_to_measure():
                        got, status = await timed_gets(http, path, args.requests)
                        report(f"page {path}", got, GOALS["page"], status)
                    for path in args.also:
                        got, status = await timed_gets(http, path, args.requests)
                        report(f"search {path}", got, GOALS["search"], status)
                    if not args.also:
                        print("  search: none given (--also PATH); this tree may have none yet")
                    took = await live(http, member, args.live)
                    middle, worst = statistics.median(took), max(took)
                    verdict = "ok" if worst <= GOALS["live"] else "MISSED"
                    each = ", ".join(f"{s:.2f}" for s in took)
                    print(
                        f"  {'a saved story shows on an open overview':44} median {middle:.2f} s,"
                        f" worst {worst:.2f} s (runs {each})  goal ≤ {GOALS['live']:g} s"
                        f"  {verdict}"
                    )
            finally:
                await stop_bot(proc)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=100, help="question rounds due later")
    parser.add_argument("--requests", type=int, default=40, help="GETs of each page")
    parser.add_argument("--also", action="append", default=[], help="a search path to time")
    parser.add_argument("--live", type=int, default=5, help="stories saved while watching")
    parser.add_argument("--db-dir", type=Path, default=None, help="where the SQLite file goes")
    parser.add_argument("--keep", action="store_true", help="keep the folder (its path is printed)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="workbench-", dir=args.db_dir))
    db = folder / "data" / "cocreate.db"
    print(f"{os.cpu_count()} CPUs ({cpu_model()}); database {db}")
    started = time.perf_counter()
    counts = await build(db, args.members, args.responses, args.rounds)
    size = db.stat().st_size / 1e6
    print(
        f"Built in {time.perf_counter() - started:.1f} s ({size:.0f} MB): "
        + ", ".join(f"{n} {name}" for name, n in counts.items())
    )
    try:
        await measure(folder, db, args)
    finally:
        if args.keep:
            print(f"Kept {folder}")
        else:
            shutil.rmtree(folder)


if __name__ == "__main__":
    asyncio.run(main())

"""Exactly once after a crash: at every step of joining, telling a story, sharing an idea, a
facilitator's /ask and a member's answer to it, Telegram accepts the bot's reply but answers
slowly, and the bot is SIGKILLed while it waits.
After each restart the update is replayed from the inbox; the door must recognise it as
applied. The database afterwards equals that of the same conversation with no crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.conftest import TOKEN
from tests.test_process import BotProcess, wait_until

pytestmark = pytest.mark.process

USER = 3301
STAFF = 3399
MEMBER_STEPS = (
    "/start",
    "1",  # English
    "1",  # Yes, I agree
    "1",  # stay anonymous
    "skip",  # age
    "skip",  # area
    "2",  # the organiser's question: No
    "1",  # menu: share your story
    "The bus did not stop for my wheelchair.",
    "I was late for my appointment.",
    "skip",  # what would help
    "2",  # review: change a part
    "3",  # what would have made it better
    "A driver who waits.",
    "1",  # save
    "2",  # menu
    "2",  # menu: share an idea
    "Later buses at night.",
    "skip",  # who it helps
    "1",  # volunteer: yes
    "1",  # save
)
STAFF_STEPS = (
    "/ask",
    "Is the park safe at night?",
    "1",  # in their own words
    "1",  # everyone
    "1",  # now
    "1",  # no reminder
    "1",  # send: the question also reaches the member
)
SENT = len(MEMBER_STEPS) + len(STAFF_STEPS) - 1  # the step that sends the question
# Typed everywhere (every button can be typed as its number or word): who says what.
SCRIPT = (
    *((USER, said) for said in MEMBER_STEPS),
    *((STAFF, said) for said in STAFF_STEPS),
    (USER, "Not after dark, the lights are out."),  # the answer to the question
)
# Bookkeeping that differs between two runs whatever happens: when, and Telegram's ids (the
# id of a message whose slow answer never reached the killed bot cannot be known to it).
IGNORED_TABLES = {"inbox", "audit_log", "app_secrets", "outbox", "delivery_batches"}
IGNORED_COLUMNS = {"last_update_id"}
IGNORED_SESSION_KEYS = {"prompt_message"}


def contents(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, without times and bookkeeping."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        found: dict[str, list[tuple[Any, ...]]] = {}
        for table in sorted(set(tables) - IGNORED_TABLES):
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            found[table] = [
                tuple(
                    row[k] for k in row.keys() if not k.endswith("_at") and k not in IGNORED_COLUMNS
                )
                for row in rows
            ]
        found["sessions"] = [
            (*row[:3], drop_keys(row[3], IGNORED_SESSION_KEYS)) for row in found["sessions"]
        ]
        return found


def drop_keys(data: str, keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in json.loads(data).items() if k not in keys}


async def run(tmp_path: Path, emulator: Emulator, *, crash_at: range) -> dict[str, Any]:
    """Plays the script, crashing on the first reply of each step in `crash_at`; returns the
    data."""
    bot = BotProcess(tmp_path, emulator, ORGANISER_IDS=str(STAFF), QUIET_HOURS="")
    await bot.start()
    people = {USER: emulator.user(USER, first_name="Ann"), STAFF: emulator.user(STAFF)}
    try:
        for step, (who, said) in enumerate(SCRIPT):
            crash = step in crash_at
            if crash:
                emulator.faults.add("sendMessage", delay=60, chat_id=who, accept_first=True)
            update_id = people[who].send(said)
            await people[who].wait_messages(1, timeout=30)  # Telegram has the reply
            if crash:
                await bot.kill()  # while the bot waits for Telegram's slow answer
                emulator.faults.clear()
                await bot.start()
            if step == SENT:  # the question reaches the member (after the restart, if any)
                await people[USER].wait_messages(1, timeout=30)
            await wait_until(partial(settled, bot.db, update_id))
            for someone in people.values():
                someone.unread()  # whatever else the step sent: the next step's reply is its own
    finally:
        if bot.proc is not None and bot.proc.returncode is None:
            await bot.kill()
    return contents(bot.db)


def settled(db: Path, update_id: int) -> bool:
    """Whether the step is over: its update handled, nothing else unfinished in the inbox, and
    everything it queued (a question, its delivery report) sent or given up."""
    with sqlite3.connect(db) as conn:
        handled = conn.execute(
            "SELECT done_at IS NOT NULL FROM inbox WHERE update_id = ?", (update_id,)
        ).fetchone()
        waiting = conn.execute(
            "SELECT (SELECT COUNT(*) FROM inbox WHERE done_at IS NULL)"
            " + (SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending'))"
            " + (SELECT COUNT(*) FROM delivery_batches WHERE finished_at IS NULL"
            "    OR (reported_at IS NULL AND author_chat_id IS NOT NULL))"
        ).fetchone()[0]
    return bool(handled and handled[0]) and waiting == 0


@pytest.mark.long(order=3)
async def test_a_replayed_update_changes_nothing_at_any_step(tmp_path: Path) -> None:
    # Every step is crashed at, in one of two stormy runs (the first half of the steps, the
    # second half); each plays the whole script and must end with the calm run's data. The
    # runs are independent (each its own emulator, bot and database): they go at once, so the
    # restarts, most of the test's time, share out over the machine's cores.
    half = len(SCRIPT) // 2
    runs = {"calm": range(0), "stormy-early": range(half), "stormy-late": range(half, len(SCRIPT))}
    async with contextlib.AsyncExitStack() as stack:
        played = []
        for name, crash_at in runs.items():
            emulator = await stack.enter_async_context(Emulator(token=TOKEN))
            (tmp_path / name).mkdir()
            played.append(run(tmp_path / name, emulator, crash_at=crash_at))
        expected, *stormy = await asyncio.gather(*played)
    assert expected["submissions"] and expected["submission_parts"] and expected["answers"]
    assert sorted(step for name in runs for step in runs[name]) == list(range(len(SCRIPT)))
    for got in stormy:
        assert got == expected

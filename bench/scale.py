"""Bench: `cocreate run` on a large database, against the emulator.

    .venv/bin/python bench/scale.py [--members 100000] [--responses 1000000] [--rounds 1000]
                                    [--db-dir DIR] [--keep]

Builds a database the project's own way (storage.Database.open makes and migrates it), then
fills it fast with direct SQL (executemany, one transaction): --members members (with
consent receipts, a project each, "about you" answers and a session row), --responses
responses (stories and ideas with their parts, over the kinds in storage/kinds.py, and
answers spread over sent question rounds), --rounds question rounds scheduled in the future,
the outbox rows of the latest sent rounds, and old handled inbox rows (for the daily prune).

Then `python -m bot run` starts in its own process (the emulator stays in this one, as in
tests/test_process.py) and this measures, each against its goal (issue 11, "Scale"):
  ready      process start to the first reply to a member's message (sent before the start)
             ≤ 3 s
  RSS        resident memory of the bot process after start, and after a broadcast to
             everyone is queued ≤ 200 MB (peak, VmHWM, is printed too)
  broadcast  the facilitator's Send to every outbox row written (the broadcast marked sent,
             which happens after its rows commit) ≤ 10 s
  /stats     the command to its last message ≤ 1 s (idle, and again while the broadcast
             goes out)
Every member's chat is open in the emulator, so the broadcast really goes out (at 30/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bot.catalogue import t
from emulator import Emulator, SimUser
from emulator.state import BotMessage
from storage.kinds import all_kinds
from storage.sqlite_db import SqliteDatabase

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:BENCH-not-a-real-token"
FIRST_USER = 10_000_000  # members' Telegram ids (and chat ids) start here
STAFF = 901  # the organiser who asks for /stats and broadcasts
AREAS = [f"Area {i}" for i in range(20)]
AGES = ["16_24", "25_44", "45_64", "65_plus", "prefer_not_to_say"]
SENT_ROUNDS = 100  # past rounds the answers are spread over
OUTBOX_ROUNDS = 10  # the latest sent rounds keep their outbox rows (for /stats)
OUTBOX_PER_ROUND = 30_000
OLD_INBOX = 50_000
# What members' stories and ideas are made of (eight of these a part): "bus" is in about a
# quarter of the items, "library" and "clinic" together in fewer.
WORDS = (
    "the bus was late again and we waited in the rain near the clinic for an hour "
    "library opening hours park lights benches lift broken station stop street evening "
    "week neighbour flats roof gate shopping children school doctor"
).split()
GOALS = {"ready": 3.0, "rss": 200.0, "broadcast": 10.0, "stats": 1.0}


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def when(base: datetime, seconds: float) -> str:
    return (base + timedelta(seconds=seconds)).replace(microsecond=0).isoformat()


Row = tuple[object, ...]


def chunks(rows: Iterator[Row], size: int = 50_000) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def insert(conn: sqlite3.Connection, sql: str, rows: Iterator[Row]) -> int:
    n = 0
    for batch in chunks(rows):
        conn.executemany(sql, batch)
        n += len(batch)
    return n


async def build(path: Path, members: int, responses: int, rounds: int) -> dict[str, int]:
    """Makes and migrates the database the bot's way, then fills it with direct SQL."""
    db = await SqliteDatabase.open(path)
    await db.close()
    rng = random.Random(11)
    now = datetime.now(UTC)
    start = now - timedelta(days=400)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    counts: dict[str, int] = {}
    ids = range(1, members + 1)
    conn.executemany(
        "INSERT INTO projects (id, code, name, created_at) VALUES (?, ?, ?, ?)",
        [(p, f"project-{p}", f"Project {p}", when(start, 0)) for p in range(1, 6)],
    )

    def member_rows() -> Iterator[Row]:
        for i in ids:
            joined = when(start, i * 300)
            r = rng.random()
            yield (
                i,
                FIRST_USER + i,
                FIRST_USER + i,
                "cy" if i % 10 == 0 else "en",
                joined,
                joined if r > 0.03 else None,  # 3% still joining
                joined if 0.03 < r < 0.05 else None,  # 2% stopped
                joined if 0.05 < r < 0.06 else None,  # 1% blocked the bot
            )

    counts["members"] = insert(
        conn,
        "INSERT INTO members (id, telegram_user_id, chat_id, language, joined_at, onboarded_at,"
        " stopped_at, unreachable_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        member_rows(),
    )
    insert(
        conn,
        "INSERT INTO consent_receipts (member_id, consent_version, language, agreed_to,"
        " agreed_at) VALUES (?, '1', 'en', '[\"stories\"]', ?)",
        ((i, when(start, i * 300)) for i in ids),
    )
    insert(
        conn,
        "INSERT INTO member_projects (member_id, project_id, joined_at) VALUES (?, ?, ?)",
        ((i, 1 + i % 5, when(start, i * 300)) for i in ids),
    )

    def about_rows() -> Iterator[Row]:
        for i in ids:
            at = when(start, i * 300)
            if rng.random() < 0.7:
                yield (i, "age_band", rng.choice(AGES), at)
            if rng.random() < 0.6:
                yield (i, "area", rng.choice(AREAS), at)
            if rng.random() < 0.5:
                yield (i, "extra", rng.choice(["Yes", "No"]), at)

    counts["about_you"] = insert(
        conn,
        "INSERT INTO about_you (member_id, field, answer, answered_at) VALUES (?, ?, ?, ?)",
        about_rows(),
    )
    insert(
        conn,
        "INSERT INTO sessions (user_id, data, updated_at) VALUES (?, '{}', ?)",
        ((FIRST_USER + i, when(start, i * 300)) for i in ids),
    )

    # Rounds: SENT_ROUNDS sent in the past (answers are spread over them), then `rounds`
    # scheduled in the future, one question each (daily, weekly or once). The questions sent
    # are the newest (the highest ids): /stats counts the latest ten.
    for q in range(1, SENT_ROUNDS + rounds + 1):
        past = q <= SENT_ROUNDS
        question = q + rounds if past else q - SENT_ROUNDS
        due = when(now, (q - SENT_ROUNDS - 1) * 86_400 / 2 if past else (q - SENT_ROUNDS) * 3600)
        kind = ("open", "choice", "scale", "yesno")[q % 4]
        options = json.dumps(["Mon", "Wed", "Sat"] if kind == "choice" else [])
        repeat = "once" if past else ("once", "daily", "weekly")[q % 3]
        conn.execute(
            "INSERT INTO questions (id, author_id, author_chat_id, text, kind, options,"
            " audience, repeat, starts_at, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'everyone', ?, ?, ?, ?)",
            (
                question,
                STAFF,
                STAFF,
                f"Question {question}: how was it?",
                kind,
                options,
                repeat,
                due,
                "finished" if past else "scheduled",
                due,
            ),
        )
        conn.execute(
            "INSERT INTO question_rounds (id, question_id, due_at, status, sent_at, closes_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                q,
                question,
                due,
                "sent" if past else "due",
                due if past else None,
                when(datetime.fromisoformat(due), 7 * 86_400) if past else None,
            ),
        )
    counts["rounds_due"] = rounds

    # The latest sent rounds keep their outbox rows: /stats counts who was sent each.
    outbox = 0
    for q in range(SENT_ROUNDS - OUTBOX_ROUNDS + 1, SENT_ROUNDS + 1):
        due = conn.execute("SELECT due_at FROM question_rounds WHERE id = ?", (q,)).fetchone()[0]
        cur = conn.execute(
            "INSERT INTO delivery_batches (kind, ref_id, created_at, finished_at, reported_at)"
            " VALUES ('question', ?, ?, ?, ?)",
            (q, due, due, due),
        )
        batch = cur.lastrowid
        conn.execute("UPDATE question_rounds SET batch_id = ? WHERE id = ?", (batch, q))
        to = rng.sample(range(1, members + 1), min(OUTBOX_PER_ROUND, members))
        outbox += insert(
            conn,
            "INSERT INTO outbox (batch_id, member_id, chat_id, text, status, not_before,"
            " created_at, sent_at, telegram_message_id) VALUES (?, ?, ?, ?, 'sent', ?, ?, ?, ?)",
            ((batch, m, FIRST_USER + m, f"Question {q}", due, due, due, m) for m in to),
        )
    counts["outbox"] = outbox

    # Responses: a quarter stories and ideas (over every kind), the rest answers.
    kinds = all_kinds()
    shared = responses // 4
    answers = responses - shared

    def submission_rows() -> Iterator[Row]:
        for s in range(1, shared + 1):
            kind = kinds[s % len(kinds)]
            at = when(start, s * 30)
            status = "draft" if s % 50 == 0 else "submitted"
            yield (
                s,
                1 + rng.randrange(members),
                kind.key,
                status,
                "en",
                at,
                at if status == "submitted" else None,
            )

    counts["submissions"] = insert(
        conn,
        "INSERT INTO submissions (id, member_id, kind, status, language, created_at,"
        " submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        submission_rows(),
    )

    def part_rows() -> Iterator[Row]:
        for s in range(1, shared + 1):
            kind = kinds[s % len(kinds)]
            at = when(start, s * 30)
            for part in kind.parts:
                said = " ".join(rng.choice(WORDS) for _ in range(8))
                yield (s, part, f"{said.capitalize()}, number {s}.", at)

    counts["submission_parts"] = insert(
        conn,
        "INSERT INTO submission_parts (submission_id, part, text, updated_at) VALUES (?, ?, ?, ?)",
        part_rows(),
    )
    # The search index, as the bot's trigger fills it when a story or idea is saved.
    conn.execute(
        "INSERT INTO submission_search (rowid, text)"
        " SELECT p.submission_id, group_concat(p.text, char(10)) FROM submission_parts p"
        " JOIN submissions s ON s.id = p.submission_id"
        " WHERE s.status = 'submitted' AND p.text IS NOT NULL GROUP BY p.submission_id"
    )

    def answer_rows() -> Iterator[Row]:
        per_round = -(-answers // SENT_ROUNDS)
        left = answers
        for q in range(1, SENT_ROUNDS + 1):
            n = min(per_round, left, members)
            left -= n
            kind = ("open", "choice", "scale", "yesno")[q % 4]
            for m in rng.sample(range(1, members + 1), n):
                choice = {"open": None, "choice": "2", "scale": "4", "yesno": "yes"}[kind]
                text = "An answer in words." if kind == "open" else None
                at = when(now, (q - SENT_ROUNDS) * 43_200)
                yield (q, m, choice, text, at, at)

    counts["answers"] = insert(
        conn,
        "INSERT INTO answers (round_id, member_id, choice, text, answered_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        answer_rows(),
    )
    # Handled updates from days ago (Telegram forgets them after 24 hours): the daily prune.
    counts["old_inbox"] = insert(
        conn,
        "INSERT INTO inbox (update_id, payload, received_at, done_at) VALUES (?, NULL, ?, ?)",
        (
            (u, when(now, u - 5 * 86_400), when(now, u - 5 * 86_400))
            for u in range(1, OLD_INBOX + 1)
        ),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts


async def first_calls(emu: Emulator, methods: tuple[str, ...], found: dict[str, float]) -> None:
    """Notes in `found` when each Bot API method is first called from now (checked every
    2 ms)."""
    checked = len(emu.calls)
    while True:
        calls = emu.calls
        for name, _ in calls[checked:]:
            if name in methods and name not in found:
                found[name] = time.perf_counter()
        checked = len(calls)
        await asyncio.sleep(0.002)


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


async def wait_for(
    user: SimUser, found: Callable[[BotMessage], bool], timeout: float = 60
) -> BotMessage:
    """Waits for a new message from the bot to `user` that `found` accepts."""
    async with asyncio.timeout(timeout):
        while True:
            for message in user.unread():
                if found(message):
                    return message
            await asyncio.sleep(0.005)


def has_button(label: str) -> Callable[[BotMessage], bool]:
    return lambda m: any(
        text == label or text.partition(". ")[2] == label for row in m.buttons for text in row
    )


def button(message: BotMessage, label: str) -> str:
    return next(
        text
        for row in message.buttons
        for text in row
        if text == label or text.partition(". ")[2] == label
    )


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used (user and system), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Took:
    """How long something took: wall-clock seconds, and the bot process's CPU seconds."""

    wall: float
    cpu: float


def median(runs: list[Took]) -> Took:
    return sorted(runs, key=lambda r: r.wall)[len(runs) // 2]


def report(name: str, value: float, goal: float, unit: str, note: str = "") -> None:
    verdict = "ok" if value <= goal else "MISSED"
    print(f"  {name:44} {value:7.2f} {unit:2}  goal ≤ {goal:g} {unit:2}  {verdict:6}  {note}")


def report_time(name: str, runs: list[Took], goal: float) -> None:
    middle = median(runs)
    each = ", ".join(f"{r.wall:.2f}" for r in runs)
    note = f"(bot CPU {middle.cpu:.2f} s{'; runs ' + each if len(runs) > 1 else ''})"
    report(name, middle.wall, goal, "s", note)


async def stats(staff: SimUser, pid: int) -> Took:
    """From /stats to its last message."""
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    staff.send("/stats")
    note = t("en", "stats.small_note")
    await wait_for(staff, lambda m: m.text == note)
    return Took(time.perf_counter() - started, cpu_seconds(pid) - cpu)


async def start_bot(
    emu: Emulator, env: dict[str, str], log: BinaryIO, member: SimUser
) -> tuple[asyncio.subprocess.Process, Took, dict[str, float]]:
    """Starts `python -m bot run` with a member's message waiting in Telegram; returns the
    process once it has answered, how long that took, and when it first called getMe and
    getUpdates (seconds from the start)."""
    member.send("/menu")
    found: dict[str, float] = {}
    seen = asyncio.create_task(first_calls(emu, ("getme", "getupdates"), found))
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        await member.next_message(timeout=120)
        ready = Took(time.perf_counter() - started, cpu_seconds(proc.pid))
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    finally:
        seen.cancel()
    return proc, ready, {name: at - started for name, at in found.items()}


async def stop_bot(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    await proc.wait()


async def broadcast(staff: SimUser, db: Path, pid: int) -> tuple[Took, int]:
    """Goes through /broadcast to everyone, now; returns how long from Send until every
    outbox row was written (the broadcast is marked sent after its rows commit), and how
    many rows."""
    staff.send("/broadcast")
    await wait_for(staff, lambda m: m.text == t("en", "staff.broadcast.text"))
    staff.send("You said the path was dark. We have put in three new lights.")
    everyone = t("en", "staff.audience.everyone")
    staff.press(button(await wait_for(staff, has_button(everyone)), everyone))
    now = t("en", "staff.when.now")
    staff.press(button(await wait_for(staff, has_button(now)), now))
    send = t("en", "staff.send")
    preview = await wait_for(staff, has_button(send), timeout=120)
    check = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count = "SELECT COUNT(*) FROM broadcasts WHERE status = 'sent'"
        (before,) = check.execute(count).fetchone()
        started, cpu = time.perf_counter(), cpu_seconds(pid)
        staff.press(button(preview, send))
        while check.execute(count).fetchone()[0] == before:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.01)
        took = Took(time.perf_counter() - started, cpu_seconds(pid) - cpu)
        (rows,) = check.execute(
            "SELECT COUNT(*) FROM outbox WHERE batch_id ="
            " (SELECT batch_id FROM broadcasts ORDER BY id DESC LIMIT 1)"
        ).fetchone()
    finally:
        check.close()
    return took, int(rows)


async def measure(folder: Path, db: Path, members: int, starts: int, repeats: int) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ABOUT_"))},
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite:///{db}",
        "MEDIA_DIR": str(folder / "media"),
        "ORGANISER_IDS": str(STAFF),
        # Our code is measured, not Telegram's limit of about one message a second to one
        # chat: the organiser's chat gets many at once (/stats is five messages).
        "CHAT_BURST": "1000",
        "ABOUT_EXTRA_QUESTION": "Do you look after someone?",
        "ABOUT_EXTRA_OPTIONS": "Yes,No",
        "QUIET_HOURS": "",
        "LOG_LEVEL": "INFO",
        "WEB_PORT": str(free_port()),  # the workbench, on a port nobody uses
    }
    # Telegram keeps counting: new update ids come after the handled ones already stored.
    async with Emulator(token=TOKEN, first_id=OLD_INBOX + 1) as emu:
        env["TELEGRAM_API_BASE_URL"] = emu.base_url
        env["TELEGRAM_FILE_BASE_URL"] = emu.file_base_url
        opened = time.perf_counter()
        for i in range(1, members + 1):
            emu.open_chat(FIRST_USER + i)
        print(f"  ({members} chats opened in the emulator in {time.perf_counter() - opened:.1f} s)")
        member = emu.user(FIRST_USER + 1)
        staff = emu.user(STAFF, first_name="Fran")
        with (folder / "bot.log").open("wb") as log:
            readies: list[Took] = []
            for _ in range(starts - 1):
                proc, ready, _ = await start_bot(emu, env, log, member)
                readies.append(ready)
                await stop_bot(proc)
            proc, ready, firsts = await start_bot(emu, env, log, member)
            readies.append(ready)
            try:
                await asyncio.sleep(3)  # the scheduler's first run, the inbox pruning
                rss_start, _ = rss_mb(proc.pid)
                idle = [await stats(staff, proc.pid) for _ in range(repeats)]
                queued, rows = await broadcast(staff, db, proc.pid)
                rss_broadcast, peak_broadcast = rss_mb(proc.pid)
                busy = [await stats(staff, proc.pid) for _ in range(repeats)]
                rss_end, peak_end = rss_mb(proc.pid)
            finally:
                await stop_bot(proc)
    print(f"Figures (medians; the bot's log: {folder / 'bot.log'}):")
    report_time("cocreate run ready to answer", readies, GOALS["ready"])
    print(
        f"    (last start: Telegram first asked at {firsts.get('getme', 0):.2f} s, after Python"
        f" and the imports; first getUpdates at {firsts.get('getupdates', 0):.2f} s)"
    )
    report("RSS after start", rss_start, GOALS["rss"], "MB")
    report_time(f"broadcast to everyone queued ({rows} rows)", [queued], GOALS["broadcast"])
    report("RSS after queuing the broadcast", rss_broadcast, GOALS["rss"], "MB")
    report("peak RSS (start to broadcast queued)", peak_broadcast, GOALS["rss"], "MB")
    report_time("/stats answered (idle)", idle, GOALS["stats"])
    report_time("/stats answered (while the broadcast goes)", busy, GOALS["stats"])
    print(f"  (RSS at the end {rss_end:.0f} MB, peak {peak_end:.0f} MB)")


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        models = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    return models[0] if models else "?"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1_000)
    parser.add_argument("--db-dir", type=Path, default=None, help="where the SQLite file goes")
    parser.add_argument("--starts", type=int, default=3, help="times the bot is started")
    parser.add_argument(
        "--repeats", type=int, default=3, choices=range(1, 10), help="times /stats is asked"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder (its path is printed)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="scale-", dir=args.db_dir))
    db = folder / "data" / "cocreate.db"
    cpu = cpu_model()
    print(f"{os.cpu_count()} CPUs ({cpu}); database {db}")
    started = time.perf_counter()
    counts = await build(db, args.members, args.responses, args.rounds)
    size = db.stat().st_size / 1e6
    print(
        f"Built in {time.perf_counter() - started:.1f} s ({size:.0f} MB): "
        + ", ".join(f"{n} {name}" for name, n in counts.items())
    )
    try:
        await measure(folder, db, args.members, args.starts, args.repeats)
    finally:
        if not args.keep:
            shutil.rmtree(folder)


if __name__ == "__main__":
    asyncio.run(main())

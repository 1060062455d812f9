"""Bench: `cocreate export` on a million responses, as CSV and as Excel.

    .venv/bin/python bench/export.py [--rows 100000,1000000] [--members 1000]
                                     [--formats csv,xlsx] [--keep DIR]

For each size, fills a fresh SQLite file with that many answers to one open question
(--members members, each answering one round after another; bulk inserts with executemany
in one transaction, a few seconds for a million), then runs `python -m bot export --format F`
on it in a child process, exactly as an organiser would. For each run it prints the wall
time, rows per second and the child's peak resident memory (the kernel's ru_maxrss for that
process, from os.wait4), all including Python's start-up; "baseline" is the same command
exporting nothing (--since in the future): start-up and imports alone. Exports stream, so
peak memory should be the same for 100,000 rows as for 1,000,000. The filling runs in a
child process of its own: a child's ru_maxrss counts what it was forked from, so this
process stays small.

Goal (issue 5): CSV within 30 s and 150 MB peak RSS on a 2-core machine.
A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import SystemClock
from storage.store import Store
from storage.times import to_db

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AREAS = ("Grangetown", "Splott", "Riverside", "Canton", None)
AGES = ("18_24", "25_34", "35_49", "50_64", "65_plus", None)
ANSWERS = (
    "The bus was late again on route {n}, and the stop has no shelter from the rain.",
    "More benches by the pond, please; my mother cannot walk far without a rest.",
    "Mae angen mwy o oleuadau ger y giât; mae'n dywyll iawn yn y gaeaf.",
    "=SUM(1,2) is what my nephew typed, he thinks it is funny",
    "Open the library on Saturday afternoons so that working parents can come.",
)


async def create_schema(path: Path) -> None:
    """Opens the database once through the Store, so it has exactly the bot's schema."""
    store = await Store.open(path, SystemClock("Europe/London").now)
    await store.close()


def fill(path: Path, rows: int, members: int) -> float:
    """Members, their "about you" answers, one open question with enough rounds, and `rows`
    answers; returns the seconds it took."""
    asyncio.run(create_schema(path))
    started = time.monotonic()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO members (id, telegram_user_id, chat_id, language, display_name, joined_at,"
        " onboarded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (
                m,
                7000 + m,
                7000 + m,
                "cy" if m % 5 == 0 else "en",
                f"Name{m}" if m % 10 == 0 else None,
                to_db(START),
                to_db(START),
            )
            for m in range(1, members + 1)
        ),
    )
    about = [
        (m, field, value, to_db(START))
        for m in range(1, members + 1)
        for field, value in (("age_band", AGES[m % len(AGES)]), ("area", AREAS[m % len(AREAS)]))
        if value is not None
    ]
    db.executemany(
        "INSERT INTO about_you (member_id, field, answer, answered_at) VALUES (?, ?, ?, ?)", about
    )
    db.execute(
        "INSERT INTO questions (id, author_id, author_chat_id, text, kind, audience, starts_at,"
        " status, created_at) VALUES (1, 9000, 9000, 'What would make the park better?', 'open',"
        " 'everyone', ?, 'finished', ?)",
        (to_db(START), to_db(START)),
    )
    rounds = -(-rows // members)
    db.executemany(
        "INSERT INTO question_rounds (id, question_id, due_at, status, sent_at, closes_at)"
        " VALUES (?, 1, ?, 'sent', ?, ?)",
        (
            (r, to_db(START + timedelta(days=r)), to_db(START + timedelta(days=r)), None)
            for r in range(1, rounds + 1)
        ),
    )

    def answers() -> Iterator[tuple[int, int, str, str, str]]:
        for n in range(rows):
            round_id, member_id = n // members + 1, n % members + 1
            when = to_db(START + timedelta(days=round_id, seconds=member_id))
            yield round_id, member_id, ANSWERS[n % len(ANSWERS)].format(n=n % 90), when, when

    db.executemany(
        "INSERT INTO answers (round_id, member_id, text, answered_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        answers(),
    )
    db.execute("COMMIT")
    db.close()
    return time.monotonic() - started


def run_export(folder: Path, db: Path, fmt: str, *extra: str) -> tuple[float, int, Path]:
    """`python -m bot export` in a child; returns seconds, its peak RSS in bytes, the file."""
    out = folder / f"export.{fmt}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ABOUT_"))},
        "DATABASE_URL": f"sqlite:///{db}",
        "MEDIA_DIR": str(folder / "media"),
        "TIMEZONE": "Europe/London",
    }
    command = [sys.executable, "-m", "bot", "export", f"--format={fmt}", f"--out={out}", *extra]
    started = time.monotonic()
    child = subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        assert child.stderr is not None
        raise SystemExit(f"export failed: {child.stderr.read().decode()}")
    return seconds, usage.ru_maxrss * 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="sizes, comma-separated")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--keep", type=Path, help="leave the databases and files here")
    parser.add_argument("--fill-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill_only is not None:  # the child that fills (see the docstring)
        took = fill(args.fill_only, int(args.rows), args.members)
        print(f"{int(args.rows):>10,}  filled in {took:.1f} s", end="")
        return
    formats = args.formats.split(",")
    with tempfile.TemporaryDirectory(prefix="cocreate-bench-") as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        cpus = os.cpu_count()
        print(f"cocreate export bench: {cpus} CPUs, Python {sys.version.split()[0]}")
        head = f"{'rows':>10}  {'format':<8}{'seconds':>8}  {'rows/s':>9}  {'peak RSS':>9}"
        print(f"{head}  {'file':>9}")
        for rows in (int(x) for x in args.rows.split(",")):
            db = folder / f"bench-{rows}.db"
            for leftover in folder.glob(f"{db.name}*"):
                leftover.unlink()
            filler = [sys.executable, __file__, f"--rows={rows}", f"--members={args.members}"]
            subprocess.run([*filler, f"--fill-only={db}"], check=True)
            print(f" ({db.stat().st_size / 1e6:.0f} MB, {args.members:,} members)")
            seconds, rss, _ = run_export(folder, db, "csv", "--since=2999-01-01")
            print(f"{0:>10,}  {'baseline':<8}{seconds:>8.1f}  {'':>9}  {rss / 1e6:>6.0f} MB")
            for fmt in formats:
                seconds, rss, out = run_export(folder, db, fmt)
                size = out.stat().st_size / 1e6
                print(
                    f"{rows:>10,}  {fmt:<8}{seconds:>8.1f}  {rows / seconds:>9,.0f}"
                    f"  {rss / 1e6:>6.0f} MB  {size:>6.0f} MB"
                )


if __name__ == "__main__":
    main()

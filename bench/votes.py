"""Bench: a vote storm (issue 12) — picking the next idea, and "Where people agree".

    .venv/bin/python bench/votes.py [--members 10000] [--ideas 200] [--votes 100000]
                                    [--picks 2000] [--db-dir DIR] [--keep]

Builds a real SQLite file the project's own way (storage.Store.open makes and migrates it),
then fills it fast with direct SQL (executemany, one transaction): --members members in 5
projects, with "about you" answers (age, one of 20 areas, the extra question); --ideas
approved statements (a quarter for everyone, the rest spread over the projects, with a few
waiting and declined ones besides); --votes votes (agree, disagree, not sure, and some
skips), each by a member on an idea they may see, so statements.votes is kept by the
triggers as the bot would keep it.

Then, through the store the bot uses, this measures against the goals of issue 12:
  next idea  `store.votes.next_for` for --picks random members: p50 and p95, ≤ 20 ms (p95)
  /ideas     "Where people agree": `store.votes.results`, then the page as staff get it
             (suppression, common ground, the text, conversations/agreement.py), ≤ 1 s
Figures are printed; nothing is asserted (no timed tests). The CPU time of the page (this
process's, the database's thread included) is printed too: on a shared machine the wall time
is mostly waiting for a core (`uptime` says how shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bot.catalogue import t
from conversations.agreement import idea_lines
from conversations.replies import split_text
from storage.store import Store
from storage.votes import common_ground

PROJECTS = 5
AREAS = [f"Area {i}" for i in range(20)]
AGES = ["16_24", "25_44", "45_64", "65_plus", "prefer_not_to_say"]
EXTRA = ["Yes", "No", "prefer_not_to_say"]
GOALS = {"next_p95": 0.020, "ideas": 1.0}
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def when(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).replace(microsecond=0).isoformat()


def fill(path: Path, members: int, ideas: int, votes: int, rng: random.Random) -> None:
    """Members, their projects and "about you", statements and votes, in one transaction."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys = ON")
    with db:
        db.executemany(
            "INSERT INTO projects (id, code, name, created_at) VALUES (?, ?, ?, ?)",
            [(p, f"p{p}", f"Project {p}", when(0)) for p in range(1, PROJECTS + 1)],
        )
        db.executemany(
            "INSERT INTO members (id, telegram_user_id, chat_id, language, joined_at,"
            " onboarded_at) VALUES (?, ?, ?, 'en', ?, ?)",
            [(m, 10_000_000 + m, 10_000_000 + m, when(m), when(m)) for m in range(1, members + 1)],
        )
        project_of = {m: rng.randint(1, PROJECTS) for m in range(1, members + 1)}
        db.executemany(
            "INSERT INTO member_projects (member_id, project_id, joined_at) VALUES (?, ?, ?)",
            [(m, p, when(m)) for m, p in project_of.items()],
        )
        about = []
        for m in range(1, members + 1):
            about.append((m, "age_band", rng.choice(AGES), when(m)))
            if rng.random() < 0.8:
                about.append((m, "area", rng.choice(AREAS), when(m)))
            if rng.random() < 0.6:
                about.append((m, "extra", rng.choice(EXTRA), when(m)))
        db.executemany(
            "INSERT INTO about_you (member_id, field, answer, answered_at) VALUES (?, ?, ?, ?)",
            about,
        )
        statements: list[tuple[int, int | None, str, str, str, str]] = []
        for s in range(1, ideas + 1):
            project = None if s % 4 == 0 else rng.randint(1, PROJECTS)
            statements.append((s, project, "team", "approved", f"Idea number {s}", when(s)))
        extra: list[tuple[int, int | None, str, str, str, str]] = [
            (ideas + i, None, "team", state, f"Not open {i}", when(ideas + i))
            for i, state in enumerate(["waiting", "declined"] * 10, start=1)
        ]
        db.executemany(
            "INSERT INTO statements (id, project_id, visibility, state, text, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            statements + extra,
        )
        open_to: dict[int | None, list[int]] = {}
        for s, project, *_ in statements:
            open_to.setdefault(project, []).append(s)
        seen: set[tuple[int, int]] = set()
        rows: list[tuple[int, int, str, str]] = []
        while len(rows) < votes:
            m = rng.randint(1, members)
            s = rng.choice(open_to[project_of[m]] + open_to[None])
            if (m, s) in seen:
                continue
            seen.add((m, s))
            choice = rng.choices(["agree", "disagree", "unsure", "skip"], [5, 3, 2, 1])[0]
            rows.append((m, s, choice, when(len(rows))))
        db.executemany(
            "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, ?, ?, ?)",
            rows,
        )
    db.execute("ANALYZE")
    db.close()


async def measure(path: Path, members: int, picks: int, rng: random.Random) -> dict[str, float]:
    store = await Store.open(path, lambda: datetime.now(UTC))
    try:
        times = []
        for _ in range(picks):
            member = rng.randint(1, members)
            start = time.perf_counter()
            await store.votes.next_for(member)
            times.append(time.perf_counter() - start)
        cuts = statistics.quantiles(times, n=100)
        fields = ["age_band", "area", "extra"]
        start, cpu = time.perf_counter(), time.process_time()
        results = await store.votes.results(fields)
        computed = time.perf_counter() - start
        common = [r for r in results if common_ground(r.tally, r.breakdowns)]
        blocks = [t("en", "agreement.common.item", text=r.statement.text) for r in common]
        for number, result in enumerate(results, start=1):
            blocks.append("\n".join(idea_lines(number, result, "en", "Extra?", fields)))
        messages = split_text("", "\n\n".join(blocks))
        page = time.perf_counter() - start
        page_cpu = time.process_time() - cpu
        return {
            "next_p50": cuts[49],
            "next_p95": cuts[94],
            "results": computed,
            "ideas": page,
            "ideas_cpu": page_cpu,
            "messages": len(messages),
            "common": len(common),
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--ideas", type=int, default=200)
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--picks", type=int, default=2_000)
    parser.add_argument("--db-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cocreate-votes-", dir=args.db_dir))
    path = folder / "cocreate.db"
    rng = random.Random(12)
    try:
        start = time.perf_counter()
        asyncio.run(_create(path))
        fill(path, args.members, args.ideas, args.votes, rng)
        print(
            f"filled {args.members:,} members, {args.ideas} ideas, {args.votes:,} votes"
            f" in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 1e6:.0f} MB)"
        )
        got = asyncio.run(measure(path, args.members, args.picks, rng))
        ms = 1000
        print(
            f"next idea  p50 {got['next_p50'] * ms:.2f} ms, p95 {got['next_p95'] * ms:.2f} ms"
            f"  (goal p95 ≤ {GOALS['next_p95'] * ms:.0f} ms, {args.picks} picks)"
        )
        print(
            f"/ideas     results {got['results'] * ms:.0f} ms,"
            f" whole page {got['ideas'] * ms:.0f} ms (CPU {got['ideas_cpu'] * ms:.0f} ms)"
            f"  (goal ≤ {GOALS['ideas'] * ms:.0f} ms; {got['messages']:.0f} messages,"
            f" {got['common']:.0f} ideas of common ground)"
        )
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def _create(path: Path) -> None:
    """Makes and migrates the database, as the bot does at start."""
    await (await Store.open(path, lambda: datetime.now(UTC))).close()


if __name__ == "__main__":
    main()

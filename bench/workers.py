"""Bench: update throughput with one and two `cocreate run` processes on one PostgreSQL, and
SQLite against PostgreSQL with one process (issue 14).

    .venv/bin/python bench/workers.py [--members 300] [--parallel 40] [--rounds 1]
                                      [--only sqlite1,pg1,pg2] [--streams start,...]
                                      [--statements] [--profile DIR]

Every bot runs in webhook mode (WEBHOOK_URL, WEBHOOK_SECRET, each process on its own
WEB_PORT), as several processes behind a reverse proxy would: the Bot API emulator (its own
process, bench/updates.py's) plays the proxy and posts each update to the next process in
turn, up to --parallel posts in flight at once (Telegram's default max_connections is 40),
never two of one chat. The set-ups:

    sqlite1   one process, DATABASE_URL a fresh SQLite file (WAL, synchronous=FULL)
    pg1       one process, a fresh database on a throw-away PostgreSQL cluster
    pg2       two processes on one such database (per-person advisory locks, a shared
              sending pace: storage/coordination.py)

The cluster (tests/pg.py, `ThrowawayCluster(durable=True)`) keeps PostgreSQL's durability
on: fsync, synchronous_commit and full_page_writes (each commit waits for the disk, as
SQLite's synchronous=FULL does); the settings used are printed. It listens on a Unix socket
only, as the tests' does.

The members and streams are bench/updates.py's (newcomers' /start, onboarding, story parts,
typed answers to a question the organiser asks them all): --members at once, each waiting
for the whole reply before the next message, every update a write. The bots run with
Telegram's rate limit off (BROADCAST_RATE=1000, a per-chat burst larger than any stream).

It prints, for each set-up, the 1-minute load as its streams began, updates a second (all
streams, and each), p50 and p95 of the reply time (a member's message sent to the bot's
last message of the reply received: with every member waiting at once, mostly time spent
queued), CPU per update of cocreate (all its processes) and of PostgreSQL's server (the
postmaster and all its backends), and where the machine's CPU went (cocreate, PostgreSQL,
the emulator, this driver, and the machine's other work) as cores busy; the ceilings those
figures set on this machine; for PostgreSQL, its transactions, WAL records and WAL syncs
per update, the updates each process took, and what one call of the shared sending pace
costs. Then PG×2 / PG×1 (the goal is 1.6) and SQLite×1 / PG×1.

--statements loads pg_stat_statements and prints the most called statements per update.
--profile DIR records py-spy's samples of each cocreate process (`pip install py-spy` into
the virtualenv; not a dependency) and prints where their time went.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.updates import (
    ANSWER,
    ASK,
    FIRST_MEMBER,
    ONBOARDING,
    ORGANISER,
    PROBE,
    STORY,
    TICKS,
    Driver,
    calibrate,
    cpu_seconds,
    free_port,
    start_cocreate,
    start_emulator,
    stop,
)
from tests.pg import ThrowawayCluster

SETUPS = {"sqlite1": ("sqlite", 1), "pg1": ("postgresql", 1), "pg2": ("postgresql", 2)}
HOOK_PATH = "/telegram"
PLAN = {"start": ["/start"], "onboarding": ONBOARDING, "story": STORY, "answers": [ANSWER]}
SHOWN = (
    "fsync",
    "autovacuum",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_connections",
    "server_version",
)


# ---- CPU of the processes involved


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of PostgreSQL's server: the postmaster, its ended children (reaped, so in
    its cutime/cstime) and the children still running (backends, writers)."""
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            child = stat.read_text().rsplit(")", 1)[1].split()
            if int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / TICKS


def machine_cpu() -> float:
    """CPU seconds every process on the machine used (not idle, not waiting for the disk)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Meter:
    """CPU seconds of each part, read at once."""

    bots: list[int]
    emulator: int
    postmaster: int | None
    url: str | None = None  # the database (PostgreSQL): its transactions and WAL counted

    async def counts(self) -> dict[str, float]:
        """PostgreSQL's counters (cumulative; its statistics lag by up to a second)."""
        if self.url is None:
            return {}
        connection = await asyncpg.connect(self.url)
        try:
            row = await connection.fetchrow(
                "SELECT d.xact_commit + d.xact_rollback, w.wal_records, w.wal_sync"
                " FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()"
            )
        finally:
            await connection.close()
        assert row is not None
        return {
            "transactions": float(row[0]),
            "WAL records": float(row[1]),
            "WAL syncs": float(row[2]),
        }

    def read(self) -> dict[str, float]:
        parts = {f"cocreate {n + 1}": cpu_seconds(pid) for n, pid in enumerate(self.bots)}
        if self.postmaster is not None:
            parts["postgres"] = postgres_cpu(self.postmaster)
        parts["emulator"] = cpu_seconds(self.emulator)
        parts["driver"] = own_cpu()
        # The machine's other work (other sessions): what is not ours.
        parts["others"] = machine_cpu() - sum(parts.values())
        return parts


@dataclass
class Figure:
    """One stream in one set-up."""

    updates: int
    messages: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds of each part during the stream
    latencies: list[float] = field(default_factory=list)
    # PostgreSQL's counts during the stream: transactions, WAL records, WAL syncs (fsyncs).
    counts: dict[str, float] = field(default_factory=dict)


def merge(figures: Sequence[Figure]) -> Figure:
    total = Figure(0, 0, 0.0, {})
    for figure in figures:
        total.updates += figure.updates
        total.messages += figure.messages
        total.seconds += figure.seconds
        total.latencies += figure.latencies
        for part, seconds in figure.cpu.items():
            total.cpu[part] = total.cpu.get(part, 0.0) + seconds
        for what, count in figure.counts.items():
            total.counts[what] = total.counts.get(what, 0.0) + count
    return total


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


# ---- one set-up


@dataclass
class Setup:
    name: str
    backend: str
    processes: int
    turn: int  # which round
    loads: list[float] = field(default_factory=list)  # the 1-minute load as each stream began
    figures: dict[str, Figure] = field(default_factory=dict)
    split: list[int] = field(default_factory=list)  # updates each process recorded (PG)
    pace: tuple[float, float] = (0.0, 0.0)  # ms a pace call takes: logged, unlogged (PG)
    statements: list[tuple[int, float, str]] = field(default_factory=list)  # --statements
    asking: float = 0.0  # seconds from the organiser's "Send" to the last member's question

    @property
    def load(self) -> float:
        return sum(self.loads) / len(self.loads) if self.loads else 0.0

    @property
    def total(self) -> Figure:
        return merge(list(self.figures.values()))


async def wait_ready(http: aiohttp.ClientSession, port: int, secret: str, bot: Process) -> None:
    """Until the process's webhook takes updates: an empty post is then refused as not an
    update (400) instead of "not yet" (503) or no connection."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise RuntimeError(f"cocreate on port {port} exited with {bot.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
            url = f"http://127.0.0.1:{port}{HOOK_PATH}"
            async with http.post(url, data=b"{}", headers=headers) as response:
                if response.status == 400:
                    return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"cocreate on port {port} did not take updates within 90 s")


Process = subprocess.Popen[bytes]


def spy_on(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the process's samples into `out` until it ends."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--format", "raw", "-r", "100", "-o", str(out), "-p", str(pid)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def step(driver: Driver, user: int, text: str, expect: int, latencies: list[float]) -> None:
    started = time.monotonic()
    await driver.send(user, text)
    await driver.replies(user, expect)
    latencies.append(time.monotonic() - started)


async def run_setup(
    setup: Setup, folder: Path, args: argparse.Namespace, cluster: ThrowawayCluster | None
) -> None:
    """Starts the emulator and the set-up's processes, drives the streams, stops them all."""
    profile: Path | None = args.profile
    emulator = start_emulator()
    secret = secrets.token_urlsafe(16)
    ports = [free_port() for _ in range(setup.processes)]
    url = f"sqlite:///{folder / 'cocreate.db'}"
    postmaster = None
    if cluster is not None:
        name = cluster.unique_name("bench")
        await cluster.create_database(name)
        url = cluster.url(name)
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    bots: list[Process] = []
    spies: list[subprocess.Popen[bytes]] = []
    try:
        connector = aiohttp.TCPConnector(limit=0)  # every member waiting at once
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            targets = [f"http://127.0.0.1:{port}" for port in ports]
            body = {"targets": targets, "parallel": args.parallel}
            async with http.post(f"{emulator.control}/webhook", json=body) as response:
                response.raise_for_status()
            for n, port in enumerate(ports):
                home = folder / f"process{n + 1}"
                home.mkdir()
                extra = {
                    "DATABASE_URL": url,
                    "MEDIA_DIR": str(folder / "media"),
                    "WEBHOOK_URL": f"https://bot.example.org{HOOK_PATH}",
                    "WEBHOOK_SECRET": secret,
                    "WEB_PORT": str(port),
                }
                bots.append(start_cocreate(emulator, home, extra=extra))
            for bot, port in zip(bots, ports, strict=True):
                await wait_ready(http, port, secret, bot)
            if profile is not None:
                spies = [
                    spy_on(bot.pid, profile / f"{setup.name}-{setup.turn}-{n + 1}.raw")
                    for n, bot in enumerate(bots)
                ]
            meter = Meter(
                [bot.pid for bot in bots],
                emulator.process.pid,
                postmaster,
                url if cluster is not None else None,
            )
            streams = args.streams.split(",")
            if args.statements and cluster is not None:
                await statements(url, reset=True)
            await drive(setup, Driver(http, emulator.control), args.members, meter, streams)
            if cluster is not None:
                setup.split = await taken_by(url)
            if args.statements and cluster is not None:
                setup.statements = await statements(url)
    finally:
        for bot in bots:
            stop(bot)
        for spy in spies:
            spy.wait(timeout=60)
        emulator.process.send_signal(signal.SIGTERM)
        emulator.process.wait(timeout=10)
        for n in range(len(bots)):
            show_failures(setup.name, n + 1, folder / f"process{n + 1}" / "log")
        if cluster is not None:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                setup.pace = await pace_cost(url)
            await cluster.drop_database(url.split("/")[3].split("?")[0])


async def pace_cost(url: str, calls: int = 300) -> tuple[float, float]:
    """Milliseconds a call of the shared sending pace (cocreate_pace, which every Bot API
    call of a PostgreSQL-backed process makes, one after another) takes alone: as it is, and
    with its table UNLOGGED (no WAL to flush at commit). The bots have stopped by then."""
    connection = await asyncpg.connect(url)
    try:
        took = []
        for unlogged in (False, True):
            if unlogged:
                await connection.execute("ALTER TABLE send_pace SET UNLOGGED")
            started = time.perf_counter()
            for _ in range(calls):
                await connection.fetchval("SELECT cocreate_pace(NULL, 0.0, 0.0, true, 0, 1.0)")
            took.append(1000 * (time.perf_counter() - started) / calls)
    finally:
        await connection.close()
    return took[0], took[1]


async def statements(url: str, *, reset: bool = False) -> list[tuple[int, float, str]]:
    """pg_stat_statements' most called statements in the database (calls, ms in all, the
    statement), or (reset) clears them, setting the extension up first."""
    connection = await asyncpg.connect(url)
    try:
        if reset:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await connection.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = await connection.fetch(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY calls DESC LIMIT 20"
        )
    finally:
        await connection.close()
    return [(int(r[0]), float(r[1]), " ".join(str(r[2]).split())) for r in rows]


def with_statements(cluster: ThrowawayCluster) -> None:
    """Restarts the cluster with pg_stat_statements loaded (--statements)."""
    with (cluster.data_dir.parent / "statements.conf").open("w") as conf:
        conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(f"include '{cluster.data_dir.parent / 'statements.conf'}'\n")
    log = cluster.socket_dir / "server.log"
    cluster._run("pg_ctl", "restart", f"--pgdata={cluster.data_dir}", f"--log={log}", "--wait")


async def taken_by(url: str) -> list[int]:
    """How many updates each process recorded (the inbox's taken_by), most first."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT count(*) FROM inbox GROUP BY taken_by ORDER BY count(*) DESC"
        )
    finally:
        await connection.close()
    return [int(row[0]) for row in rows]


def show_failures(setup: str, process: int, path: Path) -> None:
    """The first error in a process's log, and how many there were."""
    log = path.read_text()
    errors = log.count("Traceback") + log.count(" ERROR ")
    if errors:
        first = min(i for i in (log.find("Traceback"), log.find("ERROR")) if i >= 0)
        print(f"--- {setup} process {process}: {errors} errors; the first:", file=sys.stderr)
        print(log[max(0, first - 300) : first + 4000], file=sys.stderr)


async def drive(
    setup: Setup, driver: Driver, members: int, meter: Meter, streams: Sequence[str]
) -> None:
    """bench/updates.py's streams, timed, with each reply's wait and each part's CPU."""
    await driver.send(PROBE, "/start")
    await driver.replies(PROBE, 1, timeout=30)
    await driver.settle(PROBE)
    scout = FIRST_MEMBER - 1  # how many messages each step brings (not timed)
    counts = {name: await calibrate(driver, scout, steps) for name, steps in PLAN.items()}
    users = list(range(FIRST_MEMBER, FIRST_MEMBER + members))
    for name, steps in PLAN.items():
        if name not in streams:
            continue
        if name == "answers":
            for text in ASK:
                await driver.send(ORGANISER, text)
                await driver.settle(ORGANISER, quiet=0.3)
            sent = time.monotonic()
            await driver.send(ORGANISER, "Send")
            await asyncio.gather(*(driver.replies(u, 1, timeout=300) for u in users))
            setup.asking = time.monotonic() - sent
            await driver.settle(ORGANISER, quiet=0.3)
        latencies: list[float] = []
        expected = [max(count, 1) for count in counts[name]]

        async def one(
            user: int,
            steps: Sequence[str] = steps,
            expect: list[int] = expected,
            latencies: list[float] = latencies,
        ) -> None:
            for text, count in zip(steps, expect, strict=True):
                await step(driver, user, text, count, latencies)

        setup.loads.append(os.getloadavg()[0])
        counted = await meter.counts()
        before = meter.read()
        started = time.monotonic()
        await asyncio.gather(*(one(u) for u in users))
        seconds = time.monotonic() - started
        after = meter.read()
        cpu = {part: after[part] - before[part] for part in before}
        await asyncio.sleep(1.0)  # PostgreSQL's statistics catch up
        grown = {what: n - counted[what] for what, n in (await meter.counts()).items()}
        updates = len(users) * len(steps)
        messages = len(users) * sum(expected)
        setup.figures[name] = Figure(updates, messages, seconds, cpu, latencies, grown)


# ---- the report


def cpu_ms(figure: Figure, part: str) -> float:
    return 1000 * figure.cpu.get(part, 0.0) / figure.updates


def report(setups: list[Setup], members: int, parallel: int, settings: dict[str, str]) -> None:
    print(
        f"{members} members at once, webhook posts in flight at most {parallel}, "
        f"{os.cpu_count()} CPUs; Telegram's rate limit off"
    )
    if settings:
        print("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print("SQLite: WAL, synchronous=FULL (as cocreate always runs it)")
    print()
    head = f"{'set-up':<8} {'load':>5} {'updates/s':>9} {'msgs/s':>7} {'p50 ms':>7} {'p95 ms':>7}"
    print(head + "  CPU ms per update: cocreate (all its processes) | postgres | emulator | driver")
    for setup in setups:
        total = setup.total
        ours = sum(cpu_ms(total, p) for p in total.cpu if p.startswith("cocreate"))
        print(
            f"{setup.name:<8} {setup.load:5.1f} {total.updates / total.seconds:9.0f} "
            f"{total.messages / total.seconds:7.0f} "
            f"{1000 * percentile(total.latencies, 0.5):7.0f} "
            f"{1000 * percentile(total.latencies, 0.95):7.0f}  "
            f"{ours:.2f} | {cpu_ms(total, 'postgres'):.2f} | {cpu_ms(total, 'emulator'):.2f} | "
            f"{cpu_ms(total, 'driver'):.2f}"
        )
    print()
    print("cores busy (CPU seconds per second) during the streams:")
    for setup in setups:
        total = setup.total
        parts = ", ".join(f"{p} {s / total.seconds:.2f}" for p, s in total.cpu.items())
        busy = sum(total.cpu.values()) / total.seconds
        print(f"  {setup.name:<8} {parts}; all {busy:.2f} of {os.cpu_count()}")
    print()
    print("ceilings from the CPU per update (updates a second, were the CPUs ours alone):")
    cores = os.cpu_count() or 1
    for setup in setups:
        total = setup.total
        bots = [p for p in total.cpu if p.startswith("cocreate")]
        bot = sum(cpu_ms(total, p) for p in bots)
        server = bot + cpu_ms(total, "postgres")
        everything = server + cpu_ms(total, "emulator") + cpu_ms(total, "driver")
        busiest = max(cpu_ms(total, p) for p in bots)
        print(
            f"  {setup.name:<8} the whole bench on {cores} cores {1000 * cores / everything:.0f}; "
            f"cocreate and PostgreSQL alone (Telegram and members elsewhere) "
            f"{1000 * cores / server:.0f}; the busiest cocreate process on one core "
            f"{1000 / busiest:.0f}"
        )
    for setup in setups:
        if len(setup.split) > 1:
            print(f"  {setup.name}: updates each process took: {setup.split}")
        total = setup.total
        if total.counts:
            each = ", ".join(f"{n / total.updates:.1f} {what}" for what, n in total.counts.items())
            print(f"  {setup.name}: per update, {each}")
        if setup.statements:
            print(f"  {setup.name}: the most called statements (calls per update, ms each):")
            for calls, ms, sql in setup.statements:
                print(f"    {calls / total.updates:5.2f} {ms / calls:6.3f}  {sql[:100]}")
        if setup.pace[0]:
            logged, unlogged = setup.pace
            print(
                f"  {setup.name}: the shared pace alone {logged:.2f} ms a call (at most "
                f"{1000 / logged:.0f} Bot API calls a second, all processes together); with "
                f"send_pace UNLOGGED {unlogged:.2f} ms ({1000 / unlogged:.0f} a second)"
            )
        if setup.asking:
            print(
                f"  {setup.name}: the organiser's question reached all {members} members "
                f"{setup.asking:.1f} s after Send"
            )
    print()
    print(f"{'stream':<11}" + "".join(f" {s.name + '/s':>10}" for s in setups))
    for name in PLAN:
        rates = "".join(
            f" {s.figures[name].updates / s.figures[name].seconds:10.0f}"
            if name in s.figures
            else f" {'-':>10}"
            for s in setups
        )
        print(f"{name:<11}{rates}")
    by_name: dict[str, list[Setup]] = {}
    for setup in setups:
        by_name.setdefault(setup.name, []).append(setup)

    def rate(name: str) -> float | None:
        runs = by_name.get(name)
        if not runs:
            return None
        total = merge([s.total for s in runs])
        return total.updates / total.seconds

    pg1, pg2, sqlite1 = rate("pg1"), rate("pg2"), rate("sqlite1")
    print()
    if pg1 and pg2:
        print(f"PG×2 / PG×1: {pg2 / pg1:.2f} (goal 1.6)")
    if pg1 and sqlite1:
        print(f"SQLite×1 / PG×1: {sqlite1 / pg1:.2f}")


# Where a sample's time is counted: the innermost frame in one of these (self time by area).
AREAS = {
    "asyncpg": ("(asyncpg/",),
    "aiosqlite": ("(aiosqlite/",),
    "ptb": ("(telegram/",),
    "aiohttp": ("(aiohttp/", "(yarl/", "(multidict/"),
    "uvicorn/starlette": ("(uvicorn/", "(starlette/", "(h11/"),
    "json": ("(json/",),
    "asyncio": ("(asyncio/", "(selectors.py"),
    "cocreate storage": ("(storage/",),
    "cocreate bot": ("(bot/", "(conversations/"),
}
# And what a sample was inside of, wherever (inclusive time).
WITHIN = {
    "the database (storage/ and below)": ("(storage/",),
    "coordination (advisory locks, pace)": ("(storage/coordination.py",),
    "the webhook's receiving (bot/web/webhook.py)": ("(bot/web/webhook.py",),
    "Bot API calls (bot/transport.py)": ("(bot/transport.py",),
}


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for area, marks in AREAS.items():
            if any(mark in frame for mark in marks):
                return area
    return "other"


def profile_summary(profile: Path, top: int = 10) -> None:
    """Where each profiled process's samples were: by area, inside what, and the leaves."""
    for raw in sorted(profile.glob("*.raw")):
        leaves: Counter[str] = Counter()
        areas: Counter[str] = Counter()
        within: Counter[str] = Counter()
        samples = 0
        for line in raw.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            samples += count
            frames = stack.split(";")
            leaves[frames[-1]] += count
            areas[area_of(frames)] += count
            for name, marks in WITHIN.items():
                if any(mark in frame for frame in frames for mark in marks):
                    within[name] += count
        if not samples:
            continue
        print(f"\n{raw.name}: {samples} samples (100 a second while not idle)")
        print(
            "  self: " + ", ".join(f"{a} {100 * n / samples:.0f}%" for a, n in areas.most_common())
        )
        print("  inside: " + ", ".join(f"{a} {100 * n / samples:.0f}%" for a, n in within.items()))
        for frame, count in leaves.most_common(top):
            print(f"  {100 * count / samples:5.1f}%  {frame[:110]}")


async def main(args: argparse.Namespace) -> None:
    wanted = [name.strip() for name in args.only.split(",")]
    cluster = None
    settings: dict[str, str] = {}
    if any(SETUPS[name][0] == "postgresql" for name in wanted):
        cluster = ThrowawayCluster(durable=True)
        cluster.start()
        if args.statements:
            with_statements(cluster)
        connection = await asyncpg.connect(cluster.url("postgres"))
        try:
            for name in SHOWN:
                settings[name] = str(await connection.fetchval(f"SHOW {name}"))
        finally:
            await connection.close()
    setups: list[Setup] = []
    try:
        for turn in range(1, args.rounds + 1):
            for name in wanted:
                backend, processes = SETUPS[name]
                setup = Setup(name, backend, processes, turn)
                with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
                    pg = cluster if backend == "postgresql" else None
                    await run_setup(setup, Path(folder), args, pg)
                setups.append(setup)
                print(
                    f"{name}: {setup.total.updates / setup.total.seconds:.0f} updates/s "
                    f"(load {setup.load:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if cluster is not None:
            cluster.stop()
    report(setups, args.members, args.parallel, settings)
    if args.profile is not None:
        profile_summary(args.profile)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=40, help="webhook posts in flight")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="sqlite1,pg1,pg2", help="set-ups, comma-separated")
    parser.add_argument("--profile", type=Path, help="folder for py-spy's samples")
    parser.add_argument("--streams", default=",".join(PLAN), help="streams, comma-separated")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="count PostgreSQL's statements (pg_stat_statements; costs some CPU)",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))

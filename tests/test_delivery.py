"""The outbox and its one sender, on the emulator over HTTP and a real SQLite file.

Tests drive `DeliveryWorker.run_once()` with a FakeClock (backoffs, RetryAfter, quiet hours)
and a fake monotonic clock whose sleep only moves it forward (rate and per-chat pacing), so
nothing waits on real time except the read timeout of a slow answer. Calls take no fake time:
the fake sleep first lets the calls in flight be answered. The emulator's clock is that same
monotonic clock in milliseconds, so each message's `date` says when it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.budget import Budget
from bot.catalogue import t
from bot.clock import FakeClock
from bot.delivery import DeliveryWorker, judge, quiet_hours_end
from bot.receiving import CocreateApplication
from bot.settings import Settings, parse_quiet_hours
from conversations.context import CocreateContext
from emulator import Emulator
from storage.models import Member
from storage.outbox import (
    BatchCounts,
    Deferred,
    Failed,
    OutboxRow,
    Outgoing,
    Sent,
    Skipped,
    Unconfirmed,
    Unreachable,
)
from storage.store import Store
from tests.conftest import TOKEN, make_settings
from tests.dbs import sqlite_db

LONDON = ZoneInfo("Europe/London")
READ_TIMEOUT = 2.0  # the test bot's; a slow answer (a fault's delay) takes longer. At 0.5 s, an
# answer on a machine busy with the whole suite once timed out too (CI, 1 December 2026).
AUTHOR = 2900  # a facilitator's chat, for delivery reports


class FakeTime:
    """The worker's monotonic clock: it moves when the worker sleeps or the test says so.

    It also counts the sendMessage calls in flight (`calling`): a sleep waits until they are
    answered, so a call takes no fake time and each message's date is when its call started.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self.in_flight = 0
        self.most_in_flight = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        while self.in_flight:  # noqa: ASYNC110 - the emulator answers by itself
            await asyncio.sleep(0.001)
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def emulator(fake_time: FakeTime) -> AsyncIterator[Emulator]:
    # Message dates in the worker's monotonic milliseconds: when each message was sent.
    async with Emulator(token=TOKEN, clock=lambda: fake_time.now * 1000) as emu:
        yield emu


class CountingRequest(HTTPXRequest):
    """ptb's HTTP requests, telling the fake clock which are in flight: a request counts from
    when it leaves, after the budget, until it is answered."""

    def __init__(self, fake_time: FakeTime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fake_time = fake_time

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        with self.fake_time.calling():
            return await super().do_request(*args, **kwargs)


@contextlib.asynccontextmanager
async def telegram(
    emulator: Emulator,
    fake_time: FakeTime,
    rate: int | None = 30,
    read_timeout: float = READ_TIMEOUT,
    base_url: str | None = None,
) -> AsyncIterator[ExtBot[Any]]:
    """A ptb bot as the application has one: every call passes a Budget at `rate` a second,
    on the fake monotonic clock; a short read timeout, so a slow answer times out."""
    # No slack on the window: on the fake clock a request reaches Telegram as it leaves.
    budget = Budget(rate, window_slack=0, monotonic=fake_time.monotonic, sleep=fake_time.sleep)
    request = CountingRequest(fake_time, read_timeout=read_timeout)
    bot: ExtBot[Any] = ExtBot(
        TOKEN, base_url=base_url or emulator.base_url, request=request, rate_limiter=budget
    )
    if base_url is None:
        async with bot:
            yield bot
        return
    try:  # nothing answers there: not even initialize() would work
        yield bot
    finally:
        await bot.shutdown()


@pytest.fixture
async def tg(emulator: Emulator, fake_time: FakeTime) -> AsyncIterator[ExtBot[Any]]:
    async with telegram(emulator, fake_time) as bot:
        yield bot


@pytest.fixture
async def unpaced(emulator: Emulator, fake_time: FakeTime) -> AsyncIterator[ExtBot[Any]]:
    """No overall rate (BROADCAST_RATE off): calls to different chats go out all at once."""
    async with telegram(emulator, fake_time, rate=None) as bot:
        yield bot


def quiet(tmp_path: Path, emulator: Emulator, hours: str) -> Settings:
    return make_settings(tmp_path, emulator, quiet_hours=hours)


def worker(
    tg: ExtBot[Any],
    store: Store,
    settings: Settings,
    clock: FakeClock,
    fake_time: FakeTime,
    **options: Any,
) -> DeliveryWorker:
    """The sender on `tg`, paced by its budget (on the fake monotonic clock)."""
    return DeliveryWorker(tg, store, settings, clock, **options)


async def join(
    store: Store, emulator: Emulator, *user_ids: int, language: str = "en"
) -> list[Member]:
    """Members in the database whose chats with the bot are open, as after onboarding."""
    members = []
    for user_id in user_ids:
        emulator.open_chat(user_id)
        members.append(
            await store.members.join(
                telegram_user_id=user_id,
                chat_id=user_id,
                language=language,
                consent_version="1",
                agreed_to=["stories"],
            )
        )
    return members


def to_all(members: Sequence[Member], text: str = "What should we change?") -> list[Outgoing]:
    return [Outgoing(m.id, m.chat_id, text) for m in members]


async def drain(
    w: DeliveryWorker, store: Store, clock: FakeClock, fake_time: FakeTime, passes: int = 60
) -> int:
    """Runs passes, a second apart on both clocks, until nothing is queued; returns the calls."""
    calls = 0
    for _ in range(passes):
        calls += await w.run_once()
        counts = await store.outbox.status_counts()
        if not counts.get("queued") and not counts.get("sending"):
            return calls
        clock.advance(timedelta(seconds=1))
        fake_time.advance(1.0)
    raise AssertionError(f"still queued after {passes} passes: {counts}")


def by_member(rows: list[OutboxRow]) -> dict[int | None, OutboxRow]:
    return {row.member_id: row for row in rows}


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the emulator finishes a slow answer by itself
            await asyncio.sleep(0.02)


class Commits:
    """Counts the store's write transactions (each one a commit)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = store.db.transaction

        @contextlib.asynccontextmanager
        async def counted() -> AsyncIterator[Any]:
            self.count += 1
            async with original() as conn:
                yield conn

        monkeypatch.setattr(store.db, "transaction", counted)


# ---------------------------------------------------------------- the outbox on its own


async def test_a_batch_is_queued_in_one_go_one_row_per_member(
    store: Store, emulator: Emulator, clock: FakeClock
) -> None:
    ann, bea = await join(store, emulator, 2001, 2002)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="q:1:yes")]])
    batch_id = await store.outbox.enqueue_batch(
        "question",
        7,
        [
            Outgoing(ann.id, ann.chat_id, "Hi", markup.to_dict()),
            Outgoing(bea.id, bea.chat_id, "Hi"),
        ],
        author_chat_id=AUTHOR,
        author_language="cy",
    )
    batch = await store.outbox.batch(batch_id)
    assert batch is not None and (batch.kind, batch.ref_id, batch.author_language) == (
        "question",
        7,
        "cy",
    )
    rows = await store.outbox.rows_of(batch_id)
    assert [(r.member_id, r.status, r.attempts) for r in rows] == [
        (ann.id, "queued", 0),
        (bea.id, "queued", 0),
    ]
    assert rows[0].reply_markup == markup.to_dict() and rows[1].reply_markup is None
    assert rows[0].not_before == datetime(
        2026, 11, 30, 10, 0, tzinfo=UTC
    )  # aware UTC, like every stored time
    assert (await store.outbox.batch_counts(batch_id)) == BatchCounts(queued=2)


async def test_due_rows_wait_for_not_before_and_come_one_per_chat(
    store: Store, emulator: Emulator, clock: FakeClock
) -> None:
    ann, bea = await join(store, emulator, 2001, 2002)
    first = await store.outbox.enqueue_batch("broadcast", None, to_all([ann, bea]))
    second = await store.outbox.enqueue_batch("broadcast", None, to_all([ann]))
    later = await store.outbox.enqueue_batch(
        "reminder", None, to_all([bea]), not_before=clock.now() + timedelta(hours=2)
    )
    due = await store.outbox.due(clock.now())
    assert [(r.batch_id, r.member_id) for r in due] == [(first, ann.id), (first, bea.id)]
    await store.outbox.mark_sending(due[0].id)
    await store.outbox.mark_sent(due[0].id, 99)
    assert [(r.batch_id, r.member_id) for r in await store.outbox.due(clock.now())] == [
        (first, bea.id),
        (second, ann.id),
    ]
    in_two_hours = clock.now() + timedelta(hours=2)
    assert {r.batch_id for r in await store.outbox.due(in_two_hours)} == {first, second}
    [row] = await store.outbox.rows_of(later)
    assert row.not_before == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_erasing_a_member_removes_their_waiting_rows(
    store: Store, emulator: Emulator
) -> None:
    ann, bea = await join(store, emulator, 2001, 2002)
    batch_id = await store.outbox.enqueue_batch("broadcast", None, to_all([ann, bea]))
    await store.erase_member(ann.id)
    assert [r.member_id for r in await store.outbox.rows_of(batch_id)] == [bea.id]


async def test_one_transaction_records_a_group_and_claims_the_next(
    store: Store, emulator: Emulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = await join(store, emulator, *range(2001, 2010))
    batch_id = await store.outbox.enqueue_batch("broadcast", 1, to_all(members))
    row = {r.member_id: r for r in await store.outbox.rows_of(batch_id)}
    ann, bea, cai, dee, eve, fay, gus, hal, ida = (row[m.id] for m in members)
    claimed = await store.outbox.settle(claim=[ann.id, bea.id, cai.id, dee.id, eve.id, fay.id])
    assert set(claimed.values()) == {"sending"}
    await store.members.set_stopped(members[7].id, True)  # Hal used /stop after it was queued
    await store.outbox.mark_member_unreachable(members[8].id, clock.now())  # Ida blocked us
    commits = Commits(store, monkeypatch)

    verdicts = await store.outbox.settle(
        [
            Sent(ann.id, 11),
            Failed(bea.id, "bad_request"),
            Unconfirmed(cai.id, "read_timeout"),
            Deferred(dee.id, clock.now() + timedelta(seconds=4), 1, "server_error"),
            Skipped(eve.id, "unreachable"),
            Unreachable(members[5].id, clock.now()),  # Fay: 403
        ],
        claim=[gus.id, hal.id, ida.id, ann.id, 999_999],
    )
    assert commits.count == 1
    assert verdicts == {
        gus.id: "sending",
        hal.id: "stopped",
        ida.id: "gone",  # already skipped when she blocked the bot
        ann.id: "gone",  # not queued any more
        999_999: "gone",
    }
    rows = by_member(await store.outbox.rows_of(batch_id))
    got = {m.chat_id: (rows[m.id].status, rows[m.id].last_error) for m in members}
    assert got == {
        2001: ("sent", None),
        2002: ("failed", "bad_request"),
        2003: ("unconfirmed", "read_timeout"),
        2004: ("queued", "server_error"),
        2005: ("skipped", None),
        2006: ("skipped", None),
        2007: ("sending", None),
        2008: ("skipped", None),
        2009: ("skipped", None),
    }
    assert rows[members[0].id].telegram_message_id == 11
    assert (rows[members[3].id].attempts, rows[members[3].id].not_before) == (
        1,
        datetime(2026, 11, 30, 10, 0, 4, tzinfo=UTC),
    )
    assert [rows[m.id].skip_reason for m in members[4:9] if m is not members[6]] == [
        "unreachable",
        "unreachable",
        "stopped",
        "unreachable",
    ]
    blocked = await store.members.get(members[5].id)
    assert blocked is not None and blocked.unreachable_at is not None


# ---------------------------------------------------------------- what Telegram's answers mean


def caused(exc: TelegramError, cause: BaseException) -> TelegramError:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "action", "code"),
    [
        (RetryAfter(timedelta(seconds=5)), "pause", "flood_wait"),
        (Forbidden("Forbidden: bot was blocked by the user"), "unreachable", "blocked"),
        (BadRequest("Bad Request: chat not found"), "failed", "bad_request"),
        (InvalidToken("Unauthorized"), "failed", "invalidtoken"),
        (NetworkError("Bad Gateway (502)"), "retry", "server_error"),
        (caused(NetworkError("bad json"), TelegramError("x")), "retry", "server_error"),
        (caused(NetworkError("refused"), httpx.ConnectError("x")), "retry", "connect_error"),
        (caused(TimedOut(), httpx.ConnectTimeout("x")), "retry", "connect_timeout"),
        (caused(TimedOut(), httpx.PoolTimeout("x")), "retry", "pool_timeout"),
        (caused(TimedOut(), httpx.ReadTimeout("x")), "unconfirmed", "read_timeout"),
        (caused(TimedOut(), httpx.WriteTimeout("x")), "unconfirmed", "write_timeout"),
        (TimedOut(), "unconfirmed", "timeout"),
        (caused(NetworkError("x"), httpx.ReadError("x")), "unconfirmed", "connection_lost"),
        (
            caused(NetworkError("x"), httpx.RemoteProtocolError("x")),
            "unconfirmed",
            "connection_lost",
        ),
        (RuntimeError("a bug"), "unconfirmed", "unexpected"),
    ],
)
def test_a_failed_call_is_retried_only_if_it_cannot_have_arrived(
    exc: Exception, action: str, code: str
) -> None:
    verdict = judge(exc)
    assert (verdict.action, verdict.code) == (action, code)


def test_retry_after_is_read_as_a_timedelta_or_seconds() -> None:
    assert judge(RetryAfter(timedelta(seconds=5))).wait == 5.0
    assert judge(RetryAfter(7)).wait == 7.0


@pytest.mark.parametrize(
    ("hours", "at", "end"),
    [
        ("21:00-08:00", "22:30", "2026-12-01 08:00"),
        ("21:00-08:00", "21:00", "2026-12-01 08:00"),
        ("21:00-08:00", "01:15", "2026-11-30 08:00"),
        ("21:00-08:00", "08:00", None),
        ("21:00-08:00", "12:00", None),
        ("12:00-14:00", "13:59", "2026-11-30 14:00"),
        ("12:00-14:00", "14:00", None),
        ("09:00-09:00", "09:00", None),
        ("", "23:00", None),
    ],
)
def test_quiet_hours_may_cross_midnight(hours: str, at: str, end: str | None) -> None:
    now = datetime.fromisoformat(f"2026-11-30 {at}").replace(tzinfo=LONDON)
    found = quiet_hours_end(now, parse_quiet_hours(hours), LONDON)
    expected = datetime.fromisoformat(end).replace(tzinfo=LONDON) if end else None
    assert found == expected


# ---------------------------------------------------------------- the sender


async def test_every_reachable_member_gets_exactly_one_copy_despite_faults(
    unpaced: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    ids = range(2001, 2009)
    members = await join(store, emulator, *ids)
    emulator.open_chat(AUTHOR)
    batch_id = await store.outbox.enqueue_batch(
        "broadcast", 1, to_all(members), author_chat_id=AUTHOR, author_language="en"
    )
    await store.members.set_stopped(members[7].id, True)  # 2008 used /stop after it was queued
    emulator.block(2007)
    emulator.faults.add("sendMessage", 429, retry_after=3, chat_id=2001)
    emulator.faults.add("sendMessage", 502, chat_id=2002, times=2)
    emulator.faults.add("sendMessage", 500, chat_id=2004)
    emulator.faults.add("sendMessage", delay=READ_TIMEOUT * 2, chat_id=2003)
    w = worker(unpaced, store, quiet(tmp_path, emulator, ""), clock, fake_time)

    # The first pass calls every chat at once (there are fewer than `concurrency`), all but
    # the member who used /stop, and records every answer before it returns.
    assert await w.run_once() == 7
    assert fake_time.most_in_flight == 7
    rows = by_member(await store.outbox.rows_of(batch_id))
    assert {m.chat_id: (rows[m.id].status, rows[m.id].attempts) for m in members} == {
        2001: ("queued", 0),  # Telegram's 429 is not a failed attempt
        2002: ("queued", 1),
        2003: ("unconfirmed", 0),
        2004: ("queued", 1),
        2005: ("sent", 0),
        2006: ("sent", 0),
        2007: ("skipped", 0),
        2008: ("skipped", 0),
    }
    assert rows[members[0].id].last_error == "flood_wait"
    assert rows[members[0].id].not_before == datetime(2026, 11, 30, 10, 0, 3, tzinfo=UTC)
    # backoff 2 s
    assert rows[members[1].id].not_before == datetime(
        2026, 11, 30, 10, 0, 2, tzinfo=UTC
    )  # backoff 2 s
    # The 429 pauses ALL sending: the retries due after 2 s wait for the pause to end too.
    clock.advance(timedelta(seconds=2))
    fake_time.advance(2.0)
    assert await w.run_once() == 0
    clock.advance(timedelta(seconds=1))

    await drain(w, store, clock, fake_time)
    await wait_for(lambda: emulator.sent_to(2003) == 1)  # the slow answer arrived after all

    calls = [p["chat_id"] for p in emulator.calls_to("sendMessage")]
    for user_id in (2001, 2002, 2003, 2004, 2005, 2006):
        assert emulator.sent_to(user_id) == 1, user_id
    assert calls.count(2003) == 1, "a message that may have arrived is never sent again"
    assert emulator.sent_to(2007) == 0 and emulator.sent_to(2008) == 0
    assert 2008 not in calls, "a stopped member is skipped without a call"
    rows = by_member(await store.outbox.rows_of(batch_id))
    outcome = {m.chat_id: (rows[m.id].status, rows[m.id].attempts) for m in members}
    assert outcome == {
        2001: ("sent", 0),
        2002: ("sent", 2),
        2003: ("unconfirmed", 0),
        2004: ("sent", 1),
        2005: ("sent", 0),
        2006: ("sent", 0),
        2007: ("skipped", 0),
        2008: ("skipped", 0),
    }
    assert rows[members[2].id].last_error == "read_timeout"
    assert (rows[members[6].id].skip_reason, rows[members[7].id].skip_reason) == (
        "unreachable",
        "stopped",
    )
    assert all(r.telegram_message_id for r in rows.values() if r.status == "sent")
    blocked = await store.members.get(members[6].id)
    assert blocked is not None and blocked.unreachable_at is not None

    # One report to the author; its counts are the rows'.
    counts = await store.outbox.batch_counts(batch_id)
    assert counts == BatchCounts(sent=5, unconfirmed=1, stopped=1, unreachable=1)
    assert counts.total == len(rows)
    pseudonym = await store.pseudonyms.of(members[2].id)  # 2003's: named, not their name
    assert [m.text for m in emulator.user(AUTHOR).messages] == [
        "\n".join(
            [
                t("en", "delivery.report.done"),
                t("en", "delivery.report.reached", sent=5, total=8),
                t("en", "delivery.report.stopped", count=1),
                t("en", "delivery.report.blocked", count=1),
                t("en", "delivery.report.unconfirmed", count=1),
                t("en", "delivery.report.unconfirmed_names", names=pseudonym),
            ]
        )
    ]
    [report] = emulator.user(AUTHOR).messages
    assert report.buttons == [[t("en", "delivery.send_again", count=1)]]
    assert await w.run_once() == 0  # and only one


async def test_a_blocked_member_is_not_tried_again(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    ann, bea = await join(store, emulator, 2001, 2002)
    emulator.block(2002)
    first = await store.outbox.enqueue_batch("question", 1, to_all([ann, bea]))
    second = await store.outbox.enqueue_batch("reminder", 1, to_all([ann, bea]))
    w = worker(tg, store, quiet(tmp_path, emulator, ""), clock, fake_time)
    await drain(w, store, clock, fake_time)
    assert [p["chat_id"] for p in emulator.calls_to("sendMessage")].count(2002) == 1
    assert emulator.sent_to(2001) == 2
    for batch_id in (first, second):
        assert await store.outbox.batch_counts(batch_id) == BatchCounts(sent=1, unreachable=1)


async def test_server_errors_back_off_then_fail_and_a_refused_connection_is_retried(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    [ann] = await join(store, emulator, 2001)
    batch_id = await store.outbox.enqueue_batch("broadcast", None, to_all([ann]))
    settings = quiet(tmp_path, emulator, "")
    emulator.faults.add("sendMessage", 500, times=None)
    w = worker(tg, store, settings, clock, fake_time, max_attempts=3)
    start = clock.now()
    waits = []
    for _ in range(3):
        [row] = await store.outbox.rows_of(batch_id)
        clock.set(row.not_before)
        fake_time.advance(1.0)
        assert await w.run_once() == 1
        [row] = await store.outbox.rows_of(batch_id)
        waits.append((row.not_before - clock.now()).total_seconds())
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "server_error")
    assert waits[:2] == [2.0, 4.0]  # then it gave up
    assert len(emulator.calls_to("sendMessage")) == 3 and emulator.sent_to(2001) == 0
    assert clock.now() - start == timedelta(seconds=6)

    # Nothing listens on this port: the request never left, so it is safe to try again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    retry = await store.outbox.enqueue_batch("broadcast", None, to_all([ann]))
    nowhere_url = f"http://127.0.0.1:{closed_port}/bot"
    async with telegram(emulator, fake_time, base_url=nowhere_url) as nowhere:
        w = worker(nowhere, store, settings, clock, fake_time)
        assert await w.run_once() == 1
    [row] = await store.outbox.rows_of(retry)
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "connect_error")


async def test_quiet_hours_hold_messages_until_they_end(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, 2001, 2002, 2003, language="cy")
    emulator.open_chat(AUTHOR)
    clock.set(datetime(2026, 11, 30, 22, 30, tzinfo=LONDON))
    batch_id = await store.outbox.enqueue_batch(
        "broadcast", 1, to_all(members), author_chat_id=AUTHOR, author_language="cy"
    )
    w = worker(tg, store, quiet(tmp_path, emulator, "21:00-08:00"), clock, fake_time)
    assert await w.run_once() == 0
    rows = await store.outbox.rows_of(batch_id)
    assert {(r.status, r.not_before, r.held_for_quiet_hours) for r in rows} == {
        ("queued", datetime(2026, 12, 1, 8, 0, tzinfo=UTC), True)
    }
    clock.set(datetime(2026, 12, 1, 7, 59, 59, tzinfo=LONDON))
    assert await w.run_once() == 0
    assert emulator.calls_to("sendMessage") == []

    clock.set(datetime(2026, 12, 1, 8, 0, tzinfo=LONDON))
    assert await w.run_once() == 3
    assert [emulator.sent_to(m.chat_id) for m in members] == [1, 1, 1]
    assert await w.run_once() == 1  # the report, in the author's language
    [report] = emulator.user(AUTHOR).messages
    assert report.text == "\n".join(
        [
            t("cy", "delivery.report.done"),
            t("cy", "delivery.report.reached", sent=3, total=3),
            t("cy", "delivery.report.quiet", count=3),
        ]
    )


async def test_a_chat_gets_one_message_a_second_while_others_go_on(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    ann, bea, cai, dee = await join(store, emulator, 2001, 2002, 2003, 2004)
    await store.outbox.enqueue_batch("question", 1, to_all([ann, bea, cai], "Question"))
    await store.outbox.enqueue_batch("broadcast", 2, to_all([ann, dee], "News"))
    w = worker(tg, store, quiet(tmp_path, emulator, ""), clock, fake_time)
    assert await w.run_once() == 4  # Ann's first, Bea, Cai, Dee
    assert await w.run_once() == 0  # Ann's second waits
    fake_time.advance(0.6)
    assert await w.run_once() == 0
    fake_time.advance(0.4)
    assert await w.run_once() == 1
    first, second = emulator.user(2001).messages
    assert (first.text, second.text) == ("Question", "News")
    assert second.date - first.date >= 1000  # milliseconds of the worker's monotonic clock
    assert [emulator.sent_to(c) for c in (2002, 2003, 2004)] == [1, 1, 1]


async def test_no_more_than_rate_per_second_in_any_second(
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, *range(2001, 2018))
    await store.outbox.enqueue_batch("broadcast", 1, to_all(members))
    async with telegram(emulator, fake_time, rate=5) as five_a_second:
        w = worker(five_a_second, store, quiet(tmp_path, emulator, ""), clock, fake_time)
        assert await w.run_once() == 17
    dates = sorted(emulator.user(m.chat_id).messages[0].date for m in members)
    assert all(dates[i + 5] - dates[i] >= 1000 for i in range(len(dates) - 5))
    # Evenly paced, 200 ms apart: as fast as the rate allows, and never a burst.
    # (Until the budget, the first 5 went at once, then 5 more a second later.)
    assert [later - earlier for earlier, later in itertools.pairwise(dates)] == [200] * 16
    assert fake_time.slept >= 3.2


async def test_calls_are_evenly_paced_and_a_chat_still_gets_one_a_second(
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, *range(2001, 2031))
    ann = members[-1]  # her first message is the pass's last call
    await store.outbox.enqueue_batch("broadcast", 1, to_all(members, "News"))
    await store.outbox.enqueue_batch("question", 2, to_all([ann], "Question"))
    await store.outbox.enqueue_batch("reminder", 3, to_all([ann], "Reminder"))
    settings = quiet(tmp_path, emulator, "")
    async with telegram(emulator, fake_time, rate=10) as ten_a_second:
        w = worker(ten_a_second, store, settings, clock, fake_time, concurrency=4)

        assert await w.run_once() == 30
        # Every answer is recorded before the pass returns: nothing is left 'sending'.
        assert await store.outbox.status_counts() == {"sent": 30, "queued": 2}
        assert await w.run_once() == 0  # Ann's next waits until a second after her last
        fake_time.advance(1.0)
        assert await w.run_once() == 1
        assert await w.run_once() == 0
        fake_time.advance(1.0)
        assert await w.run_once() == 1
    assert await store.outbox.status_counts() == {"sent": 32}

    assert [emulator.sent_to(m.chat_id) for m in members[:-1]] == [1] * 29
    assert [m.text for m in emulator.user(ann.chat_id).messages] == [
        "News",
        "Question",
        "Reminder",
    ]
    ann_dates = [m.date for m in emulator.user(ann.chat_id).messages]
    assert all(later - earlier >= 1000 for earlier, later in itertools.pairwise(ann_dates))
    dates = sorted(m.date for c in members for m in emulator.user(c.chat_id).messages)
    assert all(dates[i + 10] - dates[i] >= 1000 for i in range(len(dates) - 10))
    # 100 ms apart: as fast as the rate allows, evenly (until the budget: 10 at once, 3 times).
    assert dates[29] - dates[0] == 2900


async def test_without_a_rate_limit_calls_overlap_and_commits_are_grouped(
    unpaced: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    members = await join(store, emulator, *range(2001, 2041))
    await store.outbox.enqueue_batch("broadcast", 1, to_all(members))
    settings = quiet(tmp_path, emulator, "")
    w = worker(unpaced, store, settings, clock, fake_time, concurrency=8)
    commits = Commits(store, monkeypatch)
    assert await w.run_once() == 40
    assert await store.outbox.status_counts() == {"sent": 40}
    assert [emulator.sent_to(m.chat_id) for m in members] == [1] * 40
    assert fake_time.most_in_flight == 8 and fake_time.slept == 0
    # One at a time this took 81 commits (claim and record each, and the start): now one
    # transaction claims a group of at least 4 and records what finished before it.
    assert commits.count <= 12


async def test_retry_after_stops_new_calls_while_those_in_flight_finish(
    unpaced: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, *range(2001, 2007))
    await store.outbox.enqueue_batch("broadcast", 1, to_all(members))
    emulator.faults.add("sendMessage", 429, retry_after=3, chat_id=2001)
    emulator.faults.add("sendMessage", delay=0.2, chat_id=2002)  # answered after the 429
    emulator.faults.add("sendMessage", delay=0.2, chat_id=2003)
    w = worker(unpaced, store, quiet(tmp_path, emulator, ""), clock, fake_time, concurrency=3)
    assert await w.run_once() == 3
    assert [p["chat_id"] for p in emulator.calls_to("sendMessage")] == [2001, 2002, 2003]
    rows = by_member(await store.outbox.rows_of(1))
    assert [rows[m.id].status for m in members] == ["queued", "sent", "sent"] + ["queued"] * 3
    clock.advance(timedelta(seconds=2))
    assert await w.run_once() == 0
    clock.advance(timedelta(seconds=1))
    fake_time.advance(3.0)
    assert await w.run_once() == 4
    assert [emulator.sent_to(m.chat_id) for m in members] == [1] * 6


async def test_after_a_crash_a_message_in_hand_is_reported_not_resent(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, 2001, 2002, 2003)
    emulator.open_chat(AUTHOR)
    batch_id = await store.outbox.enqueue_batch(
        "broadcast", 1, to_all(members), author_chat_id=AUTHOR
    )
    # The process died between marking Bea's message 'sending' and hearing back.
    in_hand = by_member(await store.outbox.rows_of(batch_id))[members[1].id]
    assert await store.outbox.mark_sending(in_hand.id) == "sending"

    w = worker(tg, store, quiet(tmp_path, emulator, ""), clock, fake_time)
    await drain(w, store, clock, fake_time)
    row = await store.outbox.get(in_hand.id)
    assert row is not None and (row.status, row.last_error) == ("unconfirmed", "interrupted")
    assert [emulator.sent_to(m.chat_id) for m in members] == [1, 0, 1]
    assert t("en", "delivery.report.unconfirmed", count=1) in (
        emulator.user(AUTHOR).messages[0].text or ""
    )


async def test_a_crash_with_a_group_in_flight_leaves_only_that_group_unconfirmed(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, *range(2001, 2011))
    emulator.open_chat(AUTHOR)
    batch_id = await store.outbox.enqueue_batch(
        "broadcast", 1, to_all(members), author_chat_id=AUTHOR
    )
    settings = quiet(tmp_path, emulator, "")
    emulator.faults.add("sendMessage", delay=5, times=None)  # every answer is slow
    # Unpaced, so that four calls leave at once (see the fake clock).
    async with telegram(emulator, fake_time, rate=None, read_timeout=10) as slow_bot:
        w = worker(slow_bot, store, settings, clock, fake_time, concurrency=4)
        sending = asyncio.create_task(w.run_once())
        await wait_for(lambda: len(emulator.calls_to("sendMessage")) == 4)
        # The process dies with four calls in flight: nothing more is written.
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    assert await store.outbox.status_counts() == {"sending": 4, "queued": 6}
    in_flight = [p["chat_id"] for p in emulator.calls_to("sendMessage")]
    emulator.faults.clear()

    restarted = worker(tg, store, settings, clock, fake_time, concurrency=4)
    await drain(restarted, store, clock, fake_time)
    rows = by_member(await store.outbox.rows_of(batch_id))
    status = {m.chat_id: (rows[m.id].status, rows[m.id].last_error) for m in members}
    assert status == {
        m.chat_id: ("unconfirmed", "interrupted") if m.chat_id in in_flight else ("sent", None)
        for m in members
    }
    calls = [p["chat_id"] for p in emulator.calls_to("sendMessage")]
    assert all(calls.count(m.chat_id) == 1 for m in members), "nobody is tried twice"
    assert all(emulator.sent_to(m.chat_id) == 1 for m in members if m.chat_id not in in_flight)
    assert await store.outbox.batch_counts(batch_id) == BatchCounts(sent=6, unconfirmed=4)
    assert t("en", "delivery.report.unconfirmed", count=4) in (
        emulator.user(AUTHOR).messages[0].text or ""
    )


async def test_wake_sends_at_once_and_stop_finishes_the_message_in_hand(
    tg: ExtBot[Any], store: Store, emulator: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    ann, bea = await join(store, emulator, 2001, 2002)
    # Real time here, and a poll too slow to matter: only wake() can explain a quick send.
    w = DeliveryWorker(tg, store, quiet(tmp_path, emulator, ""), clock, poll_interval=60)
    w.start()
    try:
        await asyncio.sleep(0.05)
        await store.outbox.enqueue_batch("broadcast", None, to_all([ann]))
        w.wake()
        await wait_for(lambda: emulator.sent_to(2001) == 1, timeout=3)

        emulator.faults.add("sendMessage", delay=0.3)
        batch_id = await store.outbox.enqueue_batch("broadcast", None, to_all([bea]))
        w.wake()
        await wait_for(lambda: len(emulator.calls_to("sendMessage")) == 2, timeout=3)
    finally:
        await w.stop()
    [row] = await store.outbox.rows_of(batch_id)
    assert row.status == "sent" and emulator.sent_to(2002) == 1


async def test_the_running_bot_sends_the_outbox_and_owns_retry_after(
    bot: CocreateApplication, store: Store, emulator: Emulator, clock: FakeClock
) -> None:
    [ann] = await join(store, emulator, 2001)
    context = CocreateContext(bot)
    assert context.delivery is bot.delivery
    emulator.faults.add("sendMessage", 429, retry_after=5, chat_id=2001)
    batch_id = await store.outbox.enqueue_batch("broadcast", None, to_all([ann]))
    context.delivery.wake()

    async def row() -> OutboxRow:
        [found] = await store.outbox.rows_of(batch_id)
        return found

    # ptb's rate limiter no longer sleeps on a 429 itself: the worker sees it and pauses.
    async with asyncio.timeout(3):
        while (await row()).last_error != "flood_wait":  # noqa: ASYNC110 - another task writes
            await asyncio.sleep(0.02)
    assert (await row()).status == "queued" and emulator.sent_to(2001) == 0
    clock.advance(timedelta(seconds=5))
    context.delivery.wake()
    await wait_for(lambda: emulator.sent_to(2001) == 1, timeout=3)
    assert len(emulator.calls_to("sendMessage")) == 2


async def test_replies_and_a_broadcast_share_one_budget_and_replies_go_first(
    tg: ExtBot[Any],
    store: Store,
    emulator: Emulator,
    clock: FakeClock,
    fake_time: FakeTime,
    tmp_path: Path,
) -> None:
    members = await join(store, emulator, *range(2001, 2061))
    writers = range(3001, 3041)
    for user_id in writers:
        emulator.open_chat(user_id)
    await store.outbox.enqueue_batch("broadcast", 1, to_all(members, "News"))
    w = worker(tg, store, quiet(tmp_path, emulator, ""), clock, fake_time)
    sending = asyncio.create_task(w.run_once())
    await wait_for(lambda: len(emulator.calls_to("sendMessage")) >= 10)
    # Someone answers a question: the handler replies, then sends the next question, through
    # the same bot (as context.bot.send_message does).
    asked_at = fake_time.now * 1000
    await tg.send_message(writers[0], "Thank you.")
    await tg.send_message(writers[0], "Next question?")
    # Then the others write, all at once; the handlers answer each.
    await asyncio.gather(*(tg.send_message(user_id, "Thank you.") for user_id in writers[1:]))
    assert await sending == 60

    dates = sorted(m.date for u in emulator.users for m in u.messages)
    assert len(dates) == 60 + 41
    # One budget, evenly paced: never more than 30 in any 1-second window (the emulator's
    # clock is the budget's fake monotonic clock, so each date is when the request left).
    assert all(dates[i + 30] - dates[i] >= 1000 for i in range(len(dates) - 30))
    assert dates[-1] - dates[0] >= 100 * 1000 // 30
    # Replies go ahead of bulk: no broadcast message between the first and the last reply.
    reply_dates = [m.date for u in writers[1:] for m in emulator.user(u).messages]
    news = [m.date for member in members for m in emulator.user(member.chat_id).messages]
    assert not [d for d in news if min(reply_dates) < d < max(reply_dates)]
    assert max(news) > max(reply_dates), "the broadcast waited for the replies, not the reverse"
    # A burst to one chat: the next question follows its reply at once (the next turn, while
    # the broadcast waits), not a second later.
    reply, question = emulator.user(writers[0]).messages
    assert (reply.text, question.text) == ("Thank you.", "Next question?")
    assert reply.date - asked_at < 100, "a reply goes at its next turn, ahead of the broadcast"
    assert question.date - reply.date < 100
    assert not [d for d in news if reply.date < d < question.date]


@pytest.mark.sqlite_only
async def test_due_reads_about_as_many_rows_as_it_returns(
    store: Store, emulator: Emulator, clock: FakeClock
) -> None:
    """With a big broadcast queued, a pass finds its next rows without reading every queued
    row (the sender asks many times a second at high rates): counted in SQLite's steps."""
    members = await join(store, emulator, *range(3001, 3011))
    for _ in range(500):  # 500 broadcasts to everyone, one after the other
        await store.outbox.enqueue_batch("broadcast", None, to_all(members))
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    await sqlite_db(store.db)._conn.set_progress_handler(step, 100)
    try:
        due = await store.outbox.due(clock.now(), limit=10)
    finally:
        await sqlite_db(store.db)._conn.set_progress_handler(lambda: 0, 1_000_000)
    assert len(due) == 10 and len({r.chat_id for r in due}) == 10
    assert steps * 100 < 20_000, steps  # grouping all 5,000 queued rows took far more

"""Several processes on one PostgreSQL (storage/coordination.py), each played here by a Store
of its own: its own pool and its own connection for locks, as a `cocreate run` has. A process
that dies is played by closing its Store (PostgreSQL drops its locks with the connection, as
it does for a killed process)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.clock import FakeClock
from storage.coordination import FORGET_EVERY
from storage.outbox import Outgoing
from storage.store import Store
from tests.pg import ThrowawayCluster

Open = Callable[[], Awaitable[Store]]


@pytest.fixture
async def processes(pg_cluster: ThrowawayCluster, clock: FakeClock) -> AsyncIterator[Open]:
    """Opens Stores ("processes") on one fresh PostgreSQL database; closes them after."""
    name = pg_cluster.unique_name()
    await pg_cluster.create_database(name)
    opened: list[Store] = []

    async def open_one() -> Store:
        store = await Store.open_url(pg_cluster.url(name), clock.now)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        if not store.db.pool.is_closing():  # type: ignore[attr-defined]
            await store.close()
    await pg_cluster.drop_database(name)


async def test_one_process_at_a_time_handles_a_person(processes: Open) -> None:
    """While one process holds a person, another waits for them; other people are free."""
    first, second = await processes(), await processes()
    order: list[str] = []
    async with first.coordination.person(42):
        waiting = asyncio.create_task(_hold(second, 42, order))
        async with second.coordination.person(43):  # someone else: no wait
            order.append("other person")
        await asyncio.sleep(0.05)
        assert not waiting.done()  # still waiting for person 42
        order.append("first done")
    await asyncio.wait_for(waiting, 5)
    assert order == ["other person", "first done", "second"]


async def _hold(store: Store, person: int, order: list[str]) -> None:
    async with store.coordination.person(person):
        order.append("second")


async def test_one_process_leads_and_another_takes_over_when_it_dies(processes: Open) -> None:
    first, second = await processes(), await processes()
    assert await first.coordination.lead("scheduler")
    assert await first.coordination.lead("poller")
    assert not await second.coordination.lead("scheduler")
    assert not second.coordination.leads("poller")
    await first.close()  # the leader dies: its locks go with its connection
    assert await second.coordination.lead("scheduler")
    assert await second.coordination.lead("poller")
    third = await processes()
    assert not await third.coordination.lead("scheduler")


async def test_the_sending_pace_holds_across_processes(processes: Open) -> None:
    """Two processes taking moments from the shared pace get them `overall` apart, and a
    chat's `per_chat` apart, whoever asks."""
    first, second = await processes(), await processes()
    moments = []
    for store in (first, second, first, second):
        wait, _ = await store.coordination.pace(None, 0.1, 0.0)
        assert wait <= 0.003  # taken once it has come: the caller sends at once
        moments.append(time.time() + wait)
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert all(0.09 < gap < 0.2 for gap in gaps), gaps  # 0.1 s apart, whoever asks
    await first.coordination.pace(7, 0.001, 1.0)
    started = time.monotonic()
    await second.coordination.pace(7, 0.001, 1.0)
    assert time.monotonic() - started > 0.9  # the same chat: a second apart


async def test_a_dead_process_s_updates_are_taken_up_in_order(processes: Open) -> None:
    """Updates a process recorded and never handled are taken by another once it is gone,
    never while it lives; a person's older updates are taken before theirs."""
    dead, alive = await processes(), await processes()
    for update_id in (5, 3, 4):
        payload = json.dumps({"update_id": update_id})
        assert await dead.inbox.record(update_id, payload, person_id=9)
    assert await alive.inbox.orphans() == []  # its recorder still lives
    await dead.close()
    taken = await alive.inbox.orphans()
    assert [update_id for update_id, _ in taken] == [3, 4, 5]
    assert await alive.inbox.orphans() == []  # taken once
    # A person's older updates still waiting go first, whichever process recorded them.
    other = await processes()
    assert await other.inbox.record(10, "{}", person_id=9)
    assert await other.inbox.record(11, "{}", person_id=9)
    waiting = await alive.inbox.take_waiting(9, 11)
    assert [update_id for update_id, _ in waiting] == [3, 4, 5, 10, 11]
    assert await other.inbox.record(12, "{}")  # recorded without whose it is (an old row)
    assert [update_id for update_id, _ in await alive.inbox.take_waiting(9, 12)][-1] == 12
    await alive.inbox.mark_done(11)
    after = [update_id for update_id, _ in await alive.inbox.take_waiting(9, 11)]
    assert after == [3, 4, 5, 10]  # 11 is done: another process finished it


async def test_two_processes_never_claim_the_same_outbox_row(processes: Open) -> None:
    """Both processes' senders try to claim every row at once: each row goes to one."""
    first, second = await processes(), await processes()
    messages = [Outgoing(None, 1000 + n, f"news {n}") for n in range(40)]
    await first.outbox.enqueue_batch("broadcast", None, messages)
    rows = [row.id for row in await first.outbox.due(first.outbox._now(), 100)]
    assert len(rows) == 40
    mine, theirs = await asyncio.gather(
        first.outbox.settle(claim=rows), second.outbox.settle(claim=rows)
    )
    sending = [row for row in rows if mine[row] == "sending"]
    sending += [row for row in rows if theirs[row] == "sending"]
    assert sorted(sending) == sorted(rows)  # every row once, by one of them


async def test_a_dead_process_s_sends_become_unconfirmed_not_the_living_s(
    processes: Open,
) -> None:
    dead, alive = await processes(), await processes()
    await dead.outbox.enqueue_batch("broadcast", None, [Outgoing(None, 1, "a")])
    await alive.outbox.enqueue_batch("broadcast", None, [Outgoing(None, 2, "b")])
    (row_a,) = [r.id for r in await dead.outbox.due(dead.outbox._now(), 10) if r.chat_id == 1]
    (row_b,) = [r.id for r in await alive.outbox.due(alive.outbox._now(), 10) if r.chat_id == 2]
    assert await dead.outbox.mark_sending(row_a) == "sending"
    assert await alive.outbox.mark_sending(row_b) == "sending"
    assert await alive.outbox.recover_after_restart() == 0  # both senders live
    await dead.close()
    assert await alive.outbox.recover_after_restart() == 1
    after_a, after_b = await alive.outbox.get(row_a), await alive.outbox.get(row_b)
    assert after_a is not None and after_a.status == "unconfirmed"
    assert after_b is not None and after_b.status == "sending"


async def test_a_reply_holds_back_the_next_broadcast_to_its_chat(processes: Open) -> None:
    """A reply does not wait for its chat (it answers someone who just wrote), but the next
    broadcast to that chat waits a second after it, even from another process."""
    replying, sending = await processes(), await processes()
    assert (await replying.coordination.pace(8, 0.001, 1.0, waits=False))[0] < 0.05
    assert (await replying.coordination.pace(8, 0.001, 1.0, waits=False))[0] < 0.05  # no wait
    other = asyncio.create_task(sending.coordination.pace(9, 0.001, 1.0))
    started = time.monotonic()
    assert (await sending.coordination.pace(8, 0.001, 1.0))[0] < 0.05  # its moment, once free
    assert time.monotonic() - started > 0.9  # a second after the reply
    assert other.done()  # another chat went meanwhile: a chat waiting holds up no one
    assert (await other)[0] < 0.05


async def test_the_pace_keeps_no_chat_id_and_forgets_a_chat_once_its_second_passed(
    processes: Open,
) -> None:
    store = await processes()
    await store.coordination.pace(987654321, 0.001, 0.05, waits=False)
    rows = await store.db.fetch_all("SELECT chat_id FROM send_pace")
    assert len(rows) == 2 and all(r["chat_id"] != 987654321 for r in rows)  # a hash of it
    await asyncio.sleep(FORGET_EVERY)  # its moment passes, and it is time to forget
    await store.coordination.pace(None, 0.001, 0.0)  # anyone's next call clears it
    assert [r["chat_id"] for r in await store.db.fetch_all("SELECT chat_id FROM send_pace")] == [0]


async def test_a_connection_left_in_a_transaction_goes_back_to_the_pool_rolled_back(
    processes: Open,
) -> None:
    """The pool skips asyncpg's reset (storage/pg_db.py, `_keep`), but never hands out a
    connection still inside a transaction someone left open."""
    store = await processes()
    pool = store.db.pool  # type: ignore[attr-defined]
    conn = await pool.acquire()
    await conn.execute("BEGIN")
    await conn.execute("INSERT INTO projects (code, name, created_at) VALUES ('x', 'X', now())")
    await pool.release(conn)
    async with pool.acquire() as again:
        assert not again.is_in_transaction()
    assert await store.db.fetch_one("SELECT 1 FROM projects WHERE code = 'x'") is None


async def test_the_shared_pace_keeps_a_sliding_window_over_the_moments_taken(
    processes: Open,
) -> None:
    """At most `most` moments in any `span` seconds, across processes, however closely the
    even spacing (`overall`) alone would let them go."""
    first, second = await processes(), await processes()
    asked, taken = [], []  # each moment came between the two
    for store in (first, second, first, second, first, second, first):
        asked.append(time.monotonic())
        wait, ticket = await store.coordination.pace(None, 0.001, 0.0, most=3, span=0.5)
        taken.append(time.monotonic() + wait)
        await store.coordination.sent(ticket, 3, None, 0.0)  # its request came back at once
    gaps = [b - a for a, b in zip(asked, taken[3:], strict=False)]
    assert all(gap >= 0.5 for gap in gaps), gaps
    assert taken[2] - asked[0] < 0.3  # three went at once (the even spacing only)


async def test_a_moment_is_taken_only_once_it_has_come(processes: Open) -> None:
    """A process that asks for the next moment gets it when it comes, not a promise of it:
    one that would have slept past its moment (a busy event loop) can no longer send on it
    while later moments go on time (the real departures bunched: 31-32 in a second)."""
    first, second = await processes(), await processes()
    await first.coordination.pace(None, 0.2, 0.0)
    started = time.monotonic()
    wait, _ = await second.coordination.pace(None, 0.2, 0.0)
    assert time.monotonic() - started > 0.18  # it waited for the moment …
    assert wait <= 0.003  # … and then took it: it sends at once
    row = await first.db.fetch_one("SELECT next_at, recent FROM send_pace WHERE chat_id = 0")
    assert row is not None and len(row["recent"]) == 0  # no window asked for: none kept


async def test_the_window_counts_from_when_requests_came_back(processes: Open) -> None:
    """A request slow to reach Telegram holds back the ones after it: the window counts each
    from when its process said it came back, and waits while it is in flight; a chat's next
    paced message waits a second from when its last one came back."""
    first, second = await processes(), await processes()
    _, slow = await first.coordination.pace(5, 0.001, 0.3, most=2, span=0.3)
    _, quick = await second.coordination.pace(6, 0.001, 0.3, most=2, span=0.3)
    await second.coordination.sent(quick, 2, 6, 0.3)
    asked = time.monotonic()
    third = asyncio.create_task(second.coordination.pace(None, 0.001, 0.0, most=2, span=0.3))
    await asyncio.sleep(0.5)
    assert not third.done()  # the first is still in flight: the window cannot count it yet
    await first.coordination.sent(slow, 2, 5, 0.3)  # it came back: from now
    came_back = time.monotonic()
    await asyncio.wait_for(third, 5)
    assert time.monotonic() - came_back >= 0.29 and time.monotonic() - asked > 0.75
    _, ticket = await first.coordination.pace(7, 0.001, 0.5)
    await asyncio.sleep(0.4)  # slow to reach Telegram
    await first.coordination.sent(ticket, 0, 7, 0.5)
    came_back = time.monotonic()
    await second.coordination.pace(7, 0.001, 0.5)  # a paced message to the same chat
    assert time.monotonic() - came_back >= 0.49  # not 0.1: half a second from its moment


async def test_many_processes_pacing_many_chats_at_once_never_deadlock(processes: Open) -> None:
    """The pace also forgets chats whose second has passed. Inside cocreate_pace, that
    waited for calls inserting such a chat anew, which waited for rows the forgetting call
    held (PostgreSQL: "deadlock detected", and a broadcast's row failed). It is now a
    statement of its own, holding no other lock."""
    stores = [await processes() for _ in range(3)]

    async def one(store: Store, i: int) -> None:
        chat = i % 12
        _, ticket = await store.coordination.pace(
            chat, 0.0, 0.001, waits=i % 2 == 0, most=30, span=0.01
        )
        await store.coordination.sent(ticket, 30, chat, 0.001)  # its request came back

    for _ in range(6):
        for store in stores:
            store.coordination._forget_at = 0.0  # type: ignore[attr-defined]  # now, each
        await asyncio.gather(*(one(s, i) for i in range(40) for s in stores))
        await asyncio.sleep(0.01)  # every chat's moment passes: all may be forgotten at once


async def test_a_chat_forgotten_while_its_pace_waits_is_made_again_and_held(
    processes: Open,
) -> None:
    """Every call to the pace holds its chat's row before everyone's row, even when the chat
    is forgotten (cocreate_pace_forget) just as the call locks it: it makes the row again.
    It used to hold nothing then, and a call that locked a new row for the chat could wait
    for everyone's row while this one, holding everyone's, waited for the chat's ("deadlock
    detected", seen in CI under load). The moments are set by hand here: a forget under way
    (`forget`) and someone holding everyone's row (`busy`)."""
    a, d = await processes(), await processes()
    pool = a.db.pool  # type: ignore[attr-defined]
    chat = 77
    await a.coordination.pace(chat, 0.0, 0.001, waits=False)  # the chat's row exists
    forget, busy = await pool.acquire(), await pool.acquire()

    async def blocked(sql: str, by: int | None = None) -> bool:
        """Whether a call running `sql` waits for a lock (held by the connection `by`)."""
        rows = await pool.fetch(
            "SELECT pg_blocking_pids(pid) AS by FROM pg_stat_activity"
            " WHERE state = 'active' AND query LIKE $1",
            sql + "%",
        )
        return any(r["by"] and (by is None or by in r["by"]) for r in rows)

    async def until(ready: Callable[[], Awaitable[bool]]) -> None:
        async with asyncio.timeout(10):
            while not await ready():  # noqa: ASYNC110 - PostgreSQL is polled
                await asyncio.sleep(0.01)

    pace_sql = "SELECT wait, ticket FROM cocreate_pace"
    try:
        forgetting, holding = forget.transaction(), busy.transaction()
        await forgetting.start()
        key = await forget.fetchval("SELECT cocreate_pace_key($1)", chat)
        await forget.execute("SELECT 1 FROM send_pace WHERE chat_id = $1 FOR UPDATE", key)
        await holding.start()
        await busy.execute("SELECT 1 FROM send_pace WHERE chat_id = 0 FOR UPDATE")
        paced = asyncio.create_task(a.coordination.pace(chat, 0.0, 0.001, waits=False))
        await until(lambda: blocked(pace_sql, forget.get_server_pid()))
        await forget.execute("DELETE FROM send_pace WHERE chat_id = $1", key)
        await forgetting.commit()  # the chat is forgotten
        await until(lambda: blocked(pace_sql, busy.get_server_pid()))  # it waits for everyone's
        # It holds the chat's row meanwhile: a request to that chat coming back waits for it.
        paced_by = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
            pace_sql + "%",
        )
        came_back = asyncio.create_task(d.coordination.sent(None, 0, chat, 0.001))

        async def came_back_or_waits() -> bool:
            return came_back.done() or await blocked("SELECT cocreate_sent", paced_by)

        await until(came_back_or_waits)
        assert not came_back.done()
        await holding.commit()  # everyone's row is free: both go, one after the other
        async with asyncio.timeout(10):
            await asyncio.gather(paced, came_back)
    finally:
        await pool.release(forget)
        await pool.release(busy)

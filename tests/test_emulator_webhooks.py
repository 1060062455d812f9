"""The emulator in front of several bot processes: webhook targets (round-robin, skipping one
that fails), parallel POSTs that keep each chat's order, and the rate report.

The targets are small aiohttp servers in the test, not the bot: what is tested is what the
emulator sends where, and what it counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from emulator import Emulator, webhook
from tests.net import free_port

TOKEN = "123456:TEST-TOKEN"
SECRET = "s3cret"
# The URL setWebhook gives: nothing listens there; the targets get its path and query.
HOOK_URL = "https://bot.example.org/telegram/hook?from=tg"

Handler = Callable[[dict[str, Any]], Awaitable[int]]


@dataclass
class Receiver:
    """One small webhook server standing in for a bot process."""

    answer: Handler | None = None  # the HTTP status to answer with; 200 when not set
    got: list[dict[str, Any]] = field(default_factory=list)  # every update POSTed, in order
    paths: set[str] = field(default_factory=set)
    secrets: set[str | None] = field(default_factory=set)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.add(request.path_qs)
        self.secrets.add(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        update = await request.json()
        self.got.append(update)
        status = await self.answer(update) if self.answer is not None else 200
        return web.Response(status=status)

    @property
    def update_ids(self) -> list[int]:
        return [update["update_id"] for update in self.got]


@contextlib.asynccontextmanager
async def serving(*receivers: Receiver) -> AsyncIterator[None]:
    runners = []
    try:
        for receiver in receivers:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", receiver.handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


async def set_webhook(http: httpx.AsyncClient, url: str = HOOK_URL) -> None:
    answer = await http.post(f"/bot{TOKEN}/setWebhook", json={"url": url, "secret_token": SECRET})
    assert answer.json() == {"ok": True, "result": True}


def chat_of(update: dict[str, Any]) -> int:
    return int(update["message"]["chat"]["id"])


async def test_each_target_gets_every_third_update_in_turn() -> None:
    receivers = [Receiver(), Receiver(), Receiver()]
    async with serving(*receivers):
        targets = [receiver.url for receiver in receivers]
        async with (
            Emulator(TOKEN, webhook_targets=targets) as emu,
            httpx.AsyncClient(base_url=emu.url) as http,
        ):
            ids = [emu.user(1001 + n % 2).send(f"message {n}") for n in range(7)]
            await set_webhook(http)
            await emu.wait_confirmed(ids[-1], timeout=3)
            assert emu.pending_updates == 0
            for n, receiver in enumerate(receivers):
                assert receiver.update_ids == ids[n::3]
                # Where setWebhook pointed, with its secret: as behind a reverse proxy.
                assert receiver.paths == {"/telegram/hook?from=tg"}
                assert receiver.secrets == {SECRET}
            assert emu.webhook_targets == targets
            assert emu.webhook_accepted == {targets[0]: 3, targets[1]: 2, targets[2]: 2}
            assert emu.webhook_most_in_flight == 1  # by default one at a time


async def test_a_target_that_is_down_or_fails_is_skipped_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A long backoff: a skipped target must not cost one, and new targets end it at once.
    monkeypatch.setattr(webhook, "FIRST_RETRY", 30.0)
    monkeypatch.setattr(webhook, "LAST_RETRY", 30.0)
    first, last = Receiver(), Receiver()
    refused: list[int] = []

    async def refuse_once(update: dict[str, Any]) -> int:
        if refused:
            return 200
        refused.append(update["update_id"])
        return 503

    last.answer = refuse_once
    async with serving(first, last):
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
        async with (
            Emulator(TOKEN, webhook_targets=[first.url, down, last.url]) as emu,
            httpx.AsyncClient(base_url=emu.url) as http,
        ):
            ann = emu.user(1001)
            ids = [ann.send(f"message {n}") for n in range(4)]
            await set_webhook(http)
            await emu.wait_confirmed(ids[-1], timeout=3)
            # 1 → first; 2 → down, then last (503), then first; 3 → down, then last; 4 → first.
            assert first.update_ids == [ids[0], ids[1], ids[3]]
            assert last.update_ids == [ids[1], ids[2]] and refused == [ids[1]]
            assert emu.webhook_accepted == {first.url: 3, last.url: 1}
            assert emu.webhook_backoffs == 0
            info = (await http.get(f"/bot{TOKEN}/getWebhookInfo")).json()["result"]
            assert info["pending_update_count"] == 0 and info["last_error_message"]

            # Every target down: the update waits (with the backoff) until one is back.
            emu.set_webhook_targets([down, f"http://127.0.0.1:{free_port()}"])
            waiting = ann.send("while all are down")
            with pytest.raises(TimeoutError):
                await emu.wait_confirmed(waiting, timeout=0.1)
            assert emu.pending_updates == 1 and emu.webhook_backoffs == 1
            emu.set_webhook_targets([last.url])
            await emu.wait_confirmed(waiting, timeout=1)
            assert last.update_ids[-1] == waiting


async def test_parallel_posts_overlap_across_chats_but_never_within_one() -> None:
    flight: list[int] = []  # the chats of the POSTs in flight now, on both targets
    clashes: list[int] = []  # a chat with two updates in flight at once
    most = 0
    four_at_once = asyncio.Event()
    first_four: list[int] = []
    arrived: list[dict[str, Any]] = []  # every update, in the order POSTs came, on both

    async def slow(update: dict[str, Any]) -> int:
        nonlocal most
        chat = chat_of(update)
        if chat in flight:
            clashes.append(chat)
        flight.append(chat)
        arrived.append(update)
        most = max(most, len(flight))
        if len(flight) >= 4 and not four_at_once.is_set():
            first_four.extend(sorted(flight))
            four_at_once.set()
        try:
            # The first POSTs wait until four overlap (if they never do, the test fails),
            # every one is a little slow, so a second update of a chat would overlap.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(four_at_once.wait(), 0.5)
            await asyncio.sleep(0.01)
        finally:
            flight.remove(chat)
        return 200

    receivers = [Receiver(answer=slow), Receiver(answer=slow)]
    async with serving(*receivers):
        async with (
            Emulator(TOKEN) as emu,
            httpx.AsyncClient(base_url=emu.url) as http,
        ):
            # Set over the member API, as for an emulator in another process.
            targets = [r.url for r in receivers]
            answer = await http.post("/_emu/webhook", json={"targets": targets, "parallel": 4})
            assert answer.json() == {"targets": targets, "parallel": 4}
            answer = await http.post("/_emu/webhook", json={"parallel": "four"})
            assert answer.status_code == 400
            order = [1001, 1002, 1001, 1002, 1003, 1001, 1002, 1004, 1001, 1002]
            ids = [emu.user(chat).send(f"message {n}") for n, chat in enumerate(order)]
            await set_webhook(http)
            for update_id in ids:
                await emu.wait_confirmed(update_id, timeout=3)
            assert emu.webhook_parallel == 4
            assert most == 4 and emu.webhook_most_in_flight == 4
            assert clashes == []
            assert first_four == [1001, 1002, 1003, 1004]
            assert sorted(update["update_id"] for update in arrived) == ids  # each once
            assert all(r.got for r in receivers)  # both targets took some
            # Each chat's updates arrived in order, whichever target took them.
            for chat in set(order):
                mine = [u["update_id"] for u in arrived if chat_of(u) == chat]
                assert mine == [i for i, c in zip(ids, order, strict=True) if c == chat]


async def test_targets_are_addresses_and_parallel_is_positive() -> None:
    emu = Emulator(TOKEN)
    with pytest.raises(ValueError, match="no path"):
        emu.set_webhook_targets(["http://127.0.0.1:8001/hook"])
    with pytest.raises(ValueError, match="like http"):
        emu.set_webhook_targets(["127.0.0.1:8001"])
    with pytest.raises(ValueError, match="at least 1"):
        emu.webhook_parallel = 0
    emu.set_webhook_targets(["http://127.0.0.1:8001/"])
    assert emu.webhook_targets == ["http://127.0.0.1:8001"]


async def test_the_rate_report_counts_a_known_burst() -> None:
    now = [100.0]  # the emulator's monotonic clock, set before each call

    async with (
        Emulator(TOKEN, rate_limit=True, monotonic=lambda: now[0]) as emu,
        httpx.AsyncClient(base_url=emu.url) as http,
    ):
        for chat in range(1, 41):
            emu.open_chat(chat)

        async def send(chat: int, at: float, *, paid: bool = False) -> int:
            now[0] = at
            params: dict[str, Any] = {"chat_id": chat, "text": f"at {at}"}
            if paid:
                params["allow_paid_broadcast"] = True
            answer = await http.post(f"/bot{TOKEN}/sendMessage", json=params)
            return answer.status_code

        for chat in range(1, 6):
            assert await send(chat, 100.0) == 200
        assert await send(6, 100.5) == 200
        assert await send(7, 100.5) == 200  # 7 in the second from 100.0
        assert await send(1, 101.0) == 200  # a second after chat 1's first: not close
        assert await send(2, 101.2) == 200
        assert await send(1, 101.6) == 200  # 0.6 s after: close, and unprompted
        now[0] = 102.0
        emu.user(8).send("hello")
        assert await send(8, 103.0) == 200
        assert await send(8, 103.1) == 200  # close, but a reply to the member
        for chat in (3, 4, 5):
            assert await send(chat, 104.0, paid=True) == 200
        now[0] = 104.5
        assert (
            await http.post(f"/bot{TOKEN}/sendChatAction", json={"chat_id": 9, "action": "typing"})
        ).status_code == 200

        report = emu.rate_report()
        assert report.as_dict() == {
            "messages": 15,
            "paid_messages": 3,
            "max_per_second": 7,
            "max_free_per_second": 7,
            "max_paid_per_second": 3,
            "max_chat_per_second": 2,
            "chat_close_pairs": 2,
            "chat_close_pairs_unprompted": 1,
            "flood_refused": 0,
            "refused_429": 0,
        }
        assert [(m.text, m.sent_at) for m in emu.bot_messages(1)] == [
            ("at 100.0", 100.0),
            ("at 101.0", 101.0),
            ("at 101.6", 101.6),
        ]
        assert [m.message_id for m in emu.bot_messages(1)] == [1, 2, 3]

        # 31 at once: Telegram's flood limit takes 30; one injected 429 more.
        statuses = [await send(chat, 110.0) for chat in range(10, 41)]
        assert statuses == [200] * 30 + [429]
        emu.faults.add("sendMessage", 429)
        assert await send(9, 112.0) == 429
        report = emu.rate_report()
        assert (await http.get("/_emu/rates")).json() == report.as_dict()
        assert report.messages == 45 and report.max_free_per_second == 30
        assert report.max_per_second == 30 and report.max_paid_per_second == 3
        assert report.flood_refused == 1 and report.refused_429 == 2
        assert emu.bot_messages(999) == []

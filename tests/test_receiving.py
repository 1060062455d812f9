"""Receiving: the inbox is replayed at start, redeliveries are dropped, webhook mode works."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from telegram import Update

from bot.app import INBOX_MEMORY, PRUNE_JOB, build_application, running
from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication, DurableUpdateQueue
from bot.settings import MissingWebhookSecret
from emulator import Emulator
from storage.inbox import Inbox
from storage.store import Store
from storage.times import to_db
from tests.conftest import make_settings
from tests.dbs import Statements
from tests.net import free_port
from tests.transcript import NOT_STARTED, Person, choose_language, hello


def start_update(update_id: int, user_id: int, first_name: str) -> dict[str, object]:
    user = {"id": user_id, "is_bot": False, "first_name": first_name}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1_790_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": user,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_updates_recorded_but_never_handled_are_handled_at_start(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock
) -> None:
    # As if the last process died after recording the update but before handling it.
    # Telegram still offers it too (it was never confirmed): it must be handled once.
    ann = emulator.user(4001, first_name="Ann")
    update_id = ann.send("/start")
    # Recorded by that process, which is gone: its inbox left no live process's mark on the
    # row (with one process, no mark at all).
    gone = Inbox(store.db, clock.now)
    await gone.record(update_id, json.dumps(start_update(update_id, 4001, "Ann")))
    application = build_application(make_settings(tmp_path, emulator), store, clock)
    async with running(application, poll_timeout=1) as app:
        await app.wait_handled(update_id)
        await emulator.wait_confirmed(update_id)
        later = Person(ann, app)
        assert await later.says("/help") == [
            hello(),
            choose_language(),
            t("en", "help.text"),
            NOT_STARTED,
            choose_language(),  # asked again: she is at the language step
        ]
    assert await store.inbox.unfinished() == []


async def test_a_redelivered_update_is_handled_once(
    bot: CocreateApplication, emulator: Emulator
) -> None:
    bo = emulator.user(4002, first_name="Bo")
    update_id = bo.send("/start")  # the poller fetches it too
    update = Update.de_json(start_update(update_id, 4002, "Bo"), bot.bot)
    queue = bot.update_queue
    assert isinstance(queue, DurableUpdateQueue)
    await queue.put(update)  # as if Telegram sent it again, never having been confirmed
    await queue.put(update)
    await bot.wait_handled(update_id)
    later = Person(bo, bot)
    await later.says("/help")  # handled after both puts, so any duplicate would show by now
    texts = [m.text for m in bo.messages]
    assert texts.count(hello()) == 1


async def test_the_command_menu_is_registered_in_both_languages(
    bot: CocreateApplication, emulator: Emulator
) -> None:
    commands = emulator.commands
    english = next(v for k, v in commands.items() if "/" not in k)
    welsh = next(v for k, v in commands.items() if k.endswith("/cy"))
    names = [c["command"] for c in english]
    assert names == [
        "start",
        "menu",
        "help",
        "language",
        "questions",
        "updates",
        "mydata",
        "myvotes",
        "stop",
        "resume",
        "delete",
        "cancel",
    ]
    assert [c["command"] for c in welsh] == names
    assert english[0]["description"] == t("en", "command.start")
    assert welsh[0]["description"] == t("cy", "command.start")


@pytest.fixture
def webhook_port() -> int:
    return free_port()


@pytest.fixture
def settings_overrides(webhook_port: int) -> dict[str, object]:
    return {
        "webhook_url": f"http://127.0.0.1:{webhook_port}/telegram-hook",
        "webhook_secret": "s3cret-token",
        "port": webhook_port,
    }


async def test_webhook_mode_with_secret_token(
    bot: CocreateApplication,
    emulator: Emulator,
    person: Callable[..., Person],
    webhook_port: int,
    store: Store,
) -> None:
    assert emulator.webhook_url == f"http://127.0.0.1:{webhook_port}/telegram-hook"
    assert emulator.webhook_secret == "s3cret-token"
    cai = person(4003, "Cai")
    assert await cai.says("/start") == [hello(), choose_language()]
    assert await cai.taps("English") == [t("en", "consent.text")]
    # A post without the secret is refused and handles nothing.
    async with httpx.AsyncClient() as client:
        forged = await client.post(
            f"http://127.0.0.1:{webhook_port}/telegram-hook",
            json=start_update(999_999, 4004, "Mallory"),
        )
    assert forged.status_code == 403
    row = await store.db.fetch_one("SELECT COUNT(*) AS n FROM inbox WHERE update_id = 999999")
    assert row is not None and row["n"] == 0


async def test_the_webhook_listens_on_webhook_listen_only(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, webhook_port: int
) -> None:
    # 127.0.0.2 is loopback too, but not 127.0.0.1: a server on it alone refuses the other.
    hook = f"http://127.0.0.2:{webhook_port}/telegram-hook"
    settings = make_settings(
        tmp_path,
        emulator,
        webhook_url=hook,
        webhook_secret="s3cret-token",
        webhook_listen="127.0.0.2",
        port=webhook_port,
    )
    async with running(build_application(settings, store, clock)) as app:
        dee = Person(emulator.user(4005, first_name="Dee"), app)
        assert await dee.says("/start") == [hello(), choose_language()]
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.post(
                    f"http://127.0.0.1:{webhook_port}/telegram-hook",
                    json=start_update(999_998, 4006, "Mallory"),
                    headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"},
                )


async def test_webhook_mode_without_a_secret_does_not_start(
    tmp_path: Path, emulator: Emulator, store: Store, clock: FakeClock, webhook_port: int
) -> None:
    settings = make_settings(
        tmp_path,
        emulator,
        webhook_url=f"http://127.0.0.1:{webhook_port}/telegram-hook",
        port=webhook_port,
    )
    with pytest.raises(MissingWebhookSecret):
        async with running(build_application(settings, store, clock)):
            pass  # pragma: no cover - never reached
    assert emulator.webhook_url is None
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{webhook_port}/telegram-hook", json={})


async def test_handled_updates_are_forgotten_once_a_day_in_batches(
    bot: CocreateApplication, store: Store, clock: FakeClock
) -> None:
    assert bot.job_queue is not None
    [job] = bot.job_queue.get_jobs_by_name(PRUNE_JOB)
    old = to_db(clock.now() - INBOX_MEMORY - timedelta(hours=1))
    recent = to_db(clock.now() - timedelta(hours=1))
    rows: list[tuple[int, str | None, str, str | None]] = [
        (n, None, old, old) for n in range(1, 13)
    ]
    rows += [(13, "{}", old, None), (14, None, recent, recent)]  # unfinished; handled lately
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO inbox (update_id, payload, received_at, done_at) VALUES (?, ?, ?, ?)",
            rows,
        )
    await job.run(bot)  # what the daily job does
    left = await store.db.fetch_all("SELECT update_id FROM inbox WHERE update_id < 15")
    assert [r["update_id"] for r in left] == [13, 14]
    # In batches: the lock is let go between them, so updates are handled meanwhile.
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO inbox (update_id, payload, received_at, done_at) VALUES (?, ?, ?, ?)",
            [(n, None, old, old) for n in range(100, 112)],
        )
    with Statements(store.db) as statements:
        assert await store.inbox.prune(before=clock.now() - INBOX_MEMORY, batch=5) == 12
    assert sum(s.startswith("DELETE") for s in statements) == 3  # 5, 5, then 2

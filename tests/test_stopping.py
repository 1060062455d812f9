"""Stopping while a take-over runs (several processes: bot/app.py `take_over`, every
LEADER_RETRY seconds): it must not start polling again once `running` has stopped it, or
ptb's shutdown fails ("This Updater is still running!", seen in CI on PostgreSQL)."""

from __future__ import annotations

import asyncio

from bot.app import build_application, running, take_over
from bot.clock import FakeClock
from bot.settings import Settings
from conversations.context import CocreateContext
from storage.store import Store


async def test_a_take_over_while_the_bot_stops_never_starts_polling_again(
    settings: Settings, store: Store, clock: FakeClock
) -> None:
    application = build_application(settings, store, clock)
    started = running(application, poll_timeout=1)
    app = await started.__aenter__()
    assert app.updater is not None and app.updater.running
    context = CocreateContext(app)
    stopping = asyncio.create_task(started.__aexit__(None, None, None))
    tries = 0
    while not stopping.done():  # a take-over at every step of the stop
        await take_over(context, poll_timeout=1)
        tries += 1
        await asyncio.sleep(0)
    await stopping  # raised RuntimeError when a take-over had started polling again
    assert tries > 0 and not app.updater.running

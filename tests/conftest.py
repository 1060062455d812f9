"""Shared fixtures: the emulator, a temporary database, a fake clock, and the real bot on top."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

# As `cocreate` does in main(): ptb's timedelta durations, not its deprecation warning.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bot.app import build_application, running
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from emulator import Emulator
from storage.store import Store
from tests.transcript import Person

TOKEN = "123456:TEST-TOKEN-not-a-real-one"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN) as emu:
        yield emu


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Europe/London")))


def make_settings(tmp_path: Path, emulator: Emulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "telegram_api_base_url": emulator.base_url,
        "telegram_file_base_url": emulator.file_base_url,
        "database_url": f"sqlite:///{tmp_path / 'cocreate.db'}",
        "media_dir": tmp_path / "media",
        "about_extra_question": "Do you look after someone?",
        "about_extra_options": ["Yes", "No"],
        # Conversations run at machine speed here: no pacing (tests/test_delivery*.py test it).
        "broadcast_rate": 1000,
        "chat_burst": 10_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the settings the bot starts with."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, emulator: Emulator, settings_overrides: dict[str, Any]) -> Settings:
    return make_settings(tmp_path, emulator, **settings_overrides)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "cocreate.db", clock.now)
    yield store
    await store.close()


@pytest.fixture
async def bot(
    settings: Settings, store: Store, clock: FakeClock
) -> AsyncIterator[CocreateApplication]:
    application = build_application(settings, store, clock)
    async with running(application, poll_timeout=1) as app:
        yield app


@pytest.fixture
def person(emulator: Emulator, bot: CocreateApplication) -> Callable[..., Person]:
    def make(user_id: int = 1001, first_name: str = "Ann", **kwargs: Any) -> Person:
        return Person(emulator.user(user_id, first_name=first_name, **kwargs), bot)

    return make

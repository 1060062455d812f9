"""Shared fixtures: the emulator, a temporary database, a fake clock, and the real bot on top."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

# As `cocreate` does in main(): ptb's timedelta durations, not its deprecation warning.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bot.app import build_application, running
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from bot.web.server import serving
from emulator import Emulator
from storage.store import Store
from tests.pg import ClusterFailed, PostgresMissing, ThrowawayCluster
from tests.transcript import Person

TOKEN = "123456:TEST-TOKEN-not-a-real-one"


@pytest.fixture(autouse=True, scope="session")
def quick_clients_and_starts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Takes two costs of this machine's environment, not of cocreate, out of the tests.

    Every httpx client (two for each bot a test starts) parses a whole CA bundle, SSL_CERT_FILE
    or certifi's, though no test speaks TLS: they trust the system's CA folder instead, which
    is read only when a certificate is checked. And where PYTHONDONTWRITEBYTECODE is set, each
    `python -m bot` subprocess would compile the project and its libraries anew: they share a
    throw-away bytecode cache (one for all xdist workers).
    """
    with pytest.MonkeyPatch.context() as patch:
        ca_folder = ssl.get_default_verify_paths().capath
        if ca_folder and Path(ca_folder).is_dir():
            patch.delenv("SSL_CERT_FILE", raising=False)
            patch.setenv("SSL_CERT_DIR", ca_folder)
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            base = tmp_path_factory.getbasetemp()
            if os.environ.get("PYTEST_XDIST_WORKER"):
                base = base.parent
            cache = base / "pycache"
            cache.mkdir(exist_ok=True)
            patch.delenv("PYTHONDONTWRITEBYTECODE")
            patch.setenv("PYTHONPYCACHEPREFIX", str(cache))
        yield


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
        # Conversations run at machine speed here: no pacing (tests/test_delivery*.py test it),
        # nor a second's wait before a broadcast or report reaches a chat just written to.
        "broadcast_rate": 1000,
        "chat_burst": 10_000,
        "chat_interval": 0.001,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the settings the bot starts with."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, emulator: Emulator, settings_overrides: dict[str, Any], database_url: str
) -> Settings:
    return make_settings(tmp_path, emulator, **{"database_url": database_url, **settings_overrides})


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with every migration applied, made once a session (in a thread of its own,
    away from the tests' event loops): each test's database starts as a copy of it."""
    path = tmp_path_factory.mktemp("migrated") / "cocreate.db"

    async def make() -> None:
        await (await Store.open(path, partial(datetime.now, UTC))).close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, make()).result()
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked long go first, longest (`order`) first, the rest as collected:
    pytest-xdist hands out tests in this order, so each long one starts at once on a worker of
    its own while the others share the rest (last, they would end the run alone)."""

    def place(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return float("inf") if marker is None else float(marker.kwargs["order"])

    items.sort(key=place)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a database runs on SQLite and on PostgreSQL (`database`), unless it is
    about SQLite's own workings (marked sqlite_only)."""
    if "database" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        kinds = ["sqlite"] if only else ["sqlite", "postgresql"]
        metafunc.parametrize("database", kinds, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on: "sqlite" or "postgresql"."""
    kind: str = getattr(request, "param", "sqlite")
    return kind


@pytest.fixture(scope="session")
def pg_migrated(pg_cluster: ThrowawayCluster) -> str:
    """A PostgreSQL database with every migration applied, made once per worker: each test's
    database is a copy of it (CREATE DATABASE … TEMPLATE)."""
    name = "cocreate_migrated"

    async def make() -> None:
        await pg_cluster.create_database(name)
        await (await Store.open_url(pg_cluster.url(name), partial(datetime.now, UTC))).close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, make()).result()
    return name


@pytest.fixture
async def database_url(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """The test's own database, migrated, as a DATABASE_URL: a copy of the migrated SQLite
    file, or a PostgreSQL database copied from the migrated one (dropped afterwards)."""
    if database == "sqlite":
        migrated: Path = request.getfixturevalue("migrated")
        # Store.open makes it private (0600)
        shutil.copyfile(migrated, tmp_path / "cocreate.db")
        yield f"sqlite:///{tmp_path / 'cocreate.db'}"
        return
    cluster: ThrowawayCluster = request.getfixturevalue("pg_cluster")
    template: str = request.getfixturevalue("pg_migrated")
    name = cluster.unique_name()
    await cluster.create_database(name, template=template)
    yield cluster.url(name)
    await cluster.drop_database(name)


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    store = await Store.open_url(database_url, clock.now)
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


@pytest.fixture
async def workbench(bot: CocreateApplication) -> AsyncIterator[str]:
    """The workbench beside the bot (on settings' WEB_PORT); yields its address."""
    async with serving(bot.resources, wake=lambda: bot.delivery.wake()):
        yield bot.resources.settings.workbench_url


@pytest.fixture
async def http(workbench: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the workbench (no cookies yet)."""
    async with httpx.AsyncClient(base_url=workbench, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[ThrowawayCluster]:
    """A throw-away PostgreSQL cluster for this worker (tests/pg.py), started by the first
    test that asks. Without PostgreSQL the test fails, never skips: .ci/run installs it."""
    try:
        cluster = ThrowawayCluster()
        cluster.start()
    except (PostgresMissing, ClusterFailed) as error:
        failure = str(error)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
async def pg_database_url(pg_cluster: ThrowawayCluster) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it; yields its URL."""
    name = pg_cluster.unique_name()
    await pg_cluster.create_database(name)
    yield pg_cluster.url(name)
    await pg_cluster.drop_database(name)

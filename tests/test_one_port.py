"""Webhook mode: the webhook and the workbench are one ASGI app on one port (bot/web/webhook.py,
ptb's custom-webhook pattern). The emulator delivers updates by webhook as Telegram does (a
POST per update, with the secret token, again until it gets a 2xx); a member and a
facilitator use the bot, and the facilitator signs in to the workbench on the same port.
A post without the secret is refused and never recorded; one that comes before the bot has
started, or once it is stopping, gets 503 (Telegram tries again) and is not recorded either.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import build_application, running
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from bot.web.server import serving
from bot.web.webhook import SECRET_HEADER, Webhook
from emulator import Emulator
from storage.store import Store
from tests.net import free_port
from tests.test_process import BotProcess, texts, wait_until
from tests.test_receiving import start_update
from tests.test_workbench import FACILITATOR, ORGANISER, link_for, sign_in
from tests.transcript import Person, choose_language, hello

SECRET = "s3cret-token"
WEB_PORT = free_port()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "organiser_ids": [ORGANISER],
        "web_port": WEB_PORT,
        "webhook_url": f"http://127.0.0.1:{WEB_PORT}/telegram-hook",
        "webhook_secret": SECRET,
    }


@pytest.fixture
async def bot(
    settings: Settings, store: Store, clock: FakeClock
) -> AsyncIterator[CocreateApplication]:
    """The bot in webhook mode as `cocreate run` starts it: the webhook is a route of the
    workbench's app."""
    application = build_application(settings, store, clock)
    webhook = Webhook(application)
    async with (
        serving(application.resources, routes=webhook.routes()),
        running(application, poll_timeout=1, webhook=webhook) as app,
    ):
        yield app


async def recorded(store: Store, update_id: int) -> int:
    row = await store.db.fetch_one(
        "SELECT COUNT(*) AS n FROM inbox WHERE update_id = ?", (update_id,)
    )
    assert row is not None
    return int(row["n"])


async def test_updates_and_the_workbench_come_to_one_port(
    person: Callable[..., Person], emulator: Emulator, store: Store, settings: Settings
) -> None:
    hook = f"http://127.0.0.1:{WEB_PORT}/telegram-hook"
    assert (emulator.webhook_url, emulator.webhook_secret) == (hook, SECRET)
    cai = person(4003, "Cai")
    assert await cai.says("/start") == [hello(), choose_language()]
    # A facilitator's /workbench comes by webhook; its link signs in on the same port.
    await store.roles.grant_facilitator(FACILITATOR, "Fay", granted_by=ORGANISER)
    link = await link_for(person(FACILITATOR, "Fay"))
    assert link.startswith(f"http://127.0.0.1:{WEB_PORT}/signin/")
    async with httpx.AsyncClient(base_url=settings.workbench_url) as http:
        assert (await sign_in(http, link)).status_code == 303
        assert (await http.get("/")).status_code == 200
        # Without the secret, or with a wrong one: refused, and nothing is recorded.
        forged = start_update(999_999, 4004, "Mallory")
        assert (await http.post("/telegram-hook", json=forged)).status_code == 403
        wrong = {SECRET_HEADER: "guess"}
        assert (await http.post("/telegram-hook", json=forged, headers=wrong)).status_code == 403
        assert await recorded(store, 999_999) == 0
        # The webhook takes only POSTs; the path is not a page.
        assert (await http.get("/telegram-hook")).status_code == 405


async def test_an_update_is_recorded_before_the_answer_and_not_handled_twice(
    bot: CocreateApplication, store: Store, settings: Settings, emulator: Emulator
) -> None:
    dee = emulator.open_chat(4005, first_name="Dee")  # Telegram knows Dee
    update = start_update(888_888, 4005, "Dee")
    right = {SECRET_HEADER: SECRET}
    async with httpx.AsyncClient(base_url=settings.workbench_url) as http:
        answer = await http.post("/telegram-hook", json=update, headers=right)
        assert answer.status_code == 200
        assert await recorded(store, 888_888) == 1  # on disk when Telegram hears 200
        await bot.wait_handled(888_888)
        # Telegram sends it again (it did not hear the 200): accepted, not handled twice.
        again = await http.post("/telegram-hook", json=update, headers=right)
        assert again.status_code == 200
        assert (await http.post("/telegram-hook", content=b"{", headers=right)).status_code == 400
    await bot.wait_handled(888_888)
    assert [m.text for m in dee.messages].count(hello()) == 1


async def test_before_the_bot_starts_and_once_it_stops_the_webhook_answers_503(
    settings: Settings, store: Store, clock: FakeClock
) -> None:
    application = build_application(settings, store, clock)
    webhook = Webhook(application)
    right = {SECRET_HEADER: SECRET}
    update = start_update(777_777, 4006, "Eli")
    async with serving(application.resources, routes=webhook.routes()):
        async with httpx.AsyncClient(base_url=settings.workbench_url) as http:
            early = await http.post("/telegram-hook", json=update, headers=right)
            assert early.status_code == 503 and early.headers["retry-after"] == "1"
            assert await recorded(store, 777_777) == 0
            async with running(application, poll_timeout=1, webhook=webhook):
                assert webhook.taking
            late = await http.post("/telegram-hook", json=update, headers=right)
            assert late.status_code == 503
            assert await recorded(store, 777_777) == 0


@pytest.mark.process
async def test_cocreate_run_in_webhook_mode_serves_both_on_web_port(
    tmp_path: Path, emulator: Emulator
) -> None:
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram-hook"
    process = BotProcess(
        tmp_path,
        emulator,
        WEB_PORT=str(port),
        WEBHOOK_URL=hook,
        WEBHOOK_SECRET=SECRET,
        ORGANISER_IDS=str(ORGANISER),
    )
    with process.log.open("ab") as log:
        process.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env=process.env,
            stdout=log,
            stderr=log,
        )
    try:
        await wait_until(lambda: emulator.webhook_url == hook)
        olu = emulator.user(ORGANISER, first_name="Olu")
        olu.send("/workbench")  # delivered by the emulator to the webhook, on WEB_PORT
        [reply] = await texts(olu, 1)
        found = re.search(rf"http://127\.0\.0\.1:{port}/signin/\S+", reply)
        assert found is not None, reply
        async with httpx.AsyncClient() as http:
            assert (await http.get(found[0])).status_code == 200
        assert await process.terminate() == 0
    finally:
        if process.proc.returncode is None:
            await process.kill()


def test_run_in_webhook_mode_with_another_port_refuses_in_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot",  # never reached
            "WEBHOOK_URL": "https://bot.example.org/telegram",
            "WEBHOOK_SECRET": SECRET,
            "PORT": "8443",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "cocreate: PORT is 8443 but WEB_PORT is 8080: in webhook mode the webhook and the "
        "workbench share one port, WEB_PORT; leave PORT out"
    )

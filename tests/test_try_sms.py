"""`cocreate try`'s SMS member, Sam: the settings the bot gets, the chat page's phone thread
(emulator/control.py /_emu/sms/..., emulator/static/), and the SMS provider stand-in behind
it (emulator/sms.py).

The bot's own SMS side is not needed here: a tiny web app stands in for its /sms/inbound, and
"the bot's" texts to Sam are sent with twilio's own REST client, as the bot sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, expect
from pydantic import SecretStr
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from bot.settings import Settings
from bot.trying import (
    PEOPLE,
    SAM_NUMBER,
    SMS_NUMBER,
    TRY_PROJECT,
    TryData,
    _settings_for,
    start_sms_provider,
)
from emulator import Emulator, SmsProvider
from tests import test_try
from tests.test_sms_provider import LocalHttpClient
from tests.test_try import ARTIFACTS, ZOOMED, TryProcess, phone_page
from tests.test_workbench import no_serious_violations

SAM = next(person for person in PEOPLE if person.channel == "sms")
trying = test_try.trying  # `cocreate try` as a subprocess (a fixture)
SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


class BotInbound:
    """Stands in for the bot's POST /sms/inbound: checks the signature as the bot will."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.texts: list[dict[str, str]] = []
        self.status = 200
        self.answer = "<Response/>"  # TwiML: its <Message>s are texted back to the member
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/sms/inbound", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/sms/inbound"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self.validator.validate(self.url, form, signature):
            return web.Response(status=403)
        self.texts.append(form)
        return web.Response(text=self.answer, content_type="text/xml", status=self.status)


@pytest.fixture
async def provider() -> AsyncIterator[SmsProvider]:
    stand_in = await start_sms_provider()
    try:
        yield stand_in
    finally:
        await stand_in.stop()


@pytest.fixture
async def inbound(provider: SmsProvider) -> AsyncIterator[BotInbound]:
    bot = BotInbound(provider.auth_token)
    await bot.start()
    provider.inbound_url = bot.url
    yield bot
    await bot.stop()


@pytest.fixture
async def emu(provider: SmsProvider) -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        emulator.people = [asdict(person) for person in PEOPLE]
        emulator.sms = provider
        yield emulator


async def bot_texts(provider: SmsProvider, number: str, body: str) -> None:
    """The bot texts `number` through the stand-in, with twilio's REST client."""
    client = Client(
        provider.account_sid, provider.auth_token, http_client=LocalHttpClient(provider.base_url)
    )
    await asyncio.to_thread(client.messages.create, to=number, from_=provider.number, body=body)


# ---------------------------------------------------------------- the bot's settings


async def test_the_bot_is_given_the_stand_in_and_never_a_real_account(
    tmp_path: Path, provider: SmsProvider, emu: Emulator
) -> None:
    # Someone trying cocreate with their real Twilio account in .env: it is not used.
    real: dict[str, Any] = {
        "telegram_bot_token": "111:REAL",
        "sms_provider": "twilio",
        "twilio_account_sid": "AC" + "9" * 32,
        "twilio_auth_token": "their-real-token",
        "sms_from": "+447700900999",
        "sms_number_key": "their-real-key-0123456789",
    }
    data = TryData(tmp_path / "try.db", tmp_path / "media", kept=False, first_id=1)
    tried = _settings_for(Settings(_env_file=None, **real), emu, data, web_port=8081, sms=provider)
    again = _settings_for(Settings(_env_file=None, **real), emu, data, web_port=8081, sms=provider)
    assert tried.sms_on
    assert tried.sms_provider == "twilio"
    assert tried.twilio_account_sid == provider.account_sid
    assert re.fullmatch(r"AC[0-9a-f]{32}", tried.twilio_account_sid)
    assert tried.twilio_auth_token == SecretStr(provider.auth_token)
    assert tried.sms_from == provider.number == SMS_NUMBER
    assert tried.sms_api_base_url == provider.base_url
    assert tried.sms_number_key is not None and again.sms_number_key is not None
    key = tried.sms_number_key.get_secret_value()
    assert len(key) >= 16 and key != again.sms_number_key.get_secret_value()  # new each run
    assert "their-real" not in key
    # What the bot is given passes the settings' own check for SMS_PROVIDER=twilio.
    Settings.model_validate(tried.model_dump())


# ---------------------------------------------------------------- the page's routes


async def test_the_page_lists_sam_and_his_texts_reach_the_bot_signed(
    emu: Emulator, provider: SmsProvider, inbound: BotInbound
) -> None:
    number = SAM_NUMBER.replace("+", "%2B")
    async with httpx.AsyncClient(base_url=emu.url) as http:
        people = (await http.get("/_emu/people")).json()
        [sam] = [person for person in people if person["name"] == "Sam"]
        assert (sam["channel"], sam["number"], sam["role"]) == ("sms", SAM_NUMBER, "member")
        assert sam["steps"] == []  # a basic phone: nothing to tap
        assert all(p["channel"] == "telegram" for p in people if p["name"] != "Sam")
        assert SAM.id not in emu.state.chats  # Sam is nobody on Telegram

        empty = (await http.get(f"/_emu/sms/{number}/thread")).json()
        assert empty == {"version": provider.version, "number": SMS_NUMBER, "texts": []}

        hint = MessagingResponse()
        hint.message("Text the project's code to join.")
        inbound.answer = str(hint)
        sent = await http.post(f"/_emu/sms/{number}/send", json={"text": "HELLO"})
        assert sent.json() == {"status": 200}
        [text] = inbound.texts  # it passed the bot's signature check
        assert (text["From"], text["To"], text["Body"]) == (SAM_NUMBER, SMS_NUMBER, "HELLO")
        assert [sms.body for sms in provider.received_from(SAM_NUMBER)] == ["HELLO"]

        # The thread long-polls: it answers when the bot's text arrives.
        await provider.settled()  # the reply's statuses are in
        seen = (await http.get(f"/_emu/sms/{number}/thread")).json()["version"]
        waiting = asyncio.create_task(
            http.get(f"/_emu/sms/{number}/thread", params={"since": seen, "timeout": 10})
        )
        await asyncio.sleep(0)
        await bot_texts(provider, SAM_NUMBER, "Welcome. Reply 1 for Yes, 2 for No.")
        await bot_texts(provider, "+447700900456", "Not for Sam.")
        thread = (await waiting).json()
        assert thread["version"] > seen
        assert thread["texts"][-1]["text"] == "Welcome. Reply 1 for Yes, 2 for No."
        await provider.settled()
        thread = (await http.get(f"/_emu/sms/{number}/thread")).json()
        assert [(t["from_me"], t["text"]) for t in thread["texts"]] == [
            (True, "HELLO"),
            (False, "Text the project's code to join."),  # the TwiML answer, texted back
            (False, "Welcome. Reply 1 for Yes, 2 for No."),
        ]
        mine, _, theirs = thread["texts"]
        assert (mine["answered"], mine["error"], mine["media"]) == (200, None, [])
        assert theirs["status"] == "delivered"
        assert (await http.get("/_emu/state")).json()["sms_sent"] == {
            SAM_NUMBER: 2,
            "+447700900456": 1,
        }


async def test_what_goes_wrong_on_sams_phone_is_said(
    emu: Emulator, provider: SmsProvider, inbound: BotInbound
) -> None:
    number = SAM_NUMBER.replace("+", "%2B")
    async with httpx.AsyncClient(base_url=emu.url) as http:
        assert (await http.post(f"/_emu/sms/{number}/send", json={"text": " "})).status_code == 400
        inbound.status = 403
        refused = await http.post(f"/_emu/sms/{number}/send", json={"text": "STOP"})
        assert refused.json() == {"status": 403}
        await inbound.stop()  # the bot's web app is gone
        lost = await http.post(f"/_emu/sms/{number}/send", json={"text": "Hello?"})
        assert (lost.status_code, lost.json()) == (502, {"error": "the bot did not answer"})
        texts = (await http.get(f"/_emu/sms/{number}/thread")).json()["texts"]
        assert [(t["text"], t["answered"], t["error"]) for t in texts] == [
            ("STOP", 403, None),
            ("Hello?", None, "ClientConnectorError"),
        ]
    async with Emulator() as without, httpx.AsyncClient(base_url=without.url) as http:
        assert (await http.get(f"/_emu/sms/{number}/thread")).status_code == 404
        assert (await http.get("/_emu/state")).json()["sms_sent"] == {}


# ---------------------------------------------------------------- the page in a browser


async def texts_on_the_page(page: Page) -> list[str]:
    return [text.strip() for text in await page.locator("#messages li").all_inner_texts()]


async def test_sams_screen_is_a_plain_phone_thread(
    emu: Emulator, provider: SmsProvider, inbound: BotInbound
) -> None:
    axe = Axe()
    ARTIFACTS.mkdir(exist_ok=True)
    async with phone_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            await page.goto(emu.url)
            option = page.locator("#who option", has_text="Sam")
            await expect(option).to_have_text("Sam (SMS)")
            await page.select_option("#who", str(SAM.id))
            await expect(page.locator("#chat-title")).to_have_text("Sam's texts with the bot")
            await expect(page.locator("#phone-bar")).to_have_text(
                f"Texts with the bot's number, {SMS_NUMBER}"
            )
            await expect(page.locator("#intro")).to_contain_text(SMS_NUMBER)
            # A basic phone: no buttons to tap, no commands, no photos or voice notes.
            await expect(page.locator("#first-steps")).to_be_hidden()
            await expect(page.locator("#commands")).to_be_hidden()
            await expect(page.locator("#attach")).to_be_hidden()
            await expect(page.locator("#keyboard")).to_be_hidden()
            await no_serious_violations(axe, page)

            box = page.get_by_label("Text message", exact=True)
            await box.fill("HELLO")
            await box.press("Enter")
            await expect(page.locator("#messages li.from-me")).to_have_text(["You: HELLO"])
            assert [text["Body"] for text in inbound.texts] == ["HELLO"]
            await expect(page.locator("#empty")).to_be_hidden()

            # The bot's texts arrive as plain bubbles, buttons written out as numbers.
            await bot_texts(provider, SAM_NUMBER, "Do you agree? Reply 1 for Yes, 2 for No.")
            await expect(page.locator("#messages li.from-bot")).to_have_text(
                ["The bot: Do you agree? Reply 1 for Yes, 2 for No."]
            )
            await expect(page.locator("#messages button")).to_have_count(0)
            await box.fill("1")
            await box.press("Enter")
            await expect(page.locator("#messages li.from-me").last).to_have_text("You: 1")
            inbound.status = 403
            await box.fill("2")
            await box.press("Enter")
            await expect(page.locator("#messages li.from-me").last).to_contain_text(
                "The bot did not take this text (HTTP 403)."
            )
            await page.screenshot(path=ARTIFACTS / "try-sms.png")
            await no_serious_violations(axe, page)

            # At 200 % zoom nothing scrolls sideways.
            await page.set_viewport_size(ZOOMED)
            assert await page.evaluate(SIDEWAYS) <= 0, "Sam's thread scrolls sideways at 200 %"
            await page.screenshot(path=ARTIFACTS / "try-sms-zoomed.png")

            # Back to Ana: her Telegram chat, with its photo and voice buttons, again.
            await page.select_option("#who", "1001")
            await expect(page.locator("#chat-title")).to_have_text("Ana's chat with the bot")
            await expect(page.locator("#attach")).to_be_visible()
            await expect(page.locator("#phone-bar")).to_be_hidden()
            await expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
            await expect(page.locator("#messages li")).to_have_count(0)
            await no_serious_violations(axe, page)
            # The bot texts Sam while Ana's chat shows: the switch says Sam has news.
            await bot_texts(provider, SAM_NUMBER, "Thank you.")
            await expect(option).to_have_text("Sam (SMS) – new messages", timeout=10_000)
            assert errors == []
        except BaseException:
            await page.screenshot(path=ARTIFACTS / "try-sms-failure.png", full_page=True)
            raise


@pytest.mark.process
async def test_cocreate_try_has_sam_a_project_to_join_and_a_phone_wired_to_the_bot(
    trying: TryProcess,
) -> None:
    assert any("Sam (by SMS)" in line for line in trying.output)
    number = SAM_NUMBER.replace("+", "%2B")
    async with httpx.AsyncClient(base_url=trying.url) as http:
        people = (await http.get("/_emu/people")).json()
        assert [p["name"] for p in people if p["channel"] == "sms"] == ["Sam"]
        thread = (await http.get(f"/_emu/sms/{number}/thread")).json()
        assert (thread["number"], thread["texts"]) == (SMS_NUMBER, [])
        # Sam's text reaches the bot's web app (the workbench's port), which answers.
        sent = await http.post(f"/_emu/sms/{number}/send", json={"text": TRY_PROJECT[0]})
        assert sent.status_code == 200
        [text, *_] = (await http.get(f"/_emu/sms/{number}/thread")).json()["texts"]
        assert text["error"] is None and text["answered"] == sent.json()["status"]

        async def bot_texts(count: int) -> list[str]:
            """The bot's texts to Sam, once there are `count` of them."""
            version = -1
            for _ in range(40):
                thread = (
                    await http.get(f"/_emu/sms/{number}/thread?since={version}&timeout=2")
                ).json()
                version = thread["version"]
                mine = [x["text"] for x in thread["texts"] if not x["from_me"]]
                if len(mine) >= count:
                    return mine
            raise AssertionError(f"Sam got {mine}")

        # ... and Sam joins by typing numbers: English, then I agree.
        texts = await bot_texts(2)
        assert texts[-1].endswith("Reply 1 for English, 2 for Cymraeg.")
        await http.post(f"/_emu/sms/{number}/send", json={"text": "1"})
        texts = await bot_texts(3)
        assert texts[-1].endswith("Reply 1 for Yes, I agree, 2 for Not now.")
        await http.post(f"/_emu/sms/{number}/send", json={"text": "1"})
        texts = await bot_texts(4)
        assert any(x.startswith("You have joined the project") for x in texts[3:]), texts
    # The code Sam's intro gives is a project in the try's database.
    with contextlib.closing(sqlite3.connect(trying.folder / "cocreate-try.db")) as db:
        codes = [row[0] for row in db.execute("SELECT code FROM projects")]
    assert codes == [TRY_PROJECT[0]]
    assert TRY_PROJECT[0] in SAM.intro

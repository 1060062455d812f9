"""`cocreate try` as a subprocess, driven through its chat page in headless Chromium; and the
emulator's part in it (the page's routes, ids after a kept database, a taken port).

One person plays everyone, as someone trying cocreate would: Ana joins and shares a story
(typed, a photo, a voice note), Fran asks a yes-or-no question, Ana answers it by button,
Olu exports everything as CSV and downloads it; then Ctrl-C stops it all and the throw-away
folder goes.

Needs Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it) driven by
Playwright's Python package: Playwright's own browser download is never used. Screenshots
of the member's view go to test-artifacts/; `COCREATE_DOCS_SCREENSHOT=1` also writes the
README's picture, docs/try.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import struct
import sys
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import FilePayload, Page, ViewportSize, async_playwright, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bot.catalogue import t
from bot.settings import Settings
from bot.trying import PortUnavailable, start_emulator
from emulator import Emulator
from tests.media_samples import voice
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 800}
ZOOMED: ViewportSize = {"width": 320, "height": 380}  # a 640 × 760 window at 200 %
WAIT_MS = 15_000


def chromium() -> str:
    """Debian's Chromium; the test fails (not skips) without it, as CI installs it."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            "Chromium is needed for this test and is not installed: "
            "`apt-get install -y chromium` (Debian; .ci/run does this)",
            pytrace=False,
        )
    return path


def picture(width: int = 240, height: int = 160) -> bytes:
    """A PNG with a sky and a pavement, standing in for a member's photo."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    sky, ground = b"\x8e\xc5\xe8" * width, b"\x8a\x8f\x96" * width
    rows = b"".join(b"\x00" + (sky if y < height * 3 // 5 else ground) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class TryProcess:
    proc: asyncio.subprocess.Process
    url: str
    folder: Path  # the throw-away folder it announced
    tmp: Path  # its TMPDIR
    output: list[str]


@pytest.fixture
async def trying(tmp_path: Path) -> AsyncIterator[TryProcess]:
    """`cocreate try --port <free> --no-open`, once it has printed its address."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    settings_names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings_names}
    env["TMPDIR"] = str(tmp)
    log = (tmp_path / "try.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "try",
        "--port",
        str(free_port()),
        "--no-open",
        cwd=tmp_path,  # no .env here
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    output: list[str] = []
    url = folder = None
    try:
        async with asyncio.timeout(30):
            while url is None or folder is None:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    log.flush()
                    pytest.fail(f"cocreate try stopped: {(tmp_path / 'try.log').read_text()}")
                output.append(line)
                if found := re.search(r"Open (http://127\.0\.0\.1:\d+)", line):
                    url = found[1]
                if found := re.search(r"removed when you stop: (\S+)", line):
                    folder = Path(found[1])
        yield TryProcess(proc, url, folder, tmp, output)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


@contextlib.asynccontextmanager
async def phone_page() -> AsyncIterator[Page]:
    """A phone-sized page in Debian's Chromium, driven by Playwright."""
    executable = chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            context = await browser.new_context(viewport=PHONE, accept_downloads=True)
            yield await context.new_page()
            await context.close()
        finally:
            await browser.close()


class ChatPage:
    """The page, read like a transcript: who you are, what you say, what the bot says."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.from_bot = page.locator("#messages li.from-bot")

    async def be(self, name: str) -> None:
        """Switches to someone with the switch at the top."""
        value = await self.page.locator("#who option", has_text=name).get_attribute("value")
        assert value is not None
        await self.page.select_option("#who", value)
        await expect(self.page.locator("#chat-title")).to_have_text(f"{name}'s chat with the bot")
        await expect(self.page.locator("#messages")).not_to_have_attribute("aria-busy", "true")

    async def _counts(self, replies: tuple[str, ...]) -> list[int]:
        return [await self.from_bot.filter(has_text=text).count() for text in replies]

    async def _bot_says(self, before: list[int], replies: tuple[str, ...]) -> None:
        """Waits until the bot has sent one more message with each text."""
        for n, text in zip(before, replies, strict=True):
            newer = self.from_bot.filter(has_text=text).nth(n)
            await expect(newer).to_be_attached(timeout=WAIT_MS)

    async def says(self, text: str, reply: str, *more: str) -> None:
        """Types and sends `text`; waits for the bot's replies (so no step races the last)."""
        replies = (reply, *more)
        before = await self._counts(replies)
        box = self.page.get_by_label("Message", exact=True)
        await box.fill(text)
        await box.press("Enter")
        await expect(self.page.locator("#messages li.from-me").last).to_contain_text(text)
        await self._bot_says(before, replies)

    async def taps(self, label: str, reply: str, *more: str) -> None:
        """Presses the newest button showing `label` (buttons are numbered "1. Label"): in
        the chat, under the message box, or on an empty chat."""
        replies = (reply, *more)
        before = await self._counts(replies)
        # Playwright passes the pattern on as /…/, so a slash in a label is escaped too.
        escaped = re.escape(label).replace("/", r"\/")
        name = re.compile(rf"^(\d+\. )?{escaped}$")
        where = self.page.locator("#messages, #keyboard, #first-steps")
        buttons = where.get_by_role("button", name=name)
        await buttons.last.click(timeout=WAIT_MS)
        await self._bot_says(before, replies)

    async def sends(self, kind: str, name: str, data: bytes, reply: str, *more: str) -> None:
        """Sends a photo or a voice note from a file."""
        replies = (reply, *more)
        before = await self._counts(replies)
        mime = "image/png" if kind == "photo" else "audio/ogg"
        upload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
        await self.page.set_input_files(f"#{kind}", files=[upload])
        await self._bot_says(before, replies)


async def test_the_emulator_serves_the_chat_page_and_nothing_else_from_its_folder() -> None:
    async with Emulator() as emu, httpx.AsyncClient(base_url=emu.url) as http:
        page = await http.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert '<select id="who">' in page.text
        script = await http.get("/_emu/static/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        for name in ("index.html", "..%2Femulator.py", "nothing.js"):
            assert (await http.get(f"/_emu/static/{name}")).status_code == 404
        emu.user(5, first_name="Dee")
        assert (await http.get("/_emu/people")).json() == [
            {
                "id": 5,
                "name": "Dee",
                "role": "member",
                "hint": "",
                "intro": "This is the start of your chat with the bot.",
                "steps": [{"label": "Start", "text": "/start"}],
            }
        ]


async def test_a_kept_database_gets_ids_above_the_last_try() -> None:
    async with Emulator(first_id=1_000_000) as emu:
        dee = emu.user(5)
        assert dee.send("/start") >= 1_000_000
        assert (dee.last_sent_id or 0) >= 1_000_000


async def test_a_port_asked_for_and_taken_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(PortUnavailable, match="cannot use port"):
            await start_emulator(int(taken.getsockname()[1]), 1)


@pytest.mark.process
async def test_one_person_tries_the_whole_bot_in_a_browser(trying: TryProcess) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    async with phone_page() as page:
        await play_everyone(page, trying)

    # Ctrl-C: the bot stops, the emulator closes, the throw-away folder goes; exit code 0.
    assert trying.folder.is_dir()
    trying.proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        assert await trying.proc.wait() == 0
    assert trying.proc.stdout is not None
    rest = (await trying.proc.stdout.read()).decode()
    assert "Stopped." in rest
    assert not trying.folder.exists()
    assert list(trying.tmp.iterdir()) == []


async def newest_in_view(page: Page, after: str) -> None:
    """Waits until the newest message's end shows between the switch and the message box."""
    shows = """() => {
        const items = document.querySelectorAll("#messages li");
        const last = items[items.length - 1];
        const images = [...document.querySelectorAll("#messages img")];
        if (!last || !images.every((img) => img.complete)) return false;
        const box = last.getBoundingClientRect();
        const top = document.querySelector(".top").getBoundingClientRect().bottom;
        const bottom = document.querySelector(".composer").getBoundingClientRect().top;
        return box.bottom > top && box.bottom <= Math.min(bottom, window.innerHeight) + 1;
    }"""
    try:
        await page.wait_for_function(shows, timeout=5_000)
    except PlaywrightTimeout:
        await page.screenshot(path=ARTIFACTS / "try-not-in-view.png")
        pytest.fail(f"after {after}, the newest message is not in view", pytrace=False)


async def join_as(chat: ChatPage, name: str) -> None:
    """A member joins: language, consent, anonymous, no "about you"."""
    await chat.be(name)
    await chat.page.get_by_role("button", name="Start", exact=True).click()
    await chat.taps("English", t("en", "consent.text"))
    await chat.taps(t("en", "consent.agree"), t("en", "naming.ask"))
    await chat.taps(t("en", "naming.anonymous"), t("en", "about.age"))
    await chat.taps(t("en", "common.skip"), t("en", "about.area.typed"))
    await chat.taps(t("en", "common.skip"), t("en", "onboarding.done"), t("en", "menu.title"))


@pytest.mark.process
async def test_the_chat_follows_the_newest_message_after_a_photo(trying: TryProcess) -> None:
    async with phone_page() as page:
        chat = ChatPage(page)
        await page.goto(trying.url)
        await join_as(chat, "Ana")
        await chat.taps("Share your story", t("en", "story.what_happened"))
        await chat.says("The bus did not stop for my wheelchair.", "How did it affect you?")
        await newest_in_view(page, "typed words")
        # A photo: once it has loaded, the next question still shows.
        await chat.sends("photo", "ramp.png", picture(), "What would have made it better?")
        await newest_in_view(page, "a photo")
        # Typed words after the photo: her own message and the bot's answer both scroll in.
        await chat.says("A driver who waits.", "(a photo)")
        await newest_in_view(page, "typed words after a photo")
        # Someone who scrolled up to read, then taps a button, sees what follows.
        await page.evaluate("window.scrollTo(0, 0)")
        await chat.taps("Save", t("en", "story.saved"), t("en", "sharing.next"))
        await newest_in_view(page, "a tap, scrolled up")


@pytest.mark.process
async def test_staff_see_their_own_first_steps_and_never_a_members_start(
    trying: TryProcess,
) -> None:
    async with phone_page() as page:
        chat = ChatPage(page)
        await page.goto(trying.url)
        start = page.get_by_role("button", name="Start", exact=True)
        commands = page.locator("#command-list button")

        await chat.be("Fran")
        first = page.locator("#first-steps button")
        await expect(first).to_have_text(
            ["/ask – Ask the members a question", "/responses – Read the answers"]
        )
        await expect(start).to_have_count(0)
        await expect(commands.filter(has_text="/ask")).to_have_count(1)
        await expect(commands.filter(has_text="/start")).to_have_count(0)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "try-facilitator-empty.png")
        await chat.taps("/ask – Ask the members a question", t("en", "staff.ask.text"))
        await expect(page.locator("#first-steps")).to_be_hidden()

        await chat.be("Olu")
        await expect(first).to_have_text(
            [
                "/export – Download what people said",
                "/invite – Invite a facilitator",
                "/stats – See how many took part",
            ]
        )
        await expect(start).to_have_count(0)
        await expect(commands.filter(has_text="/export")).to_have_count(1)
        await page.screenshot(path=ARTIFACTS / "try-organiser-empty.png")
        await expect(commands.filter(has_text="/start")).to_have_count(0)
        await chat.taps("/export – Download what people said", t("en", "export.ask.format"))

        # A member still starts with Start, and the bot's Start is in their menu.
        await chat.be("Bryn")
        await expect(first).to_have_text(["Start"])
        await expect(commands.filter(has_text="/start")).to_have_count(1)


async def at_200_percent(page: Page, screenshot: str) -> None:
    """Readable with the browser zoomed to 200 %: nothing scrolls sideways."""
    await page.set_viewport_size(ZOOMED)
    sideways = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert await page.evaluate(sideways) <= 0, "the page scrolls sideways at 200 % zoom"
    await page.screenshot(path=ARTIFACTS / screenshot)
    await page.set_viewport_size(PHONE)


async def play_everyone(page: Page, trying: TryProcess) -> None:
    """Ana joins and shares a story, Fran asks, Ana answers, Olu exports."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    chat = ChatPage(page)
    try:
        await page.goto(trying.url)
        await expect(page.get_by_label("You are")).to_be_visible()

        # Ana joins: language, consent, anonymous, no "about you".
        await join_as(chat, "Ana")

        # She shares a story: one part typed, one a photo with a caption, one a voice note.
        await chat.taps("Share your story", t("en", "story.what_happened"))
        await chat.says("The bus did not stop for my wheelchair.", "How did it affect you?")
        await page.get_by_label("Message", exact=True).fill("The ramp at my stop")
        await chat.sends("photo", "ramp.png", picture(), "What would have made it better?")
        await expect(page.locator("#messages li.from-me img").last).to_be_visible()
        await chat.sends("voice", "voice.ogg", voice(), "(a photo) The ramp at my stop")
        assert "(voice note, " in (await chat.from_bot.last.text_content() or "")
        await chat.taps("Save", t("en", "story.saved"), t("en", "sharing.next"))

        # Fran, a facilitator, asks everyone a question.
        await chat.be("Fran")
        await chat.says("/ask", t("en", "staff.ask.text"))
        await chat.says("Did the bus come on time today?", t("en", "staff.ask.kind"))
        await chat.taps("Yes or no", t("en", "staff.ask.audience"))
        await chat.taps("All members", t("en", "staff.ask.when"))
        await chat.taps("Now", t("en", "staff.ask.reminder"))
        await chat.taps("No reminder", t("en", "staff.ask.preview_intro"))
        await chat.taps("Send", t("en", "staff.ask.sending"))
        # The question reaches Ana: the switch says her chat has news.
        await expect(page.locator("#who option", has_text="Ana")).to_contain_text(
            "new messages", timeout=WAIT_MS
        )
        await at_200_percent(page, "try-facilitator-zoomed.png")

        # Ana gets it and answers by button.
        await chat.be("Ana")
        await expect(chat.from_bot.last).to_contain_text(
            "Did the bus come on time today?", timeout=WAIT_MS
        )
        await page.mouse.move(0, 0)  # no button drawn as hovered
        await page.screenshot(path=ARTIFACTS / "try-member-question.png")
        if os.environ.get("COCREATE_DOCS_SCREENSHOT"):
            await page.screenshot(path=ROOT / "docs" / "try.png")
        await chat.taps("No", "Thank you. We have saved your answer.")
        await page.screenshot(path=ARTIFACTS / "try-member.png", full_page=True)

        await at_200_percent(page, "try-member-zoomed.png")

        # Olu, the organiser, exports everything as CSV and downloads it.
        await chat.be("Olu")
        await chat.says("/export", t("en", "export.ask.format"))
        await chat.taps("CSV", t("en", "export.ask.filter"))
        await chat.taps("Everything", t("en", "export.making"))
        link = page.locator("#messages a.file-link").last
        await expect(link).to_be_visible(timeout=WAIT_MS)
        async with page.expect_download() as download_info:
            await link.click()
        download = await download_info.value
        assert download.suggested_filename.endswith(".csv")
        text = await asyncio.to_thread(Path(await download.path()).read_text, "utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) >= 2, rows
        assert errors == []
    except BaseException:
        await page.screenshot(path=ARTIFACTS / "try-failure.png", full_page=True)
        raise

"""Screenshots of the staff workbench for docs/: every page it has, on demo data.

    .venv/bin/python bench/screenshots.py [--out docs]

Fills a throw-away database with demo data through storage (two projects, 40 members with
"about you" answers, stories and ideas, one flagged item), serves the workbench on it
(bot/web/server.py, as `cocreate run` does; the emulator stands in for Telegram, which the
Projects page asks for the bot's name), signs an organiser in through storage, and saves a
PNG of the sign-in page, the overview and each page in the menu (bot/web/pages/), plus the
first page of each poster, with Playwright driving Debian's Chromium (`apt-get install
chromium`; never Playwright's own download). The README links the PNGs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PTB_TIMEDELTA", "true")

import pypdfium2 as pdfium
from playwright.async_api import async_playwright
from pydantic import SecretStr

from bench.scale import free_port
from bot.clock import FakeClock
from bot.posters import join_link, poster_pdf
from bot.settings import Settings
from bot.web import pages
from bot.web.access import SESSION_COOKIE
from bot.web.server import serving
from conversations.context import Resources
from emulator import Emulator
from storage.kinds import by_key
from storage.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:SCREENSHOTS-not-a-real-token"
BOT = "cocreate_demo_bot"
ORGANISER = 3001
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
VIEWPORT = {"width": 1200, "height": 800}
AREAS = ["Grangetown", "Splott", "Canton", "Roath"]
AGES = ["16_24", "25_44", "45_64", "65_plus"]
WORDS = [
    "The bus did not stop for my wheelchair.",
    "The ramp at my stop is broken.",
    "A driver who waits until I sit down.",
    "Timetables in Welsh at every stop.",
    "More buses in the evening, so I can get home from work.",
    "A bench at the stop by the library.",
]


async def fill(store: Store, clock: FakeClock) -> None:
    """Demo data, made through storage as the bot makes it."""
    rng = random.Random(13)
    buses = await store.projects.add("buses-2026", "Buses in Cardiff")
    await store.projects.add("parks", "Parks for everyone")
    await store.roles.sync_organisers([ORGANISER])
    await store.roles.grant_facilitator(2001, "Fran", granted_by=ORGANISER)
    clock.advance(timedelta(days=-30))
    for n in range(40):
        clock.advance(timedelta(hours=17))
        member = await store.members.join(
            telegram_user_id=5000 + n,
            chat_id=5000 + n,
            language="cy" if n % 5 == 0 else "en",
            consent_version="1",
            agreed_to=["take_part"],
            project_id=buses.id,
        )
        await store.members.mark_onboarded(member.id)
        await store.about.answer(member.id, "area", rng.choice(AREAS))
        await store.about.answer(member.id, "age_band", rng.choice(AGES))
        if n % 3 == 2:
            continue
        what = "experience" if n % 2 else "idea"
        draft = await store.sharing.start(
            member_id=member.id, kind=what, project_id=buses.id, language="en"
        )
        for part in by_key(what).parts:
            await store.sharing.answer(draft.id, member.id, part, rng.choice(WORDS))
        await store.sharing.submit(draft.id)
    await store.db.execute(
        "INSERT INTO safeguarding_flags (member_id, submission_id, flagged_at) VALUES (2, 1, ?)",
        (clock.now().isoformat(),),
    )


def slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "overview"


async def shoot(out: Path) -> list[Path]:
    folder = Path(tempfile.mkdtemp(prefix="screenshots-"))
    saved: list[Path] = []
    try:
        async with Emulator(TOKEN, bot_username=BOT) as emu:
            settings = Settings(
                _env_file=None,
                telegram_bot_token=SecretStr(TOKEN),
                telegram_api_base_url=emu.base_url,
                telegram_file_base_url=emu.file_base_url,
                database_url=f"sqlite:///{folder / 'demo.db'}",
                media_dir=folder / "media",
                organiser_ids=[ORGANISER],
                web_port=free_port(),
                about_areas=AREAS,
            )
            clock = FakeClock(datetime(2026, 11, 30, 10, 0, tzinfo=settings.tz))
            store = await Store.open_url(settings.database_url, clock.now)
            try:
                await fill(store, clock)
                session = await store.web_sessions.sign_in(
                    await store.web_sessions.make_link(ORGANISER)
                )
                assert session.token is not None
                resources = Resources(settings=settings, store=store, clock=clock)
                async with serving(resources), async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                        args=CHROMIUM_FLAGS,
                    )
                    try:
                        page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
                        await page.goto(f"{settings.workbench_url}/signin")
                        saved.append(out / "workbench-signin.png")
                        await page.screenshot(path=saved[-1])
                        await page.context.add_cookies(
                            [
                                {
                                    "name": SESSION_COOKIE,
                                    "value": session.token,
                                    "url": settings.workbench_url,
                                }
                            ]
                        )
                        paths = ["/", *(p.NAV[0] for p in pages.PAGES if p.NAV is not None)]
                        for path in paths:
                            await page.goto(f"{settings.workbench_url}{path}")
                            await page.get_by_role("heading", level=1).wait_for()
                            await page.wait_for_timeout(500)  # the live figures' first event
                            await page.mouse.move(0, 0)
                            saved.append(out / f"workbench-{slug(path)}.png")
                            await page.screenshot(path=saved[-1], full_page=True)
                    finally:
                        await browser.close()
            finally:
                await store.close()
        for language in ("en", "cy"):
            pdf = poster_pdf("Buses in Cardiff", join_link(BOT, "buses-2026"), language)
            saved.append(out / f"poster-{language}.png")
            document = pdfium.PdfDocument(pdf)
            document[0].render(scale=1).to_pil().save(saved[-1])
            document.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="the folder for PNGs")
    args = parser.parse_args()
    for path in asyncio.run(shoot(args.out)):
        print(path)


if __name__ == "__main__":
    main()

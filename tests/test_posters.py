"""Projects and their posters: the workbench's Projects page shows each project's join link
(t.me/<the bot's username, from getMe>?start=<code>) and its A4 poster (PDF) in English and
Welsh; `cocreate projects poster` writes the same poster. The QR code is read back from the
PDF's page as a phone would: pdfium draws the page, zxing-cpp reads the code.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pypdfium2 as pdfium
import pytest
import zxingcpp
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import async_playwright, expect

from bot.catalogue import t
from bot.posters import TextToJoin, poster_pdf, spaced_number
from bot.settings import Settings
from emulator import Emulator
from storage.store import Store
from tests.conftest import TOKEN
from tests.net import free_port
from tests.test_try import ARTIFACTS, CHROMIUM_FLAGS, ZOOMED, chromium
from tests.test_workbench import (
    ORGANISER,
    SIDEWAYS,
    MakePerson,
    facilitator,
    link_for,
    no_serious_violations,
    sign_in,
)

JOIN = "https://t.me/cocreate_test_bot?start=buses-2026"  # the emulator's bot is cocreate_test_bot
SMS_NUMBER = "+44 7700 900123"
POSTER_TEXTS = ("poster.heading", "poster.what", "poster.how", "poster.free", "poster.kept")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "web_port": free_port()}


def page_of(pdf: bytes) -> tuple[str, list[str], tuple[float, float]]:
    """A one-page PDF's words, the QR codes read from its drawn page, and its size in mm."""
    document = pdfium.PdfDocument(pdf)
    assert len(document) == 1
    page = document[0]
    words = " ".join(page.get_textpage().get_text_bounded().split())
    codes = [found.text for found in zxingcpp.read_barcodes(page.render(scale=1).to_pil())]
    width, height = page.get_size()
    return words, codes, (round(width / 72 * 25.4), round(height / 72 * 25.4))


def says_everything(words: str, language: str) -> bool:
    return all(" ".join(t(language, key).split()) in words for key in POSTER_TEXTS)


def says_text_to_join(words: str, language: str, code: str = "buses-2026") -> bool:
    """Whether the poster says to text the project's code to the SMS number."""
    return t(language, "poster.text", code=code, number=SMS_NUMBER) in words


def test_the_sms_number_is_written_as_people_write_it() -> None:
    assert spaced_number("+447700900123") == SMS_NUMBER
    assert spaced_number("+12025550123") == "+12025550123"  # not a UK number: as it is


@pytest.mark.parametrize("language", ["en", "cy"])
def test_with_sms_on_the_poster_says_to_text_the_code_to_the_number(language: str) -> None:
    with_sms = poster_pdf("Buses in Cardiff", JOIN, language, TextToJoin("buses-2026", SMS_NUMBER))
    words, codes, size = page_of(with_sms)
    assert says_text_to_join(words, language) and says_everything(words, language)
    assert codes == [JOIN] and size == (210, 297)
    assert t(language, "poster.text", code="buses-2026", number=SMS_NUMBER).endswith(
        "buses-2026 i +44 7700 900123" if language == "cy" else "buses-2026 to +44 7700 900123"
    )
    words, codes, _ = page_of(poster_pdf("Buses in Cardiff", JOIN, language))
    assert not says_text_to_join(words, language) and codes == [JOIN]


async def test_the_projects_page_shows_each_join_link_and_its_posters_qr_decodes_to_it(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    await store.projects.add("buses-2026", "Buses in Cardiff")
    await store.projects.add("parks", "Parks")
    fay = await facilitator(person, store)
    assert (await http.get("/projects")).status_code == 401  # signed out: nothing to see
    await sign_in(http, await link_for(fay))
    page = await http.get("/projects")
    assert page.status_code == 200
    assert f'<code class="join-link">{JOIN}</code>' in page.text
    assert "https://t.me/cocreate_test_bot?start=parks" in page.text
    for language in ("en", "cy"):
        path = f"/projects/buses-2026/poster-{language}.pdf"
        assert f'href="{path}"' in page.text
        poster = await http.get(path)
        assert poster.status_code == 200
        assert poster.headers["content-type"] == "application/pdf"
        words, codes, size = page_of(poster.content)
        assert codes == [JOIN]
        assert size == (210, 297)  # A4
        assert "Buses in Cardiff" in words and says_everything(words, language)
        assert not says_text_to_join(words, language)  # SMS is off
    assert "By SMS" not in page.text and "text-to-join" not in page.text
    # A code that is no project, and a language there is no poster in, are not found.
    assert (await http.get("/projects/nope/poster-en.pdf")).status_code == 404
    assert (await http.get("/projects/parks/poster-fr.pdf")).status_code == 404


async def test_a_poster_is_refused_to_someone_no_longer_staff(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    await store.projects.add("parks", "Parks")
    fay = await facilitator(person, store)
    await sign_in(http, await link_for(fay))
    assert (await http.get("/projects/parks/poster-en.pdf")).status_code == 200
    await store.roles.remove(9002, by=ORGANISER)
    refused = await http.get("/projects/parks/poster-en.pdf")
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")


def cli_env(settings: Settings, emulator: Emulator) -> dict[str, str]:
    names = {name.upper() for name in Settings.model_fields}
    return {
        **{k: v for k, v in os.environ.items() if k not in names},
        "DATABASE_URL": settings.database_url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": emulator.base_url,
        "TELEGRAM_FILE_BASE_URL": emulator.file_base_url,
    }


async def poster_command(
    settings: Settings,
    emulator: Emulator,
    cwd: Path,
    *args: str,
    env: Mapping[str, str] = MappingProxyType({}),
) -> tuple[int, str, str]:
    """`python -m bot projects poster …` in a subprocess (with settings `env` too): its exit
    code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "projects",
        "poster",
        *args,
        cwd=cwd,
        env={**cli_env(settings, emulator), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cocreate_projects_poster_writes_the_same_poster_in_welsh(
    tmp_path: Path, settings: Settings, emulator: Emulator, store: Store
) -> None:
    await store.projects.add("buses-2026", "Buses in Cardiff")
    out = tmp_path / "poster.pdf"
    code, said, err = await poster_command(
        settings, emulator, tmp_path, "buses-2026", "--out", str(out), "--language", "cy"
    )
    assert (code, err) == (0, "")
    assert said.strip() == (
        f"Wrote the poster for Buses in Cardiff to {out}. Its QR code opens {JOIN}"
    )
    words, codes, size = page_of(out.read_bytes())
    assert codes == [JOIN] and size == (210, 297) and says_everything(words, "cy")
    # A code that is no project: one sentence, exit code 2, no file.
    missing = tmp_path / "missing.pdf"
    code, said, err = await poster_command(
        settings, emulator, tmp_path, "trains", "--out", str(missing)
    )
    assert (code, said) == (2, "")
    assert err.strip() == (
        "cocreate: there is no project with the code 'trains' (`cocreate projects list` shows them)"
    )
    assert not missing.exists()
    code, _, err = await poster_command(
        settings, emulator, tmp_path, "buses-2026", "--out", str(missing), "--language", "fr"
    )
    assert code == 2 and err.strip() == "cocreate: --language must be en or cy, not 'fr'"


async def test_the_projects_page_passes_axe_and_reads_at_200_percent(
    person: MakePerson, store: Store, workbench: str
) -> None:
    await store.projects.add("buses-2026", "Buses in Cardiff and the Vale of Glamorgan")
    fay = await facilitator(person, store)
    link = await link_for(fay)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(link)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("link", name="Projects").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Projects")
            await expect(page.get_by_role("link", name="Poster in Welsh (Cymraeg)")).to_have_count(
                1
            )
            await no_serious_violations(Axe(), page)
            await page.set_viewport_size(ZOOMED)
            assert await page.evaluate(SIDEWAYS) <= 0, "the projects page scrolls sideways"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "workbench-projects-200.png", full_page=True)
        finally:
            await browser.close()

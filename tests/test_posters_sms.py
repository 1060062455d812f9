"""With SMS on, the workbench's Projects page, its posters and `cocreate projects poster` say
how to join without Telegram: text the project's code to the SMS number (tests/test_posters.py
has them with SMS off, where nothing of it shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.settings import Settings
from emulator import Emulator
from storage.store import Store
from tests.net import free_port
from tests.test_posters import JOIN, SMS_NUMBER, page_of, poster_command, says_text_to_join
from tests.test_workbench import ORGANISER, MakePerson, facilitator, link_for, sign_in

SMS = {
    "sms_provider": "twilio",
    "twilio_account_sid": "AC00000000000000000000000000000000",
    "twilio_auth_token": "a-test-auth-token",
    "sms_from": "+447700900123",
    "sms_number_key": "a-key-of-sixteen-or-more-letters",
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "web_port": free_port(), **SMS}


async def test_the_projects_page_and_posters_say_text_the_code_to_the_number(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    await store.projects.add("buses-2026", "Buses in Cardiff")
    fay = await facilitator(person, store)
    await sign_in(http, await link_for(fay))
    page = await http.get("/projects")
    assert page.status_code == 200
    assert (
        '<dd class="text-to-join">Text <code>buses-2026</code>'
        f" to <code>{SMS_NUMBER}</code></dd>" in page.text
    )
    assert "or by texting its code to the SMS number" in page.text
    for language in ("en", "cy"):
        poster = await http.get(f"/projects/buses-2026/poster-{language}.pdf")
        words, codes, _ = page_of(poster.content)
        assert says_text_to_join(words, language) and codes == [JOIN]


async def test_cocreate_projects_poster_says_it_too(
    tmp_path: Path, settings: Settings, emulator: Emulator, store: Store
) -> None:
    await store.projects.add("buses-2026", "Buses in Cardiff")
    out = tmp_path / "poster.pdf"
    env = {name.upper(): value for name, value in SMS.items()}
    code, _, err = await poster_command(
        settings, emulator, tmp_path, "buses-2026", "--out", str(out), env=env
    )
    assert (code, err) == (0, "")
    words, codes, _ = page_of(out.read_bytes())
    assert says_text_to_join(words, "en") and codes == [JOIN]

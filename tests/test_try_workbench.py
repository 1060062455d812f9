"""`cocreate try` shows the workbench: Olu and Fran each find a sign-in link in their chat
the first time the chat page opens it (bot/trying.py `SignInLinks`), and their first steps
stay on the page until they send something."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from bot.catalogue import t
from tests import test_try
from tests.test_try import ChatPage, TryProcess, phone_page

trying = test_try.trying  # `cocreate try` as a subprocess (a fixture)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/signin/\S+")


@pytest.mark.process
async def test_olu_and_fran_find_a_sign_in_link_in_their_chat(trying: TryProcess) -> None:
    async with phone_page() as page:
        chat = ChatPage(page)
        await page.goto(trying.url)  # Ana's chat: a member gets no link
        await expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
        links: dict[str, str] = {}
        for name, first_step in (
            ("Fran", "/ask – Ask the members a question"),
            ("Olu", "/export – Download what people said"),
        ):
            await chat.be(name)
            message = chat.from_bot.filter(has_text="Here is your link to the workbench")
            await expect(message).to_have_count(1, timeout=15_000)
            text = await message.text_content() or ""
            found = LINK.search(text)
            assert found is not None, text
            links[name] = found[0]
            expected = t("en", "workbench.link", link=found[0], minutes=10)
            assert " ".join(expected.split()) in " ".join(text.split())
            # The bot spoke first, yet the role's first steps are still offered.
            await expect(page.locator("#first-steps button").first).to_have_text(first_step)
        # Opening a chat again sends no second link; Ana never got one.
        await chat.be("Fran")
        await chat.be("Ana")
        await expect(chat.from_bot).to_have_count(0)
        await chat.be("Fran")
        await expect(chat.from_bot).to_have_count(1)
        # Each link signs its person in to the workbench.
        for name in ("Fran", "Olu"):
            await page.goto(links[name])
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
            await page.get_by_role("button", name=re.compile("^Sign out")).click()

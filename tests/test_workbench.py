"""The staff workbench (bot/web/), served for real by uvicorn beside the bot on a free port.

Sign-in: /workbench in Telegram sends a link that works once, for 10 minutes, and only its
hash is kept; wrong links are refused and, past a limit, an address must wait; the role is
read on every request; the cookie is HttpOnly and SameSite=Strict (and Secure over https);
forms carry CSRF tokens. The overview's figures follow /stats's suppression and come live by
server-sent events: in Debian's Chromium (driven by Playwright), a member's story shows
within a second without a reload, and axe-core finds no serious or critical violation.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from bot.web.access import GUESS_LIMIT, SESSION_COOKIE
from bot.web.overview import Figures, Overview
from bot.web.server import serving
from emulator import Emulator
from storage.pg_db import PostgresDatabase
from storage.store import Store
from storage.workbench import Reader
from tests import test_try
from tests.net import free_port
from tests.test_process import BotProcess, texts
from tests.test_try import ARTIFACTS, CHROMIUM_FLAGS, ZOOMED, TryProcess, chromium
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
trying = test_try.trying  # `cocreate try` as a subprocess (a fixture)
SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
ORGANISER = 9001
FACILITATOR = 9002


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "web_port": free_port()}


async def facilitator(person: MakePerson, store: Store) -> Person:
    await store.roles.grant_facilitator(FACILITATOR, "Fay", granted_by=ORGANISER)
    return person(FACILITATOR, "Fay")


async def link_for(staff: Person) -> str:
    """Sends /workbench and returns the link the bot sent back."""
    [reply] = await staff.says("/workbench")
    found = re.search(r"(http\S+/signin/(\S+))", reply)
    assert found is not None, reply
    return found[1]


async def sign_in(http: httpx.AsyncClient, link: str) -> httpx.Response:
    """Opens a link and presses its Sign in button, as a browser does."""
    page = await http.get(link)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return await http.post(link, data={"csrf": found[1]})


def session_cookie_flags(response: httpx.Response) -> set[str]:
    """The attributes of the session cookie a response sets, in lower case."""
    [cookie] = [
        c for c in response.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}=")
    ]
    return {part.strip().lower() for part in cookie.split(";")[1:]}


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found[1]


async def test_a_link_signs_in_once_and_only_its_hash_is_kept(
    person: MakePerson, store: Store, http: httpx.AsyncClient, workbench: str
) -> None:
    fay = await facilitator(person, store)
    link = await link_for(fay)
    assert link.startswith(f"{workbench}/signin/")
    assert t("en", "workbench.link", link=link, minutes=10) == fay.user.messages[-1].text
    token = link.rsplit("/", 1)[1]
    # Opening the link only offers a button: a preview (or a second look) does not use it.
    assert (await http.get(link)).status_code == 200
    signed_in = await sign_in(http, link)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    overview = await http.get("/")
    assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text
    # Every script, style and link is the workbench's own: no CDN, nothing from elsewhere.
    addresses = re.findall(r'(?:src|href|action)="([^"]*)"', overview.text)
    assert addresses and all(a.startswith(("/", "#")) for a in addresses), addresses
    for asset in ("/static/workbench.css", "/static/live.js"):
        assert asset in addresses and (await http.get(asset)).status_code == 200
    # The same link again, in another browser: refused.
    async with httpx.AsyncClient(base_url=workbench) as other:
        again = await other.get(link)
        assert again.status_code == 400 and "used already" in again.text
        never = await other.get("/")
        assert never.status_code == 401 and "You are signed out" not in never.text
    # Only the sha256 of the link's token is stored, and the session's token not at all.
    rows = await store.db.fetch_all("SELECT token_hash, used_at FROM web_links")
    assert [r["token_hash"] for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert rows[0]["used_at"] is not None
    cookie = http.cookies[SESSION_COOKIE]
    dump = "\n".join(str(tuple(r)) for r in await store.db.fetch_all("SELECT * FROM web_sessions"))
    assert token not in dump and cookie not in dump
    actions = [
        e.action for e in await store.audit.entries() if e.actor == f"telegram:{FACILITATOR}"
    ]
    assert actions[-3:] == [
        "workbench_link_made",
        "workbench_signed_in",
        "workbench_sign_in_refused",
    ]


def test_the_webhook_and_the_workbench_share_one_port() -> None:
    hook: dict[str, Any] = {
        "webhook_url": "https://bot.example.org/hook",
        "webhook_secret": "s3cret",
    }
    assert Settings(_env_file=None, **hook).one_port_problem() is None
    assert Settings(_env_file=None, **hook, port=8080).one_port_problem() is None
    assert Settings(_env_file=None, **hook, port=8443).one_port_problem() == (
        "PORT is 8443 but WEB_PORT is 8080: in webhook mode the webhook and the workbench "
        "share one port, WEB_PORT; leave PORT out"
    )
    apart = Settings(_env_file=None, **hook, webhook_listen="0.0.0.0").one_port_problem()
    assert apart is not None and apart.startswith("WEBHOOK_LISTEN is 0.0.0.0 but WEB_LISTEN")
    assert Settings(_env_file=None, port=8443).one_port_problem() is None  # polling


async def test_members_get_the_unknown_command_answer(person: MakePerson, workbench: str) -> None:
    ann = person(1001, "Ann")
    await join(ann)
    assert await ann.says("/workbench") == await ann.says("/frobnicate")


async def test_a_link_expires_after_ten_minutes(
    person: MakePerson, store: Store, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fay = await facilitator(person, store)
    link = await link_for(fay)
    clock.advance(timedelta(minutes=10))
    expired = await http.get(link)
    assert expired.status_code == 400 and "expired" in expired.text
    assert (await http.post(link, data={"csrf": "x"})).status_code == 403
    assert SESSION_COOKIE not in http.cookies


async def test_wrong_links_are_refused_and_guessing_must_wait(
    person: MakePerson, store: Store, http: httpx.AsyncClient, clock: FakeClock, workbench: str
) -> None:
    fay = await facilitator(person, store)
    for n in range(GUESS_LIMIT):
        wrong = await http.get(f"/signin/guess-{n}")
        assert wrong.status_code == 400 and "does not work" in wrong.text
    link = await link_for(fay)
    # Past the limit, even a good link waits: the address is told how long.
    limited = await http.get(link)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) == 600
    assert (await http.post(link, data={"csrf": "x"})).status_code == 429
    clock.advance(timedelta(minutes=5))
    link = await link_for(fay)
    assert (await http.get(link)).status_code == 429
    clock.advance(timedelta(minutes=5))
    assert (await sign_in(http, link)).status_code == 303
    # Each wrong link is in the audit log; what the limit turned away did not reach it.
    refused = [e for e in await store.audit.entries() if e.action == "workbench_sign_in_refused"]
    assert [(e.actor, '"unknown"' in e.detail) for e in refused] == [("unknown", True)] * 10


async def test_a_removed_facilitator_is_refused_at_the_next_request(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    fay = await facilitator(person, store)
    assert (await sign_in(http, await link_for(fay))).status_code == 303
    assert (await http.get("/")).status_code == 200
    await store.roles.remove(FACILITATOR, by=ORGANISER)
    refused = await http.get("/")
    assert refused.status_code == 403 and "cannot use the workbench" in refused.text
    assert (await http.get("/live")).status_code in (401, 403)
    # The session ended with the role: given back the role, the old cookie stays refused.
    await store.roles.grant_facilitator(FACILITATOR, "Fay", granted_by=ORGANISER)
    http.cookies.clear()
    async with httpx.AsyncClient(base_url=str(http.base_url)) as fresh:
        old = await store.db.fetch_all("SELECT ended_at FROM web_sessions")
        assert [r["ended_at"] is not None for r in old] == [True]
        assert (await fresh.get("/")).status_code == 401


async def test_a_link_made_before_the_role_ended_does_not_sign_in(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    fay = await facilitator(person, store)
    link = await link_for(fay)
    page = await http.get(link)
    await store.roles.remove(FACILITATOR, by=ORGANISER)
    refused = await http.post(link, data={"csrf": csrf_of(page)})
    assert refused.status_code == 403
    assert (await http.get("/")).status_code == 401


async def test_the_session_ends_after_twelve_hours_idle(
    person: MakePerson, store: Store, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    fay = await facilitator(person, store)
    await sign_in(http, await link_for(fay))
    clock.advance(timedelta(hours=11, minutes=59))
    assert (await http.get("/")).status_code == 200  # a request keeps it going
    clock.advance(timedelta(hours=11, minutes=59))
    assert (await http.get("/")).status_code == 200
    clock.advance(timedelta(hours=12))
    assert (await http.get("/")).status_code == 401


async def test_the_cookie_is_httponly_and_samesite_strict(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    fay = await facilitator(person, store)
    response = await sign_in(http, await link_for(fay))
    flags = session_cookie_flags(response)
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain http on this computer
    for header in ("content-security-policy", "referrer-policy"):
        assert header in response.headers


@pytest.mark.parametrize(
    "settings_overrides",
    [{"organiser_ids": [ORGANISER], "web_url": "https://workbench.example.org"}],
)
async def test_the_cookie_is_secure_when_the_workbench_is_on_https(
    person: MakePerson, store: Store, bot: CocreateApplication, settings: Settings
) -> None:
    port = free_port()
    local = settings.model_copy(update={"web_port": port})
    resources = type(bot.resources)(settings=local, store=store, clock=bot.resources.clock)
    fay = await facilitator(person, store)
    link = await link_for(fay)
    assert link.startswith("https://workbench.example.org/signin/")
    path = link.replace("https://workbench.example.org", "")
    async with (
        serving(resources),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        # The client here speaks plain http, so it would not send the sign-in form's Secure
        # cookie back by itself: it is sent by hand, as a browser would over https.
        page = await http.get(path)
        [form_cookie] = page.headers.get_list("set-cookie")
        assert "secure" in form_cookie.lower()
        name, _, value = form_cookie.split(";")[0].partition("=")
        http.cookies.set(name, value)
        response = await http.post(path, data={"csrf": csrf_of(page)})
    flags = session_cookie_flags(response)
    assert {"httponly", "samesite=strict", "secure"} <= flags


async def test_forms_without_their_csrf_token_are_refused(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    fay = await facilitator(person, store)
    link = await link_for(fay)
    page = await http.get(link)
    assert (await http.post(link, data={})).status_code == 403
    assert (await http.post(link, data={"csrf": "forged"})).status_code == 403
    assert (await http.post(link, data={"csrf": csrf_of(page)})).status_code == 303
    overview = await http.get("/")
    for forged in ({}, {"csrf": "forged"}):
        assert (await http.post("/signout", data=forged)).status_code == 403
        assert (await http.get("/")).status_code == 200  # still signed in
    signed_out = await http.post("/signout", data={"csrf": csrf_of(overview)})
    assert signed_out.status_code == 200 and "You are signed out" in signed_out.text
    assert (await http.get("/")).status_code == 401


async def test_the_overview_counts_with_the_same_suppression_as_stats(
    person: MakePerson, store: Store, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    # 25 members: Grangetown 12, who all shared an idea; Splott 13, of whom 10 did. Three
    # joined in the last week. One story is flagged and not followed up yet.
    clock.advance(timedelta(days=-30))
    people = [("Grangetown", True)] * 12 + [("Splott", True)] * 10 + [("Splott", False)] * 3
    for n, (area, took_part) in enumerate(people):
        if n == 22:
            clock.advance(timedelta(days=29))
        member = await store.members.join(
            telegram_user_id=8000 + n,
            chat_id=8000 + n,
            language="en",
            consent_version="1",
            agreed_to=["take_part"],
        )
        await store.members.mark_onboarded(member.id)
        await store.about.answer(member.id, "area", area)
        if took_part:
            draft = await store.sharing.start(
                member_id=member.id, kind="idea", project_id=None, language="en"
            )
            await store.sharing.submit(draft.id)
    clock.advance(timedelta(days=1))
    await store.db.execute(
        "INSERT INTO safeguarding_flags (member_id, submission_id, flagged_at)"
        " VALUES (1, 1, '2026-11-30T10:00:00+00:00')"
    )
    fay = await facilitator(person, store)
    await sign_in(http, await link_for(fay))
    page = (await http.get("/")).text
    counters = dict(re.findall(r"<dd id=\"count-(\w+)\">([^<]*)</dd>", page))
    assert counters == {
        "members": "25",
        "joined_recently": "*",  # 3: from 1 to 9
        "stories": "0",
        "ideas": "22",
        "answers": "0",
        "flagged": "1",
    }
    # As /stats: 3 did not take part, so "22 took part" and Splott's 10 are hidden too.
    assert "* of 25 members have taken part" in page
    rows = re.findall(
        r"<tr><th scope=\"row\">([^<]*)</th><td>([^<]*)</td><td>([^<]*)</td></tr>", page
    )
    assert rows == [
        ("Did not say", "*", "25"),  # by age
        ("Splott", "*", "13"),  # by area
        ("Grangetown", "12", "12"),
        ("Did not say", "*", "25"),  # the organiser's question
    ]


async def test_live_figures_stream_and_end_with_the_role_and_the_server(
    person: MakePerson, store: Store, bot: CocreateApplication
) -> None:
    fay = await facilitator(person, store)
    ann = person(1001, "Ann")
    async with serving(bot.resources) as workbench:
        url = bot.resources.settings.workbench_url
        async with httpx.AsyncClient(base_url=url) as http:
            await sign_in(http, await link_for(fay))
            async with http.stream("GET", "/live") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                events = figures_events(stream.aiter_lines())
                first = await anext(events)
                assert '<dd id="count-members">0</dd>' in first
                await join(ann)  # one member: a count from 1 to 9
                assert '<dd id="count-members">*</dd>' in await anext(events)
                # Removed from the team (a change like any other): the stream ends at once.
                await store.roles.remove(FACILITATOR, by=ORGANISER)
                with pytest.raises(StopAsyncIteration):
                    await anext(events)
            await sign_in(http, await link_for(person(ORGANISER, "Olu")))
            async with http.stream("GET", "/live") as stream:
                events = figures_events(stream.aiter_lines())
                await anext(events)
                stopped = time.monotonic()
                await workbench.close()  # as when the bot stops: open streams end
                with pytest.raises(StopAsyncIteration):
                    await anext(events)
                assert time.monotonic() - stopped < 1


async def figures_events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The figures each server-sent event carries."""
    event, data = "", []
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
        elif not line and data:
            if event == "figures":
                yield "\n".join(data)
            event, data = "", []


@pytest.mark.process
async def test_cocreate_run_serves_the_workbench(tmp_path: Path, emulator: Emulator) -> None:
    port = free_port()
    process = BotProcess(tmp_path, emulator, WEB_PORT=str(port), ORGANISER_IDS=str(ORGANISER))
    try:
        await process.start()
        olu = emulator.user(ORGANISER, first_name="Olu")
        olu.send("/workbench")
        [reply] = await texts(olu, 1)
        found = re.search(rf"http://127\.0\.0\.1:{port}/signin/\S+", reply)
        assert found is not None, reply
        async with httpx.AsyncClient() as http:
            assert (await http.get(found[0])).status_code == 200
            assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 401
        assert await process.terminate() == 0
        assert found[0].rsplit("/", 1)[1] not in process.log.read_text()
    finally:
        if process.proc is not None and process.proc.returncode is None:
            await process.kill()


@pytest.mark.process
async def test_a_taken_workbench_port_stops_the_start_with_one_sentence(
    tmp_path: Path, emulator: Emulator
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = BotProcess(tmp_path, emulator, WEB_PORT=str(port))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env=process.env,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1] == (
        f"cocreate: cannot serve the workbench on 127.0.0.1 port {port} (Address already in "
        "use): set WEB_PORT to a free port, or stop what is using it"
    )


@pytest.mark.process
async def test_cocreate_try_serves_the_workbench_to_olu_and_fran(trying: TryProcess) -> None:
    [announced] = [line for line in trying.output if "workbench is at" in line]
    found = re.search(r"workbench is at (http://127\.0\.0\.1:\d+)", announced)
    assert found is not None, announced
    workbench = found[1]
    async with httpx.AsyncClient(base_url=trying.url, timeout=20) as emulator:
        for staff in (3001, 2001):  # Olu, Fran
            await emulator.post(f"/_emu/users/{staff}/send", json={"text": "/workbench"})
            [message] = (await emulator.get(f"/_emu/chats/{staff}/wait")).json()
            link = re.search(r"http\S+/signin/\S+", message["text"])
            assert link is not None and link[0].startswith(f"{workbench}/signin/")
            async with httpx.AsyncClient(base_url=workbench) as http:
                assert (await sign_in(http, link[0])).status_code == 303
                overview = await http.get("/")
                assert overview.status_code == 200 and "<h1>Overview</h1>" in overview.text


async def test_the_overview_is_live_in_a_browser_and_passes_axe(
    person: MakePerson, store: Store, workbench: str
) -> None:
    fay = await facilitator(person, store)
    ann = person(1001, "Ann")
    await join(ann)
    link = await link_for(fay)
    axe = Axe()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page: Page = await browser.new_page()
            for address in (f"{workbench}/signin", link):
                await page.goto(address)
                await no_serious_violations(axe, page)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
            await expect(page.locator("#live-status")).to_have_text(
                "These figures update by themselves."
            )
            await no_serious_violations(axe, page)
            # At 200 % zoom (a 640 × 760 window), nothing scrolls sideways.
            await page.set_viewport_size(ZOOMED)
            assert await page.evaluate(SIDEWAYS) <= 0, "the overview scrolls sideways at 200 %"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "workbench-overview-200.png", full_page=True)
            await page.set_viewport_size({"width": 1024, "height": 768})
            # With the keyboard alone: the first Tab reaches "Skip to content".
            await page.keyboard.press("Tab")
            await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
            await page.evaluate("window.sameDocument = true")
            stories = page.locator("#count-stories")
            await expect(stories).to_have_text("0")

            await ann.taps("Share your story")
            for words in ("The bus did not stop.", "I was late.", "A driver who waits."):
                await ann.says(words)
            await ann.taps("Save")
            saved = time.monotonic()
            await expect(stories).to_have_text("1", timeout=1000)
            assert time.monotonic() - saved <= 1.0
            assert await page.evaluate("window.sameDocument") is True  # no reload
            await no_serious_violations(axe, page)

            # Signing out ends the live figures as well as the page.
            await page.get_by_role("button", name=re.compile("^Sign out")).click()
            await expect(page.get_by_text("You are signed out.")).to_be_visible()
            await no_serious_violations(axe, page)
        finally:
            await browser.close()


async def no_serious_violations(axe: Axe, page: Page) -> None:
    results = await axe.run(page)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{page.url}: {serious}"


async def test_the_change_mark_moves_with_each_commit_and_only_then(
    store: Store, database: str, database_url: str, clock: FakeClock
) -> None:
    """The live figures read again when the mark (Reader.changes) moved: every commit moves
    it; reading does not, not even reading rows that updates left behind (PostgreSQL prunes
    those pages as it reads them, which writes to its log). On PostgreSQL a role that is
    not a superuser can read it too."""
    reader = await Reader.open(store.db)

    async def join_one(n: int) -> None:
        member = await store.members.join(
            telegram_user_id=9100 + n,
            chat_id=9100 + n,
            language="en",
            consent_version="1",
            agreed_to=["take_part"],
        )
        await store.members.mark_onboarded(member.id)

    try:
        for n in range(20):
            await join_one(n)
        mark = await reader.changes()
        for _ in range(3):
            await reader.counters(since=clock.now() - timedelta(days=7))
            await reader.stats.overview()
        assert await reader.changes() == mark
        await join_one(20)
        assert await reader.changes() != mark
    finally:
        await reader.close()
    if database != "postgresql":
        return
    role = f"plain_{secrets.token_hex(4)}"
    await store.db.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
    url = urlsplit(database_url)
    as_role = urlunsplit(url._replace(netloc=f"{role}@{url.hostname or ''}"))
    plain = PostgresDatabase(await asyncpg.create_pool(as_role, min_size=1, max_size=1))
    try:
        mark = await plain.change_mark()
        assert await plain.change_mark() == mark
        await join_one(21)
        assert await plain.change_mark() != mark
    finally:
        await plain.close()
        await store.db.execute(f"DROP ROLE {role}")


async def test_the_overview_reads_who_takes_part_at_most_every_so_often(
    bot: CocreateApplication, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counters follow every change at once; /stats's whole reading of who takes part (a
    second with 100,000 members) is read again in the background at most every GROUPS_EVERY
    seconds, and nothing is read while nothing changed."""
    reader = await Reader.open(store.db)
    now = [0.0]
    figures = Overview(bot.resources, reader, groups_every=30.0, clock=lambda: now[0])
    told: list[str] = []
    figures.refreshed = lambda: told.append("read again")
    readings = 0
    read = reader.stats.overview

    async def counted(fields: Any) -> Any:
        nonlocal readings
        readings += 1
        return await read(fields)

    monkeypatch.setattr(reader.stats, "overview", counted)

    async def join_one(n: int) -> None:
        member = await store.members.join(
            telegram_user_id=9000 + n,
            chat_id=9000 + n,
            language="en",
            consent_version="1",
            agreed_to=["take_part"],
        )
        await store.members.mark_onboarded(member.id)

    def counter(shown: Figures, key: str) -> str:
        return next(c.value for c in shown.counters if c.key == key)

    try:
        for n in range(12):
            await join_one(n)
        first = await figures.figures()
        assert (counter(first, "members"), first.joined, readings) == ("12", "12", 1)
        assert await figures.figures() is first  # nothing changed: nothing read
        await join_one(12)
        now[0] = 10.0
        second = await figures.figures()
        assert counter(second, "members") == "13"  # the counter at once
        assert (second.joined, readings) == ("12", 1)  # who takes part: the last reading
        now[0] = 31.0
        await join_one(13)
        third = await figures.figures()
        assert counter(third, "members") == "14" and third.joined == "12"
        assert figures._reading is not None
        await figures._reading  # read again in the background; the page is told
        assert (readings, told) == (2, ["read again"])
        assert (await figures.figures()).joined == "14"
    finally:
        await figures.close()
        await reader.close()

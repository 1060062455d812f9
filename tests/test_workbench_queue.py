"""The workbench's safeguarding queue, ideas tracker, audit log and downloads
(bot/web/pages/safeguarding.py, tracker.py, audit.py, downloads.py).

Through the real bot and the emulator, the workbench served by uvicorn on a free port, and
Debian's Chromium driven by Playwright (with axe-core on every page): a flag dealt with in the
queue records who and when (the same record as "Read it" in Telegram) and the overview's
"flagged items waiting" falls; a status changed in the tracker reaches the member in the
emulator through the chat's own outbox path; the audit log and downloads are for organisers
only; a download is the CLI's export, with no Telegram id in it. Every route refuses the
signed out, the removed and forms without their CSRF token.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
import tempfile
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from storage.export_rows import columns
from storage.store import Store
from storage.tracker import Item
from tests.net import free_port
from tests.test_try import ARTIFACTS, CHROMIUM_FLAGS, ZOOMED, chromium
from tests.test_workbench import (
    FACILITATOR,
    ORGANISER,
    SIDEWAYS,
    csrf_of,
    facilitator,
    link_for,
    no_serious_violations,
    sign_in,
)
from tests.transcript import Person, join

MakePerson = Callable[..., Person]
ANN = 7_654_321  # a member's Telegram id: it must appear in no page and no download
RISKY = "Nobody listens and some days I want to die."
REASON = "The council said yes. Buses start in May."
IDEA = "Later buses at night, my street is dark at 11."
# Every route of the four pages, with a POST's form fields (filled in by each test).
GETS = ("/safeguarding", "/tracker", "/tracker/i1", "/audit", "/downloads")
POSTS = ("/safeguarding/1/done", "/tracker/i1/preview", "/tracker/i1", "/downloads")
ORGANISERS_ONLY = ("/audit", "/downloads")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "web_port": free_port()}


async def organiser(person: MakePerson) -> Person:
    return person(ORGANISER, "Olu")


async def signed_in(http: httpx.AsyncClient, staff: Person) -> str:
    """Signs in; returns the session's CSRF token."""
    assert (await sign_in(http, await link_for(staff))).status_code == 303
    return csrf_of(await http.get("/safeguarding"))


async def member_id(store: Store, someone: Person) -> int:
    member = await store.members.by_telegram_id(someone.user.id)
    assert member is not None
    return member.id


async def an_idea(store: Store, someone: Person, words: str = IDEA) -> int:
    """A submitted idea of the member's; returns its submission's id."""
    mid = await member_id(store, someone)
    draft = await store.sharing.start(member_id=mid, kind="idea", project_id=None, language="en")
    await store.sharing.answer(draft.id, mid, "idea", words)
    await store.sharing.answer(draft.id, mid, "who_it_helps", None)
    await store.sharing.submit(draft.id)
    return draft.id


def flagged_waiting(overview: str) -> str:
    found = re.search(r'<dd id="count-flagged">([^<]*)</dd>', overview)
    assert found is not None
    return found[1]


async def delivered(bot: CocreateApplication, someone: Person) -> str:
    """The next message the member gets, waking the outbox's sender as the chat flow does."""
    bot.delivery.wake()
    [message] = await someone.user.wait_messages(1, timeout=10)
    assert message.text is not None
    return message.text


# ---- the safeguarding queue


async def test_a_flag_dealt_with_records_who_and_when_and_leaves_the_waiting_count(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    bot: CocreateApplication,
    clock: FakeClock,
) -> None:
    fay = await facilitator(person, store)
    await fay.says("hello")  # staff must have opened the bot to get alerts
    ivy, bo = person(ANN, "Ivy"), person(ANN + 1, "Bo")
    await join(ivy)
    await join(bo)
    await ivy.taps("Share your story")
    await ivy.says(RISKY)  # flagged mid-story: the words are a part of the story
    clock.advance(timedelta(hours=1))
    await bo.says("I am not safe at home.")  # flagged at the menu: the words are kept
    await fay.user.wait_messages(2, timeout=10)  # the two alerts
    # "Read it" in Telegram goes through the same record: audited, and still waiting.
    [read] = await fay.taps("Read it", on=fay.user.messages[-2].message_id)
    assert RISKY in read
    ivy_flag, bo_flag = [
        r["id"] for r in await store.db.fetch_all("SELECT id FROM safeguarding_flags ORDER BY id")
    ]
    reads = [e for e in await store.audit.entries() if e.action == "safeguarding_read"]
    assert [(e.actor, json.loads(e.detail)) for e in reads] == [
        (f"telegram:{FACILITATOR}", {"flag": ivy_flag})
    ]

    csrf = await signed_in(http, fay)
    assert flagged_waiting((await http.get("/")).text) == "2"
    page = (await http.get("/safeguarding")).text
    ivy_name = await store.pseudonyms.of(await member_id(store, ivy))
    bo_name = await store.pseudonyms.of(await member_id(store, bo))
    # Oldest first; each with its words and where they were said; pseudonyms, no ids.
    assert page.index(f"Flag {ivy_flag}: from {ivy_name}") < page.index(
        f"Flag {bo_flag}: from {bo_name}"
    )
    assert html.escape(RISKY) in page and "I am not safe at home." in page
    assert "Story, the part: " + t("en", "story.label.what_happened") in page
    assert "outside any story, idea or question" in page
    assert str(ANN) not in page and "Ivy" not in page
    assert page.count("I have dealt with this") == 2

    # Without its CSRF token the form changes nothing.
    for forged in ({}, {"csrf": "forged"}):
        refused = await http.post(f"/safeguarding/{ivy_flag}/done", data=forged)
        assert refused.status_code == 403
    assert flagged_waiting((await http.get("/")).text) == "2"

    clock.advance(timedelta(minutes=30))
    done = await http.post(f"/safeguarding/{ivy_flag}/done", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == f"/safeguarding?done={ivy_flag}"
    row = await store.db.fetch_one(
        "SELECT followed_up_at, followed_up_by FROM safeguarding_flags WHERE id = ?", (ivy_flag,)
    )
    assert row is not None and row["followed_up_by"] == FACILITATOR
    assert row["followed_up_at"] == clock.now().isoformat()
    assert flagged_waiting((await http.get("/")).text) == "1"
    page = (await http.get(done.headers["location"])).text
    assert f"Flag {ivy_flag} is marked as dealt with." in page
    waiting, dealt = page.split('id="dealt-title"')
    assert f"Flag {bo_flag}:" in waiting and f"Flag {ivy_flag}:" not in waiting
    assert f"Flag {ivy_flag}:" in dealt and "by Fay" in dealt
    assert page.count("I have dealt with this") == 1
    # Pressed again (or by someone else meanwhile): the first stays on record, once.
    await http.post(f"/safeguarding/{ivy_flag}/done", data={"csrf": csrf})
    dealt_with = [e for e in await store.audit.entries() if e.action == "safeguarding_dealt_with"]
    assert [(e.actor, json.loads(e.detail)) for e in dealt_with] == [
        (f"telegram:{FACILITATOR}", {"flag": ivy_flag})
    ]
    # The audit log names the flag, never the words.
    log = "\n".join(f"{e.action} {e.detail}" for e in await store.audit.entries())
    assert "want to die" not in log and "not safe" not in log


# ---- the ideas tracker


async def test_not_possible_now_needs_a_reason_and_nothing_is_sent_without_one(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    fay = await facilitator(person, store)
    ann = person(ANN, "Ann")
    await join(ann)
    submission = await an_idea(store, ann)
    csrf = await signed_in(http, fay)
    key = f"/tracker/i{submission}"
    for path in (f"{key}/preview", key):
        for reason in ("", "   "):
            refused = await http.post(
                path, data={"csrf": csrf, "status": "not_possible", "reason": reason}
            )
            assert refused.status_code == 400
            assert "&#34;Not possible now&#34; needs a reason" in refused.text
    unknown = await http.post(key, data={"csrf": csrf, "status": "new", "reason": "x"})
    assert unknown.status_code == 400 and "Choose the new status." in unknown.text
    too_long = await http.post(key, data={"csrf": csrf, "status": "done", "reason": "x" * 301})
    assert too_long.status_code == 400 and "too long" in too_long.text
    forged = await http.post(key, data={"csrf": "forged", "status": "done", "reason": "x"})
    assert forged.status_code == 403
    assert await store.db.fetch_all("SELECT * FROM status_changes") == []
    assert await store.db.fetch_all("SELECT * FROM outbox WHERE member_id IS NOT NULL") == []
    assert (await http.get("/tracker/i999")).status_code == 404
    assert (await http.get("/tracker/nonsense")).status_code == 404


async def test_the_same_change_twice_tells_no_one_twice(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    bot: CocreateApplication,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fay = await facilitator(person, store)
    ann = person(ANN, "Ann")
    await join(ann)
    submission = await an_idea(store, ann)
    csrf = await signed_in(http, fay)
    woken: list[str] = []
    wake = bot.delivery.wake

    def waking() -> None:
        woken.append("woken")
        wake()

    monkeypatch.setattr(bot.delivery, "wake", waking)
    form = {"csrf": csrf, "status": "looking", "reason": ""}
    first = await http.post(f"/tracker/i{submission}", data=form)
    assert first.headers["location"] == f"/tracker/i{submission}?saved=1"
    assert woken == ["woken"]  # the page woke the sender: the message goes at once
    [message] = await ann.user.wait_messages(1, timeout=10)
    assert t("en", "tracking.did.looking") in (message.text or "")
    again = await http.post(f"/tracker/i{submission}", data=form)
    assert again.headers["location"] == f"/tracker/i{submission}?unchanged=1"
    assert "No one was told again." in (await http.get(again.headers["location"])).text
    rows = await store.db.fetch_all("SELECT * FROM status_changes")
    assert len(rows) == 1
    changed = [e for e in await store.audit.entries() if e.action == "status_changed"]
    assert [(e.actor, json.loads(e.detail)["via"]) for e in changed] == [
        (f"telegram:{FACILITATOR}", "workbench")
    ]


# ---- who may use which page


async def test_every_route_refuses_the_signed_out_the_removed_and_forged_forms(
    person: MakePerson, store: Store, http: httpx.AsyncClient, workbench: str
) -> None:
    olu = await organiser(person)
    ann = person(ANN, "Ann")
    await join(ann)
    await an_idea(store, ann)
    await store.sharing.flag(1, None, None, words=RISKY, place="menu")
    async with httpx.AsyncClient(base_url=workbench) as stranger:
        for path in GETS:
            assert (await stranger.get(path)).status_code == 401, path
        for path in POSTS:
            assert (await stranger.post(path, data={"csrf": "x"})).status_code == 401, path
    csrf = await signed_in(http, olu)
    for path in GETS:
        assert (await http.get(path)).status_code == 200, path
    for path in POSTS:
        for forged in ({}, {"csrf": "forged"}):
            assert (await http.post(path, data=forged)).status_code == 403, path
    assert (await store.db.fetch_all("SELECT followed_up_at FROM safeguarding_flags"))[0][0] is None
    assert await store.db.fetch_all("SELECT * FROM status_changes") == []
    assert not [e for e in await store.audit.entries() if e.action == "export"]

    # A facilitator removed in /roles: refused on the very next request, whatever it is, and
    # signed out by it.
    fay = await facilitator(person, store)
    for method, path in [("GET", p) for p in GETS] + [("POST", p) for p in POSTS]:
        await store.roles.grant_facilitator(FACILITATOR, "Fay", granted_by=ORGANISER)
        async with httpx.AsyncClient(base_url=workbench) as fays:
            fay_csrf = await signed_in(fays, fay)
            await store.roles.remove(FACILITATOR, by=ORGANISER)
            form = {"csrf": fay_csrf, "status": "done", "reason": "x", "format": "csv"}
            refused = await fays.request(method, path, data=form if method == "POST" else None)
            assert refused.status_code == 403, (method, path)
            assert "cannot use the workbench" in refused.text
            assert (await fays.get("/safeguarding")).status_code == 401  # the session ended
    assert (await store.db.fetch_all("SELECT followed_up_at FROM safeguarding_flags"))[0][0] is None
    # The organiser's own session is untouched.
    assert (await http.post("/safeguarding/1/done", data={"csrf": csrf})).status_code == 303


async def test_the_audit_log_and_downloads_are_for_organisers_only(
    person: MakePerson, store: Store, http: httpx.AsyncClient, workbench: str
) -> None:
    fay = await facilitator(person, store)
    csrf = await signed_in(http, fay)
    for path in ("/safeguarding", "/tracker"):
        assert (await http.get(path)).status_code == 200
    for path in ORGANISERS_ONLY:
        refused = await http.get(path)
        assert refused.status_code == 403, path
        assert "This page is for organisers only" in refused.text
        assert "You are signed in as a facilitator" in refused.text
    posted = await http.post("/downloads", data={"csrf": csrf, "format": "csv"})
    assert posted.status_code == 403 and "This page is for organisers only" in posted.text
    assert not [e for e in await store.audit.entries() if e.action == "export"]
    assert (await http.get("/")).status_code == 200  # still signed in: refused, not ended


async def test_the_audit_log_is_newest_first_and_paged(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    olu = await organiser(person)
    for n in range(60):
        await store.audit.add("cli:someone", f"test_{n:02}")
    await signed_in(http, olu)
    first = (await http.get("/audit")).text
    actions = re.findall(r"<td>(test \d\d|workbench [a-z ]+)</td>", first)
    assert len(actions) == 50
    assert actions[0] == "workbench signed in" and actions[1:3] == [
        "workbench link made",
        "test 59",
    ]
    assert 'href="/audit?offset=50"' in first
    second = (await http.get("/audit?offset=50")).text
    assert re.findall(r"<td>(test \d\d)</td>", second)[0] == "test 11"
    assert "Olu (telegram:9001)" in first


# ---- downloads


async def test_a_bad_filter_shows_the_form_again_with_why(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    olu = await organiser(person)
    csrf = await signed_in(http, olu)
    cases = {
        ("csv", "", "2026-12-02", "2026-12-01"): "&#34;From&#34; must be before &#34;Up to&#34;.",
        ("csv", "NOPE", "", ""): "There is no project with the code &#39;NOPE&#39;.",
        ("pdf", "", "", ""): "--format must be csv, xlsx or json",
    }
    for (fmt, project, since, until), why in cases.items():
        form = {"csrf": csrf, "format": fmt, "project": project, "since": since, "until": until}
        refused = await http.post("/downloads", data=form)
        assert refused.status_code == 400 and why in refused.text, refused.text
    assert not [e for e in await store.audit.entries() if e.action == "export"]


async def test_json_lines_with_media_come_zipped_and_the_folder_is_removed(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    olu = await organiser(person)
    ann = person(ANN, "Ann")
    await join(ann)
    await an_idea(store, ann)
    csrf = await signed_in(http, olu)
    response = await http.post("/downloads", data={"csrf": csrf, "format": "json", "media": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        names = sorted(bundle.namelist())
        [jsonl] = [n for n in names if n.endswith(".jsonl")]
        [record] = [json.loads(line) for line in bundle.read(jsonl).decode().splitlines()]
    assert len(names) == 2 and sum(n.endswith("-media.zip") for n in names) == 1
    assert record["idea"] == IDEA and str(ANN) not in response.content.decode("latin-1")
    await asyncio.sleep(0.1)  # the response's background task removes the folder
    assert list(temp.iterdir()) == []
    [export] = [e for e in await store.audit.entries() if e.action == "export"]
    assert export.actor == f"telegram:{ORGANISER}"
    assert json.loads(export.detail) == {"format": "json", "media_files": 0, "rows": 1}


async def test_a_download_that_cannot_be_made_says_why_and_keeps_nothing(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not-there"))
    olu = await organiser(person)
    csrf = await signed_in(http, olu)
    failed = await http.post("/downloads", data={"csrf": csrf, "format": "csv"})
    assert failed.status_code == 500
    assert "The file could not be made (No such file or directory)" in failed.text
    assert not [e for e in await store.audit.entries() if e.action == "export"]


# ---- in the browser


async def test_each_page_works_in_chromium_passes_axe_and_closes_the_loop(
    person: MakePerson,
    store: Store,
    bot: CocreateApplication,
    workbench: str,
    clock: FakeClock,
    settings: Settings,
) -> None:
    """An organiser deals with a flag, moves an idea to "Going ahead" with a reason (Ann gets
    it in the emulator), reads the audit log and downloads a CSV; axe on every page."""
    olu = await organiser(person)
    ann = person(ANN, "Ann")
    await join(ann)
    submission = await an_idea(store, ann)
    await store.sharing.flag(await member_id(store, ann), None, None, words=RISKY, place="menu")
    await store.projects.add("BUS", "Better buses")
    link = await link_for(olu)
    axe = Axe()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page: Page = await browser.new_page(accept_downloads=True)
            await page.goto(link)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")

            # The safeguarding queue.
            await page.get_by_role("link", name="Safeguarding").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Safeguarding")
            await expect(page.locator("blockquote.words")).to_have_text(RISKY)
            await check(axe, page, "safeguarding")
            await page.get_by_role("button", name="I have dealt with this").click()
            await expect(page.get_by_role("status")).to_have_text("Flag 1 is marked as dealt with.")
            await expect(page.get_by_text("Nothing is waiting.")).to_be_visible()
            await check(axe, page, "safeguarding-dealt")

            # Downloads: a CSV, as the CLI writes it, with no Telegram id in it.
            await page.get_by_role("link", name="Downloads").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Downloads")
            await check(axe, page, "downloads")
            await page.get_by_role("radio", name=re.compile("^CSV")).check()
            async with page.expect_download() as waiting:
                await page.get_by_role("button", name="Download").click()
            download = await waiting.value
            stem = f"cocreate-export-{clock.now().astimezone(settings.tz):%Y-%m-%d}"
            assert download.suggested_filename == f"{stem}.csv"
            data = await asyncio.to_thread(Path(await download.path()).read_bytes)
            text = data.decode("utf-8-sig")
            [header, *rows] = list(csv.reader(io.StringIO(text)))
            assert tuple(header) == columns()
            assert len(rows) == 1 and IDEA in rows[0]
            assert str(ANN) not in text and str(ORGANISER) not in text
            assert await page.evaluate("document.location.pathname") == "/downloads"

            # The ideas tracker: the reason is needed for "Not possible now"…
            await page.get_by_role("link", name="Ideas tracker").click()
            await expect(page.get_by_role("cell", name="New")).to_be_visible()
            await check(axe, page, "tracker")
            await page.get_by_role("link", name=IDEA).click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Change a status")
            await check(axe, page, "tracker-item")
            await page.get_by_role("radio", name="Not possible now").check()
            await page.get_by_role("button", name="See who will be told").click()
            await expect(page.get_by_role("alert")).to_contain_text("needs a reason")
            await check(axe, page, "tracker-error")
            # … and "Going ahead" with one shows who will be told before anything is sent.
            await page.get_by_role("radio", name="Going ahead").check()
            await page.get_by_label(re.compile("^Why")).fill(REASON)
            await page.get_by_role("button", name="See who will be told").click()
            await expect(page.locator("#told-count")).to_contain_text("1 person will be told.")
            did = f"{t('en', 'tracking.did.going_ahead')}\n{t('en', 'tracking.why', reason=REASON)}"
            told_ann = t("en", "tracking.told.author", said=IDEA, did=did)
            assert await page.locator("#message-preview").inner_text() == told_ann
            await check(axe, page, "tracker-preview")
            assert ann.user.unread() == []  # nothing sent before Send
            await page.get_by_role("button", name="Send").click()
            await expect(page.get_by_role("status")).to_contain_text("Saved. 1 message is")
            assert await delivered(bot, ann) == told_ann
            assert await store.tracker.status(Item("idea", submission)) == "going_ahead"

            # The audit log: newest first, the download and the change in it.
            await page.get_by_role("link", name="Audit log").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
            first_actions = await page.locator("#audit tbody tr td:nth-child(3)").all_inner_texts()
            assert first_actions[:2] == ["status changed", "export"]
            assert "safeguarding dealt with" in first_actions
            await check(axe, page, "audit")
        finally:
            await browser.close()


async def check(axe: Axe, page: Page, name: str) -> None:
    """No serious or critical axe violation, and nothing sideways at 200 % zoom."""
    await no_serious_violations(axe, page)
    size = page.viewport_size
    await page.set_viewport_size(ZOOMED)
    assert await page.evaluate(SIDEWAYS) <= 0, f"{name} scrolls sideways at 200 %"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"workbench-{name}-200.png", full_page=True)
    if size is not None:
        await page.set_viewport_size(size)

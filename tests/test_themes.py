"""Themes (storage/themes.py, bot/web/pages/themes.py, bot/web/suggestions.py).

Staff create, rename and merge themes and tag members' stories, ideas and answers with them;
a tag goes with its item (erasure, retention). Suggestions for untagged text come from
TF-IDF and NMF with English and Welsh stop words, and nothing is tagged until a facilitator
says so. The exports carry each response's themes. The pages are driven in Debian's
Chromium, with axe-core finding no serious or critical violation.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from bot.clock import FakeClock
from bot.settings import Settings
from bot.web.pages import themes as themes_page
from bot.web.suggestions import MIN_ITEMS, suggest, welsh_stop_words
from storage.export_rows import COLUMNS, ExportFilter
from storage.store import Store
from storage.themes import ItemRef, ThemeError
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
from tests.transcript import Person

MakePerson = Callable[..., Person]

# A small corpus with four obvious groups: buses and parks in English, doctors and damp
# homes in Welsh (full of Welsh stop words: yn, mae, roedd, wedi …).
BUSES = (
    "The bus did not stop and I was late for work.",
    "Buses are late every morning and the timetable is wrong.",
    "The number 6 bus never comes on time.",
    "I waited an hour for the bus in the rain.",
    "We need more buses at night; the last bus is too early.",
)
PARKS = (
    "The park needs more lights by the gate.",
    "The park gate is broken and the lights are off.",
    "Children need a safe park with lights.",
    "Please clean the park and fix the swings.",
    "The swings in the park are broken.",
)
DOCTORS = (
    "Roedd rhaid i mi aros tair wythnos am apwyntiad gyda'r meddyg.",
    "Mae'n anodd iawn cael apwyntiad gyda meddyg.",
    "Dydy'r feddygfa ddim yn ateb y ffôn pan dw i eisiau apwyntiad.",
    "Mae aros am y meddyg yn cymryd gormod o amser.",
    "Roeddwn i wedi ffonio'r feddygfa bob bore am apwyntiad.",
)
DAMP = (
    "Mae llwydni yn y tŷ ac mae'r plant yn sâl.",
    "Mae'r fflat yn oer ac yn llaith ac mae llwydni ar y waliau.",
    "Roedd y landlord wedi gwrthod trwsio'r llwydni yn y tŷ.",
    "Mae'r tŷ yn llaith ac yn oer yn y gaeaf.",
    "Mae angen trwsio'r ffenestri yn y fflat oer.",
)
GROUPS = {"bus": BUSES, "park": PARKS, "meddyg": DOCTORS, "llwydni": DAMP}
CORPUS = [text for group in GROUPS.values() for text in group]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"organiser_ids": [ORGANISER], "web_port": free_port()}


async def member(store: Store, n: int, language: str = "en") -> int:
    joined = await store.members.join(
        telegram_user_id=7000 + n,
        chat_id=7000 + n,
        language=language,
        consent_version="1",
        agreed_to=["take_part"],
    )
    return joined.id


async def story(store: Store, member_id: int, *texts: str | None, kind: str = "experience") -> int:
    """A submitted story (or idea) whose parts are these texts (None: a skipped part)."""
    draft = await store.sharing.start(
        member_id=member_id, kind=kind, project_id=None, language="en"
    )
    parts = ("idea", "who_it_helps") if kind == "idea" else ("what_happened", "how_it_affected")
    for part, text in zip(parts, texts, strict=False):
        await store.sharing.answer(draft.id, member_id, part, text)
    await store.sharing.submit(draft.id)
    return draft.id


async def open_answer(
    store: Store, member_id: int, text: str | None, choice: str | None = None
) -> int:
    question = await store.questions.create(
        author_id=FACILITATOR,
        author_chat_id=FACILITATOR,
        author_language="en",
        text="What would help?",
        kind="open" if choice is None else "yesno",
        options=[],
        audience="everyone",
        repeat="once",
        starts_at=store.sharing._now(),
        reminder_hours=None,
    )
    row = await store.db.fetch_one(
        "SELECT id FROM question_rounds WHERE question_id = ?", (question.id,)
    )
    assert row is not None
    answer, _ = await store.answers.save(int(row["id"]), member_id, choice=choice, text=text)
    return answer.id


async def tags(store: Store) -> list[tuple[str, str]]:
    """Every tag as (theme's name, item's key), sorted."""
    rows = await store.db.fetch_all(
        "SELECT t.name, it.submission_id, it.answer_id FROM item_themes it"
        " JOIN themes t ON t.id = it.theme_id"
    )
    return sorted(
        (
            str(r["name"]),
            f"S-{r['submission_id']}" if r["submission_id"] else f"A-{r['answer_id']}",
        )
        for r in rows
    )


# ---- the repository


async def test_themes_are_created_renamed_and_merged_and_an_item_keeps_one_tag(
    store: Store,
) -> None:
    ann, bo = await member(store, 1), await member(store, 2)
    s1 = await story(store, ann, "The bus was late, the secret word is turquoise.")
    s2 = await story(store, bo, "The park is dark.")
    a1 = await open_answer(store, bo, "More lights.")
    by = FACILITATOR
    buses = await store.themes.create("  Buses  and  trains ", by=by)
    assert buses.name == "Buses and trains"
    for bad, why in (
        ("buses AND trains", "already"),
        ("   ", "needs a name"),
        ("x" * 61, "at most 60"),
        ("Lights; dark", "cannot have a ;"),
    ):
        with pytest.raises(ThemeError, match=why):
            await store.themes.create(bad, by=by)
    safety = await store.themes.create("Safety", by=by)
    lights = await store.themes.create("Lights", by=by)
    with pytest.raises(ThemeError, match="merge them"):
        await store.themes.rename(lights.id, "SAFETY", by=by)
    assert (await store.themes.rename(lights.id, "Lighting", by=by)).name == "Lighting"

    s_1, s_2, a_1 = ItemRef("submission", s1), ItemRef("submission", s2), ItemRef("answer", a1)
    assert await store.themes.tag(buses.id, [s_1], by=by) == 1
    assert await store.themes.tag(safety.id, [s_2, a_1], by=by) == 2
    assert await store.themes.tag(lights.id, [s_2, a_1], by=by) == 2
    assert await store.themes.tag(lights.id, [a_1, ItemRef("answer", 999)], by=by) == 0
    assert await store.themes.themes_of(s_2) == ["Lighting", "Safety"]

    # Merging Lighting into Safety: both items had both, so each keeps one tag.
    assert await store.themes.merge(lights.id, safety.id, by=by) == 0
    assert await tags(store) == [
        ("Buses and trains", s_1.key),
        ("Safety", a_1.key),
        ("Safety", s_2.key),
    ]
    assert [(t.name, t.items) for t in await store.themes.all()] == [
        ("Buses and trains", 1),
        ("Safety", 2),
    ]
    # Merging Safety into Buses and trains moves both, and the merged theme is gone.
    assert await store.themes.merge(safety.id, buses.id, by=by) == 2
    assert await store.themes.get(safety.id) is None
    assert [(t.name, t.items) for t in await store.themes.all()] == [("Buses and trains", 3)]
    with pytest.raises(ThemeError):
        await store.themes.merge(buses.id, buses.id, by=by)
    assert await store.themes.untag(buses.id, a_1) is True
    assert await store.themes.untag(buses.id, a_1) is False

    # The audit log has the themes' ids and names (staff words), never a member's words.
    entries = [e for e in await store.audit.entries() if "theme" in e.action]
    assert [(e.actor, e.action) for e in entries] == [
        (f"telegram:{by}", "theme_created"),
        (f"telegram:{by}", "theme_created"),
        (f"telegram:{by}", "theme_created"),
        (f"telegram:{by}", "theme_renamed"),
        (f"telegram:{by}", "themes_merged"),
        (f"telegram:{by}", "themes_merged"),
    ]
    assert json.loads(entries[3].detail) == {
        "theme": lights.id,
        "old_name": "Lights",
        "name": "Lighting",
    }
    assert json.loads(entries[5].detail) == {
        "theme": safety.id,
        "name": "Safety",
        "into": buses.id,
        "into_name": "Buses and trains",
        "moved": 2,
    }
    dump = repr([tuple(r) for r in await store.db.fetch_all("SELECT * FROM audit_log")])
    assert "turquoise" not in dump and "dark" not in dump


async def test_untagged_free_text_is_stories_ideas_and_open_answers(store: Store) -> None:
    ann, bo = await member(store, 1), await member(store, 2)
    s1 = await story(store, ann, "The bus was late.", "I lost my job.")
    s2 = await story(store, ann, "A bench.", None, kind="idea")
    await story(store, bo, None, None)  # every part skipped (or sent as a voice note)
    draft = await store.sharing.start(member_id=bo, kind="idea", project_id=None, language="en")
    await store.sharing.answer(draft.id, bo, "idea", "A draft is not shared yet.")
    a1 = await open_answer(store, bo, "More lights.")
    await open_answer(store, ann, None, choice="yes")  # a choice has no words
    texts = await store.themes.untagged()
    assert {(t.item.key, t.kind, t.text) for t in texts} == {
        (f"S-{s1}", "experience", "The bus was late.\nI lost my job."),
        (f"S-{s2}", "idea", "A bench."),
        (f"A-{a1}", "answer", "More lights."),
    }
    assert await store.themes.untagged_count() == 3
    assert await store.themes.untagged_count(cap=2) == 2  # counted up to a limit
    assert [t.item.key for t in await store.themes.untagged(limit=2)] == [f"A-{a1}", f"S-{s2}"]
    theme = await store.themes.create("Transport", by=FACILITATOR)
    await store.themes.tag(theme.id, [ItemRef("submission", s1)], by=FACILITATOR)
    assert {t.item.key for t in await store.themes.untagged()} == {f"S-{s2}", f"A-{a1}"}
    assert [t.item.key for t in await store.themes.tagged(theme.id)] == [f"S-{s1}"]
    assert await store.themes.untagged_count() == 2


async def test_erasure_and_retention_take_the_tags_with_the_items(
    store: Store, clock: FakeClock
) -> None:
    ann, bo = await member(store, 1), await member(store, 2)
    s1 = await story(store, ann, "The bus was late.")
    clock.advance(timedelta(days=40))
    a1 = await open_answer(store, bo, "More lights.")
    clock.advance(timedelta(days=40))
    s2 = await story(store, bo, "The park is dark.")
    theme = await store.themes.create("Safety", by=FACILITATOR)
    items = [ItemRef("submission", s1), ItemRef("answer", a1), ItemRef("submission", s2)]
    assert await store.themes.tag(theme.id, items, by=FACILITATOR) == 3

    await store.erase_member(ann)  # Ann's story goes, and its tag with it
    assert await tags(store) == [("Safety", f"A-{a1}"), ("Safety", f"S-{s2}")]
    deleted = await store.retention.delete_older_than(clock.now() - timedelta(days=30))
    assert deleted.answers == 1  # Bo's answer, 40 days old, and its tag with it
    assert await tags(store) == [("Safety", f"S-{s2}")]
    assert [(t.name, t.items) for t in await store.themes.all()] == [("Safety", 1)]


# ---- suggestions


def test_suggestions_find_the_groups_in_english_and_welsh() -> None:
    texts = [(f"S-{n}", text) for n, text in enumerate(CORPUS, start=1)]
    key_of = {text: key for key, text in texts}
    found = suggest(texts)
    assert found.enough and found.texts == 20
    assert suggest(texts) == found  # the same texts, the same suggestions
    groups = {frozenset(key_of[t] for t in group) for group in GROUPS.values()}
    assert {frozenset(s.items) for s in found.topics} == groups
    welsh = welsh_stop_words()
    for suggestion in found.topics:
        [word] = [w for w in GROUPS if w in suggestion.words]  # each group's own word
        assert set(suggestion.examples) <= {key_of[t] for t in GROUPS[word]}
        assert len(suggestion.examples) == 3
        assert not welsh & set(suggestion.words), suggestion.words
    # Without the Welsh list, Welsh stop words are among the top words.
    english_only = suggest(texts, sorted(ENGLISH_STOP_WORDS))
    assert welsh & {w for s in english_only.topics for w in s.words}


def test_too_little_text_gives_no_suggestion() -> None:
    few = [(f"S-{n}", text) for n, text in enumerate(CORPUS[: MIN_ITEMS - 1])]
    assert suggest(few).enough is False and suggest(few).topics == ()
    # Enough texts, but nothing in them once the stop words are out.
    only_stop_words = [(f"A-{n}", "Mae hi yn y tŷ? Yes, it is.") for n in range(12)]
    assert suggest(only_stop_words).enough is False
    assert themes_page.MIN_SUGGESTED == MIN_ITEMS


def test_the_welsh_stop_words_are_whole_words_to_the_vectorizer() -> None:
    words = welsh_stop_words()
    assert len(words) >= 150
    assert {"yn", "mae", "roedd", "wedi", "gyda", "ddim"} <= words
    # Each is one token: scikit-learn would warn (an error here) if a stop word split.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectorizer = TfidfVectorizer(stop_words=sorted(words))
        vectorizer.fit(["Roedd y bws yn hwyr", "Mae'r parc yn dywyll"])
    assert set(vectorizer.get_feature_names_out()) == {"bws", "hwyr", "parc", "dywyll"}


# ---- exports


async def test_exports_have_a_themes_column_safe_from_formulas(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    ann = await member(store, 1)
    s1 = await story(store, ann, "The bus was late.")
    a1 = await open_answer(store, ann, "More lights.")
    await open_answer(store, ann, "No theme here.")
    formula = await store.themes.create("=HYPERLINK(1)", by=FACILITATOR)
    safety = await store.themes.create("safety", by=FACILITATOR)
    buses = await store.themes.create("Buses", by=FACILITATOR)
    await store.themes.tag(buses.id, [ItemRef("submission", s1)], by=FACILITATOR)
    await store.themes.tag(safety.id, [ItemRef("submission", s1)], by=FACILITATOR)
    await store.themes.tag(formula.id, [ItemRef("answer", a1)], by=FACILITATOR)
    assert COLUMNS[-1] == "themes"
    tz = settings.tz
    for fmt, name in (("csv", "a.csv"), ("xlsx", "a.xlsx"), ("json", "a.jsonl")):
        await store.responses.export(fmt, tmp_path / name, ExportFilter(), tz, actor="test")
    header, *rows = list(csv.reader(io.StringIO((tmp_path / "a.csv").read_text("utf-8-sig"))))
    assert tuple(header) == COLUMNS
    assert [(r[0], r[-1]) for r in rows] == [
        (f"S-{s1}", "Buses; safety"),
        (f"A-{a1}", "'=HYPERLINK(1)"),
        (f"A-{a1 + 1}", ""),
    ]
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["themes"] for r in records] == ["Buses; safety", "=HYPERLINK(1)", None]
    sheet = openpyxl.load_workbook(tmp_path / "a.xlsx")["Responses"]
    cells = [sheet.cell(row=n, column=len(COLUMNS)) for n in (1, 2, 3, 4)]
    assert [c.value for c in cells] == ["themes", "Buses; safety", "=HYPERLINK(1)", None]
    assert cells[2].data_type == "s"  # text, never a formula


# ---- the pages


async def test_the_forms_need_their_csrf_token_and_a_staff_role(
    person: MakePerson, store: Store, http: httpx.AsyncClient, workbench: str
) -> None:
    ann = await member(store, 1)
    s1 = await story(store, ann, "The bus was late.")
    theme = await store.themes.create("Buses", by=ORGANISER)
    other = await store.themes.create("Trains", by=ORGANISER)
    forms: dict[str, dict[str, str]] = {
        "/themes/create": {"name": "New"},
        "/themes/rename": {"theme": str(theme.id), "name": "Renamed"},
        "/themes/merge": {"theme": str(other.id), "into": str(theme.id)},
        "/themes/tag": {"item": f"S-{s1}", "theme": str(theme.id)},
        "/themes/untag": {"item": f"S-{s1}", "theme": str(theme.id)},
        "/themes/use": {"name": "Used", "items": f"S-{s1}"},
    }
    before = (await store.themes.all(), await tags(store))

    # Signed out: refused, nothing changes.
    for path, form in forms.items():
        assert (await http.post(path, data=form)).status_code == 401
    assert (await http.get("/themes")).status_code == 401

    fay = await facilitator(person, store)
    await sign_in(http, await link_for(fay))
    page = await http.get("/themes")
    assert page.status_code == 200 and "<h1>Themes</h1>" in page.text
    for path, form in forms.items():
        for forged in ({}, {"csrf": "forged"}):
            refused = await http.post(path, data={**form, **forged})
            assert refused.status_code == 403 and "That form was not sent" in refused.text
    assert (await store.themes.all(), await tags(store)) == before

    # With the token it works; then, removed from the team, the next click is refused.
    token = csrf_of(page)
    done = await http.post("/themes/tag", data={**forms["/themes/tag"], "csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/themes?done=tagged"
    assert await tags(store) == [("Buses", f"S-{s1}")]
    await store.roles.remove(FACILITATOR, by=ORGANISER)
    after = (await store.themes.all(), await tags(store))
    for path, form in forms.items():
        refused = await http.post(path, data={**form, "csrf": token})
        assert refused.status_code in (401, 403)
    assert (await store.themes.all(), await tags(store)) == after
    assert (await http.get("/themes/suggestions")).status_code in (401, 403)


async def test_themes_in_a_browser_create_rename_merge_tag_and_use_a_suggestion(
    person: MakePerson, store: Store, workbench: str
) -> None:
    members = [await member(store, n, "cy" if n % 2 else "en") for n in range(4)]
    lift = await story(store, members[0], "The lift at the station is broken.")
    ramp = await story(store, members[1], "There is no ramp into the library.", kind="idea")
    corpus = {text: await story(store, members[n % 4], text) for n, text in enumerate(CORPUS)}
    fay = await facilitator(person, store)
    link = await link_for(fay)
    axe = Axe()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page: Page = await browser.new_page()
            await page.goto(link)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("link", name="Themes").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Themes")
            await expect(page.get_by_text("22 items have words and no theme yet.")).to_be_visible()
            await no_serious_violations(axe, page)

            async def done(message: str) -> None:
                await expect(page.get_by_role("status")).to_have_text(message)

            for name in ("Access", "Getting in", "Buildings"):
                await page.get_by_label("Name of the new theme").fill(name)
                await page.get_by_role("button", name="Create theme").click()
                await done("The theme was created.")
            await page.get_by_label("Theme to rename").select_option(label="Buildings")
            await page.get_by_label("New name").fill("Lifts and ramps")
            await page.get_by_role("button", name="Rename").click()
            await done("The theme was renamed.")

            lift_key, ramp_key = f"S-{lift}", f"S-{ramp}"
            await page.get_by_label(f"Theme for {lift_key}", exact=True).select_option(
                label="Getting in"
            )
            await page.get_by_role("button", name=f"Tag {lift_key}", exact=True).click()
            await done("The item was tagged.")
            await page.get_by_label(f"Theme for {ramp_key}", exact=True).select_option(
                label="Lifts and ramps"
            )
            await page.get_by_role("button", name=f"Tag {ramp_key}", exact=True).click()
            await done("The item was tagged.")
            assert await tags(store) == [
                ("Getting in", f"S-{lift}"),
                ("Lifts and ramps", f"S-{ramp}"),
            ]

            await page.get_by_label("Merge this theme").select_option(label="Getting in")
            await page.get_by_label("into this theme").select_option(label="Access")
            await page.get_by_role("button", name="Merge").click()
            await done("The themes were merged.")
            assert await tags(store) == [("Access", lift_key), ("Lifts and ramps", ramp_key)]
            rows = page.locator("table.themes tbody tr")
            await expect(rows).to_have_text(
                [re.compile(r"Access\s*1"), re.compile(r"Lifts and ramps\s*1")]
            )
            await no_serious_violations(axe, page)
            await page.set_viewport_size(ZOOMED)
            assert await page.evaluate(SIDEWAYS) <= 0, "/themes scrolls sideways at 200 %"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "workbench-themes-200.png", full_page=True)
            await page.set_viewport_size({"width": 1024, "height": 768})

            # Suggestions: shown, and nothing is tagged until a facilitator says so.
            before = await tags(store)
            await page.get_by_role("link", name="Suggest themes for untagged text").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Suggested themes")
            await expect(page.locator("section.suggestion")).to_have_count(4)
            assert await tags(store) == before
            await no_serious_violations(axe, page)
            parks = page.locator(
                "section.suggestion", has=page.get_by_role("heading", name=re.compile("park"))
            )
            await expect(parks.locator("li.item")).to_have_count(3)
            await expect(parks.locator("li.item").first).to_contain_text(re.compile("P-"))
            await parks.get_by_label("Name for this theme").fill("Parks")
            await parks.get_by_role("button", name="Use this theme for 5 items").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Theme: Parks")
            await done("The suggested theme was used.")
            park_keys = [f"S-{corpus[text]}" for text in PARKS]
            assert await tags(store) == sorted([*before, *(("Parks", key) for key in park_keys)])
            await no_serious_violations(axe, page)

            # Untag one from the theme's page.
            await page.get_by_role(
                "button", name=f"Take the theme off {park_keys[0]}", exact=True
            ).click()
            await done("The theme was taken off the item.")
            await expect(page.locator("li.item")).to_have_count(4)
            assert ("Parks", park_keys[0]) not in await tags(store)
        finally:
            await browser.close()
    used = [e for e in await store.audit.entries() if e.action == "theme_suggestion_used"]
    assert [json.loads(e.detail)["tagged"] for e in used] == [5]


async def test_too_little_text_is_said_and_a_suggestion_may_go_to_a_theme_that_exists(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    ann = await member(store, 1)
    s1 = await story(store, ann, "The bus was late.")
    s2 = await story(store, ann, "The bus did not stop.")
    buses = await store.themes.create("Buses", by=ORGANISER)
    fay = await facilitator(person, store)
    await sign_in(http, await link_for(fay))
    page = await http.get("/themes/suggestions")
    assert page.status_code == 200 and "Not enough untagged text yet." in page.text
    assert 'action="/themes/use"' not in page.text
    # "Use this theme" with the name of a theme that exists (case aside) adds to it.
    used = await http.post(
        "/themes/use", data={"csrf": csrf_of(page), "name": "BUSES", "items": f"S-{s1} S-{s2}"}
    )
    assert used.status_code == 303 and used.headers["location"] == f"/themes/{buses.id}?done=used"
    assert await tags(store) == [("Buses", f"S-{s1}"), ("Buses", f"S-{s2}")]
    assert [t.name for t in await store.themes.all()] == ["Buses"]
    assert (await http.get(f"/themes/{buses.id + 1}")).status_code == 404

"""The workbench's reader (Stories and ideas) and its Questions page, served for real beside
the bot, read over HTTP and in Debian's Chromium (Playwright), with axe-core.

The reader filters by project, kind, dates, flags and an idea's status, and searches with
SQLite FTS5 (PostgreSQL: a tsvector) in English and Welsh (accents fold: "dwr" finds "dŵr");
what is typed never reaches either as query syntax; the search index follows
every change of a part, and an erased member's words leave it. Voice notes play in the page
(the audio element knows its length) and photos have their caption as alt text; files come
only to signed-in staff. The Questions page counts each round with /stats's suppression and
charts the options beside their table; a private reply from it reaches the member in
Telegram through the reply relay, and their answer back reaches the staff member.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from datetime import timedelta

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, async_playwright, expect

from bot.catalogue import t
from bot.clock import FakeClock
from bot.receiving import CocreateApplication
from bot.settings import Settings
from bot.web.pages import reader
from storage import search
from storage.sharing import NewMedia
from storage.sqlite_db import sidecars
from storage.store import Store
from storage.times import to_db
from storage.tracker import Item as Tracked
from tests import test_workbench
from tests.dbs import sqlite_db
from tests.media_samples import png
from tests.test_questions import ask, texts
from tests.test_try import CHROMIUM_FLAGS, ZOOMED, chromium
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
settings_overrides = test_workbench.settings_overrides


# ---- what members shared, stored as the bot stores it


async def a_member(store: Store, n: int, language: str = "en") -> int:
    member = await store.members.join(
        telegram_user_id=8000 + n,
        chat_id=8000 + n,
        language=language,
        consent_version="1",
        agreed_to=["take_part"],
    )
    await store.members.mark_onboarded(member.id)
    return member.id


async def shares(
    store: Store,
    member_id: int,
    kind: str,
    parts: dict[str, str | None],
    *,
    project_id: int | None = None,
    language: str = "en",
    files: dict[str, NewMedia] | None = None,
) -> int:
    draft = await store.sharing.start(
        member_id=member_id, kind=kind, project_id=project_id, language=language
    )
    for part, text in parts.items():
        await store.sharing.answer(draft.id, member_id, part, text, (files or {}).get(part))
    await store.sharing.submit(draft.id)
    return draft.id


def shown_items(page: httpx.Response) -> list[int]:
    assert page.status_code == 200, page.text
    return [int(n) for n in re.findall(r'<article class="item" id="item-(\d+)"', page.text)]


async def signed_in_as_fay(person: MakePerson, store: Store, http: httpx.AsyncClient) -> Person:
    fay = await facilitator(person, store)
    assert (await sign_in(http, await link_for(fay))).status_code == 303
    return fay


def ogg_opus(seconds: int) -> bytes:
    """A real Ogg Opus file of silence (what Telegram's voice notes are): an OpusHead page, an
    OpusTags page, then 20 ms silent frames; the last page's granule position gives the
    length."""

    def crc(data: bytes) -> int:
        value = 0
        for byte in data:
            value ^= byte << 24
            for _ in range(8):
                value = (value << 1) ^ 0x04C11DB7 if value & 0x80000000 else value << 1
                value &= 0xFFFFFFFF
        return value

    def page(packets: list[bytes], sequence: int, granule: int, flags: int) -> bytes:
        lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
        header = struct.pack(
            "<4sBBqIIIB", b"OggS", 0, flags, granule, 0x0C0C, sequence, 0, len(lacing)
        )
        whole = header + lacing + b"".join(packets)
        return whole[:22] + struct.pack("<I", crc(whole)) + whole[26:]

    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 0, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 8) + b"cocreate" + struct.pack("<I", 0)
    silence = b"\xf8\xff\xfe"  # one 20 ms CELT frame of silence
    frames = seconds * 50
    pages = [page([head], 0, 0, 0x02), page([tags], 1, 0, 0)]
    sequence, done = 2, 0
    while done < frames:
        batch = min(200, frames - done)
        done += batch
        flags = 0x04 if done == frames else 0
        pages.append(page([silence] * batch, sequence, done * 960, flags))
        sequence += 1
    return b"".join(pages)


# ---- the reader


# The reader reads a filter's few matches first when there are few (search.FEW), else the
# newest submissions until a page is full: both ways must give the same answers.
BOTH_WAYS = pytest.mark.parametrize("few", [search.FEW, 0], ids=["few-first", "newest-first"])


@BOTH_WAYS
async def test_the_reader_filters_pages_and_shows_pseudonyms_only(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    clock: FakeClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    monkeypatch.setattr(search, "FEW", few)
    park = await store.projects.add("PARK", "Victoria Park")
    buses = await store.projects.add("BUS", "Better buses")
    ann, bo = await a_member(store, 1), await a_member(store, 2)
    await store.members.set_display_name(bo, None)
    clock.advance(timedelta(days=-10))
    old_story = await shares(
        store, ann, "experience", {"what_happened": "The gate was locked."}, project_id=park.id
    )
    clock.advance(timedelta(days=5))
    idea_new = await shares(
        store, bo, "idea", {"idea": "More benches.", "who_it_helps": None}, project_id=park.id
    )
    clock.advance(timedelta(days=1))
    idea_going = await shares(store, ann, "idea", {"idea": "A bus every ten minutes."})
    await store.tracker.change(
        Tracked("idea", idea_going),
        "going_ahead",
        None,
        changed_by=FACILITATOR,
        tell=lambda recipients: [],
    )
    clock.advance(timedelta(days=1))
    flagged = await shares(
        store,
        bo,
        "experience",
        {"what_happened": "I felt unsafe at the stop."},
        project_id=buses.id,
    )
    await store.sharing.flag(bo, flagged, "what_happened")
    draft = await store.sharing.start(member_id=ann, kind="idea", project_id=None, language="en")
    await store.sharing.answer(draft.id, ann, "idea", "Not saved yet.")
    await signed_in_as_fay(person, store, http)

    everything = await http.get("/reader")
    assert shown_items(everything) == [flagged, idea_going, idea_new, old_story]  # newest first
    assert "Not saved yet." not in everything.text  # a draft is not shared
    page = everything.text
    names = await store.pseudonyms.of_many([ann, bo])
    assert f"Story from {names[bo]}" in page and f"Idea from {names[ann]}" in page
    for never in ("8001", "8002", "Ann", "Bo"):
        assert not re.search(rf"\b{never}\b", page), never
    assert "The gate was locked." in page and "More benches." in page
    assert "Going ahead" in page and "Flagged" in page

    async def ids(**query: str) -> list[int]:
        return shown_items(await http.get("/reader", params=query))

    assert await ids(project=str(park.id)) == [idea_new, old_story]
    assert await ids(kind="idea") == [idea_going, idea_new]
    assert await ids(kind="experience", project=str(buses.id)) == [flagged]
    assert await ids(flagged="1") == [flagged]
    assert await ids(status="going_ahead") == [idea_going]
    assert await ids(status="new") == [idea_new]  # no status set: new (and only ideas)
    today = clock.now().astimezone(settings.tz).date()
    assert await ids(**{"from": str(today - timedelta(days=1))}) == [flagged, idea_going]
    assert await ids(**{"to": str(today - timedelta(days=2))}) == [idea_new, old_story]
    assert await ids(**{"from": str(today), "to": str(today)}) == [flagged]
    assert await ids(project="99999") == []
    # Nonsense is ignored, not an error.
    assert await ids(kind="poem", status="maybe", **{"from": "yesterday"}) == await ids()

    monkeypatch.setattr(reader, "PAGE", 3)
    first = await http.get("/reader", params={"project": str(park.id), "page": "1"})
    assert shown_items(first) == [idea_new, old_story]
    assert 'rel="next"' not in first.text
    paged = await http.get("/reader")
    assert shown_items(paged) == [flagged, idea_going, idea_new]
    older = re.search(r'<a href="([^"]+)" rel="next">Older</a>', paged.text)
    assert older is not None
    assert shown_items(await http.get(older[1].replace("&amp;", "&"))) == [old_story]


@BOTH_WAYS
async def test_search_finds_english_and_welsh_words_accents_or_not(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    monkeypatch.setattr(search, "FEW", few)
    ann, bryn = await a_member(store, 1), await a_member(store, 2, "cy")
    english = await shares(
        store, ann, "experience", {"what_happened": "The buses never stop at Splott."}
    )
    welsh = await shares(
        store,
        bryn,
        "idea",
        {"idea": "Mae angen dŵr yfed yn y parc.", "who_it_helps": "Plant"},
        language="cy",
    )
    await signed_in_as_fay(person, store, http)

    async def found(words: str) -> list[int]:
        return shown_items(await http.get("/reader", params={"q": words}))

    assert await found("buses") == [english]
    assert await found("SPLOTT never") == [english]  # every word, any order, any case
    assert await found("dŵr") == [welsh]
    assert await found("dwr") == [welsh]  # the accent folds away
    assert await found("DŴR plant") == [welsh]  # words from two parts of one idea
    assert await found("bus") == []  # no stemming: words as written …
    assert await found("bus*") == [english]  # … or the start of a word
    assert await found("buses dŵr") == []
    # FTS5's syntax, and PostgreSQL's tsquery syntax: typed, they are words or nothing.
    for odd in ('"', "NEAR(", "a OR", "*", "-buses", "parc)", "!buses", "a & b | c", "bus:*"):
        assert (await http.get("/reader", params={"q": odd})).status_code == 200
    assert await found("parc)") == [welsh]
    assert await found("!buses") == await found("buses:*") == [english]
    assert await found("buses <-> splott") == [english]
    assert await found("buses & dŵr") == await found("buses | dŵr") == []  # every word
    page = await http.get("/reader", params={"q": "dwr", "kind": "idea"})
    assert 'value="dwr"' in page.text and 'lang="cy"' in page.text


# The themes part (storage/themes.py) brings these tables in a migration of its own; until
# it is merged, this test makes them as that migration does (IF NOT EXISTS: after the merge,
# the real ones are used).
THEMES = """
CREATE TABLE IF NOT EXISTS themes (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_by INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS item_themes (
    id INTEGER PRIMARY KEY,
    theme_id INTEGER NOT NULL REFERENCES themes(id) ON DELETE CASCADE,
    submission_id INTEGER REFERENCES submissions(id) ON DELETE CASCADE,
    answer_id INTEGER REFERENCES answers(id) ON DELETE CASCADE,
    tagged_by INTEGER NOT NULL, tagged_at TEXT NOT NULL);
"""


@BOTH_WAYS
async def test_the_reader_filters_by_theme_once_themes_exist(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    few: int,
) -> None:
    monkeypatch.setattr(search, "FEW", few)
    ann = await a_member(store, 1)
    lights = await shares(store, ann, "experience", {"what_happened": "It is dark."})
    benches = await shares(store, ann, "idea", {"idea": "More benches."})
    for statement in THEMES.split(";")[:-1]:
        await store.db.execute(statement)
    now = to_db(clock.now())
    [theme] = await store.db.execute_returning(
        "INSERT INTO themes (name, created_by, created_at) VALUES ('Safety', ?, ?) RETURNING id",
        (FACILITATOR, now),
    )
    await store.db.execute(
        "INSERT INTO item_themes (theme_id, submission_id, tagged_by, tagged_at)"
        " VALUES (?, ?, ?, ?)",
        (theme["id"], lights, FACILITATOR, now),
    )
    await signed_in_as_fay(person, store, http)
    page = await http.get("/reader")
    assert shown_items(page) == [benches, lights]
    assert f'<option value="{theme["id"]}" >Safety</option>' in page.text
    tagged = await http.get("/reader", params={"theme": str(theme["id"])})
    assert shown_items(tagged) == [lights]
    assert f'<option value="{theme["id"]}" selected>Safety</option>' in tagged.text
    assert shown_items(await http.get("/reader", params={"theme": "99999"})) == []


async def test_the_index_takes_what_is_saved_and_forgets_an_erased_member(
    person: MakePerson, store: Store, http: httpx.AsyncClient
) -> None:
    """On SQLite the index is FTS5's (its words listed by fts5vocab, its segments' bytes
    read); on PostgreSQL a tsvector column (its words listed by ts_stat)."""
    sqlite = store.db.dialect == "sqlite"
    ann, bo = await a_member(store, 1), await a_member(store, 2)
    story = await shares(store, ann, "experience", {"what_happened": "A zebracrossing please."})
    kept = await shares(store, bo, "experience", {"what_happened": "A zebracrossing too."})
    await signed_in_as_fay(person, store, http)

    async def found(words: str) -> list[int]:
        return shown_items(await http.get("/reader", params={"q": words}))

    async def indexed() -> list[int]:
        rows = await store.db.fetch_all("SELECT rowid FROM submission_search ORDER BY rowid")
        return [int(r[0]) for r in rows]

    assert await found("zebracrossing") == [kept, story]
    # A draft is not in the index (nor on the page) until it is saved; parts changed while
    # it is a draft are indexed as they are when it is saved.
    draft = await store.sharing.start(member_id=ann, kind="idea", project_id=None, language="en")
    await store.sharing.answer(draft.id, ann, "idea", "A lollipop lady.")
    await store.sharing.answer(draft.id, ann, "idea", "A pelican crossing.")
    await store.sharing.answer(draft.id, ann, "who_it_helps", "Children walking to school.")
    assert await indexed() == [story, kept]
    assert await found("pelican") == []
    await store.sharing.submit(draft.id)
    assert await indexed() == [story, kept, draft.id]
    assert await found("pelican children") == [draft.id]
    assert await found("lollipop") == []
    # A discarded draft never was in it.
    other = await store.sharing.start(member_id=bo, kind="idea", project_id=None, language="en")
    await store.sharing.answer(other.id, bo, "idea", "Speed bumps.")
    await store.sharing.discard(other.id)
    assert await indexed() == [story, kept, draft.id]
    # Erased: everything of the member goes, from the index too (their submissions cascade).
    await store.erase_member(ann)
    assert await found("pelican") == []
    either = (
        "submission_search MATCH 'pelican OR please'"
        if sqlite
        else "document @@ to_tsquery('simple', 'pelican | please')"
    )
    rows = await store.db.fetch_all(f"SELECT rowid FROM submission_search WHERE {either}")
    assert rows == [] and await indexed() == [kept]
    if sqlite:
        await store.db.execute(
            "CREATE VIRTUAL TABLE temp.search_words USING fts5vocab(main, submission_search, 'row')"
        )
        vocabulary = "SELECT term FROM temp.search_words"
    else:
        vocabulary = "SELECT word AS term FROM ts_stat('SELECT document FROM submission_search')"
    words = {r["term"] for r in await store.db.fetch_all(vocabulary)}
    assert {"zebracrossing", "too"} <= words
    assert not words & {"pelican", "please", "children"}
    [left] = await store.db.fetch_all("SELECT rowid, text FROM submission_search")
    assert (left["rowid"], left["text"]) == (kept, "A zebracrossing too.")
    if not sqlite:
        return  # PostgreSQL keeps a deleted row's bytes until VACUUM (README)
    # Nor are they left as bytes in the index's old segments, or anywhere in the files
    # (FTS5 only marks deleted rows, until its segments are merged: the erasure merges them).
    blocks = await store.db.fetch_all("SELECT block FROM submission_search_data")
    assert not any(b"pelican" in bytes(r["block"] or b"") for r in blocks)
    for file in (sqlite_db(store.db).file, *sidecars(sqlite_db(store.db).file)):
        if file.exists():
            assert b"pelican" not in file.read_bytes(), file


async def test_files_come_only_to_staff_with_their_type_and_ranges(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    settings: Settings,
    workbench: str,
) -> None:
    ann = await a_member(store, 1)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    sound = ogg_opus(2)
    (settings.media_dir / "v1.ogg").write_bytes(sound)
    (settings.media_dir / "d1.bin").write_bytes(b"<html><script>alert(1)</script></html>")
    await shares(
        store,
        ann,
        "experience",
        {"what_happened": None, "how_it_affected": None},
        files={
            "what_happened": NewMedia("voice", "v1.ogg", "f1", "audio/ogg", len(sound), 2),
            "how_it_affected": NewMedia("document", "d1.bin", "f2", "text/html", 40, None),
        },
    )
    [voice_id, document_id] = [
        int(r["id"]) for r in await store.db.fetch_all("SELECT id FROM media ORDER BY id")
    ]
    # Signed out: nothing, not even the file's type.
    async with httpx.AsyncClient(base_url=workbench) as stranger:
        refused = await stranger.get(f"/media/{voice_id}")
        assert refused.status_code == 401 and "audio" not in refused.headers["content-type"]
    await signed_in_as_fay(person, store, http)
    whole = await http.get(f"/media/{voice_id}")
    assert whole.status_code == 200 and whole.content == sound
    assert whole.headers["content-type"] == "audio/ogg"
    assert whole.headers["accept-ranges"] == "bytes"
    part = await http.get(f"/media/{voice_id}", headers={"range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == sound[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(sound)}"
    # What could run as a page is only a download, and could not run anyway.
    document = await http.get(f"/media/{document_id}")
    assert document.headers["content-type"] == "application/octet-stream"
    assert document.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in document.headers["content-security-policy"]
    assert (await http.get("/media/99999")).status_code == 404
    (settings.media_dir / "v1.ogg").unlink()
    assert (await http.get(f"/media/{voice_id}")).status_code == 404


async def test_signed_out_and_removed_staff_are_refused_on_every_route(
    person: MakePerson, store: Store, http: httpx.AsyncClient, workbench: str
) -> None:
    ann = await a_member(store, 1)
    await shares(store, ann, "experience", {"what_happened": "Words."})
    gets = ["/reader", "/reader?q=words", "/questions", "/questions/rounds/1", "/media/1"]
    post = "/questions/answers/1/reply"
    async with httpx.AsyncClient(base_url=workbench) as stranger:
        for path in gets:
            assert (await stranger.get(path)).status_code == 401, path
        assert (await stranger.post(post, data={"text": "hi"})).status_code == 401
    await signed_in_as_fay(person, store, http)
    reading = await http.get("/reader")
    assert reading.status_code == 200 and "Words." in reading.text
    # A form without its token is refused, signed in or not.
    assert (await http.post(post, data={"text": "hi"})).status_code == 403
    await store.roles.remove(FACILITATOR, by=ORGANISER)
    refused = await http.get("/reader")
    assert refused.status_code == 403 and "Words." not in refused.text
    await store.roles.grant_facilitator(FACILITATOR, "Fay", granted_by=ORGANISER)
    for path in gets:  # the session ended with the role
        assert (await http.get(path)).status_code == 401, path
    assert (await http.post(post, data={"csrf": csrf_of(reading), "text": "hi"})).status_code == 401


# ---- questions


async def a_round(
    store: Store,
    clock: FakeClock,
    text: str,
    kind: str,
    options: list[str],
    outcomes: list[str],
    choices: Sequence[str | None],
    words: Sequence[str | None] | None = None,
) -> int:
    """A round that went out: one outbox row per outcome (sent, failed, skipped …), already
    final so the sender leaves it, and an answer per choice, from the first members."""
    question = await store.questions.create(
        author_id=ORGANISER,
        author_chat_id=ORGANISER,
        author_language="en",
        text=text,
        kind=kind,
        options=options,
        audience="everyone",
        repeat="once",
        # Due later, so the bot's scheduler leaves it: it is marked sent here, with its batch.
        starts_at=clock.now() + timedelta(days=30),
        reminder_hours=None,
    )
    now = to_db(clock.now())
    batch = await store.db.execute_returning(
        "INSERT INTO delivery_batches (kind, ref_id, created_at, finished_at)"
        " VALUES ('question', ?, ?, ?) RETURNING id",
        (question.id, now, now),
    )
    batch_id = int(batch[0]["id"])
    members = [await a_member(store, 100 + n) for n in range(len(outcomes))]
    for member_id, outcome in zip(members, outcomes, strict=True):
        await store.db.execute(
            "INSERT INTO outbox (batch_id, member_id, chat_id, text, status, not_before,"
            " created_at) VALUES (?, ?, ?, '', ?, ?, ?)",
            (batch_id, member_id, 8100 + member_id, outcome, now, now),
        )
    [round_row] = await store.db.fetch_all(
        "SELECT id FROM question_rounds WHERE question_id = ?", (question.id,)
    )
    round_id = int(round_row["id"])
    await store.questions.mark_round_sent(
        round_id,
        batch_id=batch_id,
        sent_at=clock.now(),
        closes_at=clock.now() + timedelta(days=7),
        reminder_due_at=None,
        next_due_at=None,
    )
    for i, choice in enumerate(choices):
        said = words[i] if words else None
        await store.answers.save(round_id, members[i], choice=choice, text=said)
    return round_id


def figures_of(page: str, round_id: int) -> dict[str, str]:
    return {
        name: value for name, value in re.findall(rf'<dd id="(\w+)-{round_id}">([^<]*)</dd>', page)
    }


def option_rows(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr><th scope="row">([^<]*)</th><td>([^<]*)</td></tr>', page)


async def test_questions_count_each_round_and_hide_small_numbers_as_stats_does(
    person: MakePerson, store: Store, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    # 20 members were sent "Which day?": 18 delivered, 1 failed, 1 skipped (stopped).
    # 12 chose Monday and 4 Wednesday: 4 is hidden, and then Monday too (16 - 12 = 4).
    days = await a_round(
        store,
        clock,
        "Which day suits you?",
        "choice",
        ["Monday", "Wednesday", "Saturday"],
        ["sent"] * 18 + ["failed", "skipped"],
        ["1"] * 12 + ["2"] * 4,
    )
    clock.advance(timedelta(hours=1))
    await signed_in_as_fay(person, store, http)
    page = (await http.get("/questions")).text
    assert figures_of(page, days) == {"sent": "19", "delivered": "18", "answered": "16"}
    assert option_rows(page) == [("Monday", "*"), ("Wednesday", "*"), ("Saturday", "0")]
    # The chart: made here as SVG (no script, nothing from elsewhere), no bar for a hidden
    # count, and its table beside it.
    [chart] = re.findall(r"<svg.*?</svg>", page, re.S)
    assert "<rect" not in chart and "<script" not in page
    assert "Bar chart of the answers to “Which day suits you?”" in chart

    # Large enough counts are shown, and drawn.
    clock.advance(timedelta(hours=1))
    yes_no = await a_round(
        store,
        clock,
        "Should the park open later?",
        "yesno",
        [],
        ["sent"] * 21,
        ["yes"] * 10 + ["no"] * 11,
    )
    page = (await http.get("/questions")).text
    assert figures_of(page, yes_no) == {"sent": "21", "delivered": "21", "answered": "21"}
    assert option_rows(page)[:2] == [("Yes", "10"), ("No", "11")]
    assert page.index("Should the park open later?") < page.index("Which day suits you?")
    [newest_chart, _] = re.findall(r"<svg.*?</svg>", page, re.S)
    widths = [int(w) for w in re.findall(r'<rect [^>]*width="(\d+)"', newest_chart)]
    assert widths == [200, 220]  # 10 and 11, the largest full width

    # A round with few answers: the total is hidden too (from 1 to 9).
    clock.advance(timedelta(hours=1))
    few = await a_round(store, clock, "Rate the bus", "scale", [], ["sent"] * 5, ["4", "4", "5"])
    page = (await http.get(f"/questions/rounds/{few}")).text
    assert figures_of(page, few) == {"sent": "5", "delivered": "5", "answered": "*"}
    assert option_rows(page) == [("1", "0"), ("2", "0"), ("3", "0"), ("4", "*"), ("5", "*")]
    assert (await http.get("/questions/rounds/99999")).status_code == 404


async def test_a_private_reply_from_the_workbench_reaches_the_member(
    person: MakePerson,
    store: Store,
    http: httpx.AsyncClient,
    bot: CocreateApplication,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    olu = person(ORGANISER, "Olu")
    ann = person(1001, "Ann")
    await join(ann)
    await ask(olu, "What would make the park safer?", "In their own words")
    await olu.taps("Send")
    await texts(ann)  # the question
    [saved] = await ann.says("More lights by the pond.")
    assert saved.startswith("Thank you. We have saved your answer.")
    fay = await signed_in_as_fay(person, store, http)
    [round_row] = await store.db.fetch_all("SELECT id FROM question_rounds")
    [answer] = await store.db.fetch_all("SELECT id, member_id FROM answers")
    member = await store.members.get(int(answer["member_id"]))
    assert member is not None
    pseudonym = await store.pseudonyms.of(member.id)

    rounds = await http.get("/questions")
    link = f"/questions/rounds/{round_row['id']}"
    assert f'href="{link}"' in rounds.text
    page = await http.get(link)
    assert "More lights by the pond." in page.text and pseudonym in page.text
    assert "Ann" not in page.text and str(ann.user.id) not in page.text
    action = f"/questions/answers/{answer['id']}/reply"
    # Nothing written: said so beside the form, and nothing is sent.
    empty = await http.post(action, data={"csrf": csrf_of(page), "text": "  "})
    assert empty.status_code == 400 and "Write your reply first." in empty.text
    assert await store.db.fetch_all("SELECT id FROM replies") == []

    words = "Thank you. Which part of the pond?"
    woken: list[str] = []
    wake = bot.delivery.wake

    def waking() -> None:
        woken.append("woken")
        wake()

    monkeypatch.setattr(bot.delivery, "wake", waking)
    sent = await http.post(action, data={"csrf": csrf_of(page), "text": words})
    assert sent.status_code == 303
    assert woken == ["woken"]  # the page woke the sender: the reply goes at once
    assert sent.headers["location"] == f"{link}?sent={answer['id']}#answer-{answer['id']}"
    after = await http.get(sent.headers["location"])
    assert f"Your reply is on its way to {pseudonym}." in after.text
    [relayed] = await texts(ann)
    assert relayed == (
        t("en", "reply.from_team", question="What would make the park safer?") + "\n\n" + words
    )
    assert "Fay" not in relayed and str(FACILITATOR) not in relayed
    entries = [e for e in await store.audit.entries() if e.action == "reply_sent"]
    assert [(e.actor, '"workbench"' in e.detail) for e in entries] == [
        (f"telegram:{FACILITATOR}", True)
    ]
    # The member answers back once, in Telegram; it reaches Fay there.
    assert await ann.taps("Answer back") == [t("en", "reply.ask")]
    assert await ann.says("By the gate.") == [t("en", "reply.passed_on")]
    [back] = await texts(fay)
    assert back == t("en", "staff.reply.answered_back", pseudonym=pseudonym, text="By the gate.")


# ---- in the browser


async def test_voice_notes_play_photos_have_alt_text_and_axe_passes(
    person: MakePerson, store: Store, settings: Settings, workbench: str, clock: FakeClock
) -> None:
    ann, bo = await a_member(store, 1), await a_member(store, 2, "cy")
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    sound = ogg_opus(3)
    (settings.media_dir / "v.ogg").write_bytes(sound)
    (settings.media_dir / "p1.jpg").write_bytes(png(40, 30))
    (settings.media_dir / "p2.jpg").write_bytes(png(40, 30))
    await shares(
        store,
        ann,
        "experience",
        {
            "what_happened": None,
            "how_it_affected": "The stop by the library",
            "what_would_help": None,
        },
        files={
            "what_happened": NewMedia("voice", "v.ogg", "f1", "audio/ogg", len(sound), 3),
            "how_it_affected": NewMedia("photo", "p1.jpg", "f2", None, 100, None),
            "what_would_help": NewMedia("photo", "p2.jpg", "f3", None, 100, None),
        },
    )
    await shares(store, bo, "idea", {"idea": "Mwy o goed yn y parc.", "who_it_helps": None})
    await a_round(
        store,
        clock,
        "Which day suits you?",
        "choice",
        ["Monday", "Tuesday"],
        ["sent"] * 12,
        ["1"] * 11 + ["2"],
    )
    await a_round(
        store,
        clock,
        "What would help?",
        "open",
        [],
        ["sent"] * 2,
        [None],
        ["Benches."],
    )
    fay = await facilitator(person, store)
    link = await link_for(fay)
    axe = Axe()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page: Page = await browser.new_page()
            await page.goto(link)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
            await page.get_by_role("link", name="Stories and ideas").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Stories and ideas")
            audio = page.locator("audio")
            await expect(audio).to_have_count(1)
            duration = await audio.evaluate(
                """a => new Promise(done => {
                    if (a.readyState >= 1) { done(a.duration); return; }
                    a.addEventListener('loadedmetadata', () => done(a.duration));
                    a.addEventListener('error', () => done(-1));
                    a.load();
                })"""
            )
            assert 2.5 < duration < 3.5, duration
            images = page.get_by_role("img")
            assert [await i.get_attribute("alt") for i in await images.all()] == [
                "The stop by the library",
                reader.NO_CAPTION,
            ]
            for image in await images.all():  # the photos loaded
                assert await image.evaluate("i => i.complete && i.naturalWidth") == 40
            await no_serious_violations(axe, page)
            # Search with the keyboard: the box is labelled; Enter sends the form.
            await page.get_by_label("Search the words members wrote").fill("goed")
            await page.keyboard.press("Enter")
            await expect(page.locator("article h3")).to_have_count(1)
            await expect(page.locator("article h3")).to_contain_text("Idea from P-")
            await no_serious_violations(axe, page)
            await page.set_viewport_size(ZOOMED)
            assert await page.evaluate(SIDEWAYS) <= 0, "the reader scrolls sideways at 200 %"
            await page.set_viewport_size({"width": 1024, "height": 768})

            await page.get_by_role("link", name="Questions").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Questions")
            await expect(page.get_by_role("table")).to_have_count(1)
            await expect(page.get_by_role("img", name=re.compile("^Bar chart"))).to_have_count(1)
            await no_serious_violations(axe, page)
            await page.set_viewport_size(ZOOMED)
            assert await page.evaluate(SIDEWAYS) <= 0, "Questions scrolls sideways at 200 %"
            await page.set_viewport_size({"width": 1024, "height": 768})
            await page.get_by_role("link", name=re.compile("^Read the answers to “What")).click()
            await expect(page.get_by_text("Benches.")).to_be_visible()
            await no_serious_violations(axe, page)
            reply = page.get_by_label(re.compile("^Reply to P-.* privately$"))
            await reply.fill("Where would you put them?")
            await page.get_by_role("button", name="Send reply").click()
            await expect(page.get_by_role("status")).to_contain_text("Your reply is on its way")
            await no_serious_violations(axe, page)
        finally:
            await browser.close()
    [row] = await store.db.fetch_all("SELECT text FROM replies")
    assert row["text"] == "Where would you put them?"


def test_search_words_never_reach_fts5_as_syntax() -> None:
    match_query = search.match_query
    assert match_query('dŵr "yfed" OR parc*') == '"dŵr" "yfed" "OR" "parc"*'
    assert match_query("NEAR(a b) -c ^d") == '"NEAR" "a" "b" "c" "d"'
    assert match_query(" * ( ) ") is None

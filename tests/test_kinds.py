"""One list of sharing kinds (storage/kinds.py): a kind added there, with its catalogue texts,
is shared in chat from its own menu entry, shown by /mydata, exported, kept by retention's
counts and erased by /delete, with no other file touched.

The throw-away "diary" kind is put in the list with monkeypatch, and its texts are added to
the loaded catalogue for the test (monkeypatch.setitem on the catalogue's English texts:
no production code changes for it; Welsh falls back to English as it does for any key).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
import pytest

from bot.catalogue import LANGUAGES, catalogue, t
from bot.clock import FakeClock
from conversations import ideas, stories
from storage import kinds
from storage.export_files import CsvSink
from storage.export_rows import COLUMNS, ExportFilter, columns
from storage.migrations import MIGRATIONS, migrate
from storage.store import Store
from tests.transcript import Person, join

MakePerson = Callable[..., Person]

DIARY = kinds.Kind(
    key="diary",
    noun="diary",
    plural="diaries",
    parts=("what_you_saw",),
    asks_volunteer=False,
)
DIARY_TEXTS = {
    "menu.diary": "Keep a diary",
    "diary.what_you_saw": "What did you see today? You can type it or send a photo.",
    "diary.label.what_you_saw": "What you saw",
    "diary.review": "Here is your diary page:\n\n{parts}\n\nIs it right?",
    "diary.saved": "Thank you. We have saved your diary page.",
    "diary.cancel_ask": "Do you want to throw this diary page away?",
    "diary.resume": "You did not finish your last diary page. Let us carry on.",
    "diary.another": "Write one more page",
    "diary.mydata": "- Diary pages: {count}",
    "sharing.paused.diary": "We have kept your diary page for later.",
}
SAW = "A heron stood by the lock gate."


@pytest.fixture
def diary(monkeypatch: pytest.MonkeyPatch) -> kinds.Kind:
    """The diary kind in the list, with its texts, for this test only."""
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, DIARY))
    english = catalogue()._texts["en"]  # the loaded catalogue's English texts
    for key, text in DIARY_TEXTS.items():
        monkeypatch.setitem(english, key, text)
    return DIARY


@pytest.fixture
def settings_overrides(diary: kinds.Kind) -> dict[str, Any]:
    # Depending on `diary` puts the kind in the list before the bot is built.
    return {}


async def test_a_kind_added_to_the_list_flows_through_chat_mydata_export_and_delete(
    person: MakePerson, store: Store, tmp_path: Path
) -> None:
    ann = person(4101, "Ann")
    await join(ann)
    # Its own menu entry starts it; it asks its one part, then shows it back.
    assert await ann.taps("Keep a diary") == [DIARY_TEXTS["diary.what_you_saw"]]
    assert ann.buttons == ["Skip", "Stop"]
    review = t("en", "diary.review", parts=f"What you saw: {SAW}")
    assert await ann.says(SAW) == [review]
    assert await ann.taps("Save") == [DIARY_TEXTS["diary.saved"], t("en", "sharing.next")]
    # "Share one more?" is the diary's own question, and its button works.
    assert ann.buttons == ["Write one more page", "Menu"]
    assert await ann.taps("Write one more page") == [DIARY_TEXTS["diary.what_you_saw"]]
    await ann.taps("Stop")
    await ann.taps(t("en", "sharing.discard_yes"))

    member = await store.members.by_telegram_id(4101)
    assert member is not None
    saved = [s for s in await store.sharing.of_member(member.id) if s.status == "submitted"]
    assert [(s.kind, s.status) for s in saved] == [("diary", "submitted")]
    assert (await store.sharing.parts(saved[0].id))["what_you_saw"].text == SAW

    # /mydata: the summary counts it, and the file has it under the kind's plural.
    await ann.says("/mydata")
    summary, document = ann.user.messages[-2:]
    assert summary.text is not None and "- Diary pages: 1" in summary.text
    assert "- Stories: 0" in summary.text and "- Ideas: 0" in summary.text
    assert document.file_bytes is not None
    data = json.loads(document.file_bytes)
    [page] = data["diaries"]
    assert page["kind"] == "diary" and page["parts"]["what_you_saw"]["text"] == SAW
    assert data["stories"] == [] and data["ideas"] == []

    # The export: its part is a column after every column there was, and the row fills it.
    names = columns()
    assert names == (*COLUMNS, "what_you_saw")
    [row] = [r async for r in store.responses.rows(ExportFilter(), ZoneInfo("Europe/London"))]
    record = dict(zip(names, row, strict=True))
    assert record["kind"] == "diary" and record["what_you_saw"] == SAW
    assert record["response_id"] == f"S-{saved[0].id}" and record["what_happened"] is None
    out = tmp_path / "responses.csv"
    sink = CsvSink(out)
    sink.write(row)
    sink.close()
    header, line = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"))))
    assert header[-1] == "what_you_saw" and line[-1] == SAW

    # /delete takes it away with everything else.
    await ann.says("/delete")
    assert await ann.taps(t("en", "delete.yes")) == [t("en", "delete.done")]
    left = await store.db.fetch_all("SELECT kind FROM submissions")
    assert left == []
    assert await store.db.fetch_all("SELECT 1 FROM submission_parts") == []


async def one_member(store: Store, user_id: int) -> int:
    await store.db.execute(
        "INSERT INTO members (telegram_user_id, chat_id, joined_at)"
        " VALUES (?, ?, '2026-11-30T10:00:00+00:00')",
        (user_id, user_id),
    )
    found = await store.db.fetch_one(
        "SELECT id FROM members WHERE telegram_user_id = ?", (user_id,)
    )
    assert found is not None
    return int(found["id"])


async def test_retention_counts_a_kind_by_its_plural(
    diary: kinds.Kind, store: Store, clock: FakeClock
) -> None:
    member_id = await one_member(store, 1)
    draft = await store.sharing.start(
        member_id=member_id, kind="diary", project_id=None, language="en"
    )
    await store.sharing.answer(draft.id, member_id, "what_you_saw", SAW, None)
    await store.sharing.submit(draft.id)
    deleted = await store.retention.delete_older_than(clock.now() + timedelta(days=1))
    assert deleted.shared == {"stories": 0, "ideas": 0, "diaries": 1}
    assert deleted.responses == 1


async def test_a_kind_not_in_the_list_is_refused(store: Store) -> None:
    member_id = await one_member(store, 2)
    with pytest.raises(ValueError, match="not a sharing kind"):
        await store.sharing.start(member_id=member_id, kind="diary", project_id=None, language="en")
    assert await store.db.fetch_all("SELECT 1 FROM submissions") == []


def test_every_kind_has_its_texts_in_every_language() -> None:
    for kind in kinds.KINDS:
        for language in LANGUAGES:
            missing = set(kind.catalogue_keys()) - catalogue().keys(language)
            assert not missing, (kind.key, language, missing)


def test_the_steps_of_stories_and_ideas_are_their_kinds_parts() -> None:
    assert kinds.KINDS == (stories.FLOW, ideas.FLOW)
    for module in (stories, ideas):
        named = [s.value for s in module.Step if s.value not in kinds.STEPS]
        assert tuple(named) == module.FLOW.parts


async def test_the_migration_drops_the_check_and_keeps_every_row(tmp_path: Path) -> None:
    # A database at the schema before: the CHECK refuses a kind not in it.
    rebuild = next(i for i, sql in enumerate(MIGRATIONS) if "submissions_new" in sql)
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        for version, sql in enumerate(MIGRATIONS[:rebuild], start=1):
            conn.executescript(f"{sql}\nPRAGMA user_version = {version};")
        conn.execute(
            "INSERT INTO members (id, telegram_user_id, chat_id, joined_at) VALUES (1, 1, 1, 'x')"
        )
        conn.execute(
            "INSERT INTO submissions (id, member_id, kind, status, language, volunteer,"
            " reviewed, created_at, submitted_at)"
            " VALUES (7, 1, 'idea', 'submitted', 'cy', 'maybe', 1, 'a', 'b')"
        )
        conn.execute(
            "INSERT INTO submission_parts (submission_id, part, text, updated_at)"
            " VALUES (7, 'idea', 'Hi', 'a')"
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO submissions (member_id, kind, language, created_at)"
                " VALUES (1, 'diary', 'en', 'a')"
            )
    conn.close()

    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA foreign_keys = ON")
        assert await migrate(db) == len(MIGRATIONS)
        async with db.execute("PRAGMA foreign_keys") as cur:
            assert await cur.fetchone() == (1,)  # back on after migrating
        async with db.execute(
            "SELECT id, member_id, kind, status, language, volunteer, reviewed, created_at,"
            " submitted_at FROM submissions"
        ) as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [
                (7, 1, "idea", "submitted", "cy", "maybe", 1, "a", "b")
            ]
        async with db.execute("SELECT submission_id, part, text FROM submission_parts") as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [
                (7, "idea", "Hi")
            ]  # not cascaded away
        async with db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'submissions'"
        ) as cur:
            assert ("submissions_member",) in [tuple(r) for r in await cur.fetchall()]
        await db.execute(
            "INSERT INTO submissions (member_id, kind, language, created_at)"
            " VALUES (1, 'diary', 'en', 'a')"
        )
        # The children still point at submissions: deleting one cascades to its parts.
        await db.execute("DELETE FROM submissions WHERE id = 7")
        async with db.execute("SELECT COUNT(*) FROM submission_parts") as cur:
            assert await cur.fetchone() == (0,)


def test_keys_nouns_plurals_and_part_columns_never_clash() -> None:
    every = kinds.KINDS
    for field in ("key", "noun", "plural"):
        values = [getattr(kind, field) for kind in every]
        assert len(set(values)) == len(values), field
    # Only the parts of stories and ideas sit among the fixed columns; any other part would
    # overwrite a column such as "answer" or "kind".
    first = set(kinds.STORY.parts + kinds.IDEA.parts)
    assert set(kinds.part_names()) & set(COLUMNS) == first
    assert not {k.plural for k in every} & {"answers", "days", "files", "messages", "profile"}
    assert not set(kinds.part_names()) & set(kinds.STEPS)

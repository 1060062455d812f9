"""Themes: names staff give to what members said, and which story, idea or answer has which.

Tables: themes, item_themes (written); submissions, submission_parts, answers (read: the
items and their free text). A tag goes with its item when the item goes (erasure, retention:
ON DELETE CASCADE) and with its theme. An item has a theme at most once.

An item (`ItemRef`) is a submitted story or idea, or an answer, named as in the exports:
"S-12", "A-3". Its free text is what the member typed: a story's or idea's parts, joined, or
an open answer's words (or a voice note's caption).

Creating, renaming and merging themes goes in the audit log with the themes' ids and names
(staff words); never a member's words.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from storage.db import Database, IntegrityErrors, Row, Tx
from storage.dialect import ids_from_json
from storage.kinds import find
from storage.times import from_db, to_db

Now = Callable[[], datetime]
ItemKind = Literal["submission", "answer"]
MAX_NAME = 60  # characters: a theme's name is a few words
_PREFIX: dict[ItemKind, str] = {"submission": "S-", "answer": "A-"}
_COLUMN: dict[ItemKind, str] = {"submission": "submission_id", "answer": "answer_id"}


class ThemeError(ValueError):
    """A theme cannot be made, renamed or merged so; the message is one sentence for staff."""


@dataclass(frozen=True, order=True)
class ItemRef:
    """A story or idea (its submission) or an answer."""

    kind: ItemKind
    id: int

    @property
    def key(self) -> str:
        """As the exports name it: S-12, A-3."""
        return f"{_PREFIX[self.kind]}{self.id}"

    @classmethod
    def parse(cls, key: str) -> ItemRef | None:
        """The item a key names ("S-12", "A-3"), or None."""
        for kind, prefix in _PREFIX.items():
            rest = key.strip().removeprefix(prefix)
            if key.strip().startswith(prefix) and rest.isascii() and rest.isdigit():
                return cls(kind, int(rest))
        return None


@dataclass(frozen=True)
class Theme:
    """A theme and how many items have it."""

    id: int
    name: str
    items: int


@dataclass(frozen=True)
class FreeText:
    """An item's free text, with whose it is (for a pseudonym) and when it was given."""

    item: ItemRef
    member_id: int
    kind: str  # experience, idea (storage/kinds.py) or answer
    text: str
    at: datetime


def clean_name(name: str) -> str:
    """A theme's name as kept: spaces trimmed and single; ThemeError if empty or too long."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ThemeError("A theme needs a name.")
    if ";" in cleaned:  # the exports join an item's themes with "; "
        raise ThemeError("A theme's name cannot have a ; in it.")
    if len(cleaned) > MAX_NAME:
        raise ThemeError(f"A theme's name can have at most {MAX_NAME} characters.")
    return cleaned


def _split(items: Iterable[ItemRef]) -> tuple[str, str]:
    """Submission ids and answer ids, each as a JSON list (for ids_from_json)."""
    chosen = sorted(set(items))
    return (
        json.dumps([i.id for i in chosen if i.kind == "submission"]),
        json.dumps([i.id for i in chosen if i.kind == "answer"]),
    )


# The free text of items, newest first: submitted stories and ideas with a typed part, and
# answers with words. `{where_s}` and `{where_a}` say which (tagged or not, and so on);
# `{newest_s}` and `{newest_a}` may keep only the newest of each (in the order of an index:
# when shared, then id; an answer's id), so that SQLite reads those and stops, not every
# story or answer there is. A story's or idea's text is read after (`Themes._with_parts`).
_TEXT_SQL = """
SELECT * FROM (
    SELECT * FROM (
        SELECT 'submission' AS kind_of, s.id, s.member_id, s.kind, s.submitted_at AS at,
               CAST(NULL AS TEXT) AS text
        FROM submissions s
        WHERE s.status = 'submitted' AND {where_s}
        AND EXISTS (SELECT 1 FROM submission_parts WHERE submission_id = s.id
                    AND text IS NOT NULL AND text != ''){newest_s}
    ) AS shared
    UNION ALL
    SELECT * FROM (
        SELECT 'answer', a.id, a.member_id, 'answer', a.answered_at, a.text
        FROM answers a
        WHERE a.text IS NOT NULL AND a.text != '' AND {where_a}{newest_a}
    ) AS answered
) AS items
ORDER BY at DESC, kind_of, id DESC
"""
_UNTAGGED_S = "NOT EXISTS (SELECT 1 FROM item_themes WHERE submission_id = s.id)"
_UNTAGGED_A = "NOT EXISTS (SELECT 1 FROM item_themes WHERE answer_id = a.id)"


def _text_sql(where_s: str, where_a: str, limit: int | None = None) -> str:
    """_TEXT_SQL for these conditions; with a limit, the newest `limit` of each kind."""
    if limit is None:
        return _TEXT_SQL.format(where_s=where_s, where_a=where_a, newest_s="", newest_a="")
    n = int(limit)
    return (
        _TEXT_SQL.format(
            where_s=where_s,
            where_a=where_a,
            # the index submissions_submitted (status, submitted_at, id), walked backwards
            newest_s=f" ORDER BY s.submitted_at DESC, s.id DESC LIMIT {n}",
            newest_a=f" ORDER BY a.id DESC LIMIT {n}",
        )
        + f" LIMIT {n}"
    )


def _free_text(row: Row, text: str) -> FreeText:
    return FreeText(
        item=ItemRef(row["kind_of"], int(row["id"])),
        member_id=int(row["member_id"]),
        kind=str(row["kind"]),
        text=text,
        at=from_db(row["at"]),
    )


class Themes:
    """Themes, and the tags that put items under them."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    # ---- reading

    async def all(self) -> list[Theme]:
        """Every theme with how many items have it, by name."""
        rows = await self._db.fetch_all(
            "SELECT t.id, t.name, (SELECT COUNT(*) FROM item_themes WHERE theme_id = t.id)"
            " AS items FROM themes t ORDER BY t.name, t.id"
        )
        return [Theme(int(r["id"]), str(r["name"]), int(r["items"])) for r in rows]

    async def get(self, theme_id: int) -> Theme | None:
        """One theme, or None."""
        row = await self._db.fetch_one(
            "SELECT t.id, t.name, (SELECT COUNT(*) FROM item_themes WHERE theme_id = t.id)"
            " AS items FROM themes t WHERE t.id = ?",
            (theme_id,),
        )
        return None if row is None else Theme(int(row["id"]), str(row["name"]), int(row["items"]))

    async def by_name(self, name: str) -> Theme | None:
        """The theme of this name (case aside), or None."""
        row = await self._db.fetch_one(
            "SELECT id FROM themes WHERE name = ?", (" ".join(name.split()),)
        )
        return None if row is None else await self.get(int(row["id"]))

    async def themes_of(self, item: ItemRef) -> list[str]:
        """The names of an item's themes, by name."""
        rows = await self._db.fetch_all(
            "SELECT t.name FROM item_themes it JOIN themes t ON t.id = it.theme_id"
            f" WHERE it.{_COLUMN[item.kind]} = ? ORDER BY t.name",
            (item.id,),
        )
        return [str(r["name"]) for r in rows]

    async def untagged(self, limit: int | None = None) -> list[FreeText]:
        """Free text no theme has yet, newest first (`limit` of them, or all)."""
        sql = _text_sql(_UNTAGGED_S, _UNTAGGED_A, limit)
        return await self._with_parts(await self._db.fetch_all(sql))

    async def untagged_count(self, cap: int = 10_000) -> int:
        """How many items with free text have no theme yet, counted up to `cap` (past it,
        `cap`: counting a million answers would take a while, and a page waits for it)."""
        n = int(cap)
        row = await self._db.fetch_one(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM submissions s"
            " WHERE s.status = 'submitted' AND EXISTS (SELECT 1 FROM submission_parts"
            f" WHERE submission_id = s.id AND text IS NOT NULL AND text != '') AND {_UNTAGGED_S}"
            f" LIMIT {n}) AS shared) + (SELECT COUNT(*) FROM (SELECT 1 FROM answers a"
            f" WHERE a.text IS NOT NULL AND a.text != '' AND {_UNTAGGED_A} LIMIT {n}) AS answered)"
        )
        assert row is not None
        return min(int(row[0]), n)

    async def tagged(self, theme_id: int, limit: int | None = None) -> list[FreeText]:
        """The items that have a theme (those with free text), newest first."""
        sql = _text_sql(
            "s.id IN (SELECT submission_id FROM item_themes WHERE theme_id = ?)",
            "a.id IN (SELECT answer_id FROM item_themes WHERE theme_id = ?)",
            limit,
        )
        return await self._with_parts(await self._db.fetch_all(sql, (theme_id, theme_id)))

    async def _with_parts(self, rows: list[Row]) -> list[FreeText]:
        """The items `_TEXT_SQL` found, each with its text: an answer's words; a story's or
        idea's typed parts, in the order its kind asks them, a line each."""
        ids = [int(r["id"]) for r in rows if r["kind_of"] == "submission"]
        parts: dict[int, list[tuple[int, str, str]]] = {}
        if ids:
            for p in await self._db.fetch_all(
                "SELECT p.submission_id, p.part, p.text, s.kind FROM submission_parts p"
                " JOIN submissions s ON s.id = p.submission_id"
                f" WHERE p.submission_id IN {ids_from_json(self._db)}"
                " AND p.text IS NOT NULL AND p.text != ''",
                (json.dumps(ids),),
            ):
                kind, part = find(str(p["kind"])), str(p["part"])
                known = kind.parts if kind is not None else ()
                order = known.index(part) if part in known else len(known)
                parts.setdefault(int(p["submission_id"]), []).append((order, part, p["text"]))
        return [
            _free_text(
                r,
                str(r["text"])
                if r["kind_of"] == "answer"
                else "\n".join(text for _, _, text in sorted(parts.get(int(r["id"]), []))),
            )
            for r in rows
        ]

    # ---- writing

    async def create(self, name: str, by: int) -> Theme:
        """A new theme; ThemeError if the name is empty, too long or taken (case aside)."""
        name = clean_name(name)
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(
                "INSERT INTO themes (name, created_by, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING id",
                (name, by, to_db(self._now())),
            )
            if row is None:
                raise ThemeError(f"There is a theme called {name!r} already.")
            theme_id = int(row["id"])
            await self._audit(conn, by, "theme_created", theme=theme_id, name=name)
        return Theme(theme_id, name, 0)

    async def rename(self, theme_id: int, name: str, by: int) -> Theme:
        """Gives a theme a new name; ThemeError if there is no such theme, or another has
        the name (merge them instead)."""
        name = clean_name(name)
        async with self._db.transaction() as conn:
            old = await conn.fetch_one("SELECT name FROM themes WHERE id = ?", (theme_id,))
            if old is None:
                raise ThemeError("There is no such theme.")
            try:
                await conn.execute("UPDATE themes SET name = ? WHERE id = ?", (name, theme_id))
            except IntegrityErrors:
                raise ThemeError(
                    f"There is a theme called {name!r} already. To put the two together, "
                    "merge them."
                ) from None
            await self._audit(
                conn, by, "theme_renamed", theme=theme_id, old_name=old["name"], name=name
            )
        theme = await self.get(theme_id)
        assert theme is not None
        return theme

    async def merge(self, source_id: int, into_id: int, by: int) -> int:
        """Moves every item of one theme to another (an item already there keeps one tag)
        and deletes the first; returns how many items moved. ThemeError if either theme is
        missing or they are the same."""
        if source_id == into_id:
            raise ThemeError("Choose two different themes to merge.")
        async with self._db.transaction() as conn:
            names = {
                int(r["id"]): str(r["name"])
                for r in await conn.fetch_all(
                    "SELECT id, name FROM themes WHERE id IN (?, ?)", (source_id, into_id)
                )
            }
            if len(names) != 2:
                raise ThemeError("There is no such theme.")
            # An item that has both keeps its tag on `into`; the other goes with the theme.
            moved = len(
                list(
                    await conn.fetch_all(
                        "UPDATE item_themes SET theme_id = ? WHERE theme_id = ?"
                        " AND NOT EXISTS (SELECT 1 FROM item_themes o WHERE o.theme_id = ?"
                        " AND (o.submission_id = item_themes.submission_id"
                        " OR o.answer_id = item_themes.answer_id)) RETURNING id",
                        (into_id, source_id, into_id),
                    )
                )
            )
            await conn.execute("DELETE FROM themes WHERE id = ?", (source_id,))
            await self._audit(
                conn,
                by,
                "themes_merged",
                theme=source_id,
                name=names[source_id],
                into=into_id,
                into_name=names[into_id],
                moved=moved,
            )
        return moved

    async def tag(self, theme_id: int, items: Iterable[ItemRef], by: int) -> int:
        """Gives items a theme (those that exist and do not have it yet); returns how many
        were tagged now."""
        submissions, answers = _split(items)
        now, ids = to_db(self._now()), ids_from_json(self._db)
        found = await self._db.execute_all(
            [
                (
                    "INSERT INTO item_themes (theme_id, submission_id, tagged_by, tagged_at)"
                    " SELECT t.id, s.id, ?, ? FROM themes t, submissions s"
                    f" WHERE t.id = ? AND s.status = 'submitted' AND s.id IN {ids}"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    (by, now, theme_id, submissions),
                ),
                (
                    "INSERT INTO item_themes (theme_id, answer_id, tagged_by, tagged_at)"
                    " SELECT t.id, a.id, ?, ? FROM themes t, answers a"
                    f" WHERE t.id = ? AND a.id IN {ids} ON CONFLICT DO NOTHING RETURNING id",
                    (by, now, theme_id, answers),
                ),
            ]
        )
        return sum(len(rows) for rows in found)

    async def untag(self, theme_id: int, item: ItemRef) -> bool:
        """Takes a theme off an item; whether it had it."""
        changed = await self._db.execute(
            f"DELETE FROM item_themes WHERE theme_id = ? AND {_COLUMN[item.kind]} = ?",
            (theme_id, item.id),
        )
        return changed > 0

    async def _audit(self, conn: Tx, by: int, action: str, **detail: Any) -> None:
        """An audit entry in the same unit of work (as storage/audit.py writes one)."""
        await conn.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (to_db(self._now()), f"telegram:{by}", action, json.dumps(detail, sort_keys=True)),
        )

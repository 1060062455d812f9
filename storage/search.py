"""What the workbench's reader reads: stories and ideas members shared, filtered, searched
and paged, with their parts and files (bot/web/pages/reader.py).

Tables read: submissions, submission_parts, media, projects, safeguarding_flags,
status_changes, themes and item_themes once they exist (storage/themes.py), and
submission_search: an FTS5 table with one row per saved story or idea (its rowid is the
submission's id) holding the text of all its parts, kept in step by triggers (see its
migration). Its tokenizer is unicode61 with remove_diacritics 2: case and accents fold, so
"ŵ" matches "w" and "caffi" matches "Caffi", in English and Welsh alike. There is no
stemmer: porter is English only (it would cut Welsh words wrongly), so a search finds the
words as written; "park*" finds words that start with "park". Welsh mutations are not
undone either: "coed" does not find "goed". PostgreSQL has a table of the same name and
rows, searched through a tsvector that folds and matches the same way, given the same query
string (`match_query`; storage/migrations_pg.py).

Everything here is read on the workbench's own read-only connection (storage/workbench.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from storage.db import Database, Row
from storage.dialect import POSTGRESQL, ids_from_json, json_list
from storage.kinds import IDEA, find
from storage.times import from_db, to_db

# A search box's words: letters and digits (any script), each perhaps ending in "*".
_WORD = re.compile(r"[\w]+\*?", re.UNICODE)
MAX_WORDS = 12
FEW = 2000  # a filter that keeps at most this many leads the reader's query


def match_query(words: str) -> str | None:
    """An FTS5 query for what someone typed: every word must be there (in any order); a word
    ending in "*" matches words that start with it. Quotes and operators are not passed on,
    so nothing typed can break the query. None when there is no word to look for."""
    terms = []
    for found in _WORD.findall(words)[:MAX_WORDS]:
        word, star = found.rstrip("*"), found.endswith("*")
        if word:
            terms.append(f'"{word}"' + ("*" if star else ""))
    return " ".join(terms) or None


@dataclass(frozen=True)
class Filters:
    """What the reader is asked to show. Dates are whole days in `tz`, both ends included."""

    project_id: int | None = None
    kind: str | None = None
    since: date | None = None
    until: date | None = None
    flagged: bool = False
    status: str | None = None  # an idea's latest status; 'new' when it has none
    theme_id: int | None = None  # tagged with this theme (only once themes exist)
    words: str = ""
    tz: tzinfo = UTC


@dataclass(frozen=True)
class File:
    """A file a member sent with a part (voice note, photo …), served by id."""

    id: int
    kind: str
    mime_type: str | None
    duration: int | None


@dataclass(frozen=True)
class PartText:
    name: str
    text: str | None
    files: tuple[File, ...] = ()


@dataclass(frozen=True)
class Item:
    """One story or idea as the reader shows it (the member only by id: the page names them
    by pseudonym)."""

    id: int
    member_id: int
    kind: str
    project: str | None
    submitted_at: datetime
    language: str
    status: str | None  # an idea's status ('new' when none was set); None for a story
    flagged: bool
    parts: tuple[PartText, ...] = field(default=())


@dataclass(frozen=True)
class StoredFile:
    """Where a file is kept in MEDIA_DIR, and what it is."""

    file_name: str
    kind: str
    mime_type: str | None


def file_of(row: Row) -> File:
    """A media row (id, kind, mime_type, duration) as a File."""
    return File(int(row["id"]), str(row["kind"]), row["mime_type"], row["duration"])


def _matching(db: Database) -> str:
    """A query of the ids of the submissions whose text matches `match_query`'s string (one
    parameter): FTS5's MATCH, or PostgreSQL's tsvector and cocreate_match (its counterpart
    of FTS5's query syntax; storage/migrations_pg.py)."""
    if db.dialect == POSTGRESQL:
        return "SELECT rowid FROM submission_search WHERE document @@ cocreate_match(?)"
    return "SELECT rowid FROM submission_search WHERE submission_search MATCH ?"


def _start_of(day: date, tz: tzinfo) -> str:
    return to_db(datetime.combine(day, time(), tzinfo=tz))


class Library:
    """Stories and ideas for the reader, on a read-only connection."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def items(self, filters: Filters, offset: int = 0, limit: int = 20) -> list[Item]:
        """A page of submitted stories and ideas, newest first, with their parts and files."""
        where = ["s.status = 'submitted'"]
        params: list[object] = []
        latest = (
            "(SELECT c.status FROM status_changes c WHERE c.submission_id = s.id"
            " ORDER BY c.id DESC LIMIT 1)"
        )
        if filters.project_id is not None:
            where.append("s.project_id = ?")
            params.append(filters.project_id)
        if filters.kind is not None:
            where.append("s.kind = ?")
            params.append(filters.kind)
        if filters.since is not None:
            where.append("s.submitted_at >= ?")
            params.append(_start_of(filters.since, filters.tz))
        if filters.until is not None:
            where.append("s.submitted_at < ?")
            params.append(_start_of(filters.until + timedelta(days=1), filters.tz))
        if filters.flagged:
            where.append("EXISTS (SELECT 1 FROM safeguarding_flags f WHERE f.submission_id = s.id)")
        if filters.status is not None:  # only ideas have a status
            where.append("s.kind = ?")
            params.append(IDEA.key)
            where.append(f"COALESCE({latest}, 'new') = ?")
            params.append(filters.status)
        if filters.theme_id is not None:
            where.append(
                "EXISTS (SELECT 1 FROM item_themes it"
                " WHERE it.submission_id = s.id AND it.theme_id = ?)"
            )
            params.append(filters.theme_id)
        query = match_query(filters.words)
        if query is not None:
            where.append(f"s.id IN ({_matching(self._db)})")
            params.append(query)
        # Newest first reads submissions_submitted backwards and stops at the page's end: quick
        # when many match. When a filter keeps few (a rare word, a status, flags), reading
        # those few and sorting them is quicker: they lead the join (CROSS JOIN keeps them
        # first). The conditions above are kept either way, so the answer is the same.
        few = await self._few(filters, query)
        lead = ""
        if few is not None:
            lead = f"{json_list(self._db, 'j')} CROSS JOIN "
            where.append("s.id = CAST(j.value AS BIGINT)")
            params.insert(0, json.dumps(sorted(few)))
        rows = await self._db.fetch_all(
            "SELECT s.id, s.member_id, s.kind, s.submitted_at, s.language, p.name AS project,"
            f" {latest} AS status,"
            " EXISTS (SELECT 1 FROM safeguarding_flags f WHERE f.submission_id = s.id) AS flagged"
            f" FROM {lead}submissions s LEFT JOIN projects p ON p.id = s.project_id"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY s.submitted_at DESC, s.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        parts = await self._parts([int(r["id"]) for r in rows])
        return [
            Item(
                id=int(r["id"]),
                member_id=int(r["member_id"]),
                kind=str(r["kind"]),
                project=r["project"],
                submitted_at=from_db(str(r["submitted_at"])),
                language=str(r["language"]),
                status=(r["status"] or "new") if r["kind"] == IDEA.key else None,
                flagged=bool(r["flagged"]),
                parts=parts.get(int(r["id"]), ()),
            )
            for r in rows
        ]

    async def _few(self, filters: Filters, query: str | None) -> set[int] | None:
        """The only submissions that can match, when a filter keeps at most FEW; else None."""
        sources: list[tuple[str, tuple[object, ...]]] = []
        if filters.flagged:
            sources.append(
                (
                    "SELECT DISTINCT submission_id FROM safeguarding_flags"
                    " WHERE submission_id IS NOT NULL",
                    (),
                )
            )
        if filters.status is not None and filters.status != "new":
            sources.append(
                (
                    "SELECT c.submission_id FROM status_changes c WHERE c.submission_id IS NOT NULL"
                    " AND c.status = ? AND c.id = (SELECT MAX(d.id) FROM status_changes d"
                    " WHERE d.submission_id = c.submission_id)",
                    (filters.status,),
                )
            )
        if filters.theme_id is not None:
            sources.append(
                (
                    "SELECT submission_id FROM item_themes WHERE theme_id = ?"
                    " AND submission_id IS NOT NULL",
                    (filters.theme_id,),
                )
            )
        if query is not None:
            sources.append((_matching(self._db), (query,)))
        few: set[int] | None = None
        for sql, params in sources:
            rows = await self._db.fetch_all(f"{sql} LIMIT {FEW + 1}", params)
            if len(rows) <= FEW:
                found = {int(r[0]) for r in rows}
                few = found if few is None else few & found
        return few

    async def _parts(self, ids: list[int]) -> dict[int, tuple[PartText, ...]]:
        if not ids:
            return {}
        wanted = json.dumps(ids)
        part_rows = await self._db.fetch_all(
            "SELECT p.submission_id, p.part, p.text, s.kind FROM submission_parts p"
            " JOIN submissions s ON s.id = p.submission_id"
            f" WHERE p.submission_id IN {ids_from_json(self._db)} AND p.skipped = 0",
            (wanted,),
        )
        file_rows = await self._db.fetch_all(
            "SELECT id, submission_id, part, kind, mime_type, duration FROM media"
            f" WHERE submission_id IN {ids_from_json(self._db)} ORDER BY id",
            (wanted,),
        )
        files: dict[tuple[int, str], list[File]] = {}
        for f in file_rows:
            files.setdefault((int(f["submission_id"]), str(f["part"])), []).append(file_of(f))
        found: dict[int, list[tuple[int, PartText]]] = {}
        for p in part_rows:
            key = (int(p["submission_id"]), str(p["part"]))
            kind = find(str(p["kind"]))
            order = kind.parts.index(key[1]) if kind and key[1] in kind.parts else 99
            part = PartText(name=key[1], text=p["text"], files=tuple(files.get(key, ())))
            found.setdefault(key[0], []).append((order, part))
        return {
            item: tuple(part for _, part in sorted(parts, key=lambda x: (x[0], x[1].name)))
            for item, parts in found.items()
        }

    async def projects(self) -> list[tuple[int, str]]:
        """Every project, by name: the project filter's choices."""
        rows = await self._db.fetch_all("SELECT id, name FROM projects ORDER BY name, id")
        return [(int(r["id"]), str(r["name"])) for r in rows]

    async def themes(self) -> list[tuple[int, str]] | None:
        """Every theme, by name: the theme filter's choices; None before themes exist (they
        come with storage/themes.py's tables, themes and item_themes)."""
        if not {"themes", "item_themes"} <= set(await self._db.table_names()):
            return None
        rows = await self._db.fetch_all("SELECT id, name FROM themes ORDER BY name, id")
        return [(int(r["id"]), str(r["name"])) for r in rows]

    async def stored_file(self, media_id: int) -> StoredFile | None:
        """Where a file is kept, if it still is."""
        row = await self._db.fetch_one(
            "SELECT file_name, kind, mime_type FROM media WHERE id = ?", (media_id,)
        )
        if row is None:
            return None
        return StoredFile(str(row["file_name"]), str(row["kind"]), row["mime_type"])


async def forget_deleted(db: Database) -> None:
    """Rewrites the search index without what was deleted from it. FTS5 only marks a deleted
    row as gone, and keeps its words in the index's old segments until they merge; after an
    erasure or retention (before the checkpoint that clears the WAL) they must go for good.
    'optimize' merges every segment into one (secure_delete zeroes the pages freed).
    PostgreSQL's index has no such segments: a deleted row's words go with the row."""
    if db.dialect == POSTGRESQL:
        return
    await db.execute("INSERT INTO submission_search (submission_search) VALUES ('optimize')")

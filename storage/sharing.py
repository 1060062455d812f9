"""What members share: stories ("experiences"), ideas … (storage/kinds.py), saved part by part.

Tables: submissions, submission_parts, media, safeguarding_flags; pseudonyms, app_secrets.
Where the member is in a draft lives in their session (storage/sessions.py), so a half-told
story survives a restart; the old `step` column is no longer written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, Row, Tx, new_id
from storage.dialect import ids_from_json, json_list
from storage.kinds import check_kind
from storage.times import from_db, to_db

Now = Callable[[], datetime]


@dataclass(frozen=True)
class Submission:
    id: int
    member_id: int
    kind: str  # a key in storage/kinds.py ('experience', 'idea' …)
    project_id: int | None
    status: str  # 'draft' | 'submitted' | 'cancelled'
    language: str
    volunteer: str | None
    step: str | None  # where the member is: filled in from their session by the flow
    reviewed: bool
    created_at: datetime
    submitted_at: datetime | None


@dataclass(frozen=True)
class Media:
    id: int
    kind: str
    file_name: str
    telegram_file_id: str
    mime_type: str | None
    size: int | None
    duration: int | None


@dataclass(frozen=True)
class Part:
    name: str
    text: str | None
    skipped: bool
    media: tuple[Media, ...]


@dataclass(frozen=True)
class NewMedia:
    """A file already written to MEDIA_DIR, to be recorded."""

    kind: str
    file_name: str
    telegram_file_id: str
    mime_type: str | None
    size: int | None
    duration: int | None


@dataclass(frozen=True)
class Flag:
    """What a safeguarding flag points at: a part of a story or idea, or an answer."""

    member_id: int
    submission: Submission | None
    part: str | None
    answer_text: str | None
    question_text: str | None
    words: str | None = None  # what the member wrote, as flagged


async def insert_media(
    conn: Tx,
    member_id: int,
    media: NewMedia,
    now: str,
    *,
    submission_id: int | None = None,
    part: str | None = None,
    answer_id: int | None = None,
) -> None:
    """Records a file already in MEDIA_DIR, for a part of a story or idea or for an answer."""
    await conn.execute(
        "INSERT INTO media (member_id, submission_id, part, answer_id, kind, file_name,"
        " telegram_file_id, mime_type, size, duration, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            member_id,
            submission_id,
            part,
            answer_id,
            media.kind,
            media.file_name,
            media.telegram_file_id,
            media.mime_type,
            media.size,
            media.duration,
            now,
        ),
    )


def _submission(row: Row) -> Submission:
    return Submission(
        id=row["id"],
        member_id=row["member_id"],
        kind=row["kind"],
        project_id=row["project_id"],
        status=row["status"],
        language=row["language"],
        volunteer=row["volunteer"],
        step=row["step"],
        reviewed=bool(row["reviewed"]),
        created_at=from_db(row["created_at"]),
        submitted_at=from_db(row["submitted_at"]),
    )


def _media(row: Row) -> Media:
    return Media(
        id=row["id"],
        kind=row["kind"],
        file_name=row["file_name"],
        telegram_file_id=row["telegram_file_id"],
        mime_type=row["mime_type"],
        size=row["size"],
        duration=row["duration"],
    )


class Sharing:
    """Stories and ideas, their parts and media."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def get(self, submission_id: int) -> Submission | None:
        """A submission by id."""
        row = await self._db.fetch_one("SELECT * FROM submissions WHERE id = ?", (submission_id,))
        return _submission(row) if row else None

    async def latest_draft(self, member_id: int, kind: str) -> Submission | None:
        """The newest draft of this kind the member has not saved yet, if any."""
        row = await self._db.fetch_one(
            "SELECT * FROM submissions WHERE member_id = ? AND kind = ? AND status = 'draft'"
            " ORDER BY id DESC LIMIT 1",
            (member_id, kind),
        )
        return _submission(row) if row else None

    async def start(
        self, *, member_id: int, kind: str, project_id: int | None, language: str
    ) -> Submission:
        """Opens a new draft (where the member is in it lives in their session). `kind` must be
        in storage/kinds.py (the check the table's CHECK constraint used to make)."""
        check_kind(kind)
        async with self._db.transaction() as conn:
            draft_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO submissions (member_id, kind, project_id, language, created_at)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (member_id, kind, project_id, language, to_db(self._now())),
                )
            )
        draft = await self.get(draft_id)
        assert draft is not None
        return draft

    async def set_reviewed(self, submission_id: int) -> None:
        """Notes that the member has seen the whole draft (changes then return to the review)."""
        await self._db.execute(
            "UPDATE submissions SET reviewed = 1 WHERE id = ? AND reviewed = 0", (submission_id,)
        )

    async def answer(
        self,
        submission_id: int,
        member_id: int,
        part: str,
        text: str | None,
        media: NewMedia | None = None,
    ) -> list[str]:
        """Saves one part (text and/or a file), in one unit of work.

        Returns the file names of media this answer replaced, for the caller to delete.
        """
        now = to_db(self._now())
        forget = (
            "DELETE FROM media WHERE submission_id = ? AND part = ? RETURNING file_name",
            (submission_id, part),
        )
        keep = (
            "INSERT INTO submission_parts (submission_id, part, text, skipped, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (submission_id, part) DO UPDATE"
            " SET text = excluded.text, skipped = excluded.skipped,"
            " updated_at = excluded.updated_at",
            (submission_id, part, text, int(text is None and media is None), now),
        )
        if media is None:  # the usual case: words, saved in one trip
            gone, _ = await self._db.execute_all([forget, keep])
        else:
            async with self._db.transaction() as conn:
                gone = list(await conn.fetch_all(*forget))
                await conn.fetch_all(*keep)
                await insert_media(
                    conn, member_id, media, now, submission_id=submission_id, part=part
                )
        replaced = [str(r["file_name"]) for r in gone]
        return replaced

    async def set_volunteer(self, submission_id: int, answer: str) -> None:
        """Records whether the member would help make an idea happen."""
        await self._db.execute(
            "UPDATE submissions SET volunteer = ? WHERE id = ?", (answer, submission_id)
        )

    async def parts(self, submission_id: int) -> dict[str, Part]:
        """The parts given so far, with their media."""
        rows = await self._db.fetch_all(
            "SELECT * FROM submission_parts WHERE submission_id = ?", (submission_id,)
        )
        media_rows = await self._db.fetch_all(
            "SELECT * FROM media WHERE submission_id = ? ORDER BY id", (submission_id,)
        )
        by_part: dict[str, list[Media]] = {}
        for m in media_rows:
            by_part.setdefault(str(m["part"]), []).append(_media(m))
        return {
            str(r["part"]): Part(
                name=str(r["part"]),
                text=r["text"],
                skipped=bool(r["skipped"]),
                media=tuple(by_part.get(str(r["part"]), ())),
            )
            for r in rows
        }

    async def submit(self, submission_id: int) -> None:
        """Turns a draft into a submission."""
        await self._db.execute(
            "UPDATE submissions SET status = 'submitted', step = NULL, submitted_at = ?"
            " WHERE id = ? AND status = 'draft'",
            (to_db(self._now()), submission_id),
        )

    async def discard(self, submission_id: int) -> list[str]:
        """Throws a draft away, parts and media; returns the file names to delete."""
        async with self._db.transaction() as conn:
            files = [
                str(r["file_name"])
                for r in await conn.fetch_all(
                    "SELECT file_name FROM media WHERE submission_id = ?", (submission_id,)
                )
            ]
            await conn.execute("DELETE FROM submissions WHERE id = ?", (submission_id,))
        return files

    async def of_member(self, member_id: int) -> list[Submission]:
        """Everything a member shared or started, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM submissions WHERE member_id = ? ORDER BY id", (member_id,)
        )
        return [_submission(r) for r in rows]

    async def media_files_of(self, member_id: int) -> list[str]:
        """Names of every file kept for a member."""
        rows = await self._db.fetch_all(
            "SELECT file_name FROM media WHERE member_id = ?", (member_id,)
        )
        return [str(r["file_name"]) for r in rows]

    async def all_media_files(self) -> set[str]:
        """Names of every file the database knows."""
        return {
            str(r["file_name"]) for r in await self._db.fetch_all("SELECT file_name FROM media")
        }

    async def flag(
        self,
        member_id: int,
        submission_id: int | None,
        part: str | None,
        answer_id: int | None = None,
        *,
        words: str | None = None,
        place: str | None = None,
    ) -> int:
        """Records that something a member sent needs a person to follow up.

        `words` keeps what they wrote (it may have been said where nothing else is stored,
        e.g. at the menu); `place` says where (a flow and its step, or "menu").
        """
        async with self._db.transaction() as conn:
            return new_id(
                await conn.fetch_one(
                    "INSERT INTO safeguarding_flags (member_id, submission_id, part, answer_id,"
                    " words, place, flagged_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (member_id, submission_id, part, answer_id, words, place, to_db(self._now())),
                )
            )

    async def link_flag(self, flag_id: int, *, answer_id: int) -> None:
        """Ties a flag to the answer its words were stored as."""
        await self._db.execute(
            "UPDATE safeguarding_flags SET answer_id = ? WHERE id = ?", (answer_id, flag_id)
        )

    async def flag_detail(self, flag_id: int) -> Flag | None:
        """What a flag points at, if it still exists."""
        row = await self._db.fetch_one(
            "SELECT f.member_id, f.submission_id, f.part, f.words, a.text AS answer_text,"
            " q.text AS question_text FROM safeguarding_flags f"
            " LEFT JOIN answers a ON a.id = f.answer_id"
            " LEFT JOIN question_rounds r ON r.id = a.round_id"
            " LEFT JOIN questions q ON q.id = r.question_id WHERE f.id = ?",
            (flag_id,),
        )
        if row is None:
            return None
        submission = await self.get(row["submission_id"]) if row["submission_id"] else None
        return Flag(
            member_id=int(row["member_id"]),
            submission=submission,
            part=row["part"],
            answer_text=row["answer_text"],
            question_text=row["question_text"],
            words=row["words"],
        )

    async def flags_of(self, submission_id: int) -> int:
        """How many safeguarding flags a submission has."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM safeguarding_flags WHERE submission_id = ?",
            (submission_id,),
        )
        return int(row["n"]) if row else 0


# Pseudonyms are read aloud and copied by hand: no 0/O, no 1/I/L, and no U (heard as "you").
PSEUDONYM_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
PSEUDONYM_LENGTH = 7  # 30**7, about 2.2e10 names: a collision to retry is rare, never kept
PSEUDONYM_TRIES = 50
LEGACY = "legacy:"  # a placeholder row: a member from before names were stored (migration 6)


def derive_pseudonym(key: bytes, member_id: int, attempt: int = 0) -> str:
    """The name a member is offered on a given attempt (the next one only after a collision)."""
    message = str(member_id) if attempt == 0 else f"{member_id}/{attempt}"
    n = int.from_bytes(hmac.new(key, message.encode(), hashlib.sha256).digest()[:8], "big")
    chars = []
    for _ in range(PSEUDONYM_LENGTH):
        n, i = divmod(n, len(PSEUDONYM_ALPHABET))
        chars.append(PSEUDONYM_ALPHABET[i])
    return "P-" + "".join(chars)


def legacy_pseudonym(key: bytes, member_id: int) -> str:
    """The name shown before names were stored (25 bits: collisions happen), kept for the
    members who were shown it."""
    digest = hmac.new(key, str(member_id).encode(), hashlib.sha256).digest()
    return "P-" + base64.b32encode(digest).decode()[:5]


class Pseudonyms:
    """Short, non-reversible names for members (P-7K3Q9XM), one each, never shared.

    Table: pseudonyms. A name is derived from the member's id with a secret key (app_secrets),
    stored the first time it is asked for, and derived again with the next attempt number
    only if another member holds it. An erased member's name stays reserved, unlinked.
    Members who joined before names were stored keep their old five-character name.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._key: bytes | None = None

    async def _secret(self) -> bytes:
        if self._key is None:
            await self._db.execute(
                "INSERT INTO app_secrets (name, value) VALUES ('pseudonym_key', ?)"
                " ON CONFLICT DO NOTHING",
                (secrets.token_hex(32),),
            )
            row = await self._db.fetch_one(
                "SELECT value FROM app_secrets WHERE name = 'pseudonym_key'"
            )
            assert row is not None
            self._key = bytes.fromhex(row["value"])
        return self._key

    async def of(self, member_id: int) -> str:
        """The member's pseudonym."""
        return (await self.of_many([member_id]))[member_id]

    async def of_many(self, member_ids: Iterable[int]) -> dict[int, str]:
        """Several members' pseudonyms in one query (and one unit of work for new ones)."""
        key = await self._secret()
        wanted = sorted(set(member_ids))
        ids = json.dumps(wanted)
        rows = await self._db.fetch_all(
            f"SELECT member_id, name FROM pseudonyms WHERE member_id IN {ids_from_json(self._db)}",
            (ids,),
        )
        names = {
            int(r["member_id"]): str(r["name"]) for r in rows if not r["name"].startswith(LEGACY)
        }
        if len(names) < len(wanted):
            names = await self._assign(key, ids)
        return names

    async def _assign(self, key: bytes, ids: str) -> dict[int, str]:
        async with self._db.transaction() as conn:
            found = await conn.fetch_all(
                "SELECT i.id, p.name, EXISTS (SELECT 1 FROM members WHERE id = i.id) AS known"
                f" FROM (SELECT CAST(j.value AS BIGINT) AS id FROM {json_list(self._db, 'j')}) AS i"
                " LEFT JOIN pseudonyms p ON p.member_id = i.id",
                (ids,),
            )
            names: dict[int, str] = {}
            for row in found:
                member_id, stored = int(row["id"]), row["name"]
                if stored is not None and not stored.startswith(LEGACY):
                    names[member_id] = str(stored)
                elif not row["known"]:
                    # Not (or no longer) a member, e.g. erased while an export read an older
                    # snapshot: nothing to store a name against.
                    names[member_id] = derive_pseudonym(key, member_id)
                else:
                    if stored is not None:  # the placeholder makes way for the name itself
                        await conn.execute("DELETE FROM pseudonyms WHERE name = ?", (stored,))
                    legacy = stored is not None
                    names[member_id] = await self._claim(conn, key, member_id, legacy=legacy)
        return names

    async def _claim(self, conn: Tx, key: bytes, member_id: int, *, legacy: bool) -> str:
        """Stores the first name on offer that nobody holds (a member from before names were
        stored is offered the name they were shown first)."""
        for attempt in range(PSEUDONYM_TRIES):
            if attempt == 0 and legacy:
                name = legacy_pseudonym(key, member_id)
            else:
                name = derive_pseudonym(key, member_id, attempt)
            if await conn.execute(
                "INSERT INTO pseudonyms (name, member_id) VALUES (?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (name, member_id),
            ):
                return name
        raise RuntimeError(f"no free pseudonym for member {member_id}")

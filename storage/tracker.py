"""What happened to ideas and question rounds: their status, with a public reason, and who is
told when it changes.

Table: status_changes (issue 12's migration): one row per change, oldest first; the latest
row is the status, and no row means 'new'. Reads submissions and submission_parts (a member's
idea), statements and votes (a shared idea's approved text, and who agreed with it),
question_rounds, questions and answers (a round and who answered it), members (where and in
which language to tell them) and outbox (who was sent a round).

What a status is about (`Item`):
- an idea: a submitted submission of kind 'idea' (whether or not its author shared it), or a
  facilitator's own statement (statements.submission_id IS NULL);
- a question round that was sent.

Who is told of a change (`recipients`), each once:
- an idea: its author, and every member whose vote on its approved statement is 'agree';
- a facilitator's statement: every member who agreed with it (it has no author to tell);
- a question round: every member who answered it (those who did not answer said nothing we
  could act on, and were sent the question only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast, get_args

from storage.db import Database, Row, Tx, new_id
from storage.outbox import Outgoing, insert_batch
from storage.times import from_db, to_db

Now = Callable[[], datetime]
Status = Literal["new", "looking", "going_ahead", "done", "not_possible"]
STATUSES: tuple[Status, ...] = get_args(Status)
# What a facilitator can set ('new' is only where everything starts).
SETTABLE: tuple[Status, ...] = ("looking", "going_ahead", "done", "not_possible")
NEEDS_REASON: frozenset[Status] = frozenset({"not_possible"})
MAX_REASON = 300  # a short reason: "You said … We did …" stays one message
ItemKind = Literal["idea", "statement", "round"]
# Why someone is told of a change: it is their idea, they agreed with it, they answered it.
Told = Literal["author", "supporter", "answered"]
# Each kind's column in status_changes, and the one letter that starts its key ("i12").
_COLUMN: dict[ItemKind, str] = {
    "idea": "submission_id",
    "statement": "statement_id",
    "round": "round_id",
}
_LETTER: dict[ItemKind, str] = {"idea": "i", "statement": "s", "round": "r"}
# The delivery batches that tell members of a change (delivery_batches.kind).
BATCH_KIND = "status"


class ReasonNeeded(ValueError):
    """A status that must say why (not possible now) was given no reason."""


@dataclass(frozen=True)
class Item:
    """What a status is about: a member's idea (its submission), a facilitator's statement,
    or a question round."""

    kind: ItemKind
    id: int

    @property
    def key(self) -> str:
        """A short name for buttons: i<submission>, s<statement>, r<round>."""
        return f"{_LETTER[self.kind]}{self.id}"

    @classmethod
    def parse(cls, key: str) -> Item | None:
        """The item a key names, or None."""
        for kind, letter in _LETTER.items():
            rest = key[1:]
            if key[:1] == letter and rest.isascii() and rest.isdigit():
                return cls(kind, int(rest))
        return None


@dataclass(frozen=True)
class Tracked:
    """One idea or round in the list staff choose from."""

    item: Item
    text: str | None  # the idea's words (None: a voice note), the statement, the question
    at: datetime  # when it was shared, made or sent
    status: Status


@dataclass(frozen=True)
class Change:
    id: int
    item: Item
    status: Status
    reason: str | None
    changed_by: int
    changed_at: datetime


@dataclass(frozen=True)
class Recipient:
    """A member told of a change, and what they said about the item."""

    member_id: int
    chat_id: int
    language: str
    role: Told
    text: str | None  # their idea, the approved statement they agreed with, or their answer
    choice: str | None = None  # their answer's choice (a question round)
    words_of: int | None = None  # the author whose (approved) words `text` carries


@dataclass(frozen=True)
class Changed:
    """A status change made: the change, its delivery batch (None: nobody to tell) and how
    many messages were queued."""

    change: Change
    batch_id: int | None
    told: int


@dataclass(frozen=True)
class News:
    """One change a member can see in /updates, and what it was about."""

    change: Change
    about: ItemKind
    own: bool  # the member's own idea
    text: str | None  # what it is about, as they may see it


# Every idea and round that has a status, newest first (see the module docstring).
_ITEMS = """
    SELECT 'idea' AS kind, s.id, s.submitted_at AS at,
           (SELECT p.text FROM submission_parts p
            WHERE p.submission_id = s.id AND p.part = 'idea') AS text,
           (SELECT c.status FROM status_changes c WHERE c.submission_id = s.id
            ORDER BY c.id DESC LIMIT 1) AS status
      FROM submissions s WHERE s.kind = 'idea' AND s.status = 'submitted'
    UNION ALL
    SELECT 'statement', st.id, st.created_at, st.text,
           (SELECT c.status FROM status_changes c WHERE c.statement_id = st.id
            ORDER BY c.id DESC LIMIT 1)
      FROM statements st WHERE st.submission_id IS NULL AND st.state != 'declined'
    UNION ALL
    SELECT 'round', r.id, r.sent_at, q.text,
           (SELECT c.status FROM status_changes c WHERE c.round_id = r.id
            ORDER BY c.id DESC LIMIT 1)
      FROM question_rounds r JOIN questions q ON q.id = r.question_id WHERE r.status = 'sent'
"""


def _item_of(r: Row) -> Item:
    for kind, column in _COLUMN.items():
        if r[column] is not None:
            return Item(kind, int(r[column]))
    raise ValueError(f"status change {r['id']} is about nothing")


def _change(r: Row) -> Change:
    return Change(
        id=r["id"],
        item=_item_of(r),
        status=cast(Status, r["status"]),
        reason=r["reason"],
        changed_by=r["changed_by"],
        changed_at=from_db(r["changed_at"]),
    )


def _tracked(r: Row) -> Tracked:
    return Tracked(
        item=Item(cast(ItemKind, r["kind"]), int(r["id"])),
        text=r["text"],
        at=from_db(r["at"]),
        status=cast(Status, r["status"] or "new"),
    )


Fetch = Callable[[str, Sequence[object]], Awaitable[list[Row]]]


def _reader(conn: Tx) -> Fetch:
    """Reads inside a transaction the caller holds."""

    async def fetch(sql: str, params: Sequence[object]) -> list[Row]:
        return list(await conn.fetch_all(sql, tuple(params)))

    return fetch


async def _latest(fetch: Fetch, item: Item) -> Change | None:
    rows = await fetch(
        f"SELECT * FROM status_changes WHERE {_COLUMN[item.kind]} = ? ORDER BY id DESC LIMIT 1",
        (item.id,),
    )
    return _change(rows[0]) if rows else None


async def _recipients(fetch: Fetch, item: Item) -> list[Recipient]:
    """Who is told of a change to `item`, each member once (an author who also agreed is
    told as its author), in member order after the author."""
    found: list[Recipient] = []
    if item.kind == "round":
        for r in await fetch(
            "SELECT m.id, m.chat_id, m.language, a.text, a.choice FROM answers a"
            " JOIN members m ON m.id = a.member_id WHERE a.round_id = ? ORDER BY m.id",
            (item.id,),
        ):
            found.append(
                Recipient(r["id"], r["chat_id"], r["language"], "answered", r["text"], r["choice"])
            )
        return found
    author: int | None = None
    if item.kind == "idea":
        # The author's own words; a voice idea's are its approved summary, if there is one.
        for r in await fetch(
            "SELECT m.id, m.chat_id, m.language, COALESCE("
            " (SELECT p.text FROM submission_parts p"
            "  WHERE p.submission_id = s.id AND p.part = 'idea'),"
            " (SELECT st.text FROM statements st"
            "  WHERE st.submission_id = s.id AND st.state = 'approved')) AS text"
            " FROM submissions s JOIN members m ON m.id = s.member_id"
            " WHERE s.id = ? AND s.kind = 'idea' AND s.status = 'submitted'",
            (item.id,),
        ):
            author = int(r["id"])
            found.append(Recipient(author, r["chat_id"], r["language"], "author", r["text"]))
        statement = "st.submission_id = ?"
    else:
        statement = "st.id = ? AND st.submission_id IS NULL"
    # Only an approved statement was shown to members: they agreed with its words, which
    # are the ones they are shown again (never words a facilitator did not approve).
    for r in await fetch(
        "SELECT m.id, m.chat_id, m.language, st.text, s.member_id AS words_of"
        " FROM statements st JOIN votes v ON v.statement_id = st.id AND v.choice = 'agree'"
        " JOIN members m ON m.id = v.member_id"
        " LEFT JOIN submissions s ON s.id = st.submission_id"
        f" WHERE {statement} AND st.state = 'approved' ORDER BY m.id",
        (item.id,),
    ):
        if r["id"] != author:
            found.append(
                Recipient(
                    r["id"],
                    r["chat_id"],
                    r["language"],
                    "supporter",
                    r["text"],
                    words_of=r["words_of"],
                )
            )
    return found


class Tracker:
    """Statuses of ideas and question rounds: setting them (and telling members), reading
    them, and each member's news."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def items(self, offset: int = 0, limit: int = 8) -> list[Tracked]:
        """Ideas and sent question rounds, newest first, a page at a time."""
        rows = await self._db.fetch_all(
            f"SELECT * FROM ({_ITEMS}) AS items ORDER BY at DESC, kind, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_tracked(r) for r in rows]

    async def get(self, item: Item) -> Tracked | None:
        """One idea or round, if it can have a status."""
        rows = await self._db.fetch_all(
            f"SELECT * FROM ({_ITEMS}) AS items WHERE kind = ? AND id = ?", (item.kind, item.id)
        )
        return _tracked(rows[0]) if rows else None

    async def status(self, item: Item) -> Status:
        """Its status now: the latest change's, or 'new'."""
        found = await self.history(item)
        return found[-1].status if found else "new"

    async def history(self, item: Item) -> list[Change]:
        """Every change of its status, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT * FROM status_changes WHERE {_COLUMN[item.kind]} = ? ORDER BY id",
            (item.id,),
        )
        return [_change(r) for r in rows]

    async def recipients(self, item: Item) -> list[Recipient]:
        """Who would be told of a change to it now, each once."""
        return await _recipients(self._db.fetch_all, item)

    async def reachable(self, item: Item) -> int:
        """How many of those told can get a message now (not stopped, not unreachable)."""
        ids = [r.member_id for r in await self.recipients(item)]
        if not ids:
            return 0
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM members WHERE stopped_at IS NULL"
            f" AND unreachable_at IS NULL AND id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return int(row["n"]) if row else 0

    async def change(
        self,
        item: Item,
        status: Status,
        reason: str | None,
        *,
        changed_by: int,
        tell: Callable[[Sequence[Recipient]], Sequence[Outgoing]],
        author_chat_id: int | None = None,
        author_language: str = "en",
    ) -> Changed | None:
        """Sets a status with its public reason and queues what `tell` writes to each
        recipient, as one delivery batch, in one transaction with the change. None if it
        changes nothing: the status and reason are already the latest (pressed or replayed
        twice). Raises ReasonNeeded for 'not_possible' without a reason, ValueError for a
        status that cannot be set or an item that cannot have one."""
        if status not in SETTABLE:
            raise ValueError(f"cannot set the status {status!r}")
        reason = (reason or "").strip() or None
        if reason is None and status in NEEDS_REASON:
            raise ReasonNeeded(status)
        if reason is not None and len(reason) > MAX_REASON:
            raise ValueError("the reason is too long")
        if await self.get(item) is None:
            raise ValueError(f"{item.kind} {item.id} cannot have a status")
        now = to_db(self._now())
        async with self._db.transaction() as conn:
            fetch = _reader(conn)
            latest = await _latest(fetch, item)
            if latest is not None and (latest.status, latest.reason) == (status, reason):
                return None
            change_id = new_id(
                await conn.fetch_one(
                    f"INSERT INTO status_changes ({_COLUMN[item.kind]}, status, reason, changed_by,"
                    " changed_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (item.id, status, reason, changed_by, now),
                )
            )
            messages = tell(await _recipients(fetch, item))
            batch_id = None
            if messages:
                batch_id = await insert_batch(
                    conn,
                    BATCH_KIND,
                    change_id,
                    messages,
                    now,
                    now,
                    author_chat_id,
                    author_language,
                )
        change = Change(change_id, item, status, reason, changed_by, from_db(now))
        return Changed(change, batch_id, len(messages))

    async def news_for(self, member_id: int, offset: int = 0, limit: int = 5) -> list[News]:
        """Changes a member may see, newest first, a page at a time: to their own ideas, to
        approved statements for everyone or for a project they are in (their words as
        approved), and to question rounds they were sent."""
        rows = await self._db.fetch_all(
            "SELECT c.*, s.member_id AS author, q.text AS question,"
            " (SELECT p.text FROM submission_parts p"
            "  WHERE p.submission_id = c.submission_id AND p.part = 'idea') AS own_text,"
            " st.text AS statement_text, st.state AS statement_state,"
            " st.project_id AS statement_project"
            " FROM status_changes c"
            " LEFT JOIN submissions s ON s.id = c.submission_id"
            " LEFT JOIN statements st ON st.id = COALESCE(c.statement_id,"
            "  (SELECT x.id FROM statements x WHERE x.submission_id = c.submission_id))"
            " LEFT JOIN question_rounds r ON r.id = c.round_id"
            " LEFT JOIN questions q ON q.id = r.question_id"
            " WHERE s.member_id = ?"
            " OR (st.state = 'approved' AND (st.project_id IS NULL OR st.project_id IN"
            "  (SELECT project_id FROM member_projects WHERE member_id = ?)))"
            " OR (c.round_id IS NOT NULL AND EXISTS (SELECT 1 FROM outbox o"
            "  WHERE o.batch_id = r.batch_id AND o.member_id = ?"
            "  AND o.status IN ('sent', 'unconfirmed')))"
            " ORDER BY c.id DESC LIMIT ? OFFSET ?",
            (member_id, member_id, member_id, limit, offset),
        )
        found = []
        for r in rows:
            change = _change(r)
            own = r["author"] == member_id
            approved = r["statement_text"] if r["statement_state"] == "approved" else None
            if change.item.kind == "round":
                text = r["question"]
            elif own:
                text = r["own_text"] or approved
            else:
                text = approved
            found.append(News(change, change.item.kind, own, text))
        return found

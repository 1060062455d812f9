"""Members weighing each other's ideas: their votes, the next idea to show, and the results.

Tables: votes (written here), statements (read only: storage/statements.py owns them; their
`votes` count is kept by the migration's triggers, never written here), member_projects,
submissions and members (an idea's author), about_you (the groups of /stats).

A member is shown an approved statement with a text (a voice idea only once its summary is
approved), in one of their projects or in none, that they did not write and have not voted
on or skipped yet: fewest votes first, so new ideas get seen, then oldest.

Results (`results`, `tally`) are counts: which of them to hide is `hidden_in_result`, the
small-number rule of /stats (storage/suppression.py). "Common ground" (`common_ground`) is
Polis's consensus: at least 60% agree in every "about you" group with at least 10 voters;
and, so that a statement no group has 10 voters for yet is not common ground by default,
at least 10 voters and 60% agreeing in all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from storage.db import Database, Row
from storage.stats import ABOUT_FIELDS
from storage.suppression import THRESHOLD, hidden_counts
from storage.times import from_db, to_db

Now = Callable[[], datetime]
Choice = Literal["agree", "disagree", "unsure", "skip"]
CHOICES: tuple[Choice, ...] = ("agree", "disagree", "unsure", "skip")
COUNTED: tuple[Choice, ...] = ("agree", "disagree", "unsure")  # a skip only marks it seen
VOTERS = "voters"
COMMON_SHARE = 0.6  # Polis: at least 60% agree …
COMMON_GROUP = THRESHOLD  # … in every group with at least 10 voters

# Not the member's own idea (? is the member).
_NOT_OWN = (
    "(s.submission_id IS NULL OR NOT EXISTS (SELECT 1 FROM submissions sub"
    " WHERE sub.id = s.submission_id AND sub.member_id = ?))"
)
# What a member may be shown and vote on: approved, with a text, in one of the member's
# projects (or for everyone), and not their own idea. `s` is the statement, ? the member.
_OPEN_TO = (
    "s.state = 'approved' AND s.text IS NOT NULL"
    " AND (s.project_id IS NULL"
    "  OR s.project_id IN (SELECT mp.project_id FROM member_projects mp WHERE mp.member_id = ?))"
    f" AND {_NOT_OWN}"
)
# The statement as members see it, with its author's first name if they shared it with it.
_SHOWN = (
    "SELECT s.id, s.text, s.visibility, s.votes,"
    " CASE WHEN s.visibility = 'named' THEN (SELECT au.display_name FROM submissions sub"
    "  JOIN members au ON au.id = sub.member_id WHERE sub.id = s.submission_id) END AS author"
    " FROM statements s"
)


@dataclass(frozen=True)
class Statement:
    """An idea as members are shown it."""

    id: int
    text: str
    visibility: str  # anonymous, named or team
    author: str | None  # the first name of a 'named' idea's author
    votes: int


@dataclass(frozen=True)
class MyVote:
    """One of a member's votes, for /myvotes."""

    statement_id: int
    text: str
    choice: Choice
    voted_at: datetime


@dataclass(frozen=True)
class Tally:
    """How many agree, disagree and are not sure (skips are not counted)."""

    agree: int = 0
    disagree: int = 0
    unsure: int = 0

    @property
    def voters(self) -> int:
        return self.agree + self.disagree + self.unsure

    def count(self, what: str) -> int:
        """A count by name: a choice, or "voters"."""
        return self.voters if what == VOTERS else int(getattr(self, what))

    def share(self, what: str) -> int:
        """A choice's share of the voters, in whole percent (0 when nobody voted)."""
        return round(100 * self.count(what) / self.voters) if self.voters else 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.agree + other.agree, self.disagree + other.disagree, self.unsure + other.unsure
        )

    def __sub__(self, other: Tally) -> Tally:
        return Tally(
            self.agree - other.agree, self.disagree - other.disagree, self.unsure - other.unsure
        )


@dataclass(frozen=True)
class GroupTally:
    """The votes of the members who gave one "about you" answer (None: gave none)."""

    answer: str | None
    tally: Tally


@dataclass(frozen=True)
class Result:
    """One approved statement's votes, in all and by each "about you" question's groups
    (the largest first, those who gave no answer last)."""

    statement: Statement
    tally: Tally
    breakdowns: dict[str, list[GroupTally]] = field(default_factory=dict)


def common_ground(tally: Tally, breakdowns: Mapping[str, Sequence[GroupTally]]) -> bool:
    """Polis's consensus: at least 60% agree in every group with at least 10 voters, and in
    all (with at least 10 voters in all, so an idea few have weighed is not common ground)."""
    tallies = [tally, *(g.tally for groups in breakdowns.values() for g in groups)]
    big = [t for t in tallies if t.voters >= COMMON_GROUP]
    return tally.voters >= COMMON_GROUP and all(t.agree >= COMMON_SHARE * t.voters for t in big)


ResultKey = tuple[str, int, str]  # (field, or "all"; the group's place, or 0; what is counted)
ALL = "all"


def hidden_in_result(
    tally: Tally, breakdowns: Mapping[str, Sequence[GroupTally]] = {}
) -> frozenset[ResultKey]:
    """Which counts of a statement's result to hide, as shown: in all, and each group's of
    each breakdown. Each choice's counts add up to its voters; each breakdown's groups add
    up to all, choice by choice and in voters."""
    whats = (*COUNTED, VOTERS)
    counts: dict[ResultKey, int] = {(ALL, 0, what): tally.count(what) for what in whats}
    sums: list[tuple[ResultKey, Sequence[ResultKey]]] = [
        ((ALL, 0, VOTERS), [(ALL, 0, c) for c in COUNTED])
    ]
    for name, groups in breakdowns.items():
        for i, group in enumerate(groups):
            for what in whats:
                counts[(name, i, what)] = group.tally.count(what)
            sums.append(((name, i, VOTERS), [(name, i, c) for c in COUNTED]))
        for what in whats:
            sums.append(((ALL, 0, what), [(name, i, what) for i in range(len(groups))]))
    return hidden_counts(counts, sums)


def _statement(r: Row) -> Statement:
    return Statement(
        id=int(r["id"]),
        text=str(r["text"]),
        visibility=str(r["visibility"]),
        author=str(r["author"]) if r["author"] is not None else None,
        votes=int(r["votes"]),
    )


class Votes:
    """Votes: recording and changing them, the next idea to show, and the results."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def next_for(self, member_id: int) -> Statement | None:
        """The idea to show the member next, if any is left: fewest votes first, then oldest.

        Two reads: the member's projects; then, for everyone's ideas and each project's, a
        walk of the index statements_next in (votes, id) order, merged (EXPLAIN QUERY PLAN:
        "MERGE (UNION ALL)", no sort), skipping what the member voted on or skipped (one
        look-up each in the votes' primary key) and stopping at the first left."""
        projects = await self._db.fetch_all(
            "SELECT project_id FROM member_projects WHERE member_id = ?", (member_id,)
        )
        branches, params = [], []
        for project in (None, *(int(r["project_id"]) for r in projects)):
            where = "s.project_id IS NULL" if project is None else "s.project_id = ?"
            branches.append(
                f"{_SHOWN} WHERE {where} AND s.state = 'approved' AND s.text IS NOT NULL"
                f" AND {_NOT_OWN}"
                " AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.member_id = ?"
                "  AND v.statement_id = s.id)"
            )
            params += [*([] if project is None else [project]), member_id, member_id]
        row = await self._db.fetch_one(
            " UNION ALL ".join(branches) + " ORDER BY votes, id LIMIT 1", params
        )
        return _statement(row) if row else None

    async def open_to(self, member_id: int, statement_id: int) -> Statement | None:
        """The statement, if the member may see it and vote on it (approved, with a text, in
        their projects, not their own); else None (a stale or forged button)."""
        row = await self._db.fetch_one(
            f"{_SHOWN} WHERE s.id = ? AND {_OPEN_TO}", (statement_id, member_id, member_id)
        )
        return _statement(row) if row else None

    async def record(
        self, member_id: int, statement_id: int, choice: Choice
    ) -> Literal["new", "changed", "same"]:
        """Stores a vote, or changes it: "new" the first time, "changed" for another choice,
        "same" (nothing written) for the same one again, as when an update is replayed."""
        before = await self.choice_of(member_id, statement_id)
        if before == choice:
            return "same"
        now = to_db(self._now())
        await self._db.execute(
            "INSERT INTO votes (member_id, statement_id, choice, voted_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (member_id, statement_id) DO UPDATE"
            " SET choice = excluded.choice, changed_at = excluded.voted_at"
            " WHERE votes.choice != excluded.choice",
            (member_id, statement_id, choice, now),
        )
        return "new" if before is None else "changed"

    async def choice_of(self, member_id: int, statement_id: int) -> Choice | None:
        """The member's vote on a statement, if any."""
        row = await self._db.fetch_one(
            "SELECT choice FROM votes WHERE member_id = ? AND statement_id = ?",
            (member_id, statement_id),
        )
        return _choice(str(row["choice"])) if row else None

    async def counted(self, member_id: int) -> int:
        """How many votes the member has given (skips are not votes)."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM votes WHERE member_id = ? AND choice != 'skip'",
            (member_id,),
        )
        return int(row["n"]) if row else 0

    async def mine(self, member_id: int, offset: int, limit: int) -> tuple[list[MyVote], int]:
        """A page of the member's votes (skips too) on ideas still shown, newest first (a
        changed vote keeps its place); and how many there are in all."""
        rows = await self._db.fetch_all(
            "SELECT v.statement_id, s.text, v.choice, v.voted_at, COUNT(*) OVER () AS total"
            " FROM votes v JOIN statements s ON s.id = v.statement_id"
            " WHERE v.member_id = ? AND s.state = 'approved' AND s.text IS NOT NULL"
            " ORDER BY v.voted_at DESC, v.statement_id DESC LIMIT ? OFFSET ?",
            (member_id, limit, offset),
        )
        page = [
            MyVote(
                statement_id=int(r["statement_id"]),
                text=str(r["text"]),
                choice=_choice(str(r["choice"])),
                voted_at=from_db(str(r["voted_at"])),
            )
            for r in rows
        ]
        if rows:
            return page, int(rows[0]["total"])
        total = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM votes v JOIN statements s ON s.id = v.statement_id"
            " WHERE v.member_id = ? AND s.state = 'approved' AND s.text IS NOT NULL",
            (member_id,),
        )
        return page, int(total["n"]) if total else 0

    async def tally(self, statement_id: int) -> Tally:
        """A statement's votes in all (read from the index votes_statement)."""
        rows = await self._db.fetch_all(
            "SELECT choice, COUNT(*) AS n FROM votes WHERE statement_id = ? AND choice != 'skip'"
            " GROUP BY choice",
            (statement_id,),
        )
        return Tally(**{str(r["choice"]): int(r["n"]) for r in rows})

    async def results(self, fields: Sequence[str] = ABOUT_FIELDS) -> list[Result]:
        """Every approved statement's votes, in all and by each "about you" question in
        `fields`; the most voted first.

        Three reads: the statements; each one's votes by choice (the index votes_statement);
        and the votes by the voters' "about you" answers (typed answers that differ only in
        case are one group). Those who gave no answer are all less those who gave one.
        (bench/votes.py: 10,000 members, 200 ideas, 100,000 votes.)"""
        statements = await self._db.fetch_all(
            f"{_SHOWN} WHERE s.state = 'approved' AND s.text IS NOT NULL"
        )
        totals = await self._db.fetch_all(
            "SELECT statement_id, choice, COUNT(*) AS n FROM votes WHERE choice != 'skip'"
            " GROUP BY statement_id, choice"
        )
        marks = ", ".join("?" for _ in fields) or "NULL"
        # gk: each group (field, answer without case) numbered; mg: each member's groups by
        # number. Then the votes, member by member (their primary key), are counted by
        # statement and group number: a short key, so the one sort (for GROUP BY) is cheap.
        grouped = await self._db.fetch_all(
            "WITH gk AS MATERIALIZED (SELECT field, lower(answer) AS k, MIN(answer) AS answer,"
            "  ROW_NUMBER() OVER (ORDER BY field, lower(answer)) AS g"
            f"  FROM about_you WHERE field IN ({marks}) GROUP BY field, lower(answer)),"
            " mg AS MATERIALIZED (SELECT ay.member_id AS member_id, gk.g AS g FROM about_you ay"
            "  JOIN gk ON gk.field = ay.field AND gk.k = lower(ay.answer)"
            f"  WHERE ay.field IN ({marks})),"
            " c AS MATERIALIZED (SELECT v.statement_id AS statement_id, mg.g AS g,"
            "  SUM(CASE WHEN v.choice = 'agree' THEN 1 ELSE 0 END) AS agree,"
            "  SUM(CASE WHEN v.choice = 'disagree' THEN 1 ELSE 0 END) AS disagree,"
            "  SUM(CASE WHEN v.choice = 'unsure' THEN 1 ELSE 0 END) AS unsure"
            "  FROM mg JOIN votes v ON v.member_id = mg.member_id WHERE v.choice != 'skip'"
            "  GROUP BY v.statement_id, mg.g)"
            " SELECT c.statement_id, gk.field, gk.answer, c.agree, c.disagree, c.unsure"
            " FROM c JOIN gk ON gk.g = c.g",
            (*fields, *fields),
        )
        counts: dict[int, dict[str, int]] = {}
        for r in totals:
            counts.setdefault(int(r["statement_id"]), {})[str(r["choice"])] = int(r["n"])
        groups: dict[tuple[int, str], list[GroupTally]] = {}
        for r in grouped:
            tally = Tally(int(r["agree"]), int(r["disagree"]), int(r["unsure"]))
            key = (int(r["statement_id"]), str(r["field"]))
            groups.setdefault(key, []).append(GroupTally(str(r["answer"]), tally))
        results = []
        for row in statements:
            statement = _statement(row)
            tally = Tally(**counts.get(statement.id, {}))
            breakdowns: dict[str, list[GroupTally]] = {}
            for name in fields:
                answered = groups.get((statement.id, name), [])
                answered.sort(key=lambda g: (-g.tally.voters, g.answer or ""))
                silent = tally - sum((g.tally for g in answered), Tally())
                if silent.voters:
                    answered.append(GroupTally(None, silent))
                breakdowns[name] = answered
            results.append(Result(statement, tally, breakdowns))
        results.sort(key=lambda r: (-r.tally.voters, r.statement.id))
        return results


def _choice(text: str) -> Choice:
    for choice in CHOICES:
        if choice == text:
            return choice
    raise ValueError(f"not a vote: {text!r}")

"""Counts for /stats: who joined and where they are now, and who took part, by each
"about you" answer. Tables read: members, about_you, submissions, answers.

Only counts leave this module: no member, no answer. `hidden_in_stats` and
`hidden_in_question` say which counts /stats must hide (storage/suppression.py has the
rule); conversations/stats.py shows the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from storage.db import Database
from storage.suppression import hidden_counts

ABOUT_FIELDS = ("age_band", "area", "extra")


def _took_part(member_id: str) -> str:
    """SQL: 1 if the member took part (answered a question, or shared a story or an idea),
    else 0.

    Asked member by member through indexes (answers_member, submissions_member): never a
    list of everyone who took part, which with a million responses is a sort of them all.
    CASE, not OR: SQLite evaluates both sides of an OR of subqueries, but stops at the first
    CASE that holds (answers first: a question goes to everyone, so most who took part
    answered one)."""
    return (
        f"CASE WHEN EXISTS (SELECT 1 FROM answers a WHERE a.member_id = {member_id}) THEN 1"
        f" WHEN EXISTS (SELECT 1 FROM submissions s WHERE s.member_id = {member_id}"
        " AND s.status = 'submitted') THEN 1 ELSE 0 END"
    )


@dataclass(frozen=True)
class Membership:
    """Everyone who joined, each counted once: active, stopped, unreachable or still joining."""

    joined: int
    active: int  # reached the menu; not stopped; Telegram has not said they blocked the bot
    stopped: int  # sent /stop
    unreachable: int  # blocked the bot (and did not /stop)
    joining: int  # agreed, but have not reached the menu yet
    took_part: int


@dataclass(frozen=True)
class Group:
    """Members who gave one "about you" answer (None: gave none), and how many took part."""

    answer: str | None
    joined: int
    took_part: int


@dataclass(frozen=True)
class Overview:
    """Everything /stats counts, read at one moment."""

    membership: Membership
    # By "about you" question: everyone who joined, grouped by their answer (typed answers
    # that differ only in case are one group); the largest groups first, and those who gave
    # no answer last.
    breakdowns: dict[str, list[Group]]


class Stats:
    """Counts of members and of who took part."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def overview(self, fields: Sequence[str] = ABOUT_FIELDS) -> Overview:
        """How many joined, where they are now and who took part; and the same by each
        "about you" question in `fields`.

        One statement, so every count is of the same moment: a row for everyone, then one
        per group of answers, read from about_you in the order of its index (field, then
        the answer without case), so grouping them needs no sort. Those who gave no answer
        are everyone less those who gave one (a member has at most one answer a field)."""
        marks = ", ".join("?" for _ in fields) or "NULL"
        rows = await self._db.fetch_all(
            "SELECT NULL AS field, NULL AS answer, COUNT(*) AS joined,"
            " SUM(CASE WHEN stopped_at IS NULL AND unreachable_at IS NULL"
            "  AND onboarded_at IS NOT NULL THEN 1 ELSE 0 END) AS active,"
            " SUM(CASE WHEN stopped_at IS NOT NULL THEN 1 ELSE 0 END) AS stopped,"
            " SUM(CASE WHEN stopped_at IS NULL AND unreachable_at IS NOT NULL THEN 1 ELSE 0 END)"
            "  AS unreachable,"
            " SUM(CASE WHEN stopped_at IS NULL AND unreachable_at IS NULL"
            "  AND onboarded_at IS NULL THEN 1 ELSE 0 END) AS joining,"
            f" SUM({_took_part('m.id')}) AS took_part"
            " FROM members m"
            " UNION ALL"
            " SELECT ay.field, MIN(ay.answer), COUNT(*), NULL, NULL, NULL, NULL,"
            f" SUM({_took_part('ay.member_id')})"
            f" FROM about_you ay WHERE ay.field IN ({marks})"
            " GROUP BY ay.field, lower(ay.answer)",
            tuple(fields),
        )
        everyone = next(r for r in rows if r["field"] is None)
        answered = [r for r in rows if r["field"] is not None]
        membership = Membership(
            joined=int(everyone["joined"]),
            active=int(everyone["active"] or 0),
            stopped=int(everyone["stopped"] or 0),
            unreachable=int(everyone["unreachable"] or 0),
            joining=int(everyone["joining"] or 0),
            took_part=int(everyone["took_part"] or 0),
        )
        breakdowns: dict[str, list[Group]] = {}
        for field in fields:
            groups = [
                Group(answer=r["answer"], joined=int(r["joined"]), took_part=int(r["took_part"]))
                for r in answered
                if r["field"] == field
            ]
            groups.sort(key=lambda g: (-g.joined, g.answer or ""))
            silent = membership.joined - sum(g.joined for g in groups)
            if silent:
                took_part = membership.took_part - sum(g.took_part for g in groups)
                groups.append(Group(answer=None, joined=silent, took_part=took_part))
            breakdowns[field] = groups
        return Overview(membership, breakdowns)


# Names of the counts on the /stats page, for `hidden_in_stats`. A group's counts are named
# (field, its place in the breakdown, what is counted). NOT_TOOK_PART is never shown, but
# it is joined minus took part, so it is protected like a shown count.
MEMBERSHIP_PARTS = ("active", "stopped", "unreachable", "joining")
JOINED, TOOK_PART, NOT_TOOK_PART = "joined", "took_part", "not_took_part"
StatsKey = str | tuple[str, int, str]


def hidden_in_stats(
    members: Membership, breakdowns: Mapping[str, Sequence[Group]]
) -> frozenset[StatsKey]:
    """Which counts of the /stats page to hide: the membership counts, and each group's, for
    the breakdowns (by field) as they are shown. They are tied together: the membership parts
    add up to who joined; so do the groups of each breakdown, and who took part and who did
    not, in all and in each group."""
    counts: dict[StatsKey, int] = {
        JOINED: members.joined,
        TOOK_PART: members.took_part,
        NOT_TOOK_PART: members.joined - members.took_part,
    }
    counts.update({name: getattr(members, name) for name in MEMBERSHIP_PARTS})
    sums: list[tuple[StatsKey, Sequence[StatsKey]]] = [
        (JOINED, MEMBERSHIP_PARTS),
        (JOINED, (TOOK_PART, NOT_TOOK_PART)),
    ]
    for field, groups in breakdowns.items():
        for i, group in enumerate(groups):
            counts[(field, i, JOINED)] = group.joined
            counts[(field, i, TOOK_PART)] = group.took_part
            counts[(field, i, NOT_TOOK_PART)] = group.joined - group.took_part
            sums.append(((field, i, JOINED), ((field, i, TOOK_PART), (field, i, NOT_TOOK_PART))))
        for what in (JOINED, TOOK_PART, NOT_TOOK_PART):
            sums.append((what, [(field, i, what) for i in range(len(groups))]))
    return hidden_counts(counts, sums)


def hidden_in_question(answered: int, sent: int) -> frozenset[str]:
    """Which of "answered" and "sent" to hide for one question ("not_answered", sent minus
    answered, is protected too). The response rate must be hidden whenever any of them is:
    with the one shown it gives the other away."""
    counts = {"answered": answered, "sent": sent, "not_answered": max(sent - answered, 0)}
    return hidden_counts(counts, [("sent", ("answered", "not_answered"))])

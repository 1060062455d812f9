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
# A member took part once they shared a story or an idea, or answered a question.
_TOOK_PART = (
    "SELECT member_id FROM submissions WHERE status = 'submitted'"
    " UNION SELECT member_id FROM answers"
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


class Stats:
    """Counts of members and of who took part."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def membership(self) -> Membership:
        """How many joined, and where they are now."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS joined,"
            " COALESCE(SUM(stopped_at IS NULL AND unreachable_at IS NULL"
            "  AND onboarded_at IS NOT NULL), 0) AS active,"
            " COALESCE(SUM(stopped_at IS NOT NULL), 0) AS stopped,"
            " COALESCE(SUM(stopped_at IS NULL AND unreachable_at IS NOT NULL), 0) AS unreachable,"
            " COALESCE(SUM(stopped_at IS NULL AND unreachable_at IS NULL"
            "  AND onboarded_at IS NULL), 0) AS joining,"
            f" (SELECT COUNT(*) FROM ({_TOOK_PART})) AS took_part"
            " FROM members"
        )
        assert row is not None
        return Membership(
            joined=int(row["joined"]),
            active=int(row["active"]),
            stopped=int(row["stopped"]),
            unreachable=int(row["unreachable"]),
            joining=int(row["joining"]),
            took_part=int(row["took_part"]),
        )

    async def by_answer(self, field: str) -> list[Group]:
        """Everyone who joined, grouped by their answer to one "about you" question (typed
        answers that differ only in case are one group); the largest groups first, and those
        who gave no answer last."""
        rows = await self._db.fetch_all(
            "SELECT MIN(ay.answer) AS answer, COUNT(*) AS joined, COUNT(tp.member_id) AS took_part"
            " FROM members m"
            " LEFT JOIN about_you ay ON ay.member_id = m.id AND ay.field = ?"
            f" LEFT JOIN ({_TOOK_PART}) tp ON tp.member_id = m.id"
            " GROUP BY lower(ay.answer)"
            " ORDER BY MIN(ay.answer) IS NULL, COUNT(*) DESC, MIN(ay.answer)",
            (field,),
        )
        return [
            Group(answer=r["answer"], joined=int(r["joined"]), took_part=int(r["took_part"]))
            for r in rows
        ]


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

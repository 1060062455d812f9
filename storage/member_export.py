"""Everything kept about one member, as plain JSON-ready data (for /mydata).

Reads every table that holds a member's data: members, member_projects, about_you,
consent_receipts, submissions, submission_parts, media, answers (with their questions),
replies (a facilitator's replies and the member's answers back), safeguarding_flags,
pseudonyms; and, for ideas members weigh (issue 12), votes (each with the idea's text as
shown), statements (whether each of their ideas may be shown to others, and whether a
facilitator approved it, perhaps edited) and status_changes (what became of their ideas).
Never a facilitator's Telegram id or name, and never another member's vote.
"""

from __future__ import annotations

import json
from typing import Any

from storage import kinds
from storage.store import Store
from storage.times import to_db


def _file(row: Any) -> dict[str, Any]:
    return {
        "kind": row["kind"],
        "file_name": row["file_name"],
        "size": row["size"],
        "duration": row["duration"],
        "mime_type": row["mime_type"],
    }


async def _answers(store: Store, member_id: int) -> list[dict[str, Any]]:
    """Answers to questions, each with its files and the replies it had."""
    rows = await store.db.fetch_all(
        "SELECT a.id, a.choice, a.text, a.answered_at, a.updated_at, q.id AS question_id,"
        " q.text AS question, q.kind, q.options FROM answers a"
        " JOIN question_rounds r ON r.id = a.round_id JOIN questions q ON q.id = r.question_id"
        " WHERE a.member_id = ? ORDER BY a.id",
        (member_id,),
    )
    files = await store.db.fetch_all(
        "SELECT * FROM media WHERE member_id = ? AND answer_id IS NOT NULL ORDER BY id",
        (member_id,),
    )
    replies = await store.db.fetch_all(
        "SELECT p.* FROM replies p JOIN answers a ON a.id = p.answer_id"
        " WHERE a.member_id = ? ORDER BY p.id",
        (member_id,),
    )
    answers = []
    for a in rows:
        options = json.loads(a["options"])
        choice = a["choice"]
        label = None
        if (
            a["kind"] == "choice"
            and choice
            and choice.isdigit()
            and 0 < int(choice) <= len(options)
        ):
            label = options[int(choice) - 1]
        answers.append(
            {
                "id": a["id"],
                "question_id": a["question_id"],
                "question": a["question"],
                "choice": choice,
                "choice_label": label,
                "text": a["text"],
                "answered_at": a["answered_at"],
                "updated_at": a["updated_at"],
                "media": [_file(m) for m in files if m["answer_id"] == a["id"]],
                "replies": [
                    {
                        "from_the_team": p["text"],
                        "sent_at": p["sent_at"],
                        "your_answer_back": p["member_text"],
                        "answered_back_at": p["member_replied_at"],
                    }
                    for p in replies
                    if p["answer_id"] == a["id"]
                ],
            }
        )
    return answers


async def _flags(store: Store, member_id: int) -> list[dict[str, Any]]:
    """Safeguarding flags: what was flagged, when, and whether someone followed it up."""
    rows = await store.db.fetch_all(
        "SELECT * FROM safeguarding_flags WHERE member_id = ? ORDER BY id", (member_id,)
    )
    return [
        {
            "flagged_at": f["flagged_at"],
            "followed_up_at": f["followed_up_at"],
            "story_or_idea_id": f["submission_id"],
            "part": f["part"],
            "answer_id": f["answer_id"],
        }
        for f in rows
    ]


# Who may see an idea: no statement is "only the team" (the default).
WHO_MAY_SEE = {
    None: "only_the_team",
    "team": "only_the_team",
    "anonymous": "other_members_without_your_name",
    "named": "other_members_with_your_first_name",
}


async def _votes(store: Store, member_id: int) -> list[dict[str, Any]]:
    """The member's votes, oldest first, each with the idea as members are shown it."""
    rows = await store.db.fetch_all(
        "SELECT v.statement_id, v.choice, v.voted_at, v.changed_at, st.text"
        " FROM votes v JOIN statements st ON st.id = v.statement_id"
        " WHERE v.member_id = ? ORDER BY v.voted_at, v.statement_id",
        (member_id,),
    )
    return [
        {
            "idea_id": v["statement_id"],
            "idea": v["text"],
            "your_choice": v["choice"],  # agree, disagree, unsure, or skip (seen, no view)
            "voted_at": v["voted_at"],
            "changed_at": v["changed_at"],
        }
        for v in rows
    ]


async def _sharing(store: Store, member_id: int) -> dict[int, dict[str, Any]]:
    """For each of the member's submissions: who may see it, whether a facilitator approved
    it (and the text others are shown, edited or not), and what became of it."""
    statements = await store.db.fetch_all(
        "SELECT st.* FROM statements st JOIN submissions s ON s.id = st.submission_id"
        " WHERE s.member_id = ?",
        (member_id,),
    )
    changes = await store.db.fetch_all(
        "SELECT c.submission_id, c.status, c.reason, c.changed_at FROM status_changes c"
        " JOIN submissions s ON s.id = c.submission_id WHERE s.member_id = ? ORDER BY c.id",
        (member_id,),
    )
    found: dict[int, dict[str, Any]] = {}
    for st in statements:
        found[int(st["submission_id"])] = {
            "who_may_see": WHO_MAY_SEE.get(st["visibility"], st["visibility"]),
            "approval": {
                # waiting (for a facilitator's OK), summary (a voice idea's summary, waiting
                # for your OK), approved or declined
                "state": st["state"],
                "edited": bool(st["edited"]),  # a facilitator changed the words
                # what others are shown once approved (perhaps edited, or the summary)
                "text_for_others": st["text"],
                "decided_at": st["decided_at"],
            },
            "status_history": [],
        }
    for c in changes:
        entry = found.setdefault(
            int(c["submission_id"]),
            {"who_may_see": WHO_MAY_SEE[None], "approval": None, "status_history": []},
        )
        entry["status_history"].append(
            {"status": c["status"], "reason": c["reason"], "changed_at": c["changed_at"]}
        )
    return found


async def export_member(store: Store, member_id: int) -> dict[str, Any]:
    """The member's profile, consent receipts, every story, idea and answer with its media,
    the replies they had and the member's answers back, and safeguarding flags."""
    member = await store.members.get(member_id)
    if member is None:
        return {}
    receipts = [r for r in await store.consent.all() if r.member_id == member_id]
    sharing = await _sharing(store, member_id)
    submissions = []
    for s in await store.sharing.of_member(member_id):
        shared: dict[str, Any] = {}
        if s.kind == "idea" or s.id in sharing:
            none: dict[str, Any] = {"who_may_see": WHO_MAY_SEE[None], "approval": None}
            shared = sharing.get(s.id, {**none, "status_history": []})
        parts = await store.sharing.parts(s.id)
        submissions.append(
            {
                "id": s.id,
                "kind": s.kind,
                "status": s.status,
                "project": next(
                    (p.code for p in await store.projects.all() if p.id == s.project_id), None
                ),
                "created_at": to_db(s.created_at),
                "submitted_at": to_db(s.submitted_at) if s.submitted_at else None,
                "volunteer": s.volunteer,
                "parts": {
                    name: {
                        "text": part.text,
                        "skipped": part.skipped,
                        "media": [
                            {
                                "kind": m.kind,
                                "file_name": m.file_name,
                                "size": m.size,
                                "duration": m.duration,
                                "mime_type": m.mime_type,
                            }
                            for m in part.media
                        ],
                    }
                    for name, part in parts.items()
                },
                **shared,
            }
        )
    return {
        "profile": {
            "telegram_user_id": member.telegram_user_id,
            "language": member.language,
            "name": member.display_name,
            "joined_at": to_db(member.joined_at),
            "onboarded_at": to_db(member.onboarded_at) if member.onboarded_at else None,
            "stopped_at": to_db(member.stopped_at) if member.stopped_at else None,
            "projects": [p.code for p in await store.members.projects_of(member_id)],
            "about_you": await store.about.of(member_id),
            "pseudonym": await _pseudonym(store, member_id),
        },
        "consent": [
            {
                "version": r.consent_version,
                "language": r.language,
                "agreed_to": list(r.agreed_to),
                "agreed_at": to_db(r.agreed_at),
                "withdrawn_at": to_db(r.withdrawn_at) if r.withdrawn_at else None,
            }
            for r in receipts
        ],
        **_by_kind(submissions),
        "answers": await _answers(store, member_id),
        "votes": await _votes(store, member_id),
        "safeguarding_flags": await _flags(store, member_id),
    }


def _by_kind(submissions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Submissions under each kind's plural ("stories", "ideas" …, from storage/kinds.py); one
    of a kind no longer in the list goes under "other_shared", never left out."""
    grouped: dict[str, list[dict[str, Any]]] = {k.plural: [] for k in kinds.all_kinds()}
    known = {k.key: k.plural for k in kinds.all_kinds()}
    for s in submissions:
        grouped.setdefault(known.get(s["kind"], "other_shared"), []).append(s)
    return grouped


async def _pseudonym(store: Store, member_id: int) -> str | None:
    """The name staff see instead of the member's, if one was given (reading gives none)."""
    row = await store.db.fetch_one("SELECT 1 FROM pseudonyms WHERE member_id = ?", (member_id,))
    return await store.pseudonyms.of(member_id) if row else None

"""Everything kept about one member, as plain JSON-ready data (for /mydata)."""

from __future__ import annotations

from typing import Any

from storage.store import Store


async def export_member(store: Store, member_id: int) -> dict[str, Any]:
    """The member's profile, consent receipts, and every story and idea with its media."""
    member = await store.members.get(member_id)
    if member is None:
        return {}
    receipts = [r for r in await store.consent.all() if r.member_id == member_id]
    submissions = []
    for s in await store.sharing.of_member(member_id):
        parts = await store.sharing.parts(s.id)
        submissions.append(
            {
                "id": s.id,
                "kind": s.kind,
                "status": s.status,
                "project": next(
                    (p.code for p in await store.projects.all() if p.id == s.project_id), None
                ),
                "created_at": s.created_at,
                "submitted_at": s.submitted_at,
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
            }
        )
    return {
        "profile": {
            "telegram_user_id": member.telegram_user_id,
            "language": member.language,
            "name": member.display_name,
            "joined_at": member.joined_at,
            "onboarded_at": member.onboarded_at,
            "stopped_at": member.stopped_at,
            "projects": [p.code for p in await store.members.projects_of(member_id)],
            "about_you": await store.about.of(member_id),
        },
        "consent": [
            {
                "version": r.consent_version,
                "language": r.language,
                "agreed_to": list(r.agreed_to),
                "agreed_at": r.agreed_at,
                "withdrawn_at": r.withdrawn_at,
            }
            for r in receipts
        ],
        "stories": [s for s in submissions if s["kind"] == "experience"],
        "ideas": [s for s in submissions if s["kind"] == "idea"],
    }

"""Who counts as staff (organisers and facilitators) for alerts and staff-only buttons.

Organisers come from ORGANISER_IDS at start.
"""

from __future__ import annotations

from conversations.context import CocreateContext


async def staff_ids(context: CocreateContext) -> list[int]:
    """Telegram ids of everyone who should receive staff alerts."""
    return list(dict.fromkeys(context.settings.organiser_ids))


async def is_staff(context: CocreateContext, user_id: int) -> bool:
    """Whether a Telegram user is an organiser or facilitator."""
    return user_id in await staff_ids(context)

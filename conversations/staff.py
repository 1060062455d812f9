"""Who counts as staff, and the one guard on every staff command and staff button.

Roles live in the database (storage/roles.py): organisers from ORGANISER_IDS, synced at
start; facilitators through an organiser's invite (conversations/roles.py). Organisers may
do everything facilitators may.

Guard a staff callback by wrapping it where its handler is built:

    CommandHandler("ask", staff_only(ask), filters=...)                  # facilitators up
    CommandHandler("export", staff_only(export, ORGANISER), filters=...)  # organisers only
    CallbackQueryHandler(staff_only(on_button, ORGANISER), pattern=r"^roles:")
    FlowHandler("ask", State, entry_points=[CommandHandler("ask", staff_only(start_asking))],
                handlers={State.TEXT: [MessageHandler(..., staff_only(take_text))]}, ...)

Anyone without the role gets exactly what the bot says to a command it does not have, or to
an old button, so nothing hints that a staff feature exists, and nothing changes.

Staff act only from their own private chat, whose id is their user id: an update that names a
staff member but comes from any other chat (a group, or a forged update) is refused the same
way, and everything the bot sends staff on its own (alerts, answers back, reports) goes to
that private chat, never to a chat an update named.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from telegram import Update

from conversations.context import CocreateContext
from conversations.machine import END
from conversations.replies import answer_unknown_button, answer_unknown_command
from storage.roles import FACILITATOR, ORGANISER, Role, StaffRole

logger = logging.getLogger(__name__)

__all__ = [
    "FACILITATOR",
    "ORGANISER",
    "acting_staff",
    "is_staff",
    "refuse",
    "role_of",
    "staff_ids",
    "staff_only",
]

R = TypeVar("R")
Callback = Callable[[Update, CocreateContext], Coroutine[Any, Any, R]]
# Higher may do everything lower may.
RANK: dict[Role, int] = {FACILITATOR: 1, ORGANISER: 2}
REFUSED = END


async def role_of(context: CocreateContext, user_id: int) -> Role | None:
    """'organiser', 'facilitator', or None for everyone else (removed staff included)."""
    return await context.store.roles.role_of(user_id)


async def staff_ids(context: CocreateContext) -> list[int]:
    """Telegram ids of every active organiser and facilitator (who get staff alerts)."""
    return [role.telegram_user_id for role in await context.store.roles.staff()]


async def is_staff(context: CocreateContext, user_id: int) -> bool:
    """Whether a Telegram user is an organiser or facilitator now."""
    return await role_of(context, user_id) is not None


def may(role: Role | None, needed: Role) -> bool:
    """Whether someone with `role` may do what needs `needed`."""
    return role is not None and RANK[role] >= RANK[needed]


async def acting_staff(
    update: Update, context: CocreateContext, needed: Role = FACILITATOR
) -> StaffRole | None:
    """The role of the person behind the update if it is `needed` (or higher) and they write
    from their own private chat; None for anyone else, or from any other chat."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or (chat is not None and chat.id != user.id):
        return None
    found = await context.store.roles.get(user.id)
    return found if found is not None and may(found.role, needed) else None


async def refuse(update: Update, context: CocreateContext) -> None:
    """Answers exactly as to a command or button the bot does not have (router's fallbacks)."""
    if update.callback_query is None:
        await answer_unknown_command(update, context)
    else:
        await answer_unknown_button(update, context)


def staff_only(
    callback: Callback[R], role: Role = FACILITATOR
) -> Callable[[Update, CocreateContext], Coroutine[Any, Any, R | int]]:
    """Wraps a staff callback so that only people with `role` (or higher) reach it.

    For anyone else it calls `refuse` and returns END (conversations/machine.py), so the same
    wrapper serves a CommandHandler or CallbackQueryHandler (which ignore the value) and a
    flow's entry points and states (a refused entry starts nothing; someone
    removed half-way through is taken out of the conversation).
    """

    @functools.wraps(callback)
    async def guarded(update: Update, context: CocreateContext) -> R | int:
        user = update.effective_user
        found = await acting_staff(update, context, role)
        if user is None or found is None:
            if user is not None:
                logger.info("Refused %s to user %s", callback.__name__, user.id)
            await refuse(update, context)
            return REFUSED
        if found.name != user.first_name:
            await context.store.roles.seen(user.id, user.first_name)
        return await callback(update, context)

    return guarded

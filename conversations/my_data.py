"""A member's own data: /delete erases everything kept about them, after asking once more."""

from __future__ import annotations

from telegram import Update

from conversations.choices import Option
from conversations.context import CocreateContext
from conversations.pending import PendingQuestion
from conversations.replies import current_member, say, send_menu


async def decide(update: Update, context: CocreateContext, option: Option) -> None:
    """Deletes everything about the member, or keeps it, as they chose."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "delete.nothing")
        return
    if option.key != "yes":
        await say(update, context, "delete.kept", language=member.language)
        await send_menu(update, context, member)
        return
    await context.store.erase_member(member.id)
    context.application.drop_user_data(member.telegram_user_id)
    await say(update, context, "delete.done", language=member.language)


QUESTION = PendingQuestion(
    "erase", [Option("yes", "delete.yes"), Option("no", "delete.no")], decide
)


async def ask(update: Update, context: CocreateContext) -> None:
    """Asks once more before deleting everything."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "delete.nothing")
        return
    await QUESTION.ask(update, context, "delete.ask", member.language)

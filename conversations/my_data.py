"""A member's own data: /delete erases everything kept about them.

Buttons carry `erase:yes|no`; a typed answer is read while user_data["awaiting"] is "erase".
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.replies import current_member, say, send_menu, settle_button, show_menu

PREFIX = "erase"
OPTIONS = [Option("yes", "delete.yes"), Option("no", "delete.no")]


async def ask(update: Update, context: CocreateContext) -> None:
    """Asks once more before deleting everything."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "delete.nothing")
        return
    context.data["awaiting"] = "erase"
    await say(
        update,
        context,
        "delete.ask",
        language=member.language,
        reply_markup=keyboard(OPTIONS, member.language, PREFIX),
    )


async def decide(update: Update, context: CocreateContext, option: Option) -> None:
    """Deletes everything about the member, or keeps it, as they chose."""
    context.data.pop("awaiting", None)
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


async def typed(update: Update, context: CocreateContext, text: str, language: str) -> bool:
    """Reads a typed yes or no; False if it is neither."""
    option = match(text, OPTIONS, language)
    if option is None:
        return False
    await decide(update, context, option)
    return True


async def on_button(update: Update, context: CocreateContext) -> None:
    """Acts on the yes or no button."""
    query = update.callback_query
    assert query is not None
    option = from_callback(query.data or "", OPTIONS, PREFIX)
    # Only the question being asked now may delete: never a button left on an old message.
    if option is None or context.data.get("awaiting") != "erase":
        await settle_button(update)
        await say(update, context, "bad.old_button")
        await show_menu(update, context)
        return
    await settle_button(update)
    await decide(update, context, option)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The erase buttons (the /delete command is routed by the menu)."""
    return [CallbackQueryHandler(on_button, pattern=rf"^{PREFIX}:")]

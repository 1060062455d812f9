"""/workbench: a facilitator or organiser gets a link that signs them in to the staff
workbench (bot/web/) once, within 10 minutes (storage/web_sessions.py). Anyone else gets
what the bot says to a command it does not have.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, filters

from bot.catalogue import t
from conversations import replies
from conversations.context import CocreateContext
from conversations.replies import language_of
from conversations.staff import staff_only
from storage.web_sessions import LINK_TTL

SIGN_IN_PATH = "/signin/"  # bot/web/app.py serves it


def sign_in_link(base_url: str, token: str) -> str:
    """The link a token opens."""
    return f"{base_url}{SIGN_IN_PATH}{token}"


async def send_link(update: Update, context: CocreateContext) -> None:
    """Sends a one-time sign-in link to the workbench."""
    user = update.effective_user
    assert user is not None
    token = await context.store.web_sessions.make_link(user.id)
    lang = await language_of(update, context)
    text = t(
        lang,
        "workbench.link",
        link=sign_in_link(context.settings.workbench_url, token),
        minutes=int(LINK_TTL.total_seconds() // 60),
    )
    # Opening the link only shows a "Sign in" button (bot/web/app.py): a preview fetched by
    # Telegram's servers does not use it up.
    await replies.send(update, context, text)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/workbench, for facilitators and organisers."""
    return [CommandHandler("workbench", staff_only(send_link), filters=filters.UpdateType.MESSAGE)]

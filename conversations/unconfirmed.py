""" "Send again": the author of a batch sends its unconfirmed messages once more.

A delivery report (bot/delivery.py) names the members nobody is sure got a message (its
request left, then the bot stopped or the answer never came), with one button whose text says
that some may get it twice. Staff only.

Button: `unconfirmed:<batch id>`.
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.catalogue import t
from conversations.context import CocreateContext
from conversations.replies import language_of, say, settle_button
from conversations.staff import staff_only

logger = logging.getLogger(__name__)

PREFIX = "unconfirmed:"


def send_again_button(batch_id: int, count: int, language: str) -> InlineKeyboardMarkup:
    """The report's button: sends the batch's `count` unconfirmed messages again."""
    label = t(language, "delivery.send_again", count=count)
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=f"{PREFIX}{batch_id}")]]
    )


async def send_again(update: Update, context: CocreateContext) -> None:
    """Queues the batch's unconfirmed messages again and says what happens next."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    await settle_button(update)
    language = await language_of(update, context)
    ident = (query.data or "").removeprefix(PREFIX)
    count = await context.store.outbox.send_again(int(ident)) if ident.isdigit() else 0
    if not count:
        await say(update, context, "delivery.sent_again_none", language=language)
        return
    await context.store.audit.add(
        f"telegram:{user.id}", "unconfirmed_sent_again", batch=int(ident), rows=count
    )
    logger.info("Batch %s: %s unconfirmed messages queued again", ident, count)
    context.delivery.wake()
    await say(update, context, "delivery.sent_again", language=language, count=count)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """The report's "Send again" button; facilitators and organisers only."""
    return [CallbackQueryHandler(staff_only(send_again), pattern=rf"^{PREFIX}\d+$")]

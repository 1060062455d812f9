"""Safeguarding: words that suggest a risk to life or safety get help at once, a flag in the
database and an alert to staff (the member's pseudonym and a button to read it; never the
text itself in the alert). The member's flow carries on: nothing is blocked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.catalogue import LANGUAGES, catalogue, t
from conversations.context import CocreateContext
from conversations.replies import chat_of, quoted, settle_button
from conversations.staff import acting_staff, staff_ids
from storage.models import Member
from storage.sharing import Submission

logger = logging.getLogger(__name__)
_NOT_WORD = re.compile(r"[\W_]+")
PREFIX = "flag"
Action = Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]


def _fold(text: str) -> str:
    return f" {_NOT_WORD.sub(' ', text.casefold()).strip()} "


def risk_phrases(context: CocreateContext) -> list[str]:
    """The configured phrases, or the catalogue's list in every language."""
    if context.settings.safeguarding_words:
        return context.settings.safeguarding_words
    return [w for lang in LANGUAGES for w in catalogue().words(lang, "safeguarding.risk")]


def at_risk(text: str, phrases: list[str]) -> bool:
    """Whether the text contains one of the phrases as whole words."""
    folded = _fold(text)
    return any(_fold(p) in folded for p in phrases if p.strip())


async def check(
    update: Update,
    context: CocreateContext,
    member: Member,
    submission: Submission | None,
    part: str | None,
    text: str | None,
    *,
    answer_id: int | None = None,
) -> bool:
    """Sends help, flags and alerts if the text suggests a risk; True if it did."""
    if not text or not at_risk(text, risk_phrases(context)):
        return False
    flag_id = await context.store.sharing.flag(
        member.id, submission.id if submission else None, part, answer_id
    )
    help_text = context.settings.safeguarding_help or t(member.language, "safeguarding.help")
    chat_id = chat_of(update)
    if chat_id is not None:
        await context.bot.send_message(chat_id, help_text)
    pseudonym = await context.store.pseudonyms.of(member.id)
    logger.info("Safeguarding flag %s raised for %s", flag_id, pseudonym)
    for staff_id in await staff_ids(context):
        language = await _language_of(context, staff_id)
        button = InlineKeyboardButton(
            t(language, "safeguarding.read"), callback_data=f"{PREFIX}:{flag_id}"
        )
        try:
            await context.bot.send_message(
                staff_id,
                t(language, "safeguarding.alert", pseudonym=pseudonym),
                reply_markup=InlineKeyboardMarkup([[button]]),
            )
        except TelegramError as exc:  # a staff member who never opened the bot, or blocked it
            logger.warning("Could not alert staff member about flag %s: %s", flag_id, exc)
    return True


async def _language_of(context: CocreateContext, user_id: int) -> str:
    member = await context.store.members.by_telegram_id(user_id)
    return member.language if member else "en"


async def on_read(update: Update, context: CocreateContext) -> None:
    """Shows a flagged item to staff."""
    query = update.callback_query
    user = update.effective_user
    assert query is not None and user is not None
    await settle_button(update)
    language = await _language_of(context, user.id)
    try:
        flag_id = int((query.data or "").partition(":")[2])
    except ValueError:
        flag_id = 0
    detail = await context.store.sharing.flag_detail(flag_id)
    chat_id = user.id  # staff read flagged words only in their own private chat
    if detail is None:
        await context.bot.send_message(chat_id, t(language, "safeguarding.gone"))
        return
    pseudonym = await context.store.pseudonyms.of(detail.member_id)
    text = detail.answer_text or ""
    what = detail.question_text or ""
    if detail.submission is not None and detail.part is not None:
        parts = await context.store.sharing.parts(detail.submission.id)
        given = parts.get(detail.part)
        text = (given.text or "") if given else ""
        noun = "story" if detail.submission.kind == "experience" else "idea"
        what = t(language, f"{noun}.label.{detail.part}")
    # The words may be as long as Telegram allows: with the heading they take several messages.
    for piece in quoted(language, "safeguarding.item", text, pseudonym=pseudonym, what=what):
        await context.bot.send_message(chat_id, piece)
    await context.store.audit.add(f"telegram:{user.id}", "safeguarding_read", flag=flag_id)


def build_handlers(not_allowed: Action) -> list[BaseHandler[Update, CocreateContext, None]]:
    """The "Read it" button on staff alerts; anyone else pressing it (or staff pressing it
    from any chat but their own private one) gets `not_allowed`."""

    async def guarded(update: Update, context: CocreateContext) -> None:
        if await acting_staff(update, context) is not None:
            await on_read(update, context)
        else:
            await not_allowed(update, context)

    return [CallbackQueryHandler(guarded, pattern=rf"^{PREFIX}:")]

"""Safeguarding: words that suggest a risk to life or safety get help at once, wherever and
whenever someone writes (the door calls `notice` for every message, before any flow). For a
member, also a flag in the database (holding the words) and an alert to staff (the member's
pseudonym and a "Read it" button; never the words themselves in the alert). The member's flow
carries on: nothing is blocked. The help goes as soon as all this, and what the flow does with
the words, is on disk, before the flow's reply; a replay after a crash sends it again.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.catalogue import LANGUAGES, catalogue, t
from bot.settings import Settings
from conversations.context import CURRENT_SESSION, RISK_NOTED, CocreateContext, Resources, Risk
from conversations.replies import chat_of, person_language, quoted, settle_button
from conversations.staff import acting_staff
from storage import kinds
from storage.db import after_commit
from storage.outbox import Outgoing

logger = logging.getLogger(__name__)
_NOT_WORD = re.compile(r"[\W_]+")
PREFIX = "flag"
SHARING_FLOW = "share"  # conversations/sharing.py's flow: risky words there are a story part
Action = Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]


def _fold(text: str) -> str:
    return f" {_NOT_WORD.sub(' ', text.casefold()).strip()} "


def risk_phrases(settings: Settings) -> list[str]:
    """The configured phrases, or the catalogue's list in every language."""
    if settings.safeguarding_words:
        return settings.safeguarding_words
    return [w for lang in LANGUAGES for w in catalogue().words(lang, "safeguarding.risk")]


def at_risk(text: str, phrases: Sequence[str]) -> bool:
    """Whether the text contains one of the phrases as whole words."""
    folded = _fold(text)
    return any(p in folded for p in _folded(tuple(phrases)))


@functools.lru_cache(maxsize=16)
def _folded(phrases: tuple[str, ...]) -> tuple[str, ...]:
    """The phrases as `at_risk` compares them (folded once, not for every message)."""
    return tuple(_fold(p) for p in phrases if p.strip())


async def notice(update: Update, resources: Resources, words: str) -> None:
    """Called by the door for every message: if the words suggest a risk, sends help at once.

    Before consent that is all, and nothing is stored. For a member, the words are also
    flagged and every member of staff gets an alert (queued in the outbox with the update's
    other effects, so a crash loses neither). Later "did not get that" replies are held back
    (see replies.say), so a risky message is never answered as if it made no sense.
    """
    settings, store = resources.settings, resources.store
    if not at_risk(words, risk_phrases(settings)):
        return
    user, chat_id = update.effective_user, chat_of(update)
    assert user is not None and chat_id is not None
    session = CURRENT_SESSION.get()
    member = await store.members.by_telegram_id(user.id)
    help_text = await _help_text(update, resources)

    async def send_help() -> None:
        try:
            await update.get_bot().send_message(chat_id, help_text)
        except TelegramError as exc:  # blocked, or Telegram down: the flag and alerts still go
            logger.warning("Could not send safeguarding help: %s", exc)

    # The help goes as soon as the flag, the alerts and what the flow does with the words are
    # on disk, before the flow's reply. Sent first, it would mark the update applied before
    # them, and a kill just then would lose them (storage/db.py `after_commit`). If the kill
    # comes between that commit and the help, the replay sends it (`help_again`).
    await after_commit(send_help)
    if member is None:
        RISK_NOTED.set(Risk(flag_id=None))
        logger.info("Safeguarding help sent to someone who has not joined; nothing kept")
        return
    place = f"{session.flow}:{session.state}" if session and session.flow else "menu"
    submission_id = part = None
    if session is not None and session.flow == SHARING_FLOW:
        draft = session.data.get("draft")
        submission_id = int(draft) if isinstance(draft, int) else None
        part = session.state.lower() if session.state else None
    flag_id = await store.sharing.flag(member.id, submission_id, part, words=words, place=place)
    RISK_NOTED.set(Risk(flag_id=flag_id))
    pseudonym = await store.pseudonyms.of(member.id)
    logger.info("Safeguarding flag %s raised for %s", flag_id, pseudonym)
    alerts = []
    for staff_id in [role.telegram_user_id for role in await store.roles.staff()]:
        staff_member = await store.members.by_telegram_id(staff_id)
        lang = staff_member.language if staff_member else "en"
        button = InlineKeyboardButton(
            t(lang, "safeguarding.read"), callback_data=f"{PREFIX}:{flag_id}"
        )
        alerts.append(
            Outgoing(
                None,
                staff_id,
                t(lang, "safeguarding.alert", pseudonym=pseudonym),
                InlineKeyboardMarkup([[button]]).to_dict(),
            )
        )
    if alerts:
        await store.outbox.enqueue_batch("alert", flag_id, alerts)


async def _help_text(update: Update, resources: Resources) -> str:
    language = await person_language(update, resources)
    return resources.settings.safeguarding_help or t(language, "safeguarding.help")


async def help_again(update: Update, resources: Resources) -> None:
    """Sends the help again for risky words in an update applied before a crash (the door
    replays it): the process may have died before the help went. Nothing is kept again."""
    message = update.message
    words = (message.text or message.caption) if message is not None else None
    chat_id = chat_of(update)
    if not words or chat_id is None or not at_risk(words, risk_phrases(resources.settings)):
        return
    try:
        await update.get_bot().send_message(chat_id, await _help_text(update, resources))
    except TelegramError as exc:
        logger.warning("Could not send safeguarding help again: %s", exc)


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
    text = detail.words or detail.answer_text or ""
    what = detail.question_text or ""
    if detail.submission is not None and detail.part is not None:
        kind = kinds.find(detail.submission.kind)
        label = f"{kind.noun}.label.{detail.part}" if kind else ""
        what = t(language, label) if label in catalogue().keys("en") else ""
        if not detail.words:
            parts = await context.store.sharing.parts(detail.submission.id)
            given = parts.get(detail.part)
            text = (given.text or "") if given else ""
    # Kept before the words go, with this update (see bot/receiving.py): recorded after the
    # first message, it would be lost to a kill before the next commit.
    await context.store.safeguarding.record(flag_id, user.id, "read")
    # The words may be as long as Telegram allows: with the heading they take several messages.
    for piece in quoted(language, "safeguarding.item", text, pseudonym=pseudonym, what=what):
        await context.bot.send_message(chat_id, piece)


def build_handlers(not_allowed: Action) -> list[BaseHandler[Update, CocreateContext, None]]:
    """The "Read it" button on staff alerts; anyone else pressing it (or staff pressing it
    from any chat but their own private one) gets `not_allowed`."""

    async def guarded(update: Update, context: CocreateContext) -> None:
        if await acting_staff(update, context) is not None:
            await on_read(update, context)
        else:
            await not_allowed(update, context)

    return [CallbackQueryHandler(guarded, pattern=rf"^{PREFIX}:")]

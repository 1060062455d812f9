"""/scheduled: facilitators see upcoming questions and broadcasts, each with Cancel, which
asks once more (Yes / No) before cancelling.

Buttons: `sched:q:<question id>` and `sched:b:<broadcast id>`; the answers to "cancel it?"
add `:yes` or `:no`.
"""

from __future__ import annotations

from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, filters

from bot.catalogue import long_datetime, t
from conversations import audiences, replies, steps
from conversations.choices import number
from conversations.context import CocreateContext
from conversations.replies import language_of, settle_button
from conversations.staff import staff_only


def _when(context: CocreateContext, at: datetime, lang: str) -> str:
    local = at.astimezone(context.settings.tz)
    return long_datetime(local, lang)


async def list_upcoming(update: Update, context: CocreateContext) -> None:
    """Lists what will go out, soonest first."""
    lang = await language_of(update, context)
    rounds = await context.store.questions.upcoming()
    broadcasts = await context.store.broadcasts.scheduled()
    if not rounds and not broadcasts:
        await steps.ask(update, context, lang, "staff.scheduled.none")
        return
    cancel = t(lang, "staff.cancel")
    for round_, question in rounds:
        text = t(
            lang,
            "staff.scheduled.question",
            question=question.text,
            when=_when(context, round_.due_at, lang),
            repeat=t(lang, f"staff.repeat.{question.repeat}"),
            audience=await audiences.describe(context, question.audience, lang),
        )
        button = InlineKeyboardButton(cancel, callback_data=f"sched:q:{question.id}")
        await replies.send(update, context, text, InlineKeyboardMarkup([[button]]))
    for broadcast in broadcasts:
        text = t(
            lang,
            "staff.scheduled.broadcast",
            text=broadcast.text,
            when=_when(context, broadcast.send_at, lang),
            audience=await audiences.describe(context, broadcast.audience, lang),
        )
        button = InlineKeyboardButton(cancel, callback_data=f"sched:b:{broadcast.id}")
        await replies.send(update, context, text, InlineKeyboardMarkup([[button]]))


async def on_cancel(update: Update, context: CocreateContext) -> None:
    """Asks before cancelling an upcoming question (every round not sent yet) or broadcast;
    cancels it on Yes."""
    query = update.callback_query
    user = update.effective_user
    assert query is not None and user is not None
    await settle_button(update)
    lang = await language_of(update, context)
    _, kind, ident, answer = [*(query.data or "").split(":"), "", "", "", ""][:4]
    found = number(ident)
    if found is None or kind not in {"q", "b"}:
        await steps.ask(update, context, lang, "staff.scheduled.gone")
        return
    if answer == "":
        buttons = [
            InlineKeyboardButton(
                t(lang, f"staff.scheduled.{a}"), callback_data=f"sched:{kind}:{found}:{a}"
            )
            for a in ("yes", "no")
        ]
        await replies.send(
            update, context, t(lang, "staff.scheduled.cancel_ask"), InlineKeyboardMarkup([buttons])
        )
        return
    if answer != "yes":
        await steps.ask(update, context, lang, "staff.scheduled.kept")
        return
    if kind == "q":
        done = await context.store.questions.cancel(found)
    else:
        done = await context.store.broadcasts.cancel(found)
    if done:
        what = "question" if kind == "q" else "broadcast"
        await context.store.audit.add(f"telegram:{user.id}", f"{what}_cancelled", id=found)
    await steps.ask(
        update, context, lang, "staff.scheduled.cancelled" if done else "staff.scheduled.gone"
    )


def build_handlers() -> list[BaseHandler[Update, CocreateContext, object]]:
    """/scheduled and its Cancel buttons; facilitators only."""
    return [
        CommandHandler("scheduled", staff_only(list_upcoming), filters=filters.UpdateType.MESSAGE),
        CallbackQueryHandler(staff_only(on_cancel), pattern=r"^sched:"),
    ]

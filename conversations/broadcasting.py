"""/broadcast: a facilitator sends an update to an audience — above all "you said, we did".

It can go to everyone, a project, members tagged with a word, or everyone who answered a
question; now or at a date and time. A staff flow ("broadcast", conversations/steps.py); the
draft lives in the session's data["broadcast"]. Buttons carry `bc:<state>:<choice>`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from telegram import Update

from bot.catalogue import t
from conversations import audiences, replies, steps
from conversations.choices import Option
from conversations.context import CocreateContext

DRAFT: Final = "broadcast"
MAX_TEXT = 3000


class State(IntEnum):
    TEXT = 1
    AUDIENCE = 2
    PROJECT = 3
    TAG = 4
    QUESTION = 5
    WHEN = 6
    AT = 7
    PREVIEW = 8


AUDIENCES = [audiences.EVERYONE, audiences.PROJECT, audiences.TAG, audiences.ANSWERED]
WHENS = [Option("now", "staff.when.now"), Option("once", "staff.when.once")]
PREVIEW = [Option("send", "staff.send"), Option("cancel", "staff.cancel")]
NOBODY = [Option("audience", "staff.broadcast.change_audience"), Option("cancel", "staff.cancel")]

FLOW = steps.StaffFlow(DRAFT, State, buttons="bc", cancelled="staff.ask.cancelled")
ask, draft, build_handler = FLOW.ask, FLOW.draft, FLOW.build_handler


async def nobody(context: CocreateContext) -> bool:
    """Whether nobody could get it now."""
    return not await audiences.size(context, str(draft(context).get("audience", "everyone")))


def as_sent(text: str, language: str) -> str:
    """The broadcast as a member in this language gets it (as bot/scheduler.py sends it)."""
    return f"{t(language, 'broadcast.header')}\n\n{text}"


async def preview(update: Update, context: CocreateContext, lang: str) -> None:
    """Shows the message as members will see it, then Send / Cancel (or, when nobody could
    get it, Choose who gets it / Cancel). When some get it by SMS: how many SMS each of them
    gets, and the total."""
    text = str(draft(context).get("text", ""))
    audience = str(draft(context).get("audience", "everyone"))
    await replies.send(update, context, t(lang, "staff.ask.preview_intro"))
    await replies.send(update, context, as_sent(text, lang))
    cost = await audiences.sms_cost(context, audience, lambda lg: (as_sent(text, lg), None), lang)
    if cost is not None:
        await replies.send(update, context, cost)
    if await nobody(context):
        described = await audiences.describe(context, audience, lang)
        prefix = FLOW.prefix(State.PREVIEW)
        key = "staff.broadcast.nobody"
        await steps.ask(update, context, lang, key, NOBODY, prefix, audience=described)
        return
    await FLOW.summary(update, context, lang, State.PREVIEW, "staff.broadcast.summary", PREVIEW)


async def preview_options(context: CocreateContext) -> list[Option]:
    """The preview's buttons: Send / Cancel, or Choose who gets it / Cancel."""
    return NOBODY if await nobody(context) else PREVIEW


FLOW.text(State.TEXT, "staff.broadcast.text", MAX_TEXT, then=State.AUDIENCE)
FLOW.audience(
    State.AUDIENCE,
    AUDIENCES,
    project=State.PROJECT,
    tag=State.TAG,
    question=State.QUESTION,
    then=State.WHEN,
)
FLOW.when(
    State.WHEN, "staff.broadcast.when", WHENS, at=State.AT, then=State.PREVIEW, field="send_at"
)


@FLOW.choice(State.PREVIEW, preview, preview_options)
async def on_preview(update: Update, context: CocreateContext, chosen: Option, lang: str) -> int:
    """Sends it (now or at its time), chooses who gets it again, or cancels."""
    if chosen.key == "cancel":
        return await FLOW.cancel(update, context)
    if chosen.key == "audience":
        return await ask(update, context, State.AUDIENCE)
    d = context.data.pop(DRAFT, {})
    context.session.end()  # done: before anything is sent (see machine.py)
    made = FLOW.authored(update, d, lang)
    broadcast = await context.store.broadcasts.create(**made, send_at=FLOW.first_time(context, d))
    actor = f"telegram:{made['author_id']}"
    await context.store.audit.add(actor, "broadcast_created", broadcast=broadcast.id)
    return await FLOW.stored(update, context, lang, d, "staff.broadcast.sending")

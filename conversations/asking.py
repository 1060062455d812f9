"""/ask: a facilitator writes a question, picks its kind, who gets it, when, and a reminder;
sees it exactly as members will, then Send / Change / Cancel.

A staff flow ("ask", conversations/steps.py); the draft lives in the session's data["ask"],
saved with every update. Buttons carry `ask:<state>:<choice>`. States: `State`.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from functools import partial
from typing import Any, Final

from telegram import Update

from bot.catalogue import t, tn
from conversations import audiences, replies, steps
from conversations.choices import Option, number
from conversations.context import CocreateContext
from conversations.prompts import render
from storage.questions import Question
from storage.times import from_db

DRAFT: Final = "ask"
MAX_TEXT = 1000
MAX_OPTION = 60


class State(IntEnum):
    TEXT = 1
    KIND = 2
    OPTIONS = 3
    AUDIENCE = 4
    PROJECT = 5
    TAG = 6
    WHEN = 7
    AT = 8
    REMINDER = 9
    PREVIEW = 10
    CHANGE = 11


KINDS = [
    Option("open", "staff.kind.open"),
    Option("choice", "staff.kind.choice"),
    Option("scale", "staff.kind.scale"),
    Option("yesno", "staff.kind.yesno"),
]
AUDIENCES = [audiences.EVERYONE, audiences.PROJECT, audiences.TAG]
WHENS = [
    Option("now", "staff.when.now"),
    Option("once", "staff.when.once"),
    Option("daily", "staff.when.daily"),
    Option("weekly", "staff.when.weekly"),
]
REMINDERS = [
    Option("none", "staff.reminder.none"),
    Option("24", "staff.reminder.24"),
    Option("48", "staff.reminder.48"),
]
PREVIEW = [
    Option("send", "staff.send"),
    Option("change", "staff.change"),
    Option("cancel", "staff.cancel"),
]
CHANGES = [
    Option("text", "staff.change.text"),
    Option("kind", "staff.change.kind"),
    Option("audience", "staff.change.audience"),
    Option("when", "staff.change.when"),
    Option("reminder", "staff.change.reminder"),
]

# After CHANGE, each part goes back to the preview rather than on.
FLOW = steps.StaffFlow(
    DRAFT, State, buttons="ask", cancelled="staff.ask.cancelled", back_to=State.PREVIEW
)
ask, draft, build_handler = FLOW.ask, FLOW.draft, FLOW.build_handler


def as_question(update: Update, d: dict[str, Any], lang: str, now: datetime) -> Question:
    """The draft as a Question, for the preview."""
    user_id = update.effective_user.id if update.effective_user else 0
    return Question(
        id=0,
        author_id=user_id,
        author_chat_id=user_id,
        author_language=lang,
        text=str(d.get("text", "")),
        kind=str(d.get("kind", "open")),
        options=tuple(d.get("options", [])),
        audience=str(d.get("audience", "everyone")),
        repeat=str(d.get("repeat", "once")),
        starts_at=from_db(str(d["starts_at"])) if d.get("starts_at") else now,
        reminder_hours=d.get("reminder"),
        status="draft",
        created_at=now,
    )


def sent(question: Question, language: str) -> tuple[str, dict[str, Any]]:
    """The question as a member in this language gets it: its text and buttons."""
    text, markup = render(question, 0, language)
    return text, markup.to_dict()


async def preview(update: Update, context: CocreateContext, lang: str) -> None:
    """Shows the question exactly as members will see it, then Send / Change / Cancel."""
    d = draft(context)
    question = as_question(update, d, lang, context.clock.now())
    text, markup = render(question, 0, lang)
    await replies.send(update, context, t(lang, "staff.ask.preview_intro"))
    await replies.send(update, context, text, markup)
    cost = await audiences.sms_cost(context, question.audience, partial(sent, question), lang)
    if cost is not None:  # some get it by SMS: how many SMS each, and the total
        await replies.send(update, context, cost)
    reminder = (
        tn(lang, "staff.reminder.after.hours", int(d["reminder"]), hours=d["reminder"])
        if d.get("reminder")
        else t(lang, "staff.reminder.none")
    )
    await FLOW.summary(
        update, context, lang, State.PREVIEW, "staff.ask.summary", PREVIEW, reminder=reminder
    )


FLOW.text(State.TEXT, "staff.ask.text", MAX_TEXT, then=State.KIND)


@FLOW.choice(State.KIND, "staff.ask.kind", KINDS)
async def on_kind(update: Update, context: CocreateContext, kind: Option, lang: str) -> int:
    """Stores the kind of answer wanted."""
    d = draft(context)
    d["kind"] = kind.key
    if kind.key == "choice":
        return await ask(update, context, State.OPTIONS)
    d.pop("options", None)
    return await FLOW.after(update, context, State.AUDIENCE)


@FLOW.step(State.OPTIONS, "staff.ask.options")
async def on_options(update: Update, context: CocreateContext, got: steps.Answer, lang: str) -> int:
    """Stores the choices, one a line."""
    lines = list(dict.fromkeys(x.strip() for x in (got.text or "").splitlines() if x.strip()))
    if not 2 <= len(lines) <= 8 or any(len(x) > MAX_OPTION for x in lines):
        bad = tn(lang, "staff.ask.options_bad.letters", MAX_OPTION, max=MAX_OPTION)
        await replies.send(update, context, bad)
        return State.OPTIONS
    draft(context)["options"] = lines
    return await FLOW.after(update, context, State.AUDIENCE)


FLOW.audience(State.AUDIENCE, AUDIENCES, project=State.PROJECT, tag=State.TAG, then=State.WHEN)
FLOW.when(State.WHEN, "staff.ask.when", WHENS, at=State.AT, then=State.REMINDER, field="starts_at")


@FLOW.step(State.REMINDER, "staff.ask.reminder", REMINDERS)
async def on_reminder(
    update: Update, context: CocreateContext, got: steps.Answer, lang: str
) -> int:
    """Stores the reminder: none, or after a number of hours."""
    typed = number(got.text or "")
    if got.option is not None:
        hours = None if got.option.key == "none" else int(got.option.key)
    elif typed is not None and 1 <= typed <= 168:
        hours = typed
    else:
        return await FLOW.bad(update, context, State.REMINDER, lang)
    draft(context)["reminder"] = hours
    return await ask(update, context, State.PREVIEW)


@FLOW.choice(State.PREVIEW, preview, PREVIEW)
async def on_preview(update: Update, context: CocreateContext, chosen: Option, lang: str) -> int:
    """Send, Change or Cancel."""
    if chosen.key == "change":
        draft(context)["changing"] = True
        return await ask(update, context, State.CHANGE)
    if chosen.key == "cancel":
        return await FLOW.cancel(update, context)
    return await send(update, context, lang)


@FLOW.choice(State.CHANGE, "staff.ask.change", CHANGES)
async def on_change(update: Update, context: CocreateContext, part: Option, lang: str) -> int:
    """Goes to the part to change."""
    target = {
        "text": State.TEXT,
        "kind": State.KIND,
        "audience": State.AUDIENCE,
        "when": State.WHEN,
        "reminder": State.REMINDER,
    }[part.key]
    return await ask(update, context, target)


async def send(update: Update, context: CocreateContext, lang: str) -> int:
    """Stores the question; the scheduler sends it now or at its time."""
    d = context.data.pop(DRAFT, {})
    context.session.end()  # done: before anything is sent (see machine.py)
    made = FLOW.authored(update, d, lang)
    repeat = str(d.get("repeat", "now"))
    question = await context.store.questions.create(
        **made,
        kind=str(d.get("kind", "open")),
        options=list(d.get("options", [])),
        repeat="once" if repeat == "now" else repeat,
        starts_at=FLOW.first_time(context, d),
        reminder_hours=d.get("reminder"),
    )
    actor = f"telegram:{made['author_id']}"
    await context.store.audit.add(actor, "question_created", question=question.id)
    return await FLOW.stored(update, context, lang, d, "staff.ask.sending")

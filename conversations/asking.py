"""/ask: a facilitator writes a question, picks its kind, who gets it, when, and a reminder;
sees it exactly as members will, then Send / Change / Cancel.

A flow ("ask", conversations/machine.py); the draft lives in the session's data["ask"], saved
with every update. Buttons carry `ask:<state>:<choice>`. States: `State`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from enum import IntEnum
from typing import Any, Final

from telegram import Update

from bot.catalogue import long_datetime, t, tn
from conversations import audiences, steps
from conversations.choices import Option, number
from conversations.context import CocreateContext
from conversations.machine import END, FlowHandler
from conversations.prompts import render
from conversations.replies import language_of
from conversations.when import (
    next_daily,
    next_weekly,
    parse_at,
    parse_time,
    parse_weekly,
    quiet_until,
)
from storage.questions import Question
from storage.times import from_db, to_db

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
Reply = Coroutine[Any, Any, int]


def prefix(state: State) -> str:
    return f"ask:{state.value}"


def draft(context: CocreateContext) -> dict[str, Any]:
    """The question being written."""
    found = context.data.setdefault(DRAFT, {})
    assert isinstance(found, dict)
    return found


async def ask(update: Update, context: CocreateContext, state: State) -> int:
    """Asks the question of a step and waits there."""
    context.session.go("ask", state.name)  # before anything is sent (see machine.py)
    lang = await language_of(update, context)
    d = draft(context)
    if state is State.TEXT:
        await steps.ask(update, context, lang, "staff.ask.text")
    elif state is State.KIND:
        await steps.ask(update, context, lang, "staff.ask.kind", KINDS, prefix(state))
    elif state is State.OPTIONS:
        await steps.ask(update, context, lang, "staff.ask.options")
    elif state is State.AUDIENCE:
        await steps.ask(update, context, lang, "staff.ask.audience", AUDIENCES, prefix(state))
    elif state is State.PROJECT:
        projects = await audiences.project_options(context)
        await steps.ask(update, context, lang, "staff.ask.project", projects, prefix(state))
    elif state is State.TAG:
        await steps.ask(update, context, lang, "staff.ask.tag")
    elif state is State.WHEN:
        await steps.ask(update, context, lang, "staff.ask.when", WHENS, prefix(state))
    elif state is State.AT:
        await steps.ask(update, context, lang, f"staff.ask.at.{d.get('repeat', 'once')}")
    elif state is State.REMINDER:
        await steps.ask(update, context, lang, "staff.ask.reminder", REMINDERS, prefix(state))
    elif state is State.CHANGE:
        await steps.ask(update, context, lang, "staff.ask.change", CHANGES, prefix(state))
    else:
        await preview(update, context, lang)
    return state


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


def when_text(context: CocreateContext, d: dict[str, Any], lang: str) -> str:
    """When the question goes out, in words (quiet hours hold it: say until when)."""
    tz = context.settings.tz
    if d.get("repeat") == "now" or not d.get("starts_at"):
        held = quiet_until(context.clock.now(), context.settings)
        if held is not None:
            return t(lang, "staff.when.held_now", until=long_datetime(held, lang))
        return t(lang, "staff.when.is_now")
    start = from_db(str(d["starts_at"])).astimezone(tz)
    formatted = long_datetime(start, lang)
    repeat = d.get("repeat", "once")
    held = quiet_until(start, context.settings)
    if held is None:
        return t(lang, f"staff.when.is_{repeat}", when=formatted)
    if repeat == "once":
        return t(lang, "staff.when.held_once", when=formatted, until=long_datetime(held, lang))
    until = t(lang, "staff.when.held_repeat", until=held.strftime("%H:%M"))
    return f"{t(lang, f'staff.when.is_{repeat}', when=formatted)} {until}"


async def preview(update: Update, context: CocreateContext, lang: str) -> None:
    """Shows the question exactly as members will see it, then Send / Change / Cancel."""
    d = draft(context)
    question = as_question(update, d, lang, context.clock.now())
    text, markup = render(question, 0, lang)
    await steps.send(update, context, t(lang, "staff.ask.preview_intro"))
    await steps.send(update, context, text, markup)
    reminder = (
        tn(lang, "staff.reminder.after.hours", int(d["reminder"]), hours=d["reminder"])
        if d.get("reminder")
        else t(lang, "staff.reminder.none")
    )
    await steps.ask(
        update,
        context,
        lang,
        "staff.ask.summary",
        PREVIEW,
        prefix(State.PREVIEW),
        audience=await audiences.describe(context, str(d.get("audience", "everyone")), lang),
        count=await audiences.size(context, str(d.get("audience", "everyone"))),
        when=when_text(context, d, lang),
        reminder=reminder,
    )


async def after(update: Update, context: CocreateContext, state: State) -> int:
    """Goes to the next step, or back to the preview when changing one part."""
    if draft(context).get("changing"):
        return await ask(update, context, State.PREVIEW)
    return await ask(update, context, state)


async def start(update: Update, context: CocreateContext) -> int:
    """Starts a new question."""
    context.data[DRAFT] = {}
    return await ask(update, context, State.TEXT)


async def on_text(update: Update, context: CocreateContext) -> int:
    """Stores the question's words."""
    lang = await language_of(update, context)
    got = await steps.read(update, "", [], lang)
    if not got.text or len(got.text) > MAX_TEXT:
        await steps.send(
            update,
            context,
            tn(lang, "staff.ask.text_bad.letters", MAX_TEXT, max=MAX_TEXT),
        )
        return State.TEXT
    draft(context)["text"] = got.text
    return await after(update, context, State.KIND)


async def on_kind(update: Update, context: CocreateContext) -> int:
    """Stores the kind of answer wanted."""
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.KIND), KINDS, lang)
    if got.option is None:
        return await bad(update, context, State.KIND, lang)
    d = draft(context)
    d["kind"] = got.option.key
    if got.option.key == "choice":
        return await ask(update, context, State.OPTIONS)
    d.pop("options", None)
    return await after(update, context, State.AUDIENCE)


async def on_options(update: Update, context: CocreateContext) -> int:
    """Stores the choices, one a line."""
    lang = await language_of(update, context)
    got = await steps.read(update, "", [], lang)
    lines = list(dict.fromkeys(x.strip() for x in (got.text or "").splitlines() if x.strip()))
    if not 2 <= len(lines) <= 8 or any(len(x) > MAX_OPTION for x in lines):
        await steps.send(
            update,
            context,
            tn(lang, "staff.ask.options_bad.letters", MAX_OPTION, max=MAX_OPTION),
        )
        return State.OPTIONS
    draft(context)["options"] = lines
    return await after(update, context, State.AUDIENCE)


async def on_audience(update: Update, context: CocreateContext) -> int:
    """Stores who gets it (asking which project or word where needed)."""
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.AUDIENCE), AUDIENCES, lang)
    if got.option is None:
        return await bad(update, context, State.AUDIENCE, lang)
    if got.option.key == "project":
        if not await audiences.project_options(context):
            await steps.ask(update, context, lang, "staff.ask.no_projects")
            return await ask(update, context, State.AUDIENCE)
        return await ask(update, context, State.PROJECT)
    if got.option.key == "tag":
        return await ask(update, context, State.TAG)
    draft(context)["audience"] = "everyone"
    return await after(update, context, State.WHEN)


async def on_project(update: Update, context: CocreateContext) -> int:
    """Stores the project."""
    lang = await language_of(update, context)
    options = await audiences.project_options(context)
    got = await steps.read(update, prefix(State.PROJECT), options, lang)
    if got.option is None:
        return await bad(update, context, State.PROJECT, lang)
    draft(context)["audience"] = f"project:{got.option.key}"
    return await after(update, context, State.WHEN)


async def on_tag(update: Update, context: CocreateContext) -> int:
    """Stores the word members are tagged with."""
    lang = await language_of(update, context)
    got = await steps.read(update, "", [], lang)
    if not got.text or len(got.text) > audiences.MAX_TAG:
        return await bad(update, context, State.TAG, lang)
    draft(context)["audience"] = f"tag:{got.text}"
    return await after(update, context, State.WHEN)


async def on_when(update: Update, context: CocreateContext) -> int:
    """Stores now, once, daily or weekly."""
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.WHEN), WHENS, lang)
    if got.option is None:
        return await bad(update, context, State.WHEN, lang)
    d = draft(context)
    d["repeat"] = got.option.key
    if got.option.key == "now":
        d.pop("starts_at", None)
        return await after(update, context, State.REMINDER)
    d.pop("changing_when", None)
    return await ask(update, context, State.AT)


async def on_at(update: Update, context: CocreateContext) -> int:
    """Reads the date and time (or the time, or the day and time)."""
    lang = await language_of(update, context)
    got = await steps.read(update, "", [], lang)
    d = draft(context)
    now, tz = context.clock.now(), context.settings.tz
    text = got.text or ""
    repeat = d.get("repeat", "once")
    when: datetime | None = None
    if repeat == "once":
        when = parse_at(text, now, tz)
        if when is not None and when <= now:
            await steps.ask(update, context, lang, "staff.ask.at_past")
            return State.AT
    elif repeat == "daily":
        at = parse_time(text)
        when = next_daily(now, at, tz) if at else None
    else:
        weekly = parse_weekly(text)
        when = next_weekly(now, weekly[0], weekly[1], tz) if weekly else None
    if when is None:
        return await bad(update, context, State.AT, lang)
    d["starts_at"] = to_db(when)
    return await after(update, context, State.REMINDER)


async def on_reminder(update: Update, context: CocreateContext) -> int:
    """Stores the reminder: none, or after a number of hours."""
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.REMINDER), REMINDERS, lang)
    typed = number(got.text or "")
    if got.option is not None:
        hours = None if got.option.key == "none" else int(got.option.key)
    elif typed is not None and 1 <= typed <= 168:
        hours = typed
    else:
        return await bad(update, context, State.REMINDER, lang)
    draft(context)["reminder"] = hours
    return await ask(update, context, State.PREVIEW)


async def on_preview(update: Update, context: CocreateContext) -> int:
    """Send, Change or Cancel."""
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.PREVIEW), PREVIEW, lang)
    if got.option is None:
        return await bad(update, context, State.PREVIEW, lang)
    if got.option.key == "change":
        draft(context)["changing"] = True
        return await ask(update, context, State.CHANGE)
    if got.option.key == "cancel":
        return await cancel(update, context)
    return await send(update, context, lang)


async def on_change(update: Update, context: CocreateContext) -> int:
    """Goes to the part to change."""
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.CHANGE), CHANGES, lang)
    if got.option is None:
        return await bad(update, context, State.CHANGE, lang)
    target = {
        "text": State.TEXT,
        "kind": State.KIND,
        "audience": State.AUDIENCE,
        "when": State.WHEN,
        "reminder": State.REMINDER,
    }[got.option.key]
    return await ask(update, context, target)


async def send(update: Update, context: CocreateContext, lang: str) -> int:
    """Stores the question; the scheduler sends it now or at its time."""
    d = context.data.pop(DRAFT, {})
    context.session.end()  # done: before anything is sent (see machine.py)
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    now = context.clock.now()
    repeat = str(d.get("repeat", "now"))
    starts_at = from_db(str(d["starts_at"])) if d.get("starts_at") else now
    question = await context.store.questions.create(
        author_id=user.id,
        author_chat_id=user.id,
        author_language=lang,
        text=str(d.get("text", "")),
        kind=str(d.get("kind", "open")),
        options=list(d.get("options", [])),
        audience=str(d.get("audience", "everyone")),
        repeat="once" if repeat == "now" else repeat,
        starts_at=starts_at,
        reminder_hours=d.get("reminder"),
    )
    await context.store.audit.add(f"telegram:{user.id}", "question_created", question=question.id)
    key = "staff.ask.sending" if repeat == "now" else "staff.ask.scheduled"
    if repeat == "now" and (held := quiet_until(now, context.settings)) is not None:
        await steps.ask(update, context, lang, "staff.ask.held", until=long_datetime(held, lang))
    else:
        await steps.ask(update, context, lang, key, when=when_text(context, d, lang))
    await context.scheduler.run_due()
    return END


async def cancel(update: Update, context: CocreateContext) -> int:
    """Drops the draft; nothing is sent."""
    return await steps.give_up(update, context, DRAFT, "staff.ask.cancelled")


async def bad(update: Update, context: CocreateContext, state: State, lang: str) -> int:
    """Says the answer was not understood and asks again."""
    await steps.ask(update, context, lang, "staff.not_understood")
    return await ask(update, context, state)


HANDLERS: dict[State, Callable[[Update, CocreateContext], Reply]] = {
    State.TEXT: on_text,
    State.KIND: on_kind,
    State.OPTIONS: on_options,
    State.AUDIENCE: on_audience,
    State.PROJECT: on_project,
    State.TAG: on_tag,
    State.WHEN: on_when,
    State.AT: on_at,
    State.REMINDER: on_reminder,
    State.PREVIEW: on_preview,
    State.CHANGE: on_change,
}


def build_handler() -> FlowHandler:
    """The /ask conversation, persisted under the name "ask"; facilitators only."""
    return steps.staff_conversation(
        command="ask",
        button_prefix="ask",
        start=start,
        states=HANDLERS,
        cancel=cancel,
    )

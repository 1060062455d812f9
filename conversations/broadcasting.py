"""/broadcast: a facilitator sends an update to an audience — above all "you said, we did".

It can go to everyone, a project, members tagged with a word, or everyone who answered a
question; now or at a date and time. A flow ("broadcast"); the
draft lives in the session's data["broadcast"]. Buttons carry `bc:<state>:<choice>`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from enum import IntEnum
from typing import Any, Final

from telegram import Update

from bot.catalogue import long_datetime, t, tn
from conversations import audiences, steps
from conversations.choices import Option
from conversations.context import CocreateContext
from conversations.machine import END, FlowHandler
from conversations.replies import language_of
from conversations.when import parse_at, quiet_until
from storage.times import from_db, to_db

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
Reply = Coroutine[Any, Any, int]


def prefix(state: State) -> str:
    return f"bc:{state.value}"


def draft(context: CocreateContext) -> dict[str, Any]:
    found = context.data.setdefault(DRAFT, {})
    assert isinstance(found, dict)
    return found


async def ask(update: Update, context: CocreateContext, state: State) -> int:
    """Asks the question of a step and waits there."""
    context.session.go("broadcast", state.name)  # before anything is sent (see machine.py)
    lang = await language_of(update, context)
    if state is State.TEXT:
        await steps.ask(update, context, lang, "staff.broadcast.text")
    elif state is State.AUDIENCE:
        await steps.ask(update, context, lang, "staff.ask.audience", AUDIENCES, prefix(state))
    elif state is State.PROJECT:
        options = await audiences.project_options(context)
        await steps.ask(update, context, lang, "staff.ask.project", options, prefix(state))
    elif state is State.TAG:
        await steps.ask(update, context, lang, "staff.ask.tag")
    elif state is State.QUESTION:
        options = await audiences.question_options(context)
        await steps.ask(update, context, lang, "staff.broadcast.question", options, prefix(state))
    elif state is State.WHEN:
        await steps.ask(update, context, lang, "staff.broadcast.when", WHENS, prefix(state))
    elif state is State.AT:
        await steps.ask(update, context, lang, "staff.ask.at.once")
    else:
        await preview(update, context, lang)
    return state


def when_text(context: CocreateContext, d: dict[str, Any], lang: str) -> str:
    """When it goes out, in words (quiet hours hold it: say until when)."""
    at = from_db(str(d["send_at"])).astimezone(context.settings.tz) if d.get("send_at") else None
    held = quiet_until(at or context.clock.now(), context.settings)
    if held is not None and at is None:
        return t(lang, "staff.when.held_now", until=long_datetime(held, lang))
    if at is None:
        return t(lang, "staff.when.is_now")
    if held is not None:
        when = long_datetime(at, lang)
        return t(lang, "staff.when.held_once", when=when, until=long_datetime(held, lang))
    return t(lang, "staff.when.is_once", when=long_datetime(at, lang))


async def preview(update: Update, context: CocreateContext, lang: str) -> None:
    """Shows the message as members will see it, then Send / Cancel (or, when nobody could
    get it, Choose who gets it / Cancel)."""
    d = draft(context)
    await steps.send(update, context, t(lang, "staff.ask.preview_intro"))
    await steps.send(update, context, f"{t(lang, 'broadcast.header')}\n\n{d.get('text', '')}")
    audience = str(d.get("audience", "everyone"))
    if not await audiences.size(context, audience):
        await steps.ask(
            update,
            context,
            lang,
            "staff.broadcast.nobody",
            NOBODY,
            prefix(State.PREVIEW),
            audience=await audiences.describe(context, audience, lang),
        )
        return
    await steps.ask(
        update,
        context,
        lang,
        "staff.broadcast.summary",
        PREVIEW,
        prefix(State.PREVIEW),
        audience=await audiences.describe(context, audience, lang),
        count=await audiences.size(context, audience),
        when=when_text(context, d, lang),
    )


async def start(update: Update, context: CocreateContext) -> int:
    """Starts a new broadcast."""
    context.data[DRAFT] = {}
    return await ask(update, context, State.TEXT)


async def on_text(update: Update, context: CocreateContext) -> int:
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
    return await ask(update, context, State.AUDIENCE)


async def on_audience(update: Update, context: CocreateContext) -> int:
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
    if got.option.key == "answered":
        if not await audiences.question_options(context):
            await steps.ask(update, context, lang, "staff.responses.none")
            return await ask(update, context, State.AUDIENCE)
        return await ask(update, context, State.QUESTION)
    draft(context)["audience"] = "everyone"
    return await ask(update, context, State.WHEN)


async def on_project(update: Update, context: CocreateContext) -> int:
    lang = await language_of(update, context)
    got = await steps.read(
        update, prefix(State.PROJECT), await audiences.project_options(context), lang
    )
    if got.option is None:
        return await bad(update, context, State.PROJECT, lang)
    draft(context)["audience"] = f"project:{got.option.key}"
    return await ask(update, context, State.WHEN)


async def on_tag(update: Update, context: CocreateContext) -> int:
    lang = await language_of(update, context)
    got = await steps.read(update, "", [], lang)
    if not got.text or len(got.text) > audiences.MAX_TAG:
        return await bad(update, context, State.TAG, lang)
    draft(context)["audience"] = f"tag:{got.text}"
    return await ask(update, context, State.WHEN)


async def on_question(update: Update, context: CocreateContext) -> int:
    lang = await language_of(update, context)
    options = await audiences.question_options(context)
    got = await steps.read(update, prefix(State.QUESTION), options, lang)
    if got.option is None:
        return await bad(update, context, State.QUESTION, lang)
    draft(context)["audience"] = f"answered:{got.option.key}"
    return await ask(update, context, State.WHEN)


async def on_when(update: Update, context: CocreateContext) -> int:
    lang = await language_of(update, context)
    got = await steps.read(update, prefix(State.WHEN), WHENS, lang)
    if got.option is None:
        return await bad(update, context, State.WHEN, lang)
    if got.option.key == "once":
        return await ask(update, context, State.AT)
    draft(context).pop("send_at", None)
    return await ask(update, context, State.PREVIEW)


async def on_at(update: Update, context: CocreateContext) -> int:
    lang = await language_of(update, context)
    got = await steps.read(update, "", [], lang)
    now = context.clock.now()
    when = parse_at(got.text or "", now, context.settings.tz)
    if when is None:
        return await bad(update, context, State.AT, lang)
    if when <= now:
        await steps.ask(update, context, lang, "staff.ask.at_past")
        return State.AT
    draft(context)["send_at"] = to_db(when)
    return await ask(update, context, State.PREVIEW)


async def on_preview(update: Update, context: CocreateContext) -> int:
    lang = await language_of(update, context)
    nobody = not await audiences.size(context, str(draft(context).get("audience", "everyone")))
    got = await steps.read(update, prefix(State.PREVIEW), NOBODY if nobody else PREVIEW, lang)
    if got.option is None:
        return await bad(update, context, State.PREVIEW, lang)
    if got.option.key == "cancel":
        return await cancel(update, context)
    if got.option.key == "audience":
        return await ask(update, context, State.AUDIENCE)
    d = context.data.pop(DRAFT, {})
    context.session.end()  # done: before anything is sent (see machine.py)
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    send_at = from_db(str(d["send_at"])) if d.get("send_at") else context.clock.now()
    broadcast = await context.store.broadcasts.create(
        author_id=user.id,
        author_chat_id=user.id,
        author_language=lang,
        text=str(d.get("text", "")),
        audience=str(d.get("audience", "everyone")),
        send_at=send_at,
    )
    await context.store.audit.add(
        f"telegram:{user.id}", "broadcast_created", broadcast=broadcast.id
    )
    held = quiet_until(context.clock.now(), context.settings)
    if not d.get("send_at") and held is not None:
        await steps.ask(update, context, lang, "staff.ask.held", until=long_datetime(held, lang))
    else:
        key = "staff.broadcast.sending" if not d.get("send_at") else "staff.ask.scheduled"
        await steps.ask(update, context, lang, key, when=when_text(context, d, lang))
    await context.scheduler.run_due()
    return END


async def cancel(update: Update, context: CocreateContext) -> int:
    """Drops the draft; nothing is sent."""
    return await steps.give_up(update, context, DRAFT, "staff.ask.cancelled")


async def bad(update: Update, context: CocreateContext, state: State, lang: str) -> int:
    await steps.ask(update, context, lang, "staff.not_understood")
    return await ask(update, context, state)


HANDLERS: dict[State, Callable[[Update, CocreateContext], Reply]] = {
    State.TEXT: on_text,
    State.AUDIENCE: on_audience,
    State.PROJECT: on_project,
    State.TAG: on_tag,
    State.QUESTION: on_question,
    State.WHEN: on_when,
    State.AT: on_at,
    State.PREVIEW: on_preview,
}


def build_handler() -> FlowHandler:
    """The /broadcast conversation, persisted under the name "broadcast"; facilitators only."""
    return steps.staff_conversation(
        command="broadcast",
        button_prefix="bc",
        start=start,
        states=HANDLERS,
        cancel=cancel,
    )

"""Joining: greeting and language, consent, named or anonymous, "about you", then the menu.

Entry: /start [project-code]. States are `State`; each step's answers are written to the
database as they are given, and the step is kept in the person's session (conversations/
machine.py), saved with them, so a member killed half-way resumes at the same step. Before
consent nothing is kept but the language picked and a pending project code, in the session,
which "Not now" drops. See onboarding.mmd for the diagram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from enum import IntEnum
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.catalogue import t
from conversations import language, my_data, roles
from conversations.choices import Option, from_callback, keyboard, match
from conversations.context import CocreateContext
from conversations.machine import END, FlowHandler
from conversations.replies import (
    current_member,
    guess_language,
    language_of,
    menu_button,
    say,
    send,
    send_menu,
    settle_button,
    typed_command,
)
from storage.models import AGE_BANDS, PREFER_NOT_TO_SAY, Member

logger = logging.getLogger(__name__)

# Bump when the meaning of consent.text changes: receipts record which version was agreed.
CONSENT_VERSION = "2026-11-30"
AGREED_TO = ("keep_what_i_share", "project_team_can_read", "keep_until_project_ends")
MAX_TYPED_ANSWER = 80
NAME = "onboarding"


class State(IntEnum):
    LANGUAGE = 1
    CONSENT = 2
    NAMING = 3
    AGE = 4
    AREA = 5
    EXTRA = 6


PREFER_NOT = Option(PREFER_NOT_TO_SAY, "common.prefer_not")
SKIP = Option("skip", "common.skip")
LANGUAGE_OPTIONS = [Option("en", "language.en"), Option("cy", "language.cy")]
CONSENT_OPTIONS = [Option("agree", "consent.agree"), Option("not_now", "consent.not_now")]
NAMING_OPTIONS = [Option("anonymous", "naming.anonymous"), Option("named", "naming.named")]
AGE_OPTIONS = [Option(band, f"about.age.{band}") for band in AGE_BANDS] + [PREFER_NOT, SKIP]
# Where BACK goes from each step; consent cannot be undone by BACK (that is /delete).
PREVIOUS = {
    State.LANGUAGE: State.LANGUAGE,
    State.CONSENT: State.LANGUAGE,
    State.NAMING: State.NAMING,
    State.AGE: State.NAMING,
    State.AREA: State.AGE,
    State.EXTRA: State.AREA,
}

Reply = Coroutine[Any, Any, int]


def prefix(state: State) -> str:
    """The callback-data prefix of a step's buttons."""
    return f"onb:{state.value}"


def listed(labels: list[str], tag: str) -> list[Option]:
    """Options the organiser listed in settings, then "prefer not to say" and "skip"."""
    return [Option(f"{tag}{i}", label=label) for i, label in enumerate(labels)] + [PREFER_NOT, SKIP]


def options_for(state: State, context: CocreateContext) -> list[Option]:
    """The choices offered at a step."""
    settings = context.settings
    if state is State.LANGUAGE:
        return LANGUAGE_OPTIONS
    if state is State.CONSENT:
        return CONSENT_OPTIONS
    if state is State.NAMING:
        return NAMING_OPTIONS
    if state is State.AGE:
        return AGE_OPTIONS
    if state is State.AREA:
        return listed(settings.about_areas, "a")
    return listed(settings.about_extra_options, "x")


def takes_typed_answer(state: State, context: CocreateContext) -> bool:
    """Whether any typed words are an answer (no list was set for the step)."""
    if state is State.AREA:
        return not context.settings.about_areas
    if state is State.EXTRA:
        return not context.settings.about_extra_options
    return False


def prompt(state: State, context: CocreateContext, lang: str) -> str:
    """The question asked at a step."""
    if state is State.LANGUAGE:
        return f"{t('en', 'start.choose_language')}\n{t('cy', 'start.choose_language')}"
    if state is State.CONSENT:
        return t(lang, "consent.text")
    if state is State.NAMING:
        return t(lang, "naming.ask")
    if state is State.AGE:
        return t(lang, "about.age")
    if state is State.AREA:
        typed = takes_typed_answer(state, context)
        return t(lang, "about.area.typed" if typed else "about.area")
    question = context.settings.about_extra_question
    if takes_typed_answer(state, context):
        return f"{question}\n{t(lang, 'about.extra.typed')}"
    return question


def go(context: CocreateContext, state: State) -> State:
    """Moves the person to a step before anything is sent, so the step is saved with the
    effects that came before it (the door commits before every message)."""
    context.session.go(NAME, state.name)
    return state


async def ask(update: Update, context: CocreateContext, state: State) -> int:
    """Asks the question of a step and waits there."""
    go(context, state)
    lang = await language_of(update, context)
    markup = keyboard(options_for(state, context), lang, prefix(state))
    await send(update, context, prompt(state, context, lang), markup)
    return state


async def start(update: Update, context: CocreateContext) -> int:
    """Greets a newcomer and asks their language; shows a member the menu instead."""
    if (token := roles.invite_token(context.args)) is not None:  # a facilitator's invite
        await roles.redeem(update, context, token)
        return END
    member = await current_member(update, context)
    code = context.args[0] if context.args else None
    if member is not None:
        if code:
            await join_project(update, context, member, code)
        if member.onboarded:
            await send_menu(update, context, member)
            return END
        at = context.session.state if context.session.flow == NAME else None
        step = State[at] if at is not None and at in State.__members__ else State.NAMING
        return await ask(update, context, step)
    context.data.pop("project", None)
    context.data.pop("project_unknown", None)
    if code:
        project = await context.store.projects.by_code(code)
        if project:
            context.data["project"] = project.code
        else:
            context.data["project_unknown"] = True
    go(context, State.LANGUAGE)
    hello = f"{t('en', 'start.hello')}\n{t('cy', 'start.hello')}"
    await context.bot.send_message(update.effective_chat.id, hello)  # type: ignore[union-attr]
    return await ask(update, context, State.LANGUAGE)


async def join_project(update: Update, context: CocreateContext, member: Member, code: str) -> None:
    """Adds an existing member to the project a link named, and says so."""
    project = await context.store.projects.by_code(code)
    if project is None:
        await say(update, context, "project.unknown", language=member.language)
        return
    added = await context.store.members.join_project(member.id, project.id)
    key = "project.joined" if added else "project.already"
    await say(update, context, key, language=member.language, name=project.name)


async def answer(
    update: Update, context: CocreateContext, state: State, option: Option | None, text: str
) -> int:
    """Stores one step's answer and moves to the next step."""
    member = await current_member(update, context)
    if state is State.LANGUAGE:
        assert option is not None
        context.data["language"] = option.key
        back = context.data.pop("return_to", State.CONSENT.name)
        going = go(context, State[back] if back in State.__members__ else State.CONSENT)
        if member is not None:
            await context.store.members.set_language(member.id, option.key)
        await language.show_commands(update, context, option.key)
        if context.data.pop("project_unknown", False):
            await say(update, context, "project.unknown", language=option.key)
        return await ask(update, context, going)
    if state is State.CONSENT:
        assert option is not None
        if option.key == "not_now":
            return await decline(update, context)
        return await agree(update, context)
    if member is None:  # Consent was withdrawn meanwhile; start again.
        return await start(update, context)
    if state is State.NAMING:
        named = option is not None and option.key == "named"
        go(context, State.AGE)
        # (An SMS member has no first name to use: they stay anonymous.)
        first_name = update.effective_user.first_name if update.effective_user else None
        await context.store.members.set_display_name(member.id, (named and first_name) or None)
        if named and first_name:
            await say(update, context, "naming.named_ok", language=member.language, name=first_name)
        else:
            await say(update, context, "naming.anonymous_ok", language=member.language)
        await say(update, context, "about.intro", language=member.language)
        return await ask(update, context, State.AGE)
    field = {State.AGE: "age_band", State.AREA: "area", State.EXTRA: "extra"}[state]
    following = next_about(state, context)
    if following is None:
        context.session.end()
    else:
        go(context, following)
    if option is None:
        await context.store.about.answer(member.id, field, text.strip())
    elif option is not SKIP and option.key != SKIP.key:
        value = option.key if option.label is None else option.text(member.language)
        await context.store.about.answer(member.id, field, value)
    if following is None:
        return await finish(update, context)
    return await ask(update, context, following)


def next_about(state: State, context: CocreateContext) -> State | None:
    """The "about you" step after this one, or None when joining is done."""
    if state is State.AGE:
        return State.AREA
    if state is State.AREA and context.settings.about_extra_question:
        return State.EXTRA
    return None


async def agree(update: Update, context: CocreateContext) -> int:
    """Records the member and their consent receipt, then asks about their name."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    lang = guess_language(update, context)
    go(context, State.NAMING)
    project = None
    if code := context.data.get("project"):
        project = await context.store.projects.by_code(str(code))
    member = await context.store.members.join(
        telegram_user_id=user.id,
        chat_id=chat.id,
        language=lang,
        consent_version=CONSENT_VERSION,
        agreed_to=AGREED_TO,
        project_id=project.id if project else None,
    )
    context.data.pop("language", None)
    context.data.pop("project", None)
    context.data.pop("project_unknown", None)
    if project:
        await say(update, context, "project.joined", language=member.language, name=project.name)
    return await ask(update, context, State.NAMING)


async def decline(update: Update, context: CocreateContext) -> int:
    """Keeps nothing about someone who said "not now" and tells them how to come back."""
    lang = await language_of(update, context)
    context.session.drop()
    await say(update, context, "consent.declined", language=lang)
    chat = update.effective_chat
    if chat is not None:  # how to reach them, kept until the reply above had gone
        await context.store.forget_contact(chat.id)
    return END


async def finish(update: Update, context: CocreateContext) -> int:
    """Marks the member as joined and shows the menu."""
    member = await current_member(update, context)
    context.data.pop("return_to", None)
    context.session.end()
    if member is None:
        return END
    await context.store.members.mark_onboarded(member.id)
    await say(update, context, "onboarding.done", language=member.language)
    await send_menu(update, context, member)
    return END


async def command(update: Update, context: CocreateContext, state: State, name: str) -> int:
    """What a command (or its typed word) does in the middle of joining."""
    member = await current_member(update, context)
    if name == "help":
        await say(update, context, "help.text")
        if member is None:
            await say(update, context, "bad.not_started")
        return await ask(update, context, state)
    if name == "language":
        if state is not State.LANGUAGE:
            context.data["return_to"] = state.name
        return await ask(update, context, State.LANGUAGE)
    if name == "back":
        return await ask(update, context, PREVIOUS[state])
    if member is None:
        if name in {"stop", "cancel", "delete"}:
            return await decline(update, context)
        await say(update, context, "onboarding.answer_first")
        return await ask(update, context, state)
    # Past consent every remaining question is optional: these leave them unanswered.
    if name in {"menu", "cancel"}:
        return await finish(update, context)
    if name == "stop":
        context.session.end()
        await context.store.members.mark_onboarded(member.id)
        await context.store.members.set_stopped(member.id, True)
        back = menu_button(member.language)
        await say(update, context, "stop.done", language=member.language, reply_markup=back)
        return END
    if name == "delete":
        await context.store.members.mark_onboarded(member.id)
        await my_data.ask(update, context)
        return END
    return await ask(update, context, state)  # resume, skip with nothing to skip


def on_input(state: State) -> Callable[[Update, CocreateContext], Reply]:
    """Builds the handler that reads a button press or typed answer at one step."""

    async def handle(update: Update, context: CocreateContext) -> int:
        lang = await language_of(update, context)
        options = options_for(state, context)
        query = update.callback_query
        if query is not None:
            option = from_callback(query.data or "", options, prefix(state))
            if option is None:
                await settle_button(update, t(lang, "bad.old_button"), chosen=False)
                await say(update, context, "bad.old_button", language=lang)
                return await ask(update, context, state)
            await settle_button(update)
            return await answer(update, context, state, option, option.text(lang))
        message = update.effective_message
        again = keyboard(options, lang, prefix(state))  # the choices again, under the reply
        if message is None or message.text is None:
            await say(update, context, "bad.not_text", language=lang, reply_markup=again)
            return state
        text = message.text
        word = typed_command(text, lang)
        option = match(text, options, lang)
        if option is None and word is not None and (word != "skip" or state is State.NAMING):
            return await command(update, context, state, word)
        if option is None and takes_typed_answer(state, context) and text.strip():
            if len(text.strip()) > MAX_TYPED_ANSWER:
                await say(update, context, "about.too_long", language=lang)
                return state
            return await answer(update, context, state, None, text)
        if option is None:
            await say(update, context, "bad.choice", language=lang, reply_markup=again)
            return state
        return await answer(update, context, state, option, text)

    handle.__doc__ = f"Reads the answer at the {state.name.lower()} step."
    return handle


def on_command(state: State, name: str) -> Callable[[Update, CocreateContext], Reply]:
    """Builds the handler for one command at one step."""

    async def handle(update: Update, context: CocreateContext) -> int:
        return await command(update, context, state, name)

    return handle


ONBOARDING_COMMANDS = ("help", "menu", "language", "stop", "resume", "cancel", "delete")


def build_handler() -> FlowHandler:
    """The joining flow: /start, then one state per step, each with its commands."""
    new_messages = filters.UpdateType.MESSAGE
    states: dict[State, list[BaseHandler[Update, CocreateContext, object]]] = {}
    for state in State:
        step = on_input(state)
        handlers: list[BaseHandler[Update, CocreateContext, object]] = [
            CommandHandler(c, on_command(state, c), filters=new_messages)
            for c in ONBOARDING_COMMANDS
        ]
        handlers.append(CallbackQueryHandler(step))
        handlers.append(MessageHandler(new_messages & ~filters.COMMAND, step))
        states[state] = handlers
    return FlowHandler(
        NAME,
        State,
        entry_points=[CommandHandler("start", start, filters=new_messages)],
        handlers=states,
    )

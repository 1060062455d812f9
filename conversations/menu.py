"""The home of a member: the menu, the everyday commands, and where each message goes.

Commands: /menu, /help, /language, /questions, /stop, /resume, /cancel, /mydata, /delete,
and the same as typed words (MENU, HELP, STOP …). A message that is not a command goes, in
this order, to: the one-step question being asked (language, delete …), the story or idea
the member is telling, the facilitator's question they were just sent, a typed menu choice.
Also what to say to anything else: unknown commands, stickers and the like outside a flow,
edited messages, old buttons, people who have not started.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from conversations import (
    answering,
    ideas,
    language,
    my_data,
    reviewing,
    safeguarding,
    sharing,
    stories,
)
from conversations.choices import match
from conversations.context import CocreateContext
from conversations.replies import (
    current_member,
    language_of,
    menu_button,
    menu_options,
    pause_draft,
    say,
    settle_button,
    show_menu,
    typed_command,
)

Action = Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]
NEW_MESSAGES = filters.UpdateType.MESSAGE
PENDING = (language.QUESTION, my_data.QUESTION, *sharing.AFTER.values())
# Typed words awaited by a button press: a facilitator's reply, a member's answer back.
AWAITING_TEXT = {"reply": reviewing.take_reply, "answerback": reviewing.take_answer_back}


async def show_help(update: Update, context: CocreateContext) -> None:
    """Explains what the bot is for and what can be typed; then asks again what was asked."""
    await say(update, context, "help.text")
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    draft = await context.store.sharing.active_draft(member.id)
    if draft is not None:
        await sharing.ask(update, context, draft)


async def stop(update: Update, context: CocreateContext) -> None:
    """Stops questions to the member; what they shared is kept."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await pause_draft(update, context, member)
    back = menu_button(member.language)
    if member.stopped:
        await say(update, context, "stop.already", reply_markup=back)
    else:
        await context.store.members.set_stopped(member.id, True)
        await say(update, context, "stop.done", reply_markup=back)


async def resume(update: Update, context: CocreateContext) -> None:
    """Lets questions reach the member again."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
    elif not member.stopped and member.unreachable_at is None:
        await say(update, context, "resume.not_stopped", reply_markup=menu_button(member.language))
    else:
        await context.store.members.set_stopped(member.id, False)
        await say(update, context, "resume.done", reply_markup=menu_button(member.language))


async def cancel(update: Update, context: CocreateContext) -> None:
    """Stops what the member is doing: a story or idea (after asking), or a question."""
    context.data.pop("awaiting", None)
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    draft = await context.store.sharing.active_draft(member.id)
    if draft is not None:
        await sharing.ask_to_cancel(update, context, draft)
        return
    await say(update, context, "cancel.nothing", reply_markup=menu_button(member.language))


async def change_language(update: Update, context: CocreateContext) -> None:
    """Asks a member which language to use."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await language.ask(update, context, member.language)


async def share_story(update: Update, context: CocreateContext) -> None:
    """Starts (or carries on with) a story."""
    await sharing.start(update, context, stories.FLOW.kind)


async def share_idea(update: Update, context: CocreateContext) -> None:
    """Starts (or carries on with) an idea."""
    await sharing.start(update, context, ideas.FLOW.kind)


ACTIONS: dict[str, Action] = {
    "menu": show_menu,
    "back": show_menu,
    "skip": show_menu,
    "help": show_help,
    "stop": stop,
    "resume": resume,
    "cancel": cancel,
    "language": change_language,
    "delete": my_data.ask,
    "mydata": my_data.send_my_data,
    "questions": answering.list_open,
    "story": share_story,
    "idea": share_idea,
}


async def on_menu_button(update: Update, context: CocreateContext) -> None:
    """Does what a menu button says."""
    query = update.callback_query
    assert query is not None
    await settle_button(update)
    action = ACTIONS.get((query.data or "").partition(":")[2])
    await (action or show_menu)(update, context)


async def on_message(update: Update, context: CocreateContext) -> None:
    """Routes a message that is not a command (see the module docstring for the order)."""
    message = update.effective_message
    assert message is not None
    text = message.text
    member = await current_member(update, context)
    lang = await language_of(update, context)
    awaiting = str(context.data.get("awaiting", ""))
    if text is not None:
        for question in PENDING:
            if (
                member
                and awaiting == question.name
                and await question.typed(update, context, text, lang)
            ):
                return
        kind, _, ident = awaiting.partition(":")
        if kind in AWAITING_TEXT and ident.isdigit():
            context.data.pop("awaiting", None)
            if await AWAITING_TEXT[kind](update, context, int(ident), text):
                return
    context.data.pop("awaiting", None)
    if member is not None:
        draft = await context.store.sharing.active_draft(member.id)
        if draft is not None:
            await sharing.on_input(update, context, member, draft)
            return
        if await answering.take_typed(update, context, member):
            return
    if text is None:
        if member is None:
            await say(update, context, "bad.not_started")
        else:
            await say(update, context, "bad.idle_media", reply_markup=menu_button(lang))
        return
    command = typed_command(text, lang)
    if command is not None:
        await ACTIONS[command](update, context)
        return
    if member is None:
        await say(update, context, "bad.not_started")
        return
    option = match(text, menu_options(member), lang)
    if option is not None:
        await ACTIONS[option.key](update, context)
        return
    asked = next((q for q in PENDING if q.name == awaiting), None)
    if asked is not None:  # a one-step question is still open: its buttons again
        await asked.ask_again(update, context, lang)
        return
    await say(update, context, "bad.idle", reply_markup=menu_button(lang))


def _command(name: str, action: Action) -> CommandHandler[CocreateContext, None]:
    return CommandHandler(name, action, filters=NEW_MESSAGES)


def build_handlers() -> list[BaseHandler[Update, CocreateContext, None]]:
    """The menu, its buttons, the everyday commands, and the message router."""
    return [
        _command("menu", show_menu),
        _command("help", show_help),
        _command("stop", stop),
        _command("resume", resume),
        _command("cancel", cancel),
        _command("language", change_language),
        _command("mydata", my_data.send_my_data),
        _command("questions", answering.list_open),
        _command("delete", my_data.ask),
        CallbackQueryHandler(on_menu_button, pattern=r"^menu:"),
        CallbackQueryHandler(sharing.on_button, pattern=rf"^{sharing.PREFIX}:"),
        CallbackQueryHandler(answering.on_button, pattern=rf"^{answering.PREFIX}:"),
        *safeguarding.build_handlers(not_allowed=on_unknown_button),
        *(question.handler() for question in PENDING),
        MessageHandler(NEW_MESSAGES & ~filters.COMMAND, on_message),
    ]


async def on_unknown_command(update: Update, context: CocreateContext) -> None:
    """Answers a command the bot does not have."""
    lang = await language_of(update, context)
    await say(update, context, "bad.unknown_command", reply_markup=menu_button(lang))


async def on_edited(update: Update, context: CocreateContext) -> None:
    """Edits to old messages are not read: say so, rather than stay silent."""
    lang = await language_of(update, context)
    await say(update, context, "bad.edited", reply_markup=menu_button(lang))


async def on_unknown_button(update: Update, context: CocreateContext) -> None:
    """A button the bot no longer expects (old, forged, or from someone who never started)."""
    await settle_button(update, chosen=False)
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await say(update, context, "bad.old_button")
    draft = await context.store.sharing.active_draft(member.id)
    if draft is not None:  # carry on where they are, rather than leave the story
        await sharing.ask(update, context, draft)
    else:
        await show_menu(update, context)


def build_fallbacks() -> list[BaseHandler[Update, CocreateContext, None]]:
    """Answers to everything no flow took; registered last."""
    return [
        MessageHandler(NEW_MESSAGES & filters.COMMAND, on_unknown_command),
        MessageHandler(filters.UpdateType.EDITED, on_edited),
        CallbackQueryHandler(on_unknown_button),
    ]

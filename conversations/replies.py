"""What every flow needs to talk to a member: their language, sending catalogue texts, the menu.

Every member-facing sentence is a catalogue key; nothing here holds text of its own.
"""

from __future__ import annotations

import logging

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import MessageLimit
from telegram.error import BadRequest

from bot.catalogue import DEFAULT_LANGUAGE, LANGUAGES, catalogue, t
from conversations.choices import Option, keyboard, normalise, number
from conversations.context import CocreateContext
from storage.models import Member

logger = logging.getLogger(__name__)

# Words a member may type anywhere instead of a command (MENU, HELP, STOP …), by the command.
TYPED_COMMANDS = ("menu", "help", "stop", "resume", "cancel", "back", "skip", "language", "delete")


async def current_member(update: Update, context: CocreateContext) -> Member | None:
    """The member behind an update, if they have joined."""
    user = update.effective_user
    return await context.store.members.by_telegram_id(user.id) if user else None


def guess_language(update: Update, context: CocreateContext) -> str:
    """The language of someone who has not joined: their choice so far, or Telegram's hint."""
    chosen = context.data.get("language")
    if isinstance(chosen, str) and chosen in LANGUAGES:
        return chosen
    user = update.effective_user
    code = (user.language_code or "") if user else ""
    return "cy" if code.lower().startswith("cy") else DEFAULT_LANGUAGE


async def language_of(update: Update, context: CocreateContext) -> str:
    """The language to write to this person in."""
    member = await current_member(update, context)
    return member.language if member else guess_language(update, context)


async def say(
    update: Update,
    context: CocreateContext,
    key: str,
    *,
    language: str | None = None,
    reply_markup: InlineKeyboardMarkup | None = None,
    **values: object,
) -> Message | None:
    """Sends one catalogue text to the person behind the update."""
    chat_id = chat_of(update)
    if chat_id is None:
        return None
    language = language or await language_of(update, context)
    return await context.bot.send_message(
        chat_id, t(language, key, **values), reply_markup=reply_markup
    )


MENU_BUTTON = "menu:menu"  # conversations/menu.py on_menu_button shows the menu


def menu_button(language: str) -> InlineKeyboardMarkup:
    """A single Menu button, for a reply after which there is nothing else to do. It has no
    number: typed numbers pick from the menu itself."""
    label = t(language, "menu.button")
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=MENU_BUTTON)]])


def chat_of(update: Update) -> int | None:
    """The chat to answer in: the update's chat, or the person's private chat."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    return update.effective_user.id if update.effective_user else None


CHOSEN_MARK = "✓"


def pressed_label(query: CallbackQuery) -> str | None:
    """The text of the button that was pressed, without its "N. " number."""
    markup = getattr(query.message, "reply_markup", None)
    for row in markup.inline_keyboard if isinstance(markup, InlineKeyboardMarkup) else ():
        for button in row:
            if button.callback_data == query.data:
                head, dot, rest = button.text.partition(". ")
                return rest if dot and number(head) is not None else button.text
    return None


async def settle_button(update: Update, text: str | None = None, *, chosen: bool = True) -> None:
    """Answers a button press and takes the buttons off their message, so they cannot be
    pressed twice. The message keeps its words; if the press `chosen` something, a last line
    says what ("✓ Yes"), so the chat stays a record of what was asked and answered."""
    query = update.callback_query
    if query is None:
        return
    await query.answer(text)
    message = query.message
    if not isinstance(message, Message) or not message.reply_markup:
        return
    label = pressed_label(query) if chosen else None
    record = f"\n\n{CHOSEN_MARK} {label}"
    try:
        if label and message.text and len(message.text + record) <= MessageLimit.MAX_TEXT_LENGTH:
            await query.edit_message_text(
                message.text + record, entities=message.entities, reply_markup=None
            )
        elif (
            label
            and message.caption
            and len(message.caption + record) <= MessageLimit.CAPTION_LENGTH
        ):
            await query.edit_message_caption(
                message.caption + record,
                caption_entities=message.caption_entities,
                reply_markup=None,
            )
        else:
            await query.edit_message_reply_markup(reply_markup=None)
    except BadRequest as exc:  # the message is too old to edit, or already changed
        logger.debug("Could not settle a button: %s", exc.message)


def typed_command(text: str, language: str) -> str | None:
    """The command a typed word stands for (MENU → "menu"), in English or the member's language."""
    typed = normalise(text).lstrip("/")
    for command in TYPED_COMMANDS:
        words = {command, *catalogue().words(language, f"typed.{command}")}
        if typed in {normalise(w) for w in words}:
            return command
    return None


PROMPT = "prompt_message"  # user_data: the newest message asking something other than a question
ANSWERING = "answering"  # user_data: the question round /questions put first


def remember_prompt(context: CocreateContext, message: Message | None) -> None:
    """Notes that the member was just asked something other than a question (e.g. the menu),
    so that typed words go to that, not to a question delivered before it. Telegram's
    message ids rise within a chat, so they say which came last."""
    if message is not None:
        context.data[PROMPT] = message.message_id
    context.data.pop(ANSWERING, None)


def menu_options(member: Member) -> list[Option]:
    """What a member can do from the menu, in order (the numbers they can type)."""
    return [
        Option("story", "menu.story"),
        Option("idea", "menu.idea"),
        Option("questions", "menu.questions"),
        Option("mydata", "menu.mydata"),
        Option("language", "menu.language"),
        Option("help", "menu.help"),
        Option("resume", "menu.resume") if member.stopped else Option("stop", "menu.stop"),
        Option("delete", "menu.delete"),
    ]


async def pause_draft(
    update: Update, context: CocreateContext, member: Member, *, quietly: bool = False
) -> bool:
    """Leaves an open story or idea for later; True if there was one."""
    draft = await context.store.sharing.active_draft(member.id)
    if draft is None:
        return False
    await context.store.sharing.set_step(draft.id, None)
    if not quietly:
        await say(update, context, f"sharing.paused.{draft.kind}", language=member.language)
    return True


async def send_menu(update: Update, context: CocreateContext, member: Member) -> None:
    """Shows the main menu (leaving any open story or idea for later)."""
    context.data.pop("awaiting", None)
    await pause_draft(update, context, member)
    options = menu_options(member)
    shown = await say(
        update,
        context,
        "menu.title",
        language=member.language,
        reply_markup=keyboard(options, member.language, "menu"),
    )
    remember_prompt(context, shown)


async def show_menu(update: Update, context: CocreateContext) -> None:
    """Shows the menu to a member; tells anyone else how to start."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await send_menu(update, context, member)

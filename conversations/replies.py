"""What every flow needs to talk to a member: their language, sending catalogue texts, the menu.

Every member-facing sentence is a catalogue key; nothing here holds text of its own.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import MessageLimit
from telegram.error import BadRequest, TelegramError

from bot.catalogue import DEFAULT_LANGUAGE, LANGUAGES, catalogue, t
from conversations.choices import Option, keyboard, normalise, number
from conversations.context import CURRENT_SESSION, QUIET, RISK_NOTED, CocreateContext, Resources
from storage import kinds
from storage.db import after_commit
from storage.models import Member
from storage.sharing import Submission

logger = logging.getLogger(__name__)

SHARING = "share"  # the flow of telling a story or idea (conversations/sharing.py)
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


# "Did not get that" replies: never sent after words that got safeguarding help at the door
# (the help itself says what to do next).
NOT_UNDERSTOOD = frozenset(
    {
        "bad.idle",
        "bad.idle_media",
        "bad.choice",
        "bad.not_started",
        "bad.not_text",
        "sharing.choose",
        "sharing.bad_input",
        "onboarding.answer_first",
    }
)


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
    if chat_id is None or (key in NOT_UNDERSTOOD and RISK_NOTED.get() is not None):
        return None
    user = update.effective_user
    if (
        key == "bad.not_started"
        and user is not None
        and chat_id == user.id  # only in their own chat: elsewhere nothing hints at a role
        and await context.store.roles.role_of(user.id)
    ):
        key = "staff.not_a_member"  # staff who never joined are never sent into sign-up
    if key == "bad.not_started" and language is None and not context.data.get("language"):
        # Nobody knows their language (never joined, or "Not now" forgot it): both, as the
        # first hello is.
        both = f"{t('en', key, **values)}\n{t('cy', key, **values)}"
        return await send(update, context, both, reply_markup)
    language = language or await language_of(update, context)
    return await send(update, context, t(language, key, **values), reply_markup)


async def send(
    update: Update,
    context: CocreateContext,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> Message | None:
    """Sends a message to the person behind the update; nothing while they flood (the door
    answers their last message instead)."""
    chat_id = chat_of(update)
    if chat_id is None or QUIET.get():
        return None
    return await context.bot.send_message(chat_id, text, reply_markup=markup)


async def person_language(update: Update, resources: Resources) -> str:
    """The person's language before any flow runs: the member's; else the one chosen while
    joining; else their Telegram app's."""
    user = update.effective_user
    member = await resources.store.members.by_telegram_id(user.id) if user else None
    if member is not None:
        return member.language
    session = CURRENT_SESSION.get()
    if session is not None and session.data.get("language") in LANGUAGES:
        return str(session.data["language"])
    code = (user.language_code or "") if user else ""
    return "cy" if code.lower().startswith("cy") else DEFAULT_LANGUAGE


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
    says what ("✓ Yes"), so the chat stays a record of what was asked and answered.

    Both wait until what the press does is committed (storage/db.py `after_commit`): they
    are made just before the handler's next message, or once it is done. Were they made at
    once, their commit point would mark the update applied before the handler's writes, and
    a kill just then would lose those writes."""
    query = update.callback_query
    if query is None:
        return

    async def settle() -> None:
        try:
            await _settle(query, text, chosen=chosen)
        except TelegramError as exc:  # what the press did is kept all the same
            logger.warning("Could not settle a button: %s", exc)

    await after_commit(settle)


async def _settle(query: CallbackQuery, text: str | None, *, chosen: bool) -> None:
    try:
        await query.answer(text)
    except BadRequest as exc:
        # Telegram takes an answer only once, and only soon after the press: a press handled
        # late (queued across a restart, or run again by a replay) is still handled, without.
        if "query is too old" not in exc.message.lower():
            raise
        logger.info("A button press was handled too late to answer it")
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


PROMPT: Final = "prompt_message"  # the newest message asking something other than a question
ANSWERING: Final = "answering"  # the question round /questions put first
LISTED: Final = "listed"  # the message id of /questions' last message
# The state of every one-step question (which language? delete it all? the reply relay's
# words): the flow is the question's name, and any other message leaves it.
AWAITING: Final = "AWAITING"


def await_answer(context: CocreateContext, question: str) -> None:
    """Notes that the person's next message answers a one-step question."""
    context.session.go(question, AWAITING)


def awaited(context: CocreateContext) -> str | None:
    """The one-step question the person was just asked, if any."""
    session = context.session
    return session.flow if session.state == AWAITING else None


def leave_question(context: CocreateContext) -> None:
    """Stops waiting for the answer to a one-step question (not a longer flow)."""
    if awaited(context) is not None:
        context.session.end()


def leave_answering(context: CocreateContext) -> None:
    """Typed words no longer answer the round /questions put first: call before sending
    what the member is asked instead (before: a kill just after the send would keep it)."""
    context.data.pop(ANSWERING, None)
    context.data.pop(LISTED, None)


def remember_prompt(context: CocreateContext, message: Message | None) -> None:
    """Notes that the member was just asked something other than a question (e.g. the menu),
    so that typed words go to that, not to a question delivered before it. Telegram's
    message ids rise within a chat, so they say which came last. (Its id is known only once
    it is sent: a kill just then loses the note, and a question delivered before it may take
    typed words meant for it. Call `leave_answering` before the send.)"""
    if message is not None:
        context.data[PROMPT] = message.message_id
    context.data.pop(ANSWERING, None)
    context.data.pop(LISTED, None)


def menu_options(member: Member) -> list[Option]:
    """What a member can do from the menu, in order (the numbers they can type)."""
    return [
        *(Option(kind.noun, f"menu.{kind.noun}") for kind in kinds.all_kinds()),
        Option("vote", "menu.vote"),
        Option("questions", "menu.questions"),
        Option("updates", "menu.updates"),
        Option("mydata", "menu.mydata"),
        Option("language", "menu.language"),
        Option("help", "menu.help"),
        Option("resume", "menu.resume") if member.stopped else Option("stop", "menu.stop"),
        Option("delete", "menu.delete"),
    ]


async def active_draft(context: CocreateContext, member: Member) -> Submission | None:
    """The story or idea the member is telling now, at the step their session says."""
    session = context.session
    draft_id = context.data.get("draft")
    if session.flow != SHARING or draft_id is None:
        return None
    draft = await context.store.sharing.get(draft_id)
    if draft is None or draft.member_id != member.id or draft.status != "draft":
        session.end()
        context.data.pop("draft", None)
        return None
    return replace(draft, step=session.state)


def at_step(context: CocreateContext, draft: Submission, step: str) -> Submission:
    """Puts the member at a step of a story or idea (kept in their session)."""
    context.session.go(SHARING, step)
    context.data["draft"] = draft.id
    return replace(draft, step=step)


async def pause_draft(
    update: Update, context: CocreateContext, member: Member, *, quietly: bool = False
) -> bool:
    """Leaves an open story or idea for later; True if there was one."""
    draft = await active_draft(context, member)
    if draft is None:
        return False
    context.session.end()
    context.data.pop("draft", None)
    if not quietly:
        await say(update, context, f"sharing.paused.{draft.kind}", language=member.language)
    return True


async def send_menu(update: Update, context: CocreateContext, member: Member) -> None:
    """Shows the main menu (leaving any open story or idea for later)."""
    leave_question(context)
    await pause_draft(update, context, member)
    options = menu_options(member)
    leave_answering(context)
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


# ---- long texts

TELEGRAM_LIMIT = 4096  # the most characters Telegram takes in one message
_QUOTE = "\x00quote\x00"  # stands in for a member's words while a catalogue text is rendered


def _units(text: str) -> int:
    # Telegram counts UTF-16 code units: an emoji outside the BMP counts twice.
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """How many characters from the start of `text` fit in `limit` UTF-16 units."""
    end = min(len(text), limit)
    while (over := _units(text[:end]) - limit) > 0:
        end -= (over + 1) // 2  # a character is one or two units: never below what fits
    return end


def split_text(
    prefix: str, words: str, limit: int = TELEGRAM_LIMIT, *, suffix: str = ""
) -> list[str]:
    """`prefix + words + suffix` as messages of at most `limit` characters, in order.

    The prefix starts the first message and the suffix ends the last. A cut falls at a line
    break, or else at a space, so no word is cut in two unless one word is longer than a
    whole message.
    """
    rest = f"{prefix}{words}{suffix}"
    chunks: list[str] = []
    while _units(rest) > limit:
        end = _fit(rest, limit)
        window = rest[: end + 1]  # a space just after the limit is a good place to cut too
        cut = window.rfind("\n")
        if cut < end // 2:  # no line break in the second half: the last space, if there
            cut = window.rfind(" ")
        if cut < end // 2:  # one very long word: it has to be cut
            chunks.append(rest[:end])
            rest = rest[end:]
        else:
            chunks.append(rest[:cut])
            rest = rest[cut + 1 :]
    chunks.append(rest)
    return [chunk.strip() for chunk in chunks if chunk.strip()]


def around(language: str, key: str, field: str = "text", **values: object) -> tuple[str, str]:
    """A catalogue text's words before and after its `{field}`, rendered with `values`."""
    rendered = t(language, key, **{field: _QUOTE}, **values)
    before, found, after = rendered.partition(_QUOTE)
    if not found:  # a translation that leaves the field out: put the words after it
        return f"{rendered}\n\n", ""
    return before, after


def quoted(
    language: str, key: str, words: str, limit: int = TELEGRAM_LIMIT, **values: object
) -> list[str]:
    """A catalogue text that quotes someone's `words` (its `{text}`), split to fit Telegram."""
    before, after = around(language, key, "text", **values)
    return split_text(before, words, limit, suffix=after)


async def answer_unknown_command(update: Update, context: CocreateContext) -> None:
    """What the bot says to a command it does not have (and to a staff command refused)."""
    lang = await language_of(update, context)
    await say(update, context, "bad.unknown_command", reply_markup=menu_button(lang))


async def answer_unknown_button(update: Update, context: CocreateContext) -> None:
    """What the bot says to a button it no longer expects (old, forged, a staff button
    refused, or from someone who never started), carrying on with a story or idea."""
    await settle_button(update, chosen=False)
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    leave_question(context)  # before anything is sent: the door commits at each send
    await say(update, context, "bad.old_button")
    if context.session.flow != SHARING or not await context.ask_again(update):
        await show_menu(update, context)

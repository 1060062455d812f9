"""Members answer questions: by button, by typing the option's number or word, or (open
questions) in their own words or a voice note. /questions shows the questions still open.

Buttons carry `ans:<round id>:<choice>`. A typed message is read as an answer when the
member's newest prompt is a question: one delivered after the menu was last shown, or the
one /questions put first. An answer can be changed until the round closes.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.catalogue import long_date
from conversations import media
from conversations.choices import Option, match
from conversations.context import RISK_NOTED, CocreateContext
from conversations.prompts import SKIP, choice_label, options_of, render
from conversations.replies import (
    ANSWERING,
    LISTED,
    PROMPT,
    around,
    chat_of,
    current_member,
    leave_answering,
    menu_button,
    remember_prompt,
    say,
    send,
    settle_button,
    split_text,
    typed_command,
)
from storage.answers import Answer
from storage.models import Member
from storage.questions import Question, Round

logger = logging.getLogger(__name__)


async def pending(context: CocreateContext, member: Member) -> tuple[Round, Question] | None:
    """The question a typed message answers now, if any: the one /questions put first,
    unless a question they have not answered reached them after that list (people answer
    the last message they got); else one they have not answered that reached them after
    anything else they were asked."""
    now = context.clock.now()
    open_rounds = await context.store.questions.open_rounds_for(member.id, now)
    chosen = context.data.get(ANSWERING)
    listed = context.data.get(LISTED)
    if chosen is not None and listed is not None:
        newer = await unanswered_since(context, member, open_rounds, int(listed) + 1)
        if newer is not None:
            return newer
    for round_, question in open_rounds:
        if round_.id == chosen:
            return round_, question
    return await unanswered_since(context, member, open_rounds, int(context.data.get(PROMPT, 0)))


async def unanswered_since(
    context: CocreateContext, member: Member, open_rounds: list[tuple[Round, Question]], since: int
) -> tuple[Round, Question] | None:
    """The first open question the member has not answered that reached them in a message
    `since` or later (Telegram's message ids rise within a chat), or is reaching them now."""
    delivered = await context.store.questions.delivered_messages(
        [round_.id for round_, _ in open_rounds], member.id
    )
    for round_, question in open_rounds:
        if delivered.get(round_.id, -1) < since:
            continue
        if await context.store.answers.of(round_.id, member.id) is None:
            return round_, question
    return None


async def came_after(context: CocreateContext, member: Member) -> bool:
    """Whether a question the member has not answered reached them after the one-step
    question they wait at was asked: then what they type answers the newer one (on SMS,
    people reply to the last text they got)."""
    asked = context.session.updated_at
    if asked is None:
        return False
    found = await pending(context, member)
    if found is None:
        return False
    round_, _ = found
    return await context.store.questions.delivered_after(round_.id, member.id, asked)


async def take_typed(update: Update, context: CocreateContext, member: Member) -> bool:
    """Reads a message as the answer to the pending question; False if it is not one."""
    message = update.effective_message
    assert message is not None
    found = await pending(context, member)
    if found is None:
        return False
    round_, question = found
    lang = member.language
    text = message.text
    if text is not None:
        option = match(text, [*options_of(question), SKIP], lang)
        if option is not None:
            await choose(update, context, member, round_, question, option)
            return True
        if typed_command(text, lang) is not None:
            return False  # MENU, HELP … still work with a question waiting
    if question.kind != "open":
        await say(update, context, "questions.choose", language=lang)
        return True
    item = media.incoming(message)
    caption = text if text is not None else message.caption
    if item is None and not caption:
        await say(update, context, "sharing.bad_input", language=lang)
        return True
    new_media = None
    if item is not None:
        if media.too_big(item, context):
            mb = context.settings.media_max_mb
            await say(update, context, "sharing.too_big", language=lang, mb=mb)
            return True
        try:
            new_media = await media.fetch(item, context)
        except TelegramError as exc:
            logger.warning("Could not fetch a %s: %s", item.kind, exc)
            await say(update, context, "sharing.download_failed", language=lang)
            return True
    answer, replaced = await context.store.answers.save(
        round_.id, member.id, choice=None, text=caption, media=new_media
    )
    media.remove_files(context, replaced)
    await link_flag(context, answer.id)
    await saved(update, context, member, round_)
    return True


async def choose(
    update: Update,
    context: CocreateContext,
    member: Member,
    round_: Round,
    question: Question,
    option: Option,
    *,
    pressed: bool = False,
) -> None:
    """Stores a chosen option (or skips the question for now). `pressed`: it came by a
    button, which is answered only once the choice is stored (see `on_button`)."""
    if pressed and (option.key == SKIP.key or question.kind == "open"):
        await settle_button(update)
    if option.key == SKIP.key:
        leave_answering(context)
        shown = await say(
            update,
            context,
            "questions.skipped",
            language=member.language,
            reply_markup=menu_button(member.language),
        )
        remember_prompt(context, shown)
        return
    if question.kind == "open":  # an open question's only button is Skip
        return
    await context.store.answers.save(round_.id, member.id, choice=option.key, text=None)
    if pressed:
        await settle_button(update)
    await saved(update, context, member, round_)


async def saved(update: Update, context: CocreateContext, member: Member, round_: Round) -> None:
    """Thanks the member and says until when the answer can be changed."""
    closes = round_.closes_at or context.clock.now()
    when = long_date(closes.astimezone(context.settings.tz).date(), member.language)
    leave_answering(context)
    shown = await say(
        update,
        context,
        "questions.saved",
        language=member.language,
        when=when,
        reply_markup=menu_button(member.language),
    )
    remember_prompt(context, shown)


async def open_round(
    context: CocreateContext, member: Member, round_id: int
) -> tuple[Round, Question] | None:
    """The round, if it was sent to this member and still takes answers."""
    for round_, question in await context.store.questions.open_rounds_for(
        member.id, context.clock.now()
    ):
        if round_.id == round_id:
            return round_, question
    return None


async def on_button(update: Update, context: CocreateContext) -> None:
    """An answer button: stores the choice if the question is still open to this member."""
    query = update.callback_query
    assert query is not None
    # The button is settled (settle_button) only once the choice is stored and committed
    # (storage/db.py after_commit): a commit point before the choice would mark the update
    # applied, so a process killed between the two lost the answer (a replay only asks again).
    member = await current_member(update, context)
    if member is None:
        await settle_button(update)
        await say(update, context, "bad.not_started")
        return
    _, round_id, key = [*(query.data or "").split(":"), "", ""][:3]
    found = await open_round(context, member, int(round_id)) if round_id.isdigit() else None
    if found is None:
        await settle_button(update)
        await say(
            update,
            context,
            "questions.closed",
            language=member.language,
            reply_markup=menu_button(member.language),
        )
        return
    round_, question = found
    option = next((o for o in [*options_of(question), SKIP] if o.key == key), None)
    if option is None:
        await settle_button(update)
        await say(update, context, "bad.old_button", language=member.language)
        return
    await choose(update, context, member, round_, question, option, pressed=True)


async def list_open(update: Update, context: CocreateContext) -> None:
    """/questions: sends the questions still open to the member, unanswered first."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    rounds = await context.store.questions.open_rounds_for(member.id, context.clock.now())
    if not rounds:
        await say(
            update,
            context,
            "questions.none",
            language=member.language,
            reply_markup=menu_button(member.language),
        )
        return
    answers: dict[int, Answer | None] = {
        r.id: await context.store.answers.of(r.id, member.id) for r, _ in rounds
    }
    rounds.sort(key=lambda rq: answers[rq[0].id] is not None)
    chat_id = chat_of(update)
    assert chat_id is not None
    lang = member.language
    context.data[ANSWERING] = rounds[0][0].id  # before anything is sent (see machine.py)
    context.data.pop(LISTED, None)
    shown = None
    for round_, question in rounds[:5]:
        text, markup = render(question, round_.id, lang)
        answer = answers[round_.id]
        pieces = [text]
        if answer is not None:
            given = choice_label(question, answer.choice, lang) or answer.text or ""
            before, after = around(lang, "questions.your_answer", "answer")
            # A long answer takes several messages; the question's buttons go on the last.
            pieces = split_text(f"{text}\n\n{before}", given, suffix=after)
        *first, last = pieces
        for piece in first:
            await send(update, context, piece)
        shown = await send(update, context, last, markup)
    if shown is not None:
        context.data[LISTED] = shown.message_id  # a question reaching them after it comes first


async def link_flag(context: CocreateContext, answer_id: int) -> None:
    """Ties this update's safeguarding flag (raised at the door) to the answer it was."""
    risk = RISK_NOTED.get()
    if risk is not None and risk.flag_id is not None:
        await context.store.sharing.link_flag(risk.flag_id, answer_id=answer_id)

"""The engine behind every kind of sharing in storage/kinds.py: Share your story (stories.py),
Share an idea (ideas.py) and any kind added to that list.

Each part can be typed, sent as a voice note or photo (with or without a caption), or
skipped. Then the member sees it back and chooses Save, Change a part, or Throw it away.

Every part is saved in the draft row as it is given, and the member's session (flow "share",
its state the step, data["draft"] the draft) says where they are, saved with the part in one
commit, so a story survives kill -9 and carries on at the same step. Buttons carry
`share:<draft id>:<step>:<choice>`; one from an older draft or step is answered as old.
States: see sharing.mmd.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from functools import cache
from typing import Any

from telegram import Message, Update
from telegram.error import TelegramError

from bot.catalogue import t, tn
from conversations import media
from conversations.choices import Option, keyboard, match
from conversations.context import CocreateContext
from conversations.flow import CANCEL, CHANGE, REVIEW, VOLUNTEER, Flow
from conversations.pending import PendingQuestion
from conversations.replies import (
    active_draft,
    at_step,
    await_answer,
    awaited,
    current_member,
    menu_button,
    pause_draft,
    say,
    send,
    send_menu,
    settle_button,
    typed_command,
)
from storage import kinds, statements
from storage.models import Member
from storage.sharing import NewMedia, Part, Submission

logger = logging.getLogger(__name__)

PREFIX = "share"
REVIEW_PART_LIMIT = 700  # characters of each part shown back, to stay inside one message


def flow_of(kind: str) -> Flow:
    """The flow of a kind (storage/kinds.py, read when asked)."""
    return kinds.by_key(kind)


SKIP = Option("skip", "common.skip")
STOP = Option("stop", "sharing.stop")
VOLUNTEER_OPTIONS = [Option(a, f"idea.volunteer.{a}") for a in ("yes", "maybe", "no")]
REVIEW_OPTIONS = [
    Option("save", "sharing.save"),
    Option("change", "sharing.change"),
    Option("cancel", "sharing.cancel"),
]
DISCARD = [Option("yes", "sharing.discard_yes"), Option("no", "sharing.discard_no")]
BACK = Option("back", "sharing.back")


def leave(context: CocreateContext) -> None:
    """Takes the member out of the story or idea (saved or thrown away)."""
    context.session.end()
    context.data.pop("draft", None)


def options_for(flow: Flow, step: str) -> list[Option]:
    """The buttons at a step."""
    name = step.partition(">")[0]
    if name in flow.parts:
        return [SKIP, STOP]
    if name == VOLUNTEER:
        return [*VOLUNTEER_OPTIONS, SKIP, STOP]
    if name == REVIEW:
        return REVIEW_OPTIONS
    if name == CHANGE:
        labels = [Option(p, f"{flow.noun}.label.{p}") for p in flow.parts]
        if flow.asks_volunteer:
            labels.append(Option(VOLUNTEER, "idea.label.volunteer"))
        return [*labels, BACK]
    return DISCARD  # CANCEL asks whether to throw it away


def next_step(flow: Flow, draft: Submission, answered: str) -> str:
    """Where to go after a step was answered."""
    if draft.reviewed:
        return REVIEW
    order = flow.order()
    return order[order.index(answered) + 1] if answered in order[:-1] else REVIEW


def resume_step(flow: Flow, draft: Submission, given: set[str]) -> str:
    """Where a paused draft carries on: the first part not given yet, else the review."""
    if draft.reviewed:
        return REVIEW
    for part in flow.parts:
        if part not in given:
            return part
    if flow.asks_volunteer and draft.volunteer is None:
        return VOLUNTEER
    return REVIEW


def describe(language: str, part: Part | None) -> str:
    """One part as shown back to the member."""
    if part is None:
        return t(language, "sharing.not_given")
    if part.skipped:
        return t(language, "sharing.skipped")
    pieces = []
    for item in part.media:
        if item.kind == "voice":
            seconds = item.duration or 0
            pieces.append(tn(language, "sharing.media.voice.seconds", seconds, seconds=seconds))
        else:
            pieces.append(t(language, f"sharing.media.{item.kind}"))
    if part.text:
        text = part.text
        if len(text) > REVIEW_PART_LIMIT:
            text = text[:REVIEW_PART_LIMIT].rstrip() + "…"
        pieces.append(text)
    return " ".join(pieces) or t(language, "sharing.skipped")


async def review_text(context: CocreateContext, flow: Flow, draft: Submission, lang: str) -> str:
    """The whole draft, shown back before saving, in the member's language."""
    parts = await context.store.sharing.parts(draft.id)
    lines = [
        f"{t(lang, f'{flow.noun}.label.{p}')}: {describe(lang, parts.get(p))}" for p in flow.parts
    ]
    if flow.asks_volunteer:
        answer = (
            t(lang, f"idea.volunteer.{draft.volunteer}")
            if draft.volunteer
            else t(lang, "sharing.skipped")
        )
        lines.append(f"{t(lang, 'idea.label.volunteer')}: {answer}")
    return t(lang, f"{flow.noun}.review", parts="\n\n".join(lines))


async def ask(update: Update, context: CocreateContext, draft: Submission) -> None:
    """Asks the question of the step the draft is at."""
    flow = flow_of(draft.kind)
    step = draft.step or REVIEW
    name = step.partition(">")[0]
    member = await current_member(update, context)  # the language they chose since, if any
    lang = member.language if member is not None else draft.language
    if name in flow.parts:
        text = t(lang, f"{flow.noun}.{name}")
    elif name == VOLUNTEER:
        text = t(lang, "idea.volunteer")
    elif name == REVIEW:
        text = await review_text(context, flow, draft, lang)
    elif name == CHANGE:
        text = t(lang, "sharing.change_which")
    else:
        text = t(lang, f"{flow.noun}.cancel_ask")
    markup = keyboard(options_for(flow, step), lang, f"{PREFIX}:{draft.id}:{name}")
    await send(update, context, text, markup)


async def start(update: Update, context: CocreateContext, kind: str) -> None:
    """Starts a story or idea, or carries on with one left for later."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    flow = flow_of(kind)
    await pause_draft(update, context, member, quietly=True)
    paused = await context.store.sharing.latest_draft(member.id, kind)
    if paused is not None:
        given = set(await context.store.sharing.parts(paused.id))
        draft = at_step(context, paused, resume_step(flow, paused, given))
        await say(update, context, f"{flow.noun}.resume", language=member.language)
    else:
        projects = await context.store.members.projects_of(member.id)
        new = await context.store.sharing.start(
            member_id=member.id,
            kind=kind,
            project_id=projects[-1].id if projects else None,
            language=member.language,
        )
        draft = at_step(context, new, flow.parts[0])
    await ask(update, context, draft)


async def ask_to_cancel(update: Update, context: CocreateContext, draft: Submission) -> None:
    """Asks before throwing a draft away (/cancel, Stop, Throw it away)."""
    step = draft.step or REVIEW
    if step.startswith(f"{CANCEL}>"):
        await ask(update, context, draft)
        return
    await ask(update, context, at_step(context, draft, f"{CANCEL}>{step}"))


async def go_to(update: Update, context: CocreateContext, draft: Submission, step: str) -> None:
    """Moves the draft to a step and asks its question."""
    if step == REVIEW and not draft.reviewed:
        await context.store.sharing.set_reviewed(draft.id)
        draft = replace(draft, reviewed=True)
    await ask(update, context, at_step(context, draft, step))


async def on_button(update: Update, context: CocreateContext) -> None:
    """A button in a story or idea: acts if it belongs to the current step, else says so."""
    query = update.callback_query
    assert query is not None
    member = await current_member(update, context)
    draft = await active_draft(context, member) if member else None
    _, draft_id, step, key = [*(query.data or "").split(":"), "", "", "", ""][:4]
    current = (draft.step or "").partition(">")[0] if draft else None
    if member is None or draft is None or str(draft.id) != draft_id or current != step:
        await settle_button(update, chosen=False)
        if member is not None:
            await say(update, context, "bad.old_button")
        if draft is not None:
            await ask(update, context, draft)
        elif member is not None:
            await send_menu(update, context, member)
        else:
            await say(update, context, "bad.not_started")
        return
    flow = flow_of(draft.kind)
    option = next((o for o in options_for(flow, draft.step or "") if o.key == key), None)
    await settle_button(update, chosen=option is not None)
    if option is None:
        await say(update, context, "bad.old_button")
        await ask(update, context, draft)
        return
    await choose(update, context, member, draft, option)


async def on_input(
    update: Update, context: CocreateContext, member: Member, draft: Submission
) -> None:
    """A message while a story or idea is open: an answer, a typed choice, or a command word."""
    message = update.effective_message
    assert message is not None
    flow = flow_of(draft.kind)
    step = draft.step or REVIEW
    name = step.partition(">")[0]
    lang = member.language
    text = message.text
    if text is not None:
        option = match(text, options_for(flow, step), lang)
        if option is not None:
            await choose(update, context, member, draft, option)
            return
        word = typed_command(text, lang)
        if word in {"skip", "back", "cancel", "stop"} and (
            name in flow.parts or name == VOLUNTEER or word != "skip"
        ):
            await command(update, context, member, draft, word)
            return
    if name not in flow.parts:
        again = keyboard(options_for(flow, step), lang, f"{PREFIX}:{draft.id}:{name}")
        await say(update, context, "sharing.choose", language=lang, reply_markup=again)
        return
    await answer_part(update, context, member, draft, message)


async def command(
    update: Update, context: CocreateContext, member: Member, draft: Submission, word: str
) -> None:
    """SKIP, BACK, STOP or CANCEL typed inside a story or idea."""
    flow = flow_of(draft.kind)
    step = draft.step or REVIEW
    if word == "skip":
        await choose(update, context, member, draft, SKIP)
    elif word == "back" and step.startswith(CHANGE):
        await go_to(update, context, draft, REVIEW)
    elif word == "back":
        order = flow.order()
        name = step.partition(">")[0]
        index = order.index(name) if name in order else 0
        await go_to(update, context, draft, order[max(index - 1, 0)])
    else:
        await ask_to_cancel(update, context, draft)


async def answer_part(
    update: Update, context: CocreateContext, member: Member, draft: Submission, message: Message
) -> None:
    """Saves a typed, spoken or photographed answer to the current part, then moves on."""
    flow = flow_of(draft.kind)
    part = (draft.step or "").partition(">")[0]
    item = media.incoming(message)
    text = message.text if message.text is not None else message.caption
    if item is None and text is None:
        again = keyboard(options_for(flow, part), member.language, f"{PREFIX}:{draft.id}:{part}")
        await say(
            update, context, "sharing.bad_input", language=member.language, reply_markup=again
        )
        return
    new_media: NewMedia | None = None
    if item is not None:
        if media.too_big(item, context):
            mb = context.settings.media_max_mb
            await say(update, context, "sharing.too_big", language=member.language, mb=mb)
            return
        try:
            new_media = await media.fetch(item, context)
        except TelegramError as exc:
            logger.warning("Could not fetch a %s: %s", item.kind, exc)
            await say(update, context, "sharing.download_failed", language=member.language)
            return
    step = next_step(flow, draft, part)
    replaced = await context.store.sharing.answer(draft.id, member.id, part, text, new_media)
    media.remove_files(context, replaced)
    await go_to(update, context, draft, step)


async def choose(
    update: Update, context: CocreateContext, member: Member, draft: Submission, option: Option
) -> None:
    """Acts on a button (or its typed number or word) at the current step."""
    flow = flow_of(draft.kind)
    step = draft.step or REVIEW
    name = step.partition(">")[0]
    if option.key == "stop":
        await ask_to_cancel(update, context, draft)
    elif name in flow.parts:  # Skip
        after = next_step(flow, draft, name)
        replaced = await context.store.sharing.answer(draft.id, member.id, name, None, None)
        media.remove_files(context, replaced)
        await go_to(update, context, draft, after)
    elif name == VOLUNTEER:
        after = REVIEW
        if option.key != SKIP.key:
            await context.store.sharing.set_volunteer(draft.id, option.key)
            draft = replace(draft, volunteer=option.key)
        await go_to(update, context, draft, after)
    elif name == REVIEW:
        await review_choice(update, context, member, draft, option)
    elif name == CHANGE:
        await go_to(update, context, draft, REVIEW if option.key == BACK.key else option.key)
    elif option.key == "yes":  # throw it away
        files = await context.store.sharing.discard(draft.id)
        leave(context)
        media.remove_files(context, files)
        back = menu_button(member.language)
        await say(update, context, "sharing.discarded", language=member.language, reply_markup=back)
    else:  # keep going where they were
        await go_to(update, context, draft, step.partition(">")[2] or REVIEW)


async def review_choice(
    update: Update, context: CocreateContext, member: Member, draft: Submission, option: Option
) -> None:
    """Save, Change a part, or Throw it away."""
    flow = flow_of(draft.kind)
    if option.key == "change":
        await go_to(update, context, draft, CHANGE)
        return
    if option.key == "cancel":
        await ask_to_cancel(update, context, draft)
        return
    await context.store.sharing.submit(draft.id)
    leave(context)
    # An idea's author then chooses who may see it; else "Share one more?". Waiting for that
    # answer before anything is sent: the door commits at each send.
    who = who_may_see(member) if await may_share(context, flow, draft) else None
    await_answer(context, (who or after(flow)).name)
    if who is not None:
        context.data["shared"] = draft.id
    logger.info("A %s was saved (submission %s)", flow.kind, draft.id)
    await say(update, context, f"{flow.noun}.saved", language=member.language)
    if flow.asks_volunteer and draft.volunteer in {"yes", "maybe"}:
        await say(update, context, "idea.saved_volunteer", language=member.language)
    if who is not None:
        await ask_who(update, context, who, member.language)
    else:
        await ask_more(update, context, flow, member.language)


# Who may see an idea, asked once it is saved. "Only the team" is the default, and what a
# skip, a stop or leaving the question means: then no statement is made. Sharing makes a
# statement waiting for a facilitator (storage/statements.py): nobody else sees it before.
TEAM = Option("team", "approving.share.team")
ANONYMOUS = Option("anonymous", "approving.share.anonymous")
NAMED = Option("named", "approving.share.named")  # only for a member who joined named


async def may_share(context: CocreateContext, flow: Flow, draft: Submission) -> bool:
    """Whether a saved submission is an idea with something in it to show others."""
    if flow.key != kinds.IDEA.key:
        return False
    part = (await context.store.sharing.parts(draft.id)).get(statements.IDEA_PART)
    return part is not None and bool((part.text or "").strip() or part.media)


async def after_choosing_who(update: Update, context: CocreateContext, option: Option) -> None:
    """Keeps the idea to the team, or lets others see it once a facilitator approved it;
    then "Share one more?"."""
    submission_id = context.data.pop("shared", None)
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    lang = member.language
    visibility = SHARING_CHOICES.get(option.key)
    if option.key == NAMED.key and member.display_name is None:
        visibility = None  # never with a name the member did not give
    made = None
    if visibility is not None and isinstance(submission_id, int):
        submission = await context.store.sharing.get(submission_id)
        if submission is not None and submission.member_id == member.id:
            made = await context.store.statements.share(submission_id, visibility)
    # "Share one more?" is waited for before anything is sent: the door commits at each send.
    await_answer(context, after(kinds.IDEA).name)
    if made is not None:
        logger.info("Submission %s is shared (%s), waiting for approval", submission_id, visibility)
        await say(update, context, f"approving.share.{made.visibility}_ok", language=lang)
    else:
        await say(update, context, "approving.share.team_ok", language=lang)
    await ask_more(update, context, kinds.IDEA, lang)


SHARING_CHOICES: dict[str, statements.Visibility] = {"anonymous": "anonymous", "named": "named"}
WHO_MAY_SEE = PendingQuestion("share_with", [TEAM, ANONYMOUS], after_choosing_who)
WHO_MAY_SEE_NAMED = PendingQuestion(
    "share_with_named", [TEAM, ANONYMOUS, NAMED], after_choosing_who
)


def who_may_see(member: Member) -> PendingQuestion:
    """ "Who may see your idea?", with "with my first name" only if the member gave one."""
    return WHO_MAY_SEE if member.display_name is None else WHO_MAY_SEE_NAMED


async def after_saving(update: Update, context: CocreateContext, option: Option) -> None:
    """ "Share one more" starts again; "Menu" shows the menu."""
    if kinds.find(option.key) is not None:
        await start(update, context, option.key)
        return
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "bad.not_started")
        return
    await send_menu(update, context, member)


def starter(kind: str) -> Callable[[Update, CocreateContext], Coroutine[Any, Any, None]]:
    """What a kind's menu option does: starts it (or carries on with one left for later)."""

    async def share(update: Update, context: CocreateContext) -> None:
        await start(update, context, kind)

    return share


@cache
def after(flow: Flow) -> PendingQuestion:
    """ "Share one more?" after a kind is saved: one question per kind."""
    return PendingQuestion(
        f"more_{flow.noun}",
        [Option(flow.kind, f"{flow.noun}.another"), Option("menu", "sharing.menu")],
        after_saving,
    )


async def ask_who(
    update: Update, context: CocreateContext, who: PendingQuestion, lang: str
) -> None:
    """ "Who may see your idea?" (`who`: with or without "with my first name")."""
    await who.ask(update, context, "approving.share.ask", lang)


async def ask_more(update: Update, context: CocreateContext, flow: Flow, lang: str) -> None:
    """ "Share one more?" after a kind is saved."""
    await after(flow).ask(update, context, "sharing.next", lang)


async def reask(update: Update, context: CocreateContext) -> bool:
    """After a restart replayed an update already applied: asks again the question asked
    after saving ("Who may see your idea?", "Share one more?"), as it was first asked,
    leaving the member's session as it is. False if they are asked neither."""
    question = awaited(context)
    member = await current_member(update, context)
    if member is None:
        return False
    for who in (WHO_MAY_SEE, WHO_MAY_SEE_NAMED):
        if question == who.name:
            await ask_who(update, context, who, member.language)
            return True
    for flow in kinds.all_kinds():
        if question == after(flow).name:
            await ask_more(update, context, flow, member.language)
            return True
    return False


def after_questions() -> list[PendingQuestion]:
    """ "Who may see your idea?" and "Share one more?" of every kind in storage/kinds.py."""
    return [WHO_MAY_SEE, WHO_MAY_SEE_NAMED, *(after(flow) for flow in kinds.all_kinds())]

"""A member's own data: /mydata sends all of it; /delete erases it after asking once more."""

from __future__ import annotations

import json
from typing import Any

from telegram import Update

from bot.catalogue import long_date, t
from conversations import media
from conversations.choices import Option
from conversations.context import CocreateContext
from conversations.pending import PendingQuestion
from conversations.replies import chat_of, current_member, menu_button, say, send_menu
from storage import kinds
from storage.member_export import export_member


async def send_my_data(update: Update, context: CocreateContext) -> None:
    """Sends a short summary and a JSON file with everything kept about the member."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "delete.nothing")
        return
    data = await export_member(context.store, member.id)
    lang = member.language
    receipt = await context.store.consent.current(member.id)
    agreed = ""
    if receipt is not None:
        when = receipt.agreed_at.astimezone(context.settings.tz)
        agreed = long_date(when.date(), lang)
    await say(
        update,
        context,
        "mydata.summary",
        language=lang,
        language_name=t(lang, f"language.{lang}"),
        name=member.display_name or t(lang, "mydata.anonymous"),
        shared="".join(
            t(lang, f"{kind.noun}.mydata", count=len(data[kind.plural])) + "\n"
            for kind in kinds.all_kinds()
        )
        + weighed(data, lang),
        answers=len(data["answers"]),
        agreed=agreed,
    )
    chat_id = chat_of(update)
    assert chat_id is not None
    await context.bot.send_document(
        chat_id,
        document=json.dumps(data, ensure_ascii=False, indent=2).encode(),
        filename="my-data.json",
        caption=t(lang, "mydata.file_caption"),
        reply_markup=menu_button(lang),
    )


def weighed(data: dict[str, Any], lang: str) -> str:
    """The summary's lines on ideas members weigh: the member's ideas others may see (once
    a facilitator says OK), and their votes on others' ideas. None when there are none."""
    ideas = [
        s
        for kind in kinds.all_kinds()
        for s in data[kind.plural]
        if s.get("who_may_see", "only_the_team") != "only_the_team"
    ]
    lines = []
    if ideas:
        lines.append(t(lang, "mydata.ideas_shown", count=len(ideas)) + "\n")
    if data["votes"]:
        lines.append(t(lang, "mydata.votes", count=len(data["votes"])) + "\n")
    return "".join(lines)


async def decide(update: Update, context: CocreateContext, option: Option) -> None:
    """Deletes everything about the member, or keeps it, as they chose."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "delete.nothing")
        return
    if option.key != "yes":
        await say(update, context, "delete.kept", language=member.language)
        await send_menu(update, context, member)
        return
    files = await context.store.sharing.media_files_of(member.id)
    await context.store.erase_member(member.id)
    media.remove_files(context, files)
    context.session.drop()
    await say(update, context, "delete.done", language=member.language)


QUESTION = PendingQuestion(
    "erase", [Option("yes", "delete.yes"), Option("no", "delete.no")], decide
)


async def ask(update: Update, context: CocreateContext) -> None:
    """Asks once more before deleting everything."""
    member = await current_member(update, context)
    if member is None:
        await say(update, context, "delete.nothing")
        return
    await QUESTION.ask(update, context, "delete.ask", member.language)


async def reask(update: Update, context: CocreateContext) -> bool:
    """After a restart replayed an update already applied: asks again "Delete it all?",
    leaving the member's session as it is. False for someone who is not a member."""
    if await current_member(update, context) is None:
        return False
    await ask(update, context)
    return True

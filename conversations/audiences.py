"""Who a question or broadcast goes to: everyone, one project, members tagged with a word
(one of their "about you" answers, e.g. an area), or members who answered a question; and,
for previews, what it costs its SMS members (bot/sms_cost.py)."""

from __future__ import annotations

from bot.catalogue import t
from bot.sms_cost import SMS_CHATS, Message, audience_cost, preview_text
from conversations.choices import Option
from conversations.context import CocreateContext

EVERYONE = Option("everyone", "staff.audience.everyone")
PROJECT = Option("project", "staff.audience.project")
TAG = Option("tag", "staff.audience.tag")
ANSWERED = Option("answered", "staff.audience.answered")
MAX_TAG = 40


async def project_options(context: CocreateContext) -> list[Option]:
    """One button per project."""
    return [Option(p.code, label=p.name) for p in await context.store.projects.all()]


async def question_options(context: CocreateContext) -> list[Option]:
    """One button per recent question."""
    questions = await context.store.questions.recent(8)
    return [Option(str(q.id), label=_short(q.text)) for q in questions]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


async def describe(context: CocreateContext, audience: str, lang: str) -> str:
    """The audience in words, for previews and lists."""
    kind, _, value = audience.partition(":")
    if kind == "project":
        project = await context.store.projects.by_code(value)
        return t(lang, "staff.audience.is_project", name=project.name if project else value)
    if kind == "tag":
        return t(lang, "staff.audience.is_tag", word=value)
    if kind == "answered":
        question = await context.store.questions.get(int(value or 0))
        return t(lang, "staff.audience.is_answered", question=question.text if question else "")
    return t(lang, "staff.audience.is_everyone")


async def size(context: CocreateContext, audience: str) -> int:
    """How many members the audience names who can get a message now: not those who
    stopped messages or cannot be reached (the sender would skip them)."""
    return await context.store.questions.reachable(audience)


async def sms_cost(
    context: CocreateContext, audience: str, message: Message, lang: str
) -> str | None:
    """For a preview: how many SMS each SMS member of the audience will get (`message`: the
    message in a language) and the total for them all; None when the audience has no SMS
    member who can get it now."""
    people = await context.store.questions.reachable_by_language(audience, SMS_CHATS)
    cost = audience_cost(people, message)
    return preview_text(cost, lang) if cost is not None else None

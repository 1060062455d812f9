"""How a facilitator's question looks to a member: its text, hint and buttons (`render`,
exactly what /ask's preview shows), and its choices in words. Buttons carry
`ans:<round id>:<choice>` (conversations/answering.py takes them).
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.catalogue import t
from conversations.choices import Option, keyboard
from storage.questions import Question

PREFIX = "ans"
SKIP = Option("skip", "common.skip")


def options_of(question: Question) -> list[Option]:
    """The choices a question offers (none for an open question)."""
    if question.kind == "choice":
        return [Option(str(i), label=label) for i, label in enumerate(question.options, start=1)]
    if question.kind == "scale":
        return [Option(str(n), label=str(n)) for n in range(1, 6)]
    if question.kind == "yesno":
        return [Option("yes", "questions.yes"), Option("no", "questions.no")]
    return []


def choice_label(question: Question, choice: str | None, language: str) -> str:
    """How a stored choice reads."""
    for option in options_of(question):
        if option.key == choice:
            return option.text(language)
    return choice or ""


def render(question: Question, round_id: int, language: str) -> tuple[str, InlineKeyboardMarkup]:
    """The message a member gets for a question: exactly this is shown in the preview."""
    hint = {"open": "questions.hint.open", "scale": "questions.hint.scale"}.get(
        question.kind, "questions.hint.choice"
    )
    text = f"{question.text}\n\n{t(language, hint)}"
    prefix = f"{PREFIX}:{round_id}"
    if question.kind == "scale":
        numbers = [
            InlineKeyboardButton(o.key, callback_data=f"{prefix}:{o.key}")
            for o in options_of(question)
        ]
        skip = InlineKeyboardButton(SKIP.text(language), callback_data=f"{prefix}:{SKIP.key}")
        return text, InlineKeyboardMarkup([numbers, [skip]])
    return text, keyboard([*options_of(question), SKIP], language, prefix)

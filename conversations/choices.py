"""Choices shown as buttons that can also be typed: by number, by label or by a known word.

Callback data is `<prefix>:<option key>`; the prefix names the flow and step, so a button
from an earlier step can be recognised as old.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.catalogue import catalogue

_EDGE_PUNCTUATION = re.compile(r"^[\s\"'“”‘’«»()\[\]]+|[\s.!?,;:\"'“”‘’«»()\[\]…]+$")
_SPACES = re.compile(r"\s+")
# "1. Yes, I agree": a button's label as shown, typed back with its number.
_NUMBERED = re.compile(r"^(\d+)[.)]\s*(.+)$", re.ASCII)


@dataclass(frozen=True)
class Option:
    """One choice: `key` is what is stored; the label comes from the catalogue or is given."""

    key: str
    label_key: str | None = None
    label: str | None = None

    def text(self, language: str) -> str:
        """The label in a language."""
        if self.label is not None:
            return self.label
        assert self.label_key is not None
        return catalogue().text(language, self.label_key)

    def words(self, language: str) -> list[str]:
        """Typed words that also pick this option."""
        if self.label_key is None:
            return []
        return catalogue().words(language, self.label_key)


def normalise(text: str) -> str:
    """Folds case and spacing and drops edge punctuation, for comparing typed answers."""
    text = _SPACES.sub(" ", text).strip()
    return _EDGE_PUNCTUATION.sub("", text).casefold()


def number(text: str) -> int | None:
    """A whole number written with the digits 0-9, else None.

    `str.isdigit` is true for "²" (which `int` refuses) and for "٣" or "３" (which `int`
    reads): parse typed answers and button data with this, never `isdigit` and `int`."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def match(text: str, options: Sequence[Option], language: str) -> Option | None:
    """The option a typed answer means: its number, its label or one of its words, or the
    button's text as shown ("1. Yes, I agree"), if number and label agree."""
    typed = normalise(text)
    if not typed:
        return None
    if (picked := number(typed)) is not None:
        return options[picked - 1] if 0 < picked <= len(options) else None
    if (numbered := _NUMBERED.match(typed)) is not None:
        picked = int(numbered.group(1))
        if 0 < picked <= len(options) and _names(numbered.group(2), options[picked - 1], language):
            return options[picked - 1]
    for option in options:
        if _names(typed, option, language):
            return option
    for option in options:
        if typed in {_folded(word) for word in option.words(language)}:
            return option
    return None


def _names(typed: str, option: Option, language: str) -> bool:
    """Whether typed words are the option's label (in the language or in English)."""
    typed = normalise(typed)
    return typed in (_folded(option.text(language)), _folded(option.text("en")))


# Labels and typed words from the catalogue, folded once: every typed answer is compared
# with every option's.
_folded = functools.lru_cache(maxsize=4096)(normalise)


def button_text(number: int, option: Option, language: str) -> str:
    """A button's label, numbered so the member knows what to type instead."""
    return f"{number}. {option.text(language)}"


def keyboard(options: Sequence[Option], language: str, prefix: str) -> InlineKeyboardMarkup:
    """One button a row, numbered from 1."""
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button_text(i, o, language), callback_data=f"{prefix}:{o.key}")]
            for i, o in enumerate(options, start=1)
        ]
    )


def from_callback(data: str, options: Sequence[Option], prefix: str) -> Option | None:
    """The option a button press names, or None if it belongs to another step."""
    head, _, key = data.rpartition(":")
    if head != prefix:
        return None
    return next((o for o in options if o.key == key), None)

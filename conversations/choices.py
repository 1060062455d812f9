"""Choices shown as buttons that can also be typed: by number, by label or by a known word.

Callback data is `<prefix>:<option key>`; the prefix names the flow and step, so a button
from an earlier step can be recognised as old.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.catalogue import catalogue

_EDGE_PUNCTUATION = re.compile(r"^[\s\"'“”‘’«»()\[\]]+|[\s.!?,;:\"'“”‘’«»()\[\]…]+$")
_SPACES = re.compile(r"\s+")


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


def match(text: str, options: Sequence[Option], language: str) -> Option | None:
    """The option a typed answer means: its number, its label or one of its words."""
    typed = normalise(text)
    if not typed:
        return None
    if typed.isdigit():
        index = int(typed) - 1
        return options[index] if 0 <= index < len(options) else None
    for option in options:
        labels = {option.text(language), option.text("en")}
        if typed in {normalise(label) for label in labels}:
            return option
    for option in options:
        if typed in {normalise(word) for word in option.words(language)}:
            return option
    return None


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

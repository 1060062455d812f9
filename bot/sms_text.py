"""A Bot API message written out as one plain text for SMS: `sms_body`.

Buttons become one line, "Reply 1 for Yes, 2 for No." (their labels are numbered already,
"1. Yes", as a member may type a button's number: conversations/choices.py); a button
without a number gets its place in the keyboard. Members get plain text only: HTML tags go,
a link's words stay without its address, and no address is sent that the member did not ask
for (link buttons, and any http(s):// or t.me address in the text, are left out).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.catalogue import t

_TAG = re.compile(r"<[^>]+>")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_ADDRESS = re.compile(r"(?:https?://|\bt\.me/|\btelegram\.me/)\S*", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]{2,}")
_NUMBERED = re.compile(r"^(\d+)[.)]\s*(.+)$", re.ASCII | re.DOTALL)
# Punctuation outside the SMS alphabet, as the alphabet writes it (as Twilio's "smart
# encoding" does): one curly quote would make the whole text UCS-2, at 70 characters an SMS
# instead of 160. Letters (Welsh ŵ, ŷ …) are never changed.
_SMART = str.maketrans(
    {
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u2013": "-",  # –
        "\u2014": "-",  # —
        "\u2026": "...",  # …
        "\u00a0": " ",  # no-break space
        "\u2022": "-",  # •
    }
)


def plain(text: str, parse_mode: str | None) -> str:
    """The words of a Telegram text, without markup or web addresses, with curly quotes,
    dashes and dots written as the SMS alphabet has them."""
    if parse_mode and parse_mode.upper() == "HTML":
        text = html.unescape(_TAG.sub("", _BR.sub("\n", text)))
    elif parse_mode and parse_mode.upper().startswith("MARKDOWN"):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [words](address)
        text = re.sub(r"[*_`~|]", "", text)
    text = _ADDRESS.sub("", text).translate(_SMART)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(lines).strip()


def button_labels(markup: Mapping[str, Any] | None) -> list[str]:
    """The labels of a reply_markup's buttons a member can answer with, in order (inline
    buttons with callback data, and reply-keyboard buttons); link buttons are left out."""
    if not markup:
        return []
    labels: list[str] = []
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            if "callback_data" in button:
                labels.append(str(button.get("text", "")))
    for row in markup.get("keyboard") or []:
        for button in row:
            labels.append(str(button.get("text", "")) if isinstance(button, dict) else str(button))
    return labels


def choices_line(labels: Sequence[str], language: str) -> str:
    """ "Reply 1 for Yes, 2 for No." for the buttons' labels."""
    parts = []
    for place, label in enumerate(labels, start=1):
        numbered = _NUMBERED.match(label.strip())
        number, words = (numbered.group(1), numbered.group(2)) if numbered else (place, label)
        parts.append(t(language, "sms.choice", number=number, label=words.strip()))
    return t(language, "sms.reply_with", choices=", ".join(parts))


def sms_body(
    text: str,
    language: str,
    parse_mode: str | None = None,
    markup: Mapping[str, Any] | None = None,
) -> str:
    """The one plain text an SMS member gets for a message and its buttons."""
    body = plain(text, parse_mode)
    labels = button_labels(markup)
    if not labels:
        return body
    line = choices_line(labels, language)
    return f"{body}\n{line}" if body else line

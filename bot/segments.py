"""How many SMS segments a text costs: `segments(text)`, and the encoding it needs.

A text in GSM-7 (the SMS alphabet) fits 160 characters in one SMS; longer, it is split into
parts of 153 (7 go to the header that joins them back). Characters of the alphabet's
extension table (^ { } \\ [ ~ ] | € and form feed) take two places, and are never split
from their escape. One character outside GSM-7 (Welsh ŵ and ŷ, curly quotes, emoji) makes
the whole text UCS-2: 70 UTF-16 units in one SMS, 67 a part, and a character beyond the
Basic Multilingual Plane (most emoji) takes two units, never split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class Cost:
    """A text's encoding, its length in that encoding's units, and its segments."""

    encoding: Encoding
    units: int
    segments: int


def encoding(text: str) -> Encoding:
    """GSM-7 if every character is in the SMS alphabet (or its extension), else UCS-2."""
    allowed = GSM7_BASIC | GSM7_EXTENSION
    return "GSM-7" if all(ch in allowed for ch in text) else "UCS-2"


def _widths(text: str, coding: Encoding) -> list[int]:
    if coding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def cost(text: str) -> Cost:
    """What sending this text as one SMS costs (an empty text still costs one segment)."""
    coding = encoding(text)
    widths = _widths(text, coding)
    units = sum(widths)
    if units <= SINGLE[coding]:
        return Cost(coding, units, 1)
    part, parts, used = PART[coding], 1, 0
    for width in widths:  # a character never straddles two parts
        if used + width > part:
            parts, used = parts + 1, 0
        used += width
    return Cost(coding, units, parts)


def segments(text: str) -> int:
    """How many SMS segments this text is sent as."""
    return cost(text).segments

"""SMS segments against known values: GSM-7 160 / 153 a part, UCS-2 70 / 67 a part, the
extension table's characters two places each, emoji two UTF-16 units, none ever split."""

from __future__ import annotations

import pytest

from bot.segments import cost, encoding, segments


@pytest.mark.parametrize(
    ("text", "coding", "units", "parts"),
    [
        ("Thank you. We have saved your story.", "GSM-7", 36, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),  # 2 × 153
        ("a" * 307, "GSM-7", 307, 3),
        ("£5 for the bus, @ 9am: ¿Qué? Ça va.", "GSM-7", 35, 1),  # £ @ ¿ é Ç are GSM-7
        ("€" * 80, "GSM-7", 160, 1),  # € is in the extension table: 2 places
        ("€" * 81, "GSM-7", 162, 2),  # 76 € a part (152), never split from its escape
        ("a" + "€" * 76, "GSM-7", 153, 1),
        ("a" * 152 + "€" + "b" * 152, "GSM-7", 306, 3),  # the € goes whole to part 2: 3 parts
        ("Diolch yn fawr.", "GSM-7", 15, 1),  # Welsh without a circumflex
        ("Dŵr glân.", "UCS-2", 9, 1),  # ŵ and â: UCS-2
        ("ŵ" * 70, "UCS-2", 70, 1),
        ("ŵ" * 71, "UCS-2", 71, 2),
        ("ŷ" * 134, "UCS-2", 134, 2),  # 2 × 67
        ("ŷ" * 135, "UCS-2", 135, 3),
        ("ça", "UCS-2", 2, 1),  # lower-case ç is not GSM-7 (only Ç is)
        ("👍" * 35, "UCS-2", 70, 1),  # an emoji is 2 UTF-16 units
        ("👍" * 36, "UCS-2", 72, 2),
        ("👍" * 67, "UCS-2", 134, 3),  # 33 a part (66 units): a pair is never split
        ("Great news 🎉", "UCS-2", 13, 1),
        ("", "GSM-7", 0, 1),
    ],
)
def test_segments_of_known_texts(text: str, coding: str, units: int, parts: int) -> None:
    found = cost(text)
    assert (found.encoding, found.units, found.segments) == (coding, units, parts)
    assert segments(text) == parts and encoding(text) == coding


def test_an_english_text_doubles_in_cost_when_one_welsh_letter_joins_it() -> None:
    english = "We have put in three new lights by the path. " * 3  # 135 characters
    assert segments(english) == 1
    assert segments(english + "ŵ") == 3  # 136 UCS-2 units: parts of 67

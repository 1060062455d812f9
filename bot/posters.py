"""A project's join link, and its printable poster: an A4 page (PDF) with a QR code of the link.

The link is Telegram's deep link, t.me/<the bot's username>?start=<project code>: the bot
learns its username from Telegram (getMe), as ptb does when it starts. The QR code is made by
segno and drawn as squares (sharp at any size); the page by reportlab (BSD-licensed, pure
Python). The words come from the catalogue (poster.po), in English or Welsh; the font is
DejaVu Sans, shipped in bot/fonts/ (cut down to Latin letters, so Welsh's ŵ and ŷ print).

With SMS on (settings.sms_on), people without Telegram join by texting the project's code to
the SMS number: the poster says so ("Or text CODE to +44 7700 900123"), as the workbench's
Projects page does.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from telegram import Bot

from bot.catalogue import t
from bot.settings import Settings

FONTS = Path(__file__).resolve().parent / "fonts"
REGULAR, BOLD = "PosterSans", "PosterSans-Bold"
MARGIN = 20 * mm
QR_SIDE = 110 * mm  # about 11 cm: a phone reads it from a couple of metres
INK = (0.07, 0.07, 0.07)


@dataclass(frozen=True)
class TextToJoin:
    """How to join a project by SMS: text its code to the number (shown spaced out)."""

    code: str
    number: str


def spaced_number(number: str) -> str:
    """A number in E.164 as people write it: +447700900123 as +44 7700 900123 (a UK
    number); any other as it is."""
    uk = re.fullmatch(r"\+44(\d{4})(\d{6})", number)
    return f"+44 {uk.group(1)} {uk.group(2)}" if uk else number


def text_to_join(settings: Settings, code: str) -> TextToJoin | None:
    """How to join the project by SMS; None when SMS is off."""
    return TextToJoin(code, spaced_number(settings.sms_from)) if settings.sms_on else None


def join_link(username: str, code: str) -> str:
    """The link that opens the bot in Telegram and joins the project."""
    return f"https://t.me/{username}?start={code}"


async def bot_username(settings: Settings) -> str:
    """The bot's username, from Telegram (getMe)."""
    async with Bot(
        settings.token(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
    ) as bot:
        return bot.username


@cache
def _fonts() -> None:
    pdfmetrics.registerFont(TTFont(REGULAR, str(FONTS / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(FONTS / "DejaVuSans-Bold.ttf")))


def _lines(text: str, font: str, size: float, width: float) -> list[str]:
    """The text broken into lines no wider than `width` (at word breaks)."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and pdfmetrics.stringWidth(candidate, font, size) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


class _Page:
    """Writes centred lines down an A4 page."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self.width, self.height = A4
        self.y = self.height - MARGIN

    def text(self, text: str, font: str, size: float, after: float = 4 * mm) -> None:
        leading = size * 1.3
        for line in _lines(text, font, size, self.width - 2 * MARGIN):
            self.y -= leading
            self.canvas.setFont(font, size)
            self.canvas.drawCentredString(self.width / 2, self.y + (leading - size), line)
        self.y -= after

    def qr(self, link: str) -> None:
        """The QR code (with its quiet zone), centred, as filled squares."""
        code = segno.make(link, error="m")
        rows = list(code.matrix_iter(border=4))
        module = QR_SIDE / len(rows)
        left = (self.width - QR_SIDE) / 2
        top = self.y
        path = self.canvas.beginPath()
        for r, row in enumerate(rows):
            for c, dark in enumerate(row):
                if dark:
                    path.rect(left + c * module, top - (r + 1) * module, module, module)
        self.canvas.drawPath(path, stroke=0, fill=1)
        self.y = top - QR_SIDE - 2 * mm


@lru_cache(maxsize=32)
def poster_pdf(project_name: str, link: str, language: str, sms: TextToJoin | None = None) -> bytes:
    """An A4 poster for a project: what it is, how to join (the QR code, and the link in
    words; with `sms`, the code to text and the number), that it is free, and what is kept.
    The last few made are kept (they are small)."""
    _fonts()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"{project_name}: {t(language, 'poster.heading')}")
    canvas.setAuthor("cocreate")
    canvas.setFillColorRGB(*INK)
    page = _Page(canvas)
    page.text(project_name, BOLD, 30, after=2 * mm)
    page.text(t(language, "poster.heading"), BOLD, 22, after=5 * mm)
    page.text(t(language, "poster.what"), REGULAR, 15)
    page.text(t(language, "poster.how"), REGULAR, 15, after=2 * mm)
    page.qr(link)
    page.text(t(language, "poster.link"), REGULAR, 12, after=0)
    page.text(link.removeprefix("https://"), BOLD, 14, after=6 * mm)
    if sms is not None:
        page.text(t(language, "poster.text", code=sms.code, number=sms.number), BOLD, 14)
    page.text(t(language, "poster.free"), BOLD, 15)
    page.text(t(language, "poster.kept"), REGULAR, 12)
    canvas.showPage()
    canvas.save()
    return out.getvalue()

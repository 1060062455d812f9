"""/export: an organiser picks a kind of file (CSV, Excel, JSON) and what goes in it
(everything, one project, one question, the last 7 days), by button or typed, and gets the
file as a document. Organisers only: to anyone else /export is an unknown command.

A staff flow ("export", conversations/steps.py); the kind of file chosen waits in the
session's data["export"]. Buttons carry `exp:<state>:<choice>`. storage/export.py writes the
file into a temporary folder (deleted once sent) and puts the export in the audit log.
Telegram takes uploads of 50 MB at most, so a bigger export is cut into parts of about 45 MB:
zipped together when that fits, else sent one by one. A CSV or JSON export with votes,
statements or status changes has a file for each of them too, so it comes zipped. The file
is made and sent as a task of its own, so a large export does not hold up the bot's answers
to everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import zipfile
from datetime import timedelta
from enum import IntEnum
from pathlib import Path
from typing import Final

from telegram import Update

from bot.catalogue import t, tn
from conversations import audiences, replies, steps
from conversations.choices import Option
from conversations.context import CocreateContext
from conversations.machine import END
from conversations.replies import chat_of
from conversations.staff import ORGANISER
from storage.export_rows import ExportFilter

logger = logging.getLogger(__name__)

DRAFT: Final = "export"
UPLOAD_LIMIT = 50 * 1000 * 1000  # the largest file a bot may send (Telegram Bot API)
PART_BYTES = 45 * 1000 * 1000  # a part may pass this by one row
UPLOAD_TIMEOUT = 300.0  # seconds to send one large file
RECENT = timedelta(days=7)


class State(IntEnum):
    FORMAT = 1
    FILTER = 2
    PROJECT = 3
    QUESTION = 4


# Names of file formats read the same in every language; the catalogue has the words that
# also pick them.
FORMATS = [
    Option("csv", "export.format.csv", label="CSV"),
    Option("xlsx", "export.format.xlsx", label="Excel"),
    Option("json", "export.format.json", label="JSON"),
]
# What can go in the file.
FILTERS = [
    Option("all", "export.filter.all"),
    Option("project", "export.filter.project"),
    Option("question", "export.filter.question"),
    Option("week", "export.filter.week"),
]

FLOW = steps.StaffFlow(DRAFT, State, buttons="exp", cancelled="export.cancelled", role=ORGANISER)
ask, draft, build_handler = FLOW.ask, FLOW.draft, FLOW.build_handler


@FLOW.choice(State.FORMAT, "export.ask.format", FORMATS)
async def on_format(update: Update, context: CocreateContext, fmt: Option, lang: str) -> int:
    """Stores the kind of file and asks what goes in it."""
    draft(context)["format"] = fmt.key
    return await ask(update, context, State.FILTER)


@FLOW.choice(State.FILTER, "export.ask.filter", FILTERS)
async def on_filter(update: Update, context: CocreateContext, chosen: Option, lang: str) -> int:
    """Makes the file now, or asks which project or question first."""
    if chosen.key == "all":
        return await make(update, context, ExportFilter(), lang)
    if chosen.key == "week":
        return await make(update, context, ExportFilter(since=context.clock.now() - RECENT), lang)
    if chosen.key == "project":
        projects, none = audiences.project_options, "export.no_projects"
        return await FLOW.offer(update, context, lang, State.FILTER, State.PROJECT, projects, none)
    questions, none = audiences.question_options, "export.no_questions"
    return await FLOW.offer(update, context, lang, State.FILTER, State.QUESTION, questions, none)


@FLOW.step(State.PROJECT, "export.ask.project", audiences.project_options)
async def on_project(update: Update, context: CocreateContext, got: steps.Answer, lang: str) -> int:
    """Makes the file of one project (picked, or its code typed)."""
    code = got.option.key if got.option is not None else None
    if code is None and got.text:
        project = await context.store.projects.by_code(got.text)
        code = project.code if project is not None else None
    if code is None:
        return await FLOW.bad(update, context, State.PROJECT, lang)
    return await make(update, context, ExportFilter(project=code), lang)


@FLOW.choice(State.QUESTION, "export.ask.question", audiences.question_options)
async def on_question(update: Update, context: CocreateContext, chosen: Option, lang: str) -> int:
    """Makes the file of the answers to one question."""
    return await make(update, context, ExportFilter(question_id=int(chosen.key)), lang)


async def make(update: Update, context: CocreateContext, flt: ExportFilter, lang: str) -> int:
    """Says the file is coming, then makes and sends it in a task of its own."""
    fmt = str(context.data.pop(DRAFT, {}).get("format", "csv"))
    context.session.end()  # done: before anything is sent (see machine.py)
    await steps.ask(update, context, lang, "export.making")
    context.application.create_task(
        deliver(update, context, fmt, flt, lang), update=update, name="export"
    )
    return END


def zip_together(files: list[Path], bundle: Path) -> None:
    """Puts files in one zip (compressed: CSV and JSON shrink a lot)."""
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:
        for path in files:
            z.write(path, arcname=path.name)


async def deliver(
    update: Update, context: CocreateContext, fmt: str, flt: ExportFilter, lang: str
) -> None:
    """Makes the file and sends it: whole; or in parts, zipped together or one by one."""
    user, chat_id = update.effective_user, chat_of(update)
    assert user is not None and chat_id is not None
    tz = context.settings.tz
    stem = f"cocreate-export-{context.clock.now().astimezone(tz):%Y-%m-%d}"
    with tempfile.TemporaryDirectory(prefix="cocreate-export-") as temp:
        folder = Path(temp)
        result = await context.store.responses.export_parts(
            fmt, folder, stem, flt, tz, actor=f"telegram:{user.id}", max_bytes=PART_BYTES
        )
        logger.info("Organiser %s exported %s rows as %s", user.id, result.rows, fmt)
        files = list(result.files) + list(result.table_files)
        if len(files) == 1:
            await send(
                context, chat_id, files[0], tn(lang, "export.ready", result.rows, rows=result.rows)
            )
            return
        bundle = folder / f"{stem}.zip"
        await asyncio.to_thread(zip_together, files, bundle)
        if bundle.stat().st_size <= UPLOAD_LIMIT:
            # Whole, but with votes, statements or status changes in files of their own.
            n = result.rows
            caption = (
                tn(lang, "export.zipped", n, rows=n)
                if len(result.files) > 1
                else tn(lang, "export.ready.tables", n, rows=n)
            )
            await send(context, chat_id, bundle, caption)
            return
        bundle.unlink()
        parts = len(files)
        told = [
            tn(lang, "export.parts", parts, parts=parts),
            tn(lang, "export.parts.rows", result.rows, rows=result.rows),
        ]
        await replies.send(update, context, " ".join(told))
        for number, path in enumerate(files, start=1):
            await send(context, chat_id, path, t(lang, "export.part", part=number, parts=parts))


async def send(context: CocreateContext, chat_id: int, path: Path, caption: str) -> None:
    """Sends one file as a document."""
    with path.open("rb") as file:
        await context.bot.send_document(
            chat_id,
            document=file,
            filename=path.name,
            caption=caption,
            write_timeout=UPLOAD_TIMEOUT,
        )

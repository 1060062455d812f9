"""Downloads, for organisers only: the same exports as `cocreate export` and /export (CSV,
Excel or JSON Lines, with the members' media as a zip if asked), with the same filters
(project, question, since, until: read by bot/export_args.py, checked and written by
storage/export.py, which also puts the export in the audit log as /export does).

The export is written into a private temporary folder, then streamed to the browser and the
folder removed. One file goes as it is; several (votes, statements or status changes beside
the responses, or the media) go zipped together, as /export sends them.

Routes:
  GET  /downloads   the form
  POST /downloads   the file (CSRF); a bad filter shows the form again with why
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from bot.export_args import check_format, export_filter
from bot.web.access import Staff
from bot.web.bench import Bench
from bot.web.pages.queue_tools import posted, staff_or_refusal
from conversations.exporting import zip_together
from storage.export_files import SUFFIXES
from storage.export_rows import BadExport

logger = logging.getLogger(__name__)

NAV = ("/downloads", "Downloads")
WHAT = "Downloads"
FORMATS = (("csv", "CSV (opens in any spreadsheet)"), ("xlsx", "Excel"), ("json", "JSON Lines"))
TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".jsonl": "application/x-ndjson",
    ".zip": "application/zip",
}
# bot/export_args.py names the command line's options; the form names its fields.
FIELDS = {"--question": "Question number", "--since": "From", "--until": "Up to"}


def plain(error: BadExport) -> str:
    text = str(error)
    for option, field in FIELDS.items():
        text = text.replace(option, f'"{field}"')
    return text


def routes(bench: Bench) -> list[BaseRoute]:
    resources = bench.resources
    store, settings = resources.store, resources.settings

    async def form_page(
        request: Request, staff: Staff, form: dict[str, str], error: str = "", code: int = 200
    ) -> Response:
        return bench.page(
            request,
            "downloads",
            code,
            staff=staff,
            formats=FORMATS,
            projects=await store.projects.all(),
            form=form,
            error=error,
        )

    async def could_not(
        request: Request, staff: Staff, form: dict[str, str], error: OSError
    ) -> Response:
        reason = error.strerror or str(error)
        logger.warning("A download could not be made: %s", reason)
        why = f"The file could not be made ({reason}). Nothing was kept. Tell whoever runs the bot."
        return await form_page(request, staff, form, why, 500)

    async def show(request: Request) -> Response:
        staff = await staff_or_refusal(bench, request, organisers=WHAT)
        if isinstance(staff, Response):
            return staff
        return await form_page(request, staff, {"format": "csv"})

    async def download(request: Request) -> Response:
        checked = await posted(bench, request, organisers=WHAT)
        if isinstance(checked, Response):
            return checked
        staff, form = checked
        fmt = form.get("format", "")
        try:
            check_format(fmt)
            wanted = export_filter(
                project=form.get("project") or None,
                question=form.get("question") or None,
                since=form.get("since") or None,
                until=form.get("until") or None,
                tz=settings.tz,
            )
            wanted = await store.responses.check(wanted)
        except BadExport as exc:
            return await form_page(request, staff, form, plain(exc), 400)
        stem = f"cocreate-export-{resources.clock.now().astimezone(settings.tz):%Y-%m-%d}"
        try:
            folder = Path(tempfile.mkdtemp(prefix="cocreate-download-"))
        except OSError as exc:  # no temporary folder, or no room in it
            return await could_not(request, staff, form, exc)
        try:
            out = folder / f"{stem}{SUFFIXES[fmt]}"
            media_out = folder / f"{stem}-media.zip" if form.get("media") else None
            result = await store.responses.export(
                fmt,
                out,
                wanted,
                settings.tz,
                actor=f"telegram:{staff.session.telegram_user_id}",
                media_dir=settings.media_dir,
                media_out=media_out,
            )
            files = [*result.files, *result.table_files]
            if result.media_zip is not None:
                files.append(result.media_zip)
            sent = files[0]
            if len(files) > 1:
                sent = folder / "bundle" / f"{stem}.zip"
                sent.parent.mkdir()
                await asyncio.to_thread(zip_together, files, sent)
        except OSError as exc:  # a full disk: nothing is left, and the form says why
            shutil.rmtree(folder, ignore_errors=True)
            return await could_not(request, staff, form, exc)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            sent,
            media_type=TYPES[sent.suffix],
            filename=sent.name,
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    return [
        Route("/downloads", show, methods=["GET"]),
        Route("/downloads", download, methods=["POST"]),
    ]

"""The `cocreate` command (also `python -m bot`).

cocreate run                  the bot, until Ctrl-C or SIGTERM
cocreate try                  the bot on a local stand-in for Telegram, with a chat page
cocreate projects add CODE NAME / cocreate projects list
cocreate projects poster CODE --out FILE [--language cy]   a printable A4 poster (PDF)
cocreate export --format csv --out FILE   what members said (README, "Exports")
cocreate audit                the audit log, newest last
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvloop
from pydantic import ValidationError
from telegram.error import InvalidToken, TelegramError

from bot.app import build_application, running
from bot.clock import SystemClock
from bot.export_args import check_format, check_out, could_not_write, export_filter
from bot.logs import configure
from bot.settings import MissingToken, MissingWebhookSecret, Settings
from bot.startup import TokenRejected, reach_telegram
from bot.web import WorkbenchUnavailable
from storage.export import ExportResult
from storage.export_rows import BadExport
from storage.models import AuditEntry
from storage.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

cli = typer.Typer(add_completion=False, no_args_is_help=True, help="cocreate: a co-production bot.")
projects_cli = typer.Typer(no_args_is_help=True, help="Projects members can join with a link.")
cli.add_typer(projects_cli, name="projects")


def load_settings() -> Settings:
    """Reads the settings, or exits with one sentence saying which one is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "a setting"
        typer.echo(f"cocreate: {name} is not valid: {first['msg']}", err=True)
        raise typer.Exit(2) from None


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Opens the database, runs some work on it, and closes it."""

    async def go() -> T:
        clock = SystemClock(settings.tz)
        store = await Store.open_url(settings.database_url, clock.now)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


@cli.command()
def run() -> None:
    """Run the bot until Ctrl-C or SIGTERM."""
    settings = load_settings()
    try:
        token = settings.token()
        secret = settings.webhook_token()
    except (MissingToken, MissingWebhookSecret) as exc:
        typer.echo(f"cocreate: {exc}", err=True)
        raise typer.Exit(2) from None
    if (problem := settings.one_port_problem()) is not None:
        typer.echo(f"cocreate: {problem}", err=True)
        raise typer.Exit(2)
    configure(settings.log_level, [token, secret or ""])
    try:
        # uvloop's event loop: less CPU for every request and database call than asyncio's.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings))
    except (TokenRejected, InvalidToken):  # ptb's InvalidToken message holds the token
        typer.echo(f"cocreate: {TokenRejected()}", err=True)
        raise typer.Exit(2) from None
    except WorkbenchUnavailable as exc:
        typer.echo(f"cocreate: {exc}", err=True)
        raise typer.Exit(2) from None


async def serve(settings: Settings) -> None:
    """Waits for Telegram, opens the database, runs the bot, and stops gracefully on SIGINT
    or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not await reach_telegram(settings, stop):
        logger.info("Stopped before Telegram answered")
        return
    # Imported here: the web libraries would slow every other command's start.
    from bot.web.server import serving
    from bot.web.sms import SmsRoutes
    from bot.web.webhook import Webhook

    clock = SystemClock(settings.tz)
    store = await Store.open_url(settings.database_url, clock.now)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    try:
        application = build_application(settings, store, clock)
        # The staff workbench beside the bot, in the same loop (bot/web/server.py); it is
        # listening before the bot starts, and stops after it. In webhook mode it takes
        # Telegram's updates too (bot/web/webhook.py): one app, one port.
        webhook = Webhook(application) if settings.webhook_mode else None
        routes = webhook.routes() if webhook is not None else []
        # With SMS on, members' texts and delivery statuses come to the same app.
        sms = SmsRoutes.of(application)
        routes += sms.routes() if sms is not None else []
        async with (
            serving(application.resources, routes=routes, wake=lambda: application.delivery.wake()),
            running(application, webhook=webhook, sms=sms),
        ):
            await stop.wait()
            logger.info("Stopping: finishing what is in hand")
    finally:
        await store.close()
    logger.info("Stopped")


@cli.command("try")
def try_(
    port: Annotated[
        int | None, typer.Option(help="Port of the chat page (default 8080, else a free one)")
    ] = None,
    db: Annotated[
        Path | None, typer.Option(help="Keep the try's data in this SQLite file (not a real one)")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the chat page in a browser")
    ] = True,
) -> None:
    """Try the whole bot in your browser: no token, no Telegram account."""
    # Imported here: the emulator (and aiohttp) would slow every other command's start.
    from bot.trying import try_bot

    raise typer.Exit(try_bot(load_settings(), port=port, db=db, open_browser=open_browser))


@projects_cli.command("add")
def projects_add(
    code: Annotated[str, typer.Argument(help="Short code for the join link, e.g. parks-2026")],
    name: Annotated[str, typer.Argument(help="The name members see")],
) -> None:
    """Create a project; prints its join link payload."""
    if not code.replace("-", "").replace("_", "").isalnum() or len(code) > 40:
        typer.echo(
            "cocreate: a project code uses only letters, digits, - and _ (40 at most)", err=True
        )
        raise typer.Exit(2)
    if code.lower().startswith("invite-"):
        typer.echo("cocreate: a project code cannot start with 'invite-'", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    try:
        project = with_store(settings, lambda store: store.projects.add(code, name))
    except ValueError as exc:
        typer.echo(f"cocreate: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"Added {project.name}. Members join with: https://t.me/<your_bot>?start={project.code}"
    )


@projects_cli.command("list")
def projects_list() -> None:
    """List the projects."""
    settings = load_settings()
    for project in with_store(settings, lambda store: store.projects.all()):
        typer.echo(f"{project.code}\t{project.name}")


POSTER_LANGUAGES = ("en", "cy")


@projects_cli.command("poster")
def projects_poster(
    code: Annotated[str, typer.Argument(help="The project's code, as in `cocreate projects list`")],
    out: Annotated[Path, typer.Option(help="The PDF file to write; its folder must exist")],
    language: Annotated[str, typer.Option(help="en (English) or cy (Welsh)")] = "en",
    bot: Annotated[
        str | None, typer.Option(help="The bot's username (default: asked from Telegram)")
    ] = None,
) -> None:
    """Write a printable A4 poster (PDF) with a QR code that joins the project."""
    # Imported here: the PDF library would slow every other command's start.
    from bot.posters import bot_username, join_link, poster_pdf, text_to_join

    if language not in POSTER_LANGUAGES:
        typer.echo(f"cocreate: --language must be en or cy, not {language!r}", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    project = with_store(settings, lambda store: store.projects.by_code(code))
    if project is None:
        typer.echo(
            f"cocreate: there is no project with the code {code!r} "
            "(`cocreate projects list` shows them)",
            err=True,
        )
        raise typer.Exit(2)
    username = bot
    if username is None:
        try:
            username = asyncio.run(bot_username(settings))
        except MissingToken as exc:
            typer.echo(f"cocreate: {exc} (or give the bot's username with --bot)", err=True)
            raise typer.Exit(2) from None
        except (InvalidToken, TelegramError, OSError):
            typer.echo(
                "cocreate: could not ask Telegram for the bot's username: "
                "check TELEGRAM_BOT_TOKEN, or give it with --bot",
                err=True,
            )
            raise typer.Exit(1) from None
    link = join_link(username.removeprefix("@"), project.code)
    try:
        sms = text_to_join(settings, project.code)
        out.write_bytes(poster_pdf(project.name, link, language, sms))
    except OSError as exc:
        typer.echo(f"cocreate: {could_not_write(out, exc)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Wrote the poster for {project.name} to {out}. Its QR code opens {link}")


def cli_actor() -> str:
    """Who ran a command, for the audit log: the local user name."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal (else nothing): `update(done, total)`."""
    if not sys.stderr.isatty():
        yield None
        return
    # Imported here: rich would slow every other command's start.
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("Exporting", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total or None)


@cli.command("export")
def export_responses(
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or json (JSON Lines)")],
    out: Annotated[Path, typer.Option(help="The file to write; its folder must exist")],
    project: Annotated[str | None, typer.Option(help="Only this project (its code)")] = None,
    question: Annotated[
        str | None, typer.Option(help="Only the answers to this question (its number)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date (2026-12-01) or time, in TIMEZONE")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this date, which is included")] = None,
    with_media: Annotated[
        bool, typer.Option("--with-media", help="Also write OUT-media.zip: the files members sent")
    ] = False,
) -> None:
    """Write every story, idea and answer (one row each) to a CSV, Excel or JSON Lines file."""
    settings = load_settings()
    media_out = out.with_name(f"{out.stem}-media.zip") if with_media else None
    try:
        check_format(fmt)
        check_out(out)
        wanted = export_filter(
            project=project, question=question, since=since, until=until, tz=settings.tz
        )
        with progress_bar() as progress:
            result = with_store(
                settings,
                lambda store: store.responses.export(
                    fmt,
                    out,
                    wanted,
                    settings.tz,
                    actor=cli_actor(),
                    media_dir=settings.media_dir,
                    media_out=media_out,
                    progress=progress,
                ),
            )
    except BadExport as exc:
        typer.echo(f"cocreate: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:  # a folder it may not write in, a full disk: nothing is left
        typer.echo(f"cocreate: {could_not_write(out, exc)}", err=True)
        raise typer.Exit(2) from None
    rows = "row" if result.rows == 1 else "rows"
    summary = f"Wrote {result.rows:,} {rows} to {out} in {result.seconds:.1f} seconds."
    if result.media_zip is not None:
        missing = f", {result.media_missing} missing" if result.media_missing else ""
        files = "file" if result.media_added == 1 else "files"
        summary += f" {result.media_added} media {files} in {result.media_zip}{missing}."
    summary += tables_written(result)
    typer.echo(summary)


TABLE_WORDS = {"votes": "votes", "statements": "statements", "status": "status changes"}


def tables_written(result: ExportResult) -> str:
    """The votes, statements and status changes written beside the responses, if any."""
    if not result.tables:
        return ""
    counts = [f"{n:,} {TABLE_WORDS.get(name, name)}" for name, n in result.tables.items()]
    where = ", ".join(str(path) for path in result.table_files) or "sheets of the same file"
    return f" Also {', '.join(counts)} in {where}."


def audit_table(entries: list[AuditEntry], tz: tzinfo) -> list[str]:
    """The audit log in columns: when (in TIMEZONE), who, what, and the details."""
    rows = [("When", "Who", "What", "Details")]
    for entry in entries:
        when = entry.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        detail = json.loads(entry.detail or "{}")
        rows.append(
            (when, entry.actor, entry.action, ", ".join(f"{k}={v}" for k, v in detail.items()))
        )
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"{w:<{width[0]}}  {a:<{width[1]}}  {b:<{width[2]}}  {d}".rstrip() for w, a, b, d in rows
    ]


@cli.command("audit")
def audit(
    last: Annotated[int | None, typer.Option(help="Only the newest N entries")] = None,
) -> None:
    """Print the audit log, newest last: who did what, and when (never what members said)."""
    settings = load_settings()
    entries = with_store(settings, lambda store: store.audit.entries())
    if last is not None:
        entries = entries[-last:] if last > 0 else []
    for line in audit_table(entries, settings.tz):
        typer.echo(line)


@cli.command("copy-db")
def copy_db(
    source: Annotated[
        str, typer.Option("--from", help="The database to copy: sqlite:///… or postgresql://…")
    ],
    target: Annotated[
        str, typer.Option("--to", help="An empty database to copy it into (created if SQLite)")
    ],
) -> None:
    """Copy the whole database into an empty one (e.g. SQLite to PostgreSQL), then check
    every table's rows and checksum. Stop the bot first."""
    # Imported here: only this command needs them (rich slows every command's start).
    import sqlite3

    import asyncpg
    from rich.console import Console
    from rich.table import Table

    from storage.copy import CopyError, copy_database

    try:
        result = asyncio.run(copy_database(source, target))
    except (CopyError, ValueError) as exc:
        typer.echo(f"cocreate: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:  # no such server or socket, a folder it may not write in
        typer.echo(f"cocreate: could not open a database: {exc}", err=True)
        raise typer.Exit(2) from None
    except (asyncpg.PostgresError, sqlite3.Error) as exc:  # the copy was rolled back
        typer.echo(f"cocreate: the copy failed, and nothing was written: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table("Table", title="Copied, then checked")
    for heading in ("Rows (from)", "Rows (to)"):
        table.add_column(heading, justify="right")
    table.add_column("Checksum")
    for check in sorted(result.checks, key=lambda check: check.name):
        rows = f"{check.target_rows:,}"
        same = "[green]same[/]" if check.ok else "[red]DIFFERENT[/]"
        table.add_row(check.name, f"{check.source_rows:,}", rows, same)
    console = Console(width=100)
    console.print(table)
    summary = f"Copied {result.rows:,} rows in {result.seconds:.1f} s, checked in "
    summary += f"{result.check_seconds:.1f} s."
    if not result.ok:
        bad = ", ".join(check.name for check in result.checks if not check.ok)
        typer.echo(f"{summary} These tables differ: {bad}. Do not use the copy.", err=True)
        raise typer.Exit(1)
    typer.echo(f"{summary} Every table is the same in both.")


def main() -> None:
    """Entry point of the console script."""
    # Opt in to ptb's timedelta durations now (RetryAfter.retry_after and friends), rather
    # than a deprecation warning on every 429.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    cli()

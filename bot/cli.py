"""The `cocreate` command (also `python -m bot`).

cocreate run                  the bot, until Ctrl-C or SIGTERM
cocreate projects add CODE NAME / cocreate projects list
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from bot.app import build_application, running
from bot.clock import SystemClock
from bot.logs import configure
from bot.settings import MissingToken, Settings
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
    except MissingToken as exc:
        typer.echo(f"cocreate: {exc}", err=True)
        raise typer.Exit(2) from None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    configure(settings.log_level, [token, secret])
    asyncio.run(serve(settings))


async def serve(settings: Settings) -> None:
    """Opens the database, runs the bot, and stops gracefully on SIGINT or SIGTERM."""
    clock = SystemClock(settings.tz)
    store = await Store.open_url(settings.database_url, clock.now)
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        application = build_application(settings, store, clock)
        async with running(application):
            await stop.wait()
            logger.info("Stopping: finishing what is in hand")
    finally:
        await store.close()
    logger.info("Stopped")


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


def main() -> None:
    """Entry point of the console script."""
    # Opt in to ptb's timedelta durations now (RetryAfter.retry_after and friends), rather
    # than a deprecation warning on every 429.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    cli()

"""The workbench's server: uvicorn, inside the bot's own event loop, as python-telegram-bot
documents for custom webhook servers ("Custom Webhook Bot Example": Starlette + uvicorn).

`cocreate run` and `cocreate try` start it beside the bot (`serving`) on WEB_LISTEN:WEB_PORT.
cocreate's own SIGINT/SIGTERM handlers stop everything in order, so uvicorn installs none;
its access log is off, since a sign-in link's token is in its address.

In webhook mode, `cocreate run` adds the webhook to this app as a route (bot/web/webhook.py),
as ptb's example does: the webhook and the workbench are one app on one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from starlette.routing import BaseRoute

from bot.web import WorkbenchUnavailable
from bot.web.app import Workbench
from conversations.context import Resources
from storage.workbench import Reader

logger = logging.getLogger(__name__)

# Seconds open requests (a live overview) get to finish when the bot stops.
GRACE = 3


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers, and saying when it is ready."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # cocreate's handlers stop the bot and this server together

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (bound here, before the bot starts, so a taken port stops the
    start at once, with its reason)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise WorkbenchUnavailable(
            f"cannot serve the workbench on {host} port {port} ({reason}): "
            "set WEB_PORT to a free port, or stop what is using it"
        ) from None


@asynccontextmanager
async def serving(
    resources: Resources,
    sock: socket.socket | None = None,
    routes: Sequence[BaseRoute] = (),
    wake: Callable[[], None] = lambda: None,
) -> AsyncIterator[Workbench]:
    """Serves the workbench until the block exits, on WEB_LISTEN:WEB_PORT (or on a socket
    already listening, which it then closes), with any other routes given (the webhook).
    `wake` wakes the outbox's sender, for what a page queues (a reply, a status change)."""
    settings = resources.settings
    sock = sock or listen(settings.web_listen, settings.web_port)
    try:
        reader = await Reader.open(resources.store.db)
    except BaseException:
        sock.close()
        raise
    try:
        async with _served(Workbench(resources, reader, routes, wake), sock) as workbench:
            yield workbench
    finally:
        await reader.close()


@asynccontextmanager
async def _served(workbench: Workbench, sock: socket.socket) -> AsyncIterator[Workbench]:
    settings = workbench.resources.settings
    config = uvicorn.Config(
        workbench.asgi,
        log_config=None,  # cocreate's logging (bot/logs.py), not uvicorn's
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACE,
        # X-Forwarded-For is believed from a reverse proxy on this computer only (uvicorn's
        # default), so the guess limit counts real clients' addresses behind one.
        proxy_headers=True,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="workbench")
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        sock.close()
        task.result()  # raises what stopped it
        raise RuntimeError("the workbench stopped as it started")
    logger.info("Workbench at %s", settings.workbench_url)
    try:
        yield workbench
    finally:
        await workbench.close()
        server.should_exit = True
        await task
        sock.close()

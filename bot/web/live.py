"""Live figures for every open overview, read once for all of them.

How the page learns of a change: one task asks the database every POLL_EVERY (0.5 s) whether
anything was committed since (storage/workbench.py `changes`: SQLite's data_version on the
workbench's own connection, PostgreSQL's snapshot of which transactions ended; no table is
read). Only then are the figures read again, once
for all open overviews (and the next reading waits at least as long as this one took, so
reading takes at most half the time, however big the database). Each overview's stream then
checks its session and role again, and sends the figures, by server-sent events, if they
differ from what it last sent. So a member's message shows within POLL_EVERY plus one
reading, and someone removed from the team loses the stream as soon. A quiet bot costs one
trivial query a half second, and only while somebody is watching. (Both see the commits of
every process sharing the database; PostgreSQL's also those of other databases on the same
server, which only makes a reading for nothing.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

POLL_EVERY = 0.5  # seconds
T = TypeVar("T")


class Live(Generic[T]):
    """The newest reading of something, shared by every watcher; polled while anyone watches."""

    def __init__(
        self,
        read: Callable[[], Awaitable[T]],
        changes: Callable[[], Awaitable[int]],
        every: float = POLL_EVERY,
    ) -> None:
        self._read, self._changes, self._every = read, changes, every
        self._value: T | None = None
        self._version = 0
        self._changed = asyncio.Condition()
        self._watchers = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._poked = False

    async def watch(self) -> AsyncIterator[T]:
        """The current reading at once, then a new one after each write to the database
        (often the same as the last: the watcher decides what to do with it), until `close`."""
        self._watchers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="workbench-live")
        try:
            seen = 0

            def news() -> bool:
                return self._version != seen or self._closed

            while not self._closed:
                async with self._changed:
                    await self._changed.wait_for(news)
                if self._closed:
                    return
                seen = self._version
                assert self._value is not None
                yield self._value
        finally:
            self._watchers -= 1

    async def _poll(self) -> None:
        last: int | None = None
        loop = asyncio.get_running_loop()
        while not self._closed and self._watchers > 0:
            took = 0.0
            try:
                count = await self._changes()
                if count != last or self._poked:
                    self._poked = False
                    started = loop.time()
                    self._value = await self._read()
                    took = loop.time() - started
                    last = count
                    self._version += 1
                    async with self._changed:
                        self._changed.notify_all()
            except Exception:  # the next poll tries again; an open page keeps its figures
                logger.exception("Could not read the live figures")
            # Reading takes at most half the time, however big the database.
            await asyncio.sleep(max(self._every, took))
        self._task = None

    def poke(self) -> None:
        """Reads again at the next poll, though the database did not change (what is read
        changed in another way)."""
        self._poked = True

    async def close(self) -> None:
        """Ends every watch (the server is stopping)."""
        self._closed = True
        async with self._changed:
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

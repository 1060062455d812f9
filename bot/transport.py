"""ptb's Bot API requests over aiohttp: `AiohttpRequest` (bot/app.py gives it to the builder).

ptb's default transport (httpx) made the outbox's sender cost about 4 ms of CPU a message,
which capped it at about 250 messages a second; over aiohttp it costs about 0.65 ms, and
reaches 1,100 to 1,450 (bench/delivery.py, README "Performance").

It behaves as ptb's HTTPXRequest does, so bot/delivery.py's `judge` and every retry rule work
unchanged: ptb's BaseRequest turns the HTTP status into its errors (429 RetryAfter,
400 BadRequest, 403 Forbidden, 5xx NetworkError …); here, a failure of the network becomes
`TimedOut` or `NetworkError`, with aiohttp's exception as its `__cause__`:

    no free connection in time (never sent)    TimedOut, cause PoolTimeout (below)
    connect timeout (never sent)               TimedOut, cause aiohttp.ConnectionTimeoutError
    read timeout (it may have arrived)         TimedOut, cause aiohttp.SocketTimeoutError
    the whole request too slow (write + read)  TimedOut, cause TimeoutError
    connection refused, no route (never sent)  NetworkError, cause aiohttp.ClientConnectorError
    connection lost (it may have arrived)      NetworkError, cause another aiohttp.ClientError

Timeouts are ptb's (5 s connect, read and write, 1 s for a free connection, 20 s to write an
upload), per request when a call passes its own. aiohttp has no write timeout: the write's
share is kept by a limit on the whole request (connect + write + read); the wait for a free
connection is this class's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

logger = logging.getLogger(__name__)

CONNECTIONS = 256  # as ptb's default pool for the bot's calls
Unset = type(BaseRequest.DEFAULT_NONE)  # ptb's DefaultValue: a timeout the call did not set


class PoolTimeout(TimeoutError):
    """Every connection stayed busy for the whole pool timeout: the request was not sent."""


class AiohttpRequest(BaseRequest):
    """One aiohttp session with a pool of `connection_pool_size` keep-alive connections."""

    def __init__(
        self,
        connection_pool_size: int = CONNECTIONS,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._free = asyncio.Semaphore(connection_pool_size)  # connections not in use

    @property
    def read_timeout(self) -> float | None:
        """The read timeout when a call passes none (ptb adds getUpdates' long poll to it)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Opens the session (ptb calls this from `Bot.initialize`)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )

    async def shutdown(self) -> None:
        """Closes the session and its connections."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,  # float | None, or unset
        write_timeout: Any = BaseRequest.DEFAULT_NONE,  # float | None, or unset
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,  # float | None, or unset
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,  # float | None, or unset
    ) -> tuple[int, bytes]:
        """Makes the request; returns Telegram's HTTP status and body (ptb reads them)."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data is not None and request_data.contains_files
        read = self._read_timeout if isinstance(read_timeout, Unset) else read_timeout
        connect = self._connect_timeout if isinstance(connect_timeout, Unset) else connect_timeout
        pool = self._pool_timeout if isinstance(pool_timeout, Unset) else pool_timeout
        if isinstance(write_timeout, Unset):
            write = self._media_write_timeout if files else self._write_timeout
        else:
            write = write_timeout
        timeout = aiohttp.ClientTimeout(
            total=_sum(connect, write, read), connect=connect, sock_connect=connect, sock_read=read
        )
        body: Any = None
        headers: dict[str, str] | None = None
        if request_data is not None:
            if files:
                body = _form(request_data)
            else:
                body = request_data.json_payload
                headers = {"Content-Type": "application/json"}
        try:
            async with asyncio.timeout(pool):
                await self._free.acquire()
        except TimeoutError:
            raise TimedOut(
                "Pool timeout: every connection stayed busy; the request was not sent"
            ) from PoolTimeout()
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise TimedOut("Connect timeout: the request was not sent to Telegram") from exc
        except TimeoutError as exc:  # aiohttp.SocketTimeoutError (read), or the whole request
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        finally:
            self._free.release()


def _sum(*parts: float | None) -> float | None:
    """The total of some timeouts; None (no limit) if any is None."""
    if any(part is None for part in parts):
        return None
    return sum(part for part in parts if part is not None)


def _form(request_data: RequestData) -> aiohttp.FormData:
    """A multipart body: the parameters as fields, each file as a part of its own."""
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, upload in request_data.multipart_data.items():
        filename, content, mime = upload
        form.add_field(name, content, filename=filename, content_type=mime)
    return form

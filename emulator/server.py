"""The Telegram side over HTTP: `/bot<token>/<method>` and `/file/bot<token>/<file_path>`.

Parameters are read from the query string, urlencoded or multipart forms (file uploads) and
JSON bodies, as Telegram accepts them all. Success is HTTP 200 {"ok": true, "result": ...};
an error uses its real HTTP status, which is what ptb maps to its exceptions.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import BodyPartReader, web

from emulator.faults import ApiError, is_new_message
from emulator.methods import BotApi, Params, UploadedFile, normalize
from emulator.state import TelegramState

__all__ = ["BotApiRoutes", "read_params"]

logger = logging.getLogger(__name__)

UNAUTHORIZED = ApiError(401, "Unauthorized")
NOT_FOUND = ApiError(404, "Not Found")


def error_response(error: ApiError) -> web.Response:
    """An error answer with the real HTTP status."""
    return web.json_response(error.body(), status=error.status)


async def read_params(request: web.Request) -> dict[str, Any]:
    """Every parameter of a Bot API request, whatever its encoding."""
    values: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return values
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON encoded request body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: request body must be a JSON object")
        values.update(body)
    elif content_type == "multipart/form-data":
        # Read parts by hand: request.post() spools uploads to temporary files we would
        # have to close ourselves.
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = await part.read(decode=True)
            if part.filename is not None:
                content = part.headers.get("Content-Type")
                values[part.name] = UploadedFile(part.filename, content, bytes(data))
            else:
                values[part.name] = data.decode(part.get_charset("utf-8"))
    else:
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, str):
                values[name] = value
    return values


class BotApiRoutes:
    """aiohttp handlers for the Bot API and file downloads of one emulated Telegram."""

    def __init__(self, state: TelegramState, api: BotApi) -> None:
        self._state = state
        self._api = api

    def add_to(self, app: web.Application) -> None:
        """Register the routes on `app`."""
        app.router.add_route("*", "/bot{token}/{method}", self.handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self.handle_file)

    async def handle_method(self, request: web.Request) -> web.Response:
        """One Bot API call: token, parameters, faults, then the method itself."""
        state = self._state
        if request.match_info["token"] != state.token:
            return error_response(UNAUTHORIZED)
        method = request.match_info["method"].lower()
        try:
            params = Params(normalize(await read_params(request)))
        except ApiError as error:
            return error_response(error)
        state.calls.append((method, params.values))
        if not self._api.knows(method):
            return error_response(NOT_FOUND)
        new_message = is_new_message(method)
        paid = params.values.get("allow_paid_broadcast") is True
        fault = state.faults.take(method, params.chat_id())
        if fault is not None and fault.accept_first and fault.status is None:
            try:
                result = await self._api.call(method, params)
            except ApiError as error:
                return error_response(error)
            if new_message:
                state.rates.message(params.chat_id(), paid=paid)
            await state.pause(fault.delay, fault.released)
            return web.json_response({"ok": True, "result": result}, dumps=_dumps)
        if fault is not None:
            if fault.delay > 0:
                await state.pause(fault.delay, fault.released)
            injected = fault.error()
            if injected is not None:
                logger.debug("fault injected into %s: %s", method, injected.description)
                if injected.status == 429:
                    state.rates.refused(flood=False)
                return error_response(injected)
        if state.closing.is_set():
            return error_response(ApiError(503, "Service Unavailable"))
        if state.flood is not None and new_message:
            refused = state.flood.take(paid)
            if refused is not None:
                state.rates.refused(flood=True)
                return error_response(refused)
        try:
            result = await self._api.call(method, params)
        except ApiError as error:
            return error_response(error)
        if new_message:
            state.rates.message(params.chat_id(), paid=paid)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def handle_file(self, request: web.Request) -> web.StreamResponse:
        """Download a file by the file_path getFile handed out."""
        if request.match_info["token"] != self._state.token:
            return error_response(UNAUTHORIZED)
        stored = self._state.files.by_path(request.match_info["file_path"])
        if stored is None:
            return error_response(NOT_FOUND)
        fault = self._state.faults.take("file", None)
        if fault is not None:
            if fault.delay > 0:
                await self._state.pause(fault.delay, fault.released)
            injected = fault.error()
            if injected is not None:
                return error_response(injected)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )


def _dumps(value: Any) -> str:
    # Keep non-ASCII text readable in responses, as Telegram does.
    return json.dumps(value, ensure_ascii=False)

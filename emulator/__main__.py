"""Run the emulator on its own: `python -m emulator --port 8081 --token 123:ABC`.

For a bot in another process (point TELEGRAM_API_BASE_URL and TELEGRAM_FILE_BASE_URL at the
printed URLs) driven through the member API under /_emu/. Runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from emulator.emulator import DEFAULT_TOKEN, Emulator


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=8081, help="port on 127.0.0.1 (0 = any)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the only bot token accepted")
    parser.add_argument("--username", default="cocreate_test_bot", help="the bot's username")
    parser.add_argument(
        "--rate-limit",
        action="store_true",
        help="answer 429 past ~30 new messages a second (1,000 with allow_paid_broadcast)",
    )
    parser.add_argument(
        "--webhook-target",
        action="append",
        default=[],
        metavar="URL",
        help="play a reverse proxy: POST updates to each such http://host:port in turn",
    )
    parser.add_argument(
        "--webhook-parallel",
        type=int,
        default=1,
        metavar="N",
        help="webhook POSTs in flight at once (never two of one chat)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with Emulator(
        args.token,
        bot_username=args.username,
        port=args.port,
        rate_limit=args.rate_limit,
        webhook_targets=args.webhook_target,
        webhook_parallel=args.webhook_parallel,
    ) as emu:
        print(f"Bot API emulator: base_url {emu.base_url}", flush=True)
        print(f"  file base_url {emu.file_base_url}", flush=True)
        print(f"  member API {emu.url}/_emu/   token {emu.token}", flush=True)
        await stop.wait()  # Ctrl-C cancels this, and the `async with` stops the server


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

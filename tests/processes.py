"""Several `cocreate run` processes on one database, for tests and benches (issue 14).

    group = ProcessGroup(folder, emulator_env(emulator, TOKEN), count=3,
                         env={"DATABASE_URL": url, "LEADER_RETRY": "1"}, webhook=True)
    await group.start()              # all at once; returns when every one says it runs
    emulator.set_webhook_targets(group.targets)   # webhook mode: the emulator is the proxy
    leader = group.leader("scheduler")            # the live process whose log says it leads
    await leader.kill()                           # SIGKILL
    await group.stop()                            # SIGTERM the live ones (SIGKILL after 30 s)

Each process is `python -m bot run` (what the `cocreate` console script runs) in `folder/<name>`,
its output in `folder/<name>/log`, with its own WEB_PORT; in webhook mode the webhook is
served on that port at WEBHOOK_URL's path, and `targets` lists "http://127.0.0.1:<port>" for
`Emulator(webhook_targets=...)`. A process is ready once its log says "cocreate is running".
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from emulator import Emulator
from tests.net import free_port

READY = "cocreate is running"
LEADS = "This process now leads: "
WEBHOOK_PATH = "/telegram-hook"
WEBHOOK_SECRET = "multi-process-secret"


def emulator_env(emulator: Emulator, token: str) -> dict[str, str]:
    """The environment that points `cocreate run` at the emulator (no .env file is read from
    the process's own folder, which has none)."""
    return {
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": emulator.base_url,
        "TELEGRAM_FILE_BASE_URL": emulator.file_base_url,
    }


class CocreateProcess:
    """One `python -m bot run` with its own folder, log and WEB_PORT."""

    def __init__(self, name: str, folder: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "log"
        self.port = free_port()
        clean = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TELEGRAM_", "ABOUT_", "WEB", "DATABASE_", "ORGANISER_"))
        }
        self.env = {
            **clean,
            "MEDIA_DIR": str(folder / "media"),
            "WEB_PORT": str(self.port),
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0  # time.monotonic() of the last start
        self.ready_at = 0.0  # and when it said it runs

    @property
    def target(self) -> str:
        """Its address for the emulator's webhook proxy."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def start(self, timeout: float = 60.0) -> None:
        """Starts it and waits until its log says it runs (fails with the log if it exits)."""
        before = self.log_text().count(READY)
        self.started_at = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=self.folder,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while self.log_text().count(READY) <= before:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-5000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start:\n{self.log_text()[-5000:]}")
            await asyncio.sleep(0.05)
        self.ready_at = time.monotonic()

    def leads(self, role: str) -> bool:
        """Whether this live process said it leads `role` (it leads until it dies)."""
        return self.alive and f"{LEADS}{role}" in self.log_text()

    async def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.proc is not None and self.alive:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (in-flight work finishes); SIGKILL if it has not stopped in `timeout`."""
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            await self.kill()
            return -signal.SIGKILL


class ProcessGroup:
    """`count` processes sharing one database (DATABASE_URL in `env`)."""

    def __init__(
        self,
        folder: Path,
        base_env: Mapping[str, str],
        count: int,
        *,
        env: Mapping[str, str] | None = None,
        webhook: bool = True,
    ) -> None:
        shared = {**base_env, **(env or {})}
        if webhook:
            # The host and port of the URL are the proxy's; each process serves its path on
            # its own WEB_PORT (the emulator posts to each target at this path).
            shared.setdefault("WEBHOOK_URL", f"https://cocreate.example{WEBHOOK_PATH}")
            shared.setdefault("WEBHOOK_SECRET", WEBHOOK_SECRET)
        self.processes = [
            CocreateProcess(f"p{i + 1}", folder / f"p{i + 1}", shared) for i in range(count)
        ]

    def __iter__(self) -> Iterator[CocreateProcess]:
        return iter(self.processes)

    @property
    def targets(self) -> list[str]:
        return [process.target for process in self.processes]

    @property
    def alive(self) -> list[CocreateProcess]:
        return [process for process in self.processes if process.alive]

    async def start(self, timeout: float = 60.0) -> None:
        """Starts every process at once; returns when each says it runs."""
        await asyncio.gather(*(process.start(timeout) for process in self.processes))

    def leader(self, role: str) -> CocreateProcess | None:
        """The live process that leads `role` ("scheduler", "poller"), if one says so."""
        leaders = [process for process in self.processes if process.leads(role)]
        assert len(leaders) <= 1, f"{len(leaders)} live processes lead {role}"
        return leaders[0] if leaders else None

    async def wait_leader(self, role: str, timeout: float = 30.0) -> CocreateProcess:
        """Waits until a live process leads `role`; returns it."""
        deadline = time.monotonic() + timeout
        while (leader := self.leader(role)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no live process leads {role}")
            await asyncio.sleep(0.05)
        return leader

    async def stop(self) -> list[int]:
        """SIGTERM to every live process, at once; their exit codes."""
        live = self.alive
        return list(await asyncio.gather(*(process.terminate() for process in live)))

    async def kill_all(self) -> None:
        await asyncio.gather(*(process.kill() for process in self.processes))

    def logs(self) -> str:
        return "\n".join(f"==== {p.name}\n{p.log_text()}" for p in self.processes)

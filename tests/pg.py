"""A throw-away PostgreSQL cluster for the tests: initdb and pg_ctl on a temporary folder.

The server listens only on a Unix socket in that folder (no TCP port), so any number of
clusters (one per xdist worker, per checkout, per session on the machine) never meet.
initdb and postgres refuse to run as root: as root, they run as the `postgres` user (or
`nobody`), who owns the folder. Nothing here is durable: fsync is off (unless
`ThrowawayCluster(durable=True)`, for benches: commits reach the disk as in production), the
folder goes when the cluster stops, at exit at the latest, and a later cluster sweeps away the
folders of clusters whose process was killed before it could clean up. The folder is in
/dev/shm (memory) when it has 2 GB free, else in /tmp; a durable cluster's is always in /tmp.

    cluster = ThrowawayCluster()
    cluster.start()
    await cluster.create_database("t1", template="migrated")
    url = cluster.url("t1")  # postgresql://cocreate@/t1?host=/dev/shm/cocreate-pg-…
    cluster.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

logger = logging.getLogger(__name__)

USER = "cocreate"  # the cluster's superuser, the role every test connects as
PREFIX = "cocreate-pg-"  # the temporary folders' names: how a later cluster finds stale ones
INSTALL_HINT = (
    "PostgreSQL's server programs (initdb, pg_ctl) are needed and were not found on PATH "
    "nor in /usr/lib/postgresql/*/bin: `apt-get install -y postgresql` (Debian; .ci/run "
    "does this)"
)
# Throw-away settings: no durability (nothing here outlives the tests), no TCP, no
# background vacuuming on a machine the tests share.
SETTINGS = {
    "listen_addresses": "''",
    "port": "5432",  # the socket's name, .s.PGSQL.5432, whatever PGPORT says
    "max_connections": "200",
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "max_wal_senders": "0",
    "wal_level": "minimal",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}
# What `durable=True` leaves at PostgreSQL's defaults (on): each commit waits for its WAL to
# reach the disk, as a production server's does.
UNSAFE = ("fsync", "synchronous_commit", "full_page_writes")


class PostgresMissing(RuntimeError):
    """PostgreSQL's server programs are not installed."""


class ClusterFailed(RuntimeError):
    """initdb or pg_ctl failed; the message ends with what it printed."""


def find_bindir(debian: Path = Path("/usr/lib/postgresql")) -> Path:
    """The folder holding initdb and pg_ctl: PATH's, else the newest of Debian's `*/bin`."""
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).parent / "pg_ctl").exists():
        return Path(on_path).parent
    installed = [
        bindir
        for bindir in debian.glob("*/bin")
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists()
    ]
    if not installed:
        raise PostgresMissing(INSTALL_HINT)
    return max(installed, key=lambda bindir: _version(bindir.parent.name))


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


@dataclass(frozen=True)
class RunAs:
    """Who runs initdb, pg_ctl and postgres: ourselves, or an unprivileged user when root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_cluster(cls) -> RunAs:
        uid = os.geteuid()
        if uid != 0:
            return cls(pwd.getpwuid(uid).pw_name, uid, os.getegid())
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return cls(name, entry.pw_uid, entry.pw_gid)
        raise ClusterFailed("running as root, and there is no `postgres` or `nobody` user")

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()


class ThrowawayCluster:
    """A PostgreSQL cluster on a temporary folder, reached by its Unix socket only."""

    def __init__(self, bindir: Path | None = None, *, durable: bool = False) -> None:
        self.bindir = bindir if bindir is not None else find_bindir()
        self.durable = durable
        self.user = RunAs.for_cluster()
        self.folder: Path | None = None
        self.running = False
        self._names = itertools.count(1)
        self._owner = os.getpid()

    @property
    def socket_dir(self) -> Path:
        if self.folder is None:
            raise ClusterFailed("the cluster is not started")
        return self.folder

    @property
    def data_dir(self) -> Path:
        return self.socket_dir / "data"

    def url(self, dbname: str) -> str:
        """The database's address for asyncpg (and cocreate's DATABASE_URL)."""
        return f"postgresql://{USER}@/{quote(dbname)}?host={quote(str(self.socket_dir))}"

    def unique_name(self, prefix: str = "test") -> str:
        """A database name no other caller of this cluster gets."""
        return f"{prefix}_{next(self._names)}"

    def start(self) -> None:
        """Makes the folder, runs initdb, starts the server and waits until it takes connections."""
        if self.running:
            return
        sweep_stale()
        self.folder = Path(
            tempfile.mkdtemp(prefix=PREFIX, dir=_temp_root(in_memory=not self.durable))
        )
        self._owner = os.getpid()
        atexit.register(self.stop)
        try:
            (self.folder / "owner").write_text(_owner_mark())
            self.folder.chmod(0o755)  # others may reach the socket; data/ itself is 0700
            if self.user.switches:
                os.chown(self.folder, self.user.uid, self.user.gid)
            self._run(
                "initdb",
                f"--pgdata={self.data_dir}",
                f"--username={USER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--lc-collate=C",  # text sorts by code point, as SQLite's does
                "--no-sync",
            )
            settings = {**SETTINGS, "unix_socket_directories": f"'{self.socket_dir}'"}
            if self.durable:
                settings = {key: value for key, value in settings.items() if key not in UNSAFE}
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
            self._run(
                "pg_ctl",
                "start",
                f"--pgdata={self.data_dir}",
                f"--log={self.socket_dir / 'server.log'}",
                "--wait",
                "--timeout=120",
            )
            self.running = True
        except BaseException:
            self.stop()
            raise
        logger.info("PostgreSQL cluster started in %s as %s", self.folder, self.user.name)

    def stop(self) -> None:
        """Stops the server at once (nothing in it is kept) and removes the folder."""
        if self.folder is None or os.getpid() != self._owner:
            return  # stopped already, or a forked child's exit: the cluster is its parent's
        folder, self.folder = self.folder, None
        self.running = False
        if (folder / "data" / "postmaster.pid").exists():  # even if `pg_ctl start` timed out
            _stop_server(folder / "data", self.bindir, self.user)
        shutil.rmtree(folder, ignore_errors=True)
        atexit.unregister(self.stop)

    async def create_database(self, name: str, template: str | None = None) -> None:
        """Creates an empty database, or a copy of `template` (which must have no connections)."""
        sql = f"CREATE DATABASE {_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_ident(template)}"
        connection = await asyncpg.connect(self.url("postgres"))
        try:
            if connection.get_server_version().major >= 15:
                # Copying the files (and a checkpoint, cheap without fsync) took half to two
                # thirds of the time of 15's default, writing the copy to the WAL (40 tables).
                sql += " STRATEGY = FILE_COPY"
            await connection.execute(sql)
        finally:
            await connection.close()

    async def drop_database(self, name: str) -> None:
        """Drops the database, ending any connection still open to it."""
        await self.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    async def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Runs one statement on a connection of its own."""
        connection = await asyncpg.connect(self.url(dbname))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def _run(self, program: str, *args: str) -> None:
        _run(self.bindir / program, args, self.user, cwd=self.socket_dir)


def _run(program: Path, args: tuple[str, ...], user: RunAs, cwd: Path) -> None:
    """Runs a PostgreSQL program as `user`, raising ClusterFailed with its output if it fails."""
    # PG* variables (PGPORT, PGDATA...) would change what the server and pg_ctl do.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    try:
        done = subprocess.run(
            [str(program), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=180,
            check=False,
            user=user.uid if user.switches else None,
            group=user.gid if user.switches else None,
            extra_groups=[] if user.switches else None,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ClusterFailed(f"{program.name} {' '.join(args)}: {error}") from error
    if done.returncode != 0:
        log = cwd / "server.log"
        server = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise ClusterFailed(
            f"{program.name} {' '.join(args)} exited with {done.returncode} "
            f"(as {user.name}):\n{done.stdout[-3000:]}\n{server}"
        )


def _stop_server(data_dir: Path, bindir: Path, user: RunAs) -> None:
    try:
        _run(
            bindir / "pg_ctl",
            ("stop", f"--pgdata={data_dir}", "--mode=immediate", "--wait", "--timeout=60"),
            user,
            cwd=data_dir.parent,
        )
    except ClusterFailed as error:
        logger.warning("Could not stop the PostgreSQL cluster in %s: %s", data_dir, error)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


MEMORY = "/dev/shm"  # tmpfs on Linux: a throw-away cluster's files need never reach a disk
MEMORY_FREE = 2 << 30  # bytes /dev/shm must have free (Docker's default is 64 MB: too small)


def _temp_root(*, in_memory: bool = False) -> str:
    """/tmp: every user can reach it, and its paths stay short (a socket's path has 107 bytes).
    A cluster that need not be durable goes on /dev/shm when it has room: a copy of the
    migrated database for each test took 0.05 to 0.33 s on this machine's disk."""
    if in_memory and roomy(MEMORY):
        return MEMORY
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def roomy(folder: str) -> bool:
    """Whether this user may make folders in `folder` and it has MEMORY_FREE bytes free."""
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= MEMORY_FREE


def _owner_mark() -> str:
    """This process and its pid namespace: a later sweep removes the folder once it is gone."""
    return f"{os.getpid()} {_pid_namespace()}\n"


def _pid_namespace() -> str:
    """Which pids `owner` speaks of: a process in another namespace is not judged dead here."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def sweep_stale() -> None:
    """Stops and removes the clusters of test processes that died without cleaning up (killed)."""
    folders = {*Path(_temp_root()).glob(f"{PREFIX}*"), *Path(MEMORY).glob(f"{PREFIX}*")}
    for folder in sorted(folders):
        try:
            pid_text, _, namespace = (folder / "owner").read_text().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            continue  # being made just now, or not ours to judge
        if namespace.strip() != _pid_namespace() or _alive(pid):
            continue
        owner = folder.stat()
        if os.geteuid() not in (0, owner.st_uid):
            continue  # another user's: neither theirs to stop nor ours to remove
        logger.info("Removing the PostgreSQL cluster of dead process %s in %s", pid, folder)
        if (folder / "data" / "postmaster.pid").exists():
            with contextlib.suppress(PostgresMissing):
                user = RunAs(str(owner.st_uid), owner.st_uid, owner.st_gid)
                _stop_server(folder / "data", find_bindir(), user)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""A PostgreSQL primary with hot standbys, made for one test module and removed after.

The machine's own server (5432) is left alone: this starts a primary of its own on a free
port (initdb, replication allowed from loopback), then each standby with `pg_basebackup -R`
on another port, streaming from it. The servers run as the `postgres` user (PostgreSQL
refuses root), in a temporary directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

OWNER = "postgres"


def missing_tools() -> str | None:
    """Why this machine cannot run a standby here, or None when it can."""
    if os.geteuid() != 0:
        return "standby tests start their own PostgreSQL servers as the postgres user: run as root"
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        return "no 'postgres' user to run the test's PostgreSQL servers"
    if not _bindir():
        return "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found"
    return None


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    name: str
    data: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@dataclass
class Cluster:
    root: Path
    primary: Server
    standbys: list[Server] = field(default_factory=list)

    def run(self, *command: str) -> None:
        bindir = _bindir()
        assert bindir is not None
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(bindir / command[0]), *command[1:]],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, server: Server) -> None:
        self.run("pg_ctl", "-D", str(server.data), "-l", str(self.root / f"{server.name}.log"),
                 "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, server: Server) -> None:
        self.run("pg_ctl", "-D", str(server.data), "-m", "fast", "-w", "stop")

    def add_standby(self) -> Server:
        standby = Server(f"standby{len(self.standbys)}", self.root / f"standby{len(self.standbys)}",
                         _free_port())  # fmt: skip
        self.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                 "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        with open(standby.data / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            conf.write(f"port = {standby.port}\n")
        self.start(standby)
        self.standbys.append(standby)
        return standby

    def sql(self, server: Server, statement: str, database: str = "postgres"):
        engine = create_engine(server.url(database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(statement))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()

    def pause(self, standby: Server) -> None:
        """Stop replaying: the standby still answers, as of the moment it paused."""
        self.sql(standby, "SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 30
        while self.sql(standby, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, f"{standby.name} did not pause"
            time.sleep(0.05)

    def resume(self, standby: Server) -> None:
        self.sql(standby, "SELECT pg_wal_replay_resume()")

    def catch_up(self, standby: Server, seconds: float = 30) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        target = self.sql(self.primary, "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + seconds
        while not self.sql(standby, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
            assert time.monotonic() < deadline, f"{standby.name} did not catch up"
            time.sleep(0.05)

    def remove(self) -> None:
        for server in [*self.standbys, self.primary]:
            try:
                self.stop(server)
            except subprocess.SubprocessError:
                pass  # already stopped (a test stops a standby on purpose)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(standbys: int) -> Cluster:
    """A primary with `standbys` streaming hot standbys, each on its own free port."""
    root = Path(tempfile.mkdtemp(prefix="guideapp-standby-"))
    owner = pwd.getpwnam(OWNER)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(root, Server("primary", root / "primary", _free_port()))
    try:
        cluster.run("initdb", "-D", str(cluster.primary.data), "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        with open(cluster.primary.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"port = {cluster.primary.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\n"
                "wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n"
                "fsync = off\nshared_buffers = 32MB\nmax_connections = 60\n"
            )
        cluster.start(cluster.primary)
        for _ in range(standbys):
            cluster.add_standby()
    except BaseException:
        cluster.remove()
        raise
    return cluster

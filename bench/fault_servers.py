"""The processes `make faults` starts, owns, breaks and restarts: its own PostgreSQL and Redis
servers (never the machine's shared ones), gunicorn and the job worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import wait_until_up
from guideapp.config import PROJECT_ROOT

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


class OwnPostgres:
    """A PostgreSQL cluster in a temporary directory (trust auth, loopback only), run as the
    postgres user; `restart()` is the fault, `close()` stops it and removes the directory."""

    def __init__(self, port: int):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="faults_pg_"))
        self.data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")
        _run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=60"
        )
        _run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                *args,
            ]
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, their open transactions roll back."""
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def close(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """redis-server with no persistence: a restart empties it, as a lost Redis would."""

    def __init__(self, port: int):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="faults_redis_"))
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # as a crash: no save on the way out (there is none anyway)
            self.process.wait(timeout=20)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Gunicorn:
    """gunicorn with the project's gunicorn.conf.py on `port`; its workers are the master's
    children, so `kill_workers()` SIGKILLs them and the master forks new ones."""

    def __init__(self, port: int, env: dict, workers: int = 2):
        self.port, self.env, self.workers = port, env, workers
        self.log = open(Path(env["FAULTS_TMP"]) / "gunicorn.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        if not wait_until_up(f"http://127.0.0.1:{port}/healthz", seconds=60, pause=0.3):
            self.close()
            raise RuntimeError("gunicorn did not come up within 60 s")
        self.wait_for_workers()

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def wait_for_workers(self, seconds: float = 30) -> list[int]:
        deadline = time.monotonic() + seconds
        while len(pids := self.worker_pids()) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn has {len(pids)} workers, not {self.workers}")
            time.sleep(0.1)
        return pids

    def kill_workers(self) -> list[int]:
        killed = self.worker_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return killed

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


class JobWorker:
    """`flask --app wsgi jobs worker` (one thread) in its own session; `--import` modules
    (tests.slow_units) slow its units down so a kill lands mid-job."""

    def __init__(self, env: dict, *modules: str):
        imports = [arg for module in modules for arg in ("--import", module)]
        self.log = open(Path(env["FAULTS_TMP"]) / "worker.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--workers", "1"]
            + imports,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no unit finishes, nothing is recorded on the way out."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def close(self) -> None:
        """SIGTERM, as a supervisor stops it: the running unit finishes first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not self.log.closed:
            self.log.close()


def children(parent: int) -> list[int]:
    """Pids whose parent is `parent` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found

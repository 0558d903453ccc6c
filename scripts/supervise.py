#!/usr/bin/env python3
"""Run several commands as one (`make run`: gunicorn and the job worker side by side).

    python scripts/supervise.py "gunicorn ... wsgi:app" "flask --app wsgi jobs worker"

Ctrl-C or SIGTERM stops every command (SIGINT: gunicorn and the worker stop at once, jobs
resume from their last checkpoint; SIGKILL after a grace period), and so
does the death of our parent (`make` killed alone does not pass its signal on); when one
command exits by itself the others are stopped too, and its exit code is ours. For
development only: production runs each process under its own supervisor (README).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 10.0


def main(commands: list[str]) -> int:
    if not commands:
        print("usage: supervise.py COMMAND [COMMAND...]", file=sys.stderr)
        return 2
    told: list[int] = []

    def stop(signum, _frame):
        told.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    parent = os.getppid()
    children = [subprocess.Popen(shlex.split(command)) for command in commands]
    code = 0
    try:
        while not told and os.getppid() == parent:
            ended = [child for child in children if child.poll() is not None]
            if ended:
                code = ended[0].returncode
                print(f"supervise: {ended[0].args[0]} exited ({code}); stopping the rest")
                break
            time.sleep(0.2)
    finally:
        _stop_all(children)
    return code


def _stop_all(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

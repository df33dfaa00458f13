"""Processes started for a flow end with it, even when the flow's process is killed with SIGKILL.

`guard_children()` puts a token into this process's environment, which every process started from here
inherits (the DVC stage commands and their children, Prefect's temporary API server), and starts a small
watchdog in a session of its own. When the flow's process ends - normally, by an exception, or by
`kill -9`, which runs no cleanup code at all - the watchdog stops every process still carrying the token:
SIGTERM, then SIGKILL after a grace period. A token (not the process tree) because the children of a
killed process are re-parented and can no longer be found as its descendants.

This file is also the watchdog: `python process_guard.py <pid> <start time> <token>` (stdlib + psutil only,
so it starts in a fraction of a second).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import uuid

GUARD_ENV = "DRIVEFINE_FLOW_GUARD"
GRACE_S = 5.0  # SIGTERM first: a stage or the Prefect server may close files; then SIGKILL
_token: str | None = None


def guard_children() -> str:
    """Tie every process started from now on to this process's life; returns the token. Idempotent."""
    global _token
    if _token is not None and os.environ.get(GUARD_ENV) == _token:
        return _token
    import psutil

    me = psutil.Process()
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != GUARD_ENV}  # the watchdog never stops itself
    subprocess.Popen([sys.executable, os.path.abspath(__file__), str(me.pid), repr(me.create_time()), token],
                     env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)  # own session: a signal to our group spares it
    os.environ[GUARD_ENV] = token
    _token = token
    return token


def _wait_for_exit(pid: int, started: float) -> None:
    """Block until process `pid` (started at `started`, so not a later process reusing the pid) is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > 0.01:
            return
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process exits, no polling
    except psutil.NoSuchProcess:
        return
    except (AttributeError, OSError):
        proc.wait()  # elsewhere psutil polls
        return
    try:
        if abs(psutil.Process(pid).create_time() - started) > 0.01:  # reused between the two looks
            return
        select.select([fd], [], [])
    except psutil.NoSuchProcess:
        return
    finally:
        os.close(fd)


def _tagged(token: str) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(GUARD_ENV) == token:
                found.append(proc)
        except psutil.Error:  # gone meanwhile, or another user's process
            continue
    return found


def stop_tagged(token: str, grace_s: float = GRACE_S) -> int:
    """SIGTERM every process carrying `token`, SIGKILL those still alive after `grace_s`; returns how many."""
    import psutil

    stopped = 0
    for _ in range(3):  # a process being stopped may still start a child: look again
        procs = _tagged(token)
        if not procs:
            break
        for proc in procs:
            try:
                proc.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=grace_s)
        stopped += len(procs)
    return stopped


def main(argv: list[str]) -> None:
    pid, started, token = int(argv[0]), float(argv[1]), argv[2]
    _wait_for_exit(pid, started)
    stop_tagged(token)


if __name__ == "__main__":
    main(sys.argv[1:])

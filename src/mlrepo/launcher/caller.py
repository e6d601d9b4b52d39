"""The caller's side: a stage process that asks the warm server for a fork, or starts one."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from typing import Any

from mlrepo.launcher import FORWARDED_SIGNALS, REPLY_TIMEOUT_S, connect, interpreter, receive


def run_warm(stage: str, args: list[str]) -> int | None:
    """Run ``stage`` in a fork of the warm server and return its exit code; ``None`` when it
    has to run cold in this process (after starting a server for the next stage if none runs)."""
    sock = connect()
    if sock is None:
        start_server()
        return None
    with sock:
        request: dict[str, Any] = {"op": "run", "stage": stage, "args": args, "cwd": os.getcwd()}
        request |= {"umask": _umask(), "environ": dict(os.environ), **interpreter()}
        try:
            socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
            sock.settimeout(REPLY_TIMEOUT_S)
            reply = receive(sock)
        except OSError:
            return None
        if reply is None or "pid" not in reply:
            if reply is not None and reply.get("restart"):
                start_server()
            return None
        sock.settimeout(None)
        return _wait_for(sock, int(reply["pid"]))


def _wait_for(sock: socket.socket, pid: int) -> int:
    """Forward this process's signals to the fork and return its exit status as ours."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        status = receive(sock)
    except OSError:  # the connection was reset: the server died
        status = None
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    if status is None:
        # The server died, so no status will come: let the stage end before this process does,
        # so nothing writes the stage's outputs after DVC has seen it fail.
        if pidfd >= 0:
            select.select([pidfd], [], [])
        print("error: the warm stage server ended before the stage did", file=sys.stderr)
        return 1
    if pidfd >= 0:
        os.close(pidfd)
    code = int(status["code"])
    if code < 0:  # killed by a signal: end the same way, as the stage's own process would
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def start_server() -> None:
    """Start this directory's server in the background, detached from the caller."""
    idle = os.environ.get("MLREPO_WARM_IDLE_S")
    if idle is not None and not _seconds(idle):
        # The server would fail on it out of sight; say so where the user looks.
        print(
            f"warning: MLREPO_WARM_IDLE_S={idle!r} is not a number of seconds >= 0, so stages"
            " run cold (no warm server); set it to e.g. 20, or unset it",
            file=sys.stderr,
        )
        return
    devnull = os.devnull
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0),
    ]
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined] # the caller's -X, -W, -O...
    argv = [sys.executable, *flags, "-m", "mlrepo.launcher", "serve"]
    # Without a server every stage runs cold, as it would without the launcher.
    with contextlib.suppress(OSError):
        os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)


def _seconds(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False

"""The server's side: import the stages once, then fork one child per stage and reap it."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import sysconfig
import time
import traceback
from dataclasses import dataclass
from typing import Any

from mlrepo.launcher import FORWARDED_SIGNALS, MAX_MESSAGE, STAGES, address, interpreter, send

# Imported by the server before it forks. export and monitor import onnxruntime, whose thread
# does not survive a fork (its exit handlers then hang or abort the child), so their forks import
# it fresh; they still find pandas, scikit-learn and the rest imported.
WARM_STAGES = ("generate", "validate", "featurize", "train", "evaluate", "batches")
FORK_UNSAFE = ("onnxruntime",)
DEFAULT_IDLE_S = 20.0
# Set per stage by DVC, or by the shell between commands: never read by a stage at import.
IGNORED_ENV = frozenset({"DVC_STAGE", "_", "PWD", "OLDPWD", "SHLVL"})


@dataclass
class Request:
    """A stage for a fork to run, with what it takes over from its caller."""

    stage: str
    args: list[str]


@dataclass
class _Child:
    pid: int
    pidfd: int
    conn: socket.socket


def _snapshot() -> dict[str, tuple[int, int]]:
    """mtime and size of every imported mlrepo module file and of site-packages."""
    import mlrepo

    package = os.path.dirname(os.path.realpath(mlrepo.__file__))
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.realpath(path).startswith(package + os.sep):
            paths.add(path)
    stats = {}
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        stats[path] = (info.st_mtime_ns, info.st_size)
    return stats


def _changed(snapshot: dict[str, tuple[int, int]]) -> bool:
    for path, stat in snapshot.items():
        try:
            info = os.stat(path)
        except OSError:
            return True
        if (info.st_mtime_ns, info.st_size) != stat:
            return True
    return False


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class Server:
    """The accept / fork / reap loop. Single-threaded, so forking it is safe."""

    def __init__(self, listener: socket.socket, idle_s: float) -> None:
        self.listener: socket.socket | None = listener
        self.idle_s = idle_s
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, "accept")
        self.children: dict[int, _Child] = {}
        self.served = 0
        self.last_active = time.monotonic()
        self.environ = dict(os.environ)
        self.interpreter = interpreter()
        self.snapshot: dict[str, tuple[int, int]] = {}

    def warm_up(self) -> bool:
        """Import the stage modules that are safe to fork, then note the files the server now
        depends on; ``False`` if a fork-unsafe library came in with them."""
        from importlib import import_module

        for stage in WARM_STAGES:
            import_module(f"mlrepo.stages.{stage}")
        # What the stages import late, where they use it: pandera in validate's check, pyplot
        # (0.37 s) in evaluate's and monitor's PNGs. Neither starts a thread.
        import_module("pandera.pandas")
        from mlrepo.plots import pyplot

        pyplot()
        self.snapshot = _snapshot()
        return not any(name in sys.modules for name in FORK_UNSAFE)

    def loop(self) -> Request | None:
        """Serve until idle or stopped; in a fork, return the request it is to run."""
        while self.listener is not None or self.children:
            if self.children:
                timeout = None
            else:
                timeout = max(0.0, self.last_active + self.idle_s - time.monotonic())
            events = self.selector.select(timeout)
            idle = not events and not self.children and self.listener is not None
            if idle and time.monotonic() - self.last_active >= self.idle_s:
                self.close_listener()
            for key, _mask in events:
                kind = key.data
                if kind == "accept" and self.listener is not None:
                    request = self.accept()
                    if request is not None:
                        return request
                elif isinstance(kind, tuple) and kind[0] == "exited":
                    self.reap(kind[1])
                elif isinstance(kind, tuple) and kind[0] == "caller":
                    self.caller_gone(kind[1])
        return None

    def close_listener(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def accept(self) -> Request | None:
        """Answer one connection; in a fork, return the request it is to run."""
        assert self.listener is not None
        conn, _ = self.listener.accept()
        try:
            if _peer_uid(conn) != os.getuid():
                conn.close()
                return None
            conn.settimeout(5.0)
            data, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 3)
        except OSError:
            conn.close()
            return None
        try:
            message = json.loads(data) if data else {}
            reply = self.answer(message, len(fds))
        except (ValueError, KeyError, TypeError, AttributeError):
            reply = {"refused": "malformed request", "restart": False}
        if reply is None:
            return self.fork(conn, message, fds)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            send(conn, reply)
        conn.close()
        return None

    def answer(self, message: dict[str, Any], n_fds: int) -> dict[str, Any] | None:
        """The reply to ``message``, or ``None`` when a fork is to run its stage."""
        op = message.get("op")
        if op == "status":
            return self.status()
        if op == "stop":
            self.close_listener()
            return {"stopping": True, "running": len(self.children)}
        if op != "run" or n_fds != 3 or message.get("stage") not in STAGES:
            return {"refused": "malformed request", "restart": False}
        refusal = first_difference(self.environ, self.interpreter, message)
        # A caller with another environment is usually the start of another run (a changed
        # MLREPO_LOG_LEVEL, say): an idle server makes way for one started with it.
        restart = refusal is not None and not self.children
        if _changed(self.snapshot):
            refusal, restart = "mlrepo or site-packages changed since the server started", True
        if refusal is None:
            return None
        if restart:  # free the name first, so the caller's new server can take it
            self.close_listener()
        return {"refused": refusal, "restart": restart}

    def fork(self, conn: socket.socket, message: dict, fds: list[int]) -> Request | None:
        pid = os.fork()
        if pid == 0:
            try:
                self.become_child(conn)
                _take_over(message, fds)
                return Request(stage=message["stage"], args=list(message["args"]))
            except BaseException:  # never fall back into the server's loop from a fork
                traceback.print_exc()
                os._exit(70)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        conn.settimeout(None)
        self.children[pid] = _Child(pid, pidfd, conn)
        self.selector.register(pidfd, selectors.EVENT_READ, ("exited", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("caller", pid))
        self.served += 1
        try:
            send(conn, {"pid": pid})
        except OSError:
            self.caller_gone(pid)
        return None

    def become_child(self, conn: socket.socket) -> None:
        """In the fork: drop every descriptor of the server's but the caller's ones."""
        conn.close()
        if self.listener is not None:
            self.listener.close()
        for child in self.children.values():
            os.close(child.pidfd)
            child.conn.close()
        self.selector.close()

    def reap(self, pid: int) -> None:
        child = self.children.pop(pid, None)
        if child is None:
            return
        _, status = os.waitpid(pid, 0)
        self.selector.unregister(child.pidfd)
        os.close(child.pidfd)
        if child.conn.fileno() >= 0:
            self.selector.unregister(child.conn)
            with contextlib.suppress(OSError):
                send(child.conn, {"code": os.waitstatus_to_exitcode(status)})
            child.conn.close()
        self.last_active = time.monotonic()

    def caller_gone(self, pid: int) -> None:
        """The caller died (a kill -9 cannot be forwarded): end its stage as it would have."""
        child = self.children.get(pid)
        if child is None:
            return
        self.selector.unregister(child.conn)
        child.conn.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "served": self.served,
            "running": len(self.children),
            "watched_files": len(self.snapshot),
            "idle_s": self.idle_s,
        }


def _take_over(message: dict, fds: list[int]) -> None:
    """In the fork: become the caller's process, as far as a stage can tell."""
    import random

    for target, fd in zip((0, 1, 2), fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(message["cwd"])
    os.umask(int(message["umask"]))
    os.environ.clear()
    os.environ.update(message["environ"])
    write_through = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(  # noqa: SIM115
        1, "w", buffering=1 if os.isatty(1) else -1, closefd=False
    )
    sys.stderr = open(  # noqa: SIM115
        2, "w", buffering=1, closefd=False, errors="backslashreplace"
    )
    if write_through:
        sys.stdout.reconfigure(write_through=True)
    for signum in FORWARDED_SIGNALS[1:]:
        signal.signal(signum, signal.SIG_DFL)
    # A fresh process seeds the global generators from the OS; every fork would share the
    # server's otherwise. (Stages seed their own generators from params and use neither.)
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def serve(idle_s: float | None = None) -> Request | None:
    """Run this directory's server; return in a fork with the request it is to run, or
    ``None`` in the server once it is done (or when another server already holds the name)."""
    if idle_s is None:
        idle_s = float(os.environ.get("MLREPO_WARM_IDLE_S", DEFAULT_IDLE_S))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(address())
    except OSError:  # the name is taken: another caller's server won the race
        listener.close()
        return None
    # Callers that connect while the modules import wait in the backlog.
    listener.listen(64)
    server = Server(listener, idle_s)
    if not server.warm_up():
        return None
    return server.loop()


def first_difference(
    environ: dict[str, str], settings: dict[str, Any], message: dict[str, Any]
) -> str | None:
    """The first thing a caller's ``message`` has that differs from the server's environment
    or interpreter ``settings``, named for the refusal."""
    theirs = message["environ"]
    if not isinstance(theirs, dict):
        raise TypeError("environ is not a mapping")
    for key in sorted((set(environ) | set(theirs)) - IGNORED_ENV):
        if environ.get(key) != theirs.get(key):
            return f"environment variable {key}"
    for field, value in settings.items():
        if message.get(field) != value:
            return f"interpreter {field}"
    return None

"""Warm stage processes: a fork server that has imported every stage once.

Each DVC stage is its own process, and at the default size most of a stage's time was that
process importing pandas, scikit-learn, scipy and onnx again (1.3-1.9 s of a 1.6-2.2 s stage).
``python -m mlrepo.run STAGE ARGS``, the command of every stage in ``dvc.yaml``, asks a server
that has imported the stage modules to fork instead. The fork takes over the caller's stdin,
stdout, stderr, working directory, umask, environment and arguments, runs the stage's ``main()``,
and its exit status (or the signal that killed it) becomes the caller's. The server forks before
it has run any stage code, so a fork starts from the state a fresh process reaches after its
imports; ``tests/integration/test_launcher.py`` compares every output with a cold run's bytes.

The first stage of a run finds no server, starts one in the background and runs cold meanwhile;
the server exits ``MLREPO_WARM_IDLE_S`` seconds (default 20) after its last stage ended. A stage
runs cold, in its own process as before, whenever a fork could differ from a fresh process:

- another project directory, Python or mlrepo package: each has its own server (the socket's
  name is a hash of the three);
- an mlrepo module the server imported, or the site-packages directory, changed since it
  started (the server then exits, and the next stage starts a new one);
- the caller's environment or interpreter flags differ from the server's, apart from
  ``DVC_STAGE`` and shell bookkeeping: thread counts and Dask settings are read at import (an
  idle server then exits, and the caller starts one with its environment);
- ``MLREPO_WARM=0``, or a platform without Linux's abstract sockets and ``pidfd_open``.

The socket is in Linux's abstract namespace (no file to go stale) and the server serves only
callers of its own user id (``SO_PEERCRED``). ``python -m mlrepo.launcher status`` and ``stop``
talk to the server of the current directory.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

STAGES = (
    "generate", "validate", "featurize", "train", "evaluate", "export", "batches", "monitor",
)  # fmt: skip
# Imported by the server before it forks. export and monitor import onnxruntime, whose thread
# does not survive a fork (its exit handlers then hang or abort the child), so their forks import
# it fresh; they still find pandas, scikit-learn and the rest imported.
WARM_STAGES = ("generate", "validate", "featurize", "train", "evaluate", "batches")
FORK_UNSAFE = ("onnxruntime",)
# Set per stage by DVC, or by the shell between commands: never read by a stage at import.
IGNORED_ENV = frozenset({"DVC_STAGE", "_", "PWD", "OLDPWD", "SHLVL"})
DEFAULT_IDLE_S = 20.0
MAX_MESSAGE = 1 << 20
# A server that is importing its modules answers once it is done (about 1.5 s); past this the
# caller gives up on it and runs cold.
REPLY_TIMEOUT_S = 60.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def enabled() -> bool:
    """Whether stages may run in a fork of the warm server here."""
    supported = sys.platform == "linux" and hasattr(os, "pidfd_open")
    return supported and os.environ.get("MLREPO_WARM", "1") != "0"


def address(directory: str | None = None) -> bytes:
    """The abstract socket name of the server for ``directory`` (default: the current one)."""
    import mlrepo

    parts = (
        os.path.realpath(directory or os.getcwd()),
        sys.executable,
        os.path.dirname(os.path.realpath(mlrepo.__file__)),
    )
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return b"\0mlrepo-warm-" + digest.encode()


def identity() -> dict[str, Any]:
    """What a caller and the server must share for a fork to behave as a fresh process."""
    return {
        "env": {key: value for key, value in os.environ.items() if key not in IGNORED_ENV},
        "flags": repr(sys.flags),
        "xoptions": repr(sorted(sys._xoptions.items())),
        "warnoptions": list(sys.warnoptions),
    }


def first_difference(mine: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """The first thing that differs between two identities, named for the refusal."""
    env_a, env_b = mine["env"], theirs["env"]
    assert isinstance(env_a, dict) and isinstance(env_b, dict)
    for key in sorted(set(env_a) | set(env_b)):
        if env_a.get(key) != env_b.get(key):
            return f"environment variable {key}"
    for field in ("flags", "xoptions", "warnoptions"):
        if mine[field] != theirs[field]:
            return f"interpreter {field}"
    return None


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.send(json.dumps(message).encode())


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    data = conn.recv(MAX_MESSAGE)
    return json.loads(data) if data else None


def _connect(directory: str | None = None) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(address(directory))
    except OSError:
        sock.close()
        return None
    return sock


def end_process(code: int) -> NoReturn:
    """Exit with ``code`` as the interpreter would, minus its final teardown.

    Interpreter shutdown joins the non-daemon threads, runs the atexit handlers (logging,
    joblib's workers, weakref finalizers) and flushes stdio, as this does; then it tears down
    every module and object, which took 0.2-0.3 s in a stage with pandas and scikit-learn loaded
    (measured here) and longer in a fork, whose teardown touches and so copies the server's
    pages. Every output is written and closed before a stage returns, so that teardown writes
    nothing a stage keeps: the dvc.lock written with it was reproduced unchanged without it.
    """
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# ---------------------------------------------------------------- the caller


def run_warm(stage: str, args: list[str]) -> int | None:
    """Run ``stage`` in a fork of the warm server and return its exit code; ``None`` when it
    has to run cold in this process (after starting a server for the next stage if none runs)."""
    sock = _connect()
    if sock is None:
        start_server()
        return None
    with sock:
        request: dict[str, Any] = {"op": "run", "stage": stage, "args": args, "cwd": os.getcwd()}
        request |= {"umask": _umask(), "environ": dict(os.environ), **identity()}
        try:
            socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
            sock.settimeout(REPLY_TIMEOUT_S)
            reply = _receive(sock)
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
        status = _receive(sock)
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


# ---------------------------------------------------------------- the server


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
        self.identity = identity()
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
            _send(conn, reply)
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
        refusal = first_difference(self.identity, message)
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
            _send(conn, {"pid": pid})
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
                _send(child.conn, {"code": os.waitstatus_to_exitcode(status)})
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


def ask(op: str, directory: str | None = None) -> dict[str, Any] | None:
    """Send ``status`` or ``stop`` to the server of ``directory``; ``None`` if none runs."""
    sock = _connect(directory)
    if sock is None:
        return None
    with sock:
        sock.settimeout(REPLY_TIMEOUT_S)
        _send(sock, {"op": op})
        return _receive(sock)


def cli(argv: list[str] | None = None) -> int:
    """``python -m mlrepo.launcher {serve,status,stop}``."""
    from mlrepo.run import run_stage

    args = sys.argv[1:] if argv is None else argv
    if args == ["serve"]:
        request = serve()
        if request is None:
            return 0
        end_process(run_stage(request.stage, request.args))
    if args in (["status"], ["stop"]):
        reply = ask(args[0])
        print(json.dumps(reply, sort_keys=True) if reply else "no warm stage server runs here")
        return 0
    print("usage: python -m mlrepo.launcher {serve,status,stop}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    from mlrepo import launcher

    raise SystemExit(launcher.cli())

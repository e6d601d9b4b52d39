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

The caller's side is :mod:`mlrepo.launcher.caller`, the server's :mod:`mlrepo.launcher.server`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import threading
from typing import Any, NoReturn

STAGES = (
    "generate", "validate", "featurize", "train", "evaluate", "export", "batches", "monitor",
)  # fmt: skip
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


def interpreter() -> dict[str, Any]:
    """The interpreter settings a caller and the server must share (read at start-up, so a
    fork cannot take a caller's over). The environment is compared too, from what is sent."""
    return {
        "flags": repr(sys.flags),
        "xoptions": repr(sorted(sys._xoptions.items())),
        "warnoptions": list(sys.warnoptions),
    }


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.send(json.dumps(message).encode())


def receive(conn: socket.socket) -> dict[str, Any] | None:
    data = conn.recv(MAX_MESSAGE)
    return json.loads(data) if data else None


def connect(directory: str | None = None) -> socket.socket | None:
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
    nothing a stage keeps: dvc.lock, written while stages still ran it, was reproduced unchanged
    once they skipped it.
    """
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def ask(op: str, directory: str | None = None) -> dict[str, Any] | None:
    """Send ``status`` or ``stop`` to the server of ``directory``; ``None`` if none runs."""
    sock = connect(directory)
    if sock is None:
        return None
    with sock:
        sock.settimeout(REPLY_TIMEOUT_S)
        send(sock, {"op": op})
        return receive(sock)

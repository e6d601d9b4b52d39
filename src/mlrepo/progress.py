"""Progress a person can follow, on stderr only, so it never reaches a tracked output.

On a terminal it is a tqdm bar; in a log (DVC's output piped to a file, CI) a line at most
every ``LOG_EVERY_S`` seconds, and nothing for steps that finish quicker than that.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from mlrepo.logs import get_logger

LOG_EVERY_S = 5.0

T = TypeVar("T")


def track(items: Iterable[T], total: int, desc: str) -> Iterator[T]:
    """Yield ``items`` and report how many of ``total`` are done."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, leave=False, file=sys.stderr)
        return
    start = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= LOG_EVERY_S and done < total:
            get_logger().info("%s: %d/%d done, %.0f s", desc, done, total, now - start)
            last = now


@contextmanager
def heartbeat(desc: str) -> Iterator[None]:
    """Say every ``LOG_EVERY_S`` seconds that a long step with no inner progress still runs."""
    stop = threading.Event()
    start = time.perf_counter()

    def beat() -> None:
        while not stop.wait(LOG_EVERY_S):
            get_logger().info("%s: running, %.0f s", desc, time.perf_counter() - start)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

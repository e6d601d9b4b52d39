"""The prediction log's spill file: rows that did not fit in the memory buffer, kept on disk.

When the database is away long enough for the buffer to fill (``max_rows``), the oldest rows
go to this file (JSON lines, appended and flushed) instead of being dropped; when the
database is back, the writer inserts them again, oldest first, and empties the file once all
are in. A row is unique per (request id, position), so rows written twice (a crash between the
insert and the truncation) are inserted once. A file left by a previous process is replayed
at start; at shutdown the rows already written back are cut from it (``compact``). The file is
bounded (``max_bytes``): beyond it rows are dropped, and counted.

A process killed in the middle of an append can leave a last line cut short. At start such a
line is ended with a newline (the next append must not glue a whole row onto it), and when it
is read back it is skipped with a warning: that one row is lost, the ones after it are not.

Several worker processes (``MLREPO_WORKERS``) each take a file of their own, ``NAME.wK.jsonl``
(``worker_path``): slot K is the first whose lock file no live process holds, so workers
started again take over, and replay, the files the previous ones left.
"""

from __future__ import annotations

import fcntl
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

JSON_FIELDS = ("inputs", "probabilities")

log = logging.getLogger("mlrepo.serve.spill")


class SpillFile:
    def __init__(self, path: Path, max_bytes: int, json_text: type[str]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._json_text = json_text
        self._offset = 0  # bytes already written back to the database
        self.rows = 0  # rows in the file not yet written back
        self._passed = 0  # lines the last read went past: rows, and unreadable lines skipped
        if path.exists():
            with open(path, "rb") as existing:
                self.rows = sum(1 for line in existing if line.strip())
                existing.seek(0, os.SEEK_END)
                if existing.tell():
                    existing.seek(-1, os.SEEK_END)
                    torn = existing.read(1) != b"\n"
                else:
                    torn = False
            if torn:  # a write cut short: end it, so the next row starts on a line of its own
                with open(path, "ab") as out:
                    out.write(b"\n")

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append ``rows``; how many fitted (the rest would pass ``max_bytes``)."""
        lines = [orjson.dumps(row) + b"\n" for row in rows]
        size = self.path.stat().st_size if self.path.exists() else 0
        kept = 0
        for line in lines:
            if size + len(line) > self.max_bytes:
                break
            size += len(line)
            kept += 1
        if kept:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as out:
                out.write(b"".join(lines[:kept]))
                out.flush()
                os.fsync(out.fileno())
            self.rows += kept
        return kept

    def read(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` of the oldest rows not yet written back, and the offset after them.
        A line that is not a row (a write cut short) is skipped, with a warning."""
        rows: list[dict[str, Any]] = []
        passed = 0
        with open(self.path, "rb") as source:
            source.seek(self._offset)
            offset = self._offset
            while len(rows) < limit:
                line = source.readline()
                if not line:
                    passed = self.rows  # the end: every row counted is behind us
                    break
                offset += len(line)
                if not line.strip():
                    continue
                passed += 1
                try:
                    rows.append(self._row(orjson.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning(
                        "spill file %s: a line at byte %d is not a row (%s), skipped: a write "
                        "cut short loses that row only",
                        self.path.name,
                        offset - len(line),
                        type(exc).__name__,
                    )
        self._passed = passed
        return rows, offset

    def consumed(self, rows: int, offset: int) -> None:
        """The ``rows`` the last read returned, up to ``offset``, are in the database; empty
        the file once all are."""
        self._offset = offset
        self.rows -= max(rows, self._passed)
        self._passed = 0
        if self.rows <= 0:
            self.path.unlink(missing_ok=True)
            self._offset = 0
            self.rows = 0

    def compact(self) -> None:
        """Drop the rows already written back from the file itself (the offset lives only in
        memory): at shutdown, so the next process replays, and a reader counts, only the rows
        the database lacks. Written to a temporary file and renamed, so a crash midway leaves
        the old file, whose written rows the unique key then ignores."""
        if self._offset == 0 or not self.path.exists():
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(self.path, "rb") as source, open(temporary, "wb") as out:
            source.seek(self._offset)
            while chunk := source.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self._offset = 0

    def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        for name in JSON_FIELDS:
            row[name] = self._json_text(row[name])
        return row


def worker_path(path: Path, workers: int) -> tuple[Path, IO[bytes]] | None:
    """The spill file of one of ``workers`` processes sharing ``path``, and the open lock that
    reserves it for this process's life; None if every slot is taken. 2 x workers slots: a
    restarting worker starts before the one it replaces has stopped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for slot in range(2 * workers):
        lock = open(path.with_name(f"{path.stem}.w{slot}.lock"), "ab")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        return path.with_name(f"{path.stem}.w{slot}{path.suffix}"), lock
    return None

"""The spill file keeps exactly the rows the database lacks, across a shutdown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mlrepo.serve.spill import SpillFile


def _rows(n: int, start: int = 0) -> list[dict]:
    when = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    return [
        {
            "request_id": f"r{i}",
            "position": 0,
            "created_at": when,
            "inputs": "{}",
            "probabilities": "[]",
        }
        for i in range(start, start + n)
    ]


def test_compact_cuts_the_rows_already_written_back(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path, max_bytes=1 << 20, json_text=str)
    assert spill.append(_rows(10)) == 10
    rows, offset = spill.read(4)
    assert [row["request_id"] for row in rows] == ["r0", "r1", "r2", "r3"]
    spill.consumed(len(rows), offset)

    spill.compact()

    assert len(path.read_bytes().splitlines()) == 6
    assert not path.with_name(path.name + ".tmp").exists()
    again = SpillFile(path, max_bytes=1 << 20, json_text=str)
    assert again.rows == 6
    rest, _ = again.read(100)
    assert [row["request_id"] for row in rest] == [f"r{i}" for i in range(4, 10)]
    # the compacted file still takes appends and reads from its new start
    assert spill.rows == 6
    spill.append(_rows(1, start=10))
    tail, _ = spill.read(100)
    assert [row["request_id"] for row in tail][-1] == "r10"
    assert len(tail) == 7


def test_compact_leaves_an_untouched_or_emptied_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path, max_bytes=1 << 20, json_text=str)
    spill.compact()  # no file yet
    assert not path.exists()
    spill.append(_rows(3))
    before = path.read_bytes()
    spill.compact()  # nothing written back yet
    assert path.read_bytes() == before
    rows, offset = spill.read(3)
    spill.consumed(len(rows), offset)  # all written back: the file goes
    spill.compact()
    assert not path.exists()


def test_a_row_cut_short_by_a_kill_loses_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path, max_bytes=1 << 20, json_text=str)
    spill.append(_rows(2))
    with open(path, "ab") as out:  # a kill -9 in the middle of the next append
        out.write(b'{"request_id": "torn", "posi')

    again = SpillFile(path, max_bytes=1 << 20, json_text=str)
    assert again.rows == 3
    again.append(_rows(1, start=2))  # after the torn line, not glued onto it

    rows, offset = again.read(100)
    assert [row["request_id"] for row in rows] == ["r0", "r1", "r2"]
    again.consumed(len(rows), offset)
    assert again.rows == 0 and not path.exists()


def test_a_file_emptied_under_the_reader_does_not_leave_rows_counted(tmp_path: Path) -> None:
    path = tmp_path / "spill.jsonl"
    spill = SpillFile(path, max_bytes=1 << 20, json_text=str)
    spill.append(_rows(5))
    path.write_bytes(b"")  # truncated by someone else: nothing left to write back

    rows, offset = spill.read(100)
    assert rows == []
    spill.consumed(len(rows), offset)
    assert spill.rows == 0  # else the writer would keep trying to write back rows that are gone

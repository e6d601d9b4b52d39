"""cores: how train.n_jobs is split between parallel fits and threads inside one fit."""

from __future__ import annotations

import threading

import pytest

from mlrepo import cores


def test_negative_n_jobs_counts_back_from_the_available_cores() -> None:
    assert cores.resolve(-1) == cores.available()
    assert cores.resolve(-2) == max(1, cores.available() - 1)
    assert cores.resolve(-1000) == 1
    assert cores.resolve(3) == 3


@pytest.mark.parametrize(
    ("n_fits", "n_rows", "n_jobs", "expected"),
    [
        (5, 1_000, 2, cores.Plan(workers=2, threads=1)),  # folds side by side, one thread each
        (5, 1_000_000, 4, cores.Plan(workers=4, threads=1)),
        (2, 1_000, 8, cores.Plan(workers=2, threads=4)),
        (5, 1_000, 1, cores.Plan(workers=1, threads=1)),
        (1, 8_000, 2, cores.Plan(workers=1, threads=1)),  # small fit: threads only wait
        (1, 100_000, 2, cores.Plan(workers=1, threads=2)),
        (1, 1_000_000, 2, cores.Plan(workers=1, threads=2)),
        (1, 120_000, 8, cores.Plan(workers=1, threads=2)),
    ],
)
def test_plan(n_fits: int, n_rows: int, n_jobs: int, expected: cores.Plan) -> None:
    assert cores.plan(n_fits, n_rows, n_jobs) == expected


def test_run_keeps_the_order_of_the_items_and_uses_the_workers() -> None:
    seen: set[int] = set()

    def task(item: int) -> int:
        seen.add(threading.get_ident())
        threading.Event().wait(0.01 * (5 - item))  # later items finish first
        return item * item

    assert list(cores.run(task, list(range(5)), workers=2)) == [0, 1, 4, 9, 16]
    assert len(seen) == 2
    assert list(cores.run(task, [3], workers=1)) == [9]

"""Push what the run cache's entries need, so another clone can skip a stage someone else ran.

``dvc push --run-cache`` sends the run-cache entries (one per stage run: its deps, params and
the hashes of its outputs) and the objects of the outputs ``dvc.lock`` tracks, but not the
objects of outputs marked ``cache: false`` (the metrics and plots git tracks). DVC's run cache
keeps those too, and restoring a stage from an entry needs every output it lists: without them
a second clone that made the same params change ran train again. ``python -m mlrepo.run_cache
push`` sends the objects of every local entry's outputs; ``make push`` runs it after
``dvc push --run-cache``, and ``dvc repro --pull`` (or ``dvc exp run --pull``) in the other
clone then restores such stages instead of running them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def entries(cache_dir: Path) -> list[tuple[str, str]]:
    """(key, value) of every run-cache entry under ``cache_dir`` (``runs/<k[:2]>/<k>/<v>``)."""
    return sorted(
        (entry.parent.name, entry.name)
        for entry in cache_dir.glob("*/*/*")
        if entry.is_file() and entry.parent.parent.name == entry.parent.name[:2]
    )


def push(remote: str | None) -> tuple[int, int, int]:
    """Push the objects of every local run-cache entry's outputs to ``remote`` (default: the
    project's default remote); return (entries, objects transferred, objects failed)."""
    from dvc.repo import Repo

    with Repo() as repo:
        found = entries(Path(repo.stage_cache.cache_dir))
        used = repo.stage_cache.get_used_objs(found)
        transferred = failed = 0
        for odb, objs in used.items():
            if odb is not None:  # objects of an imported repository's cache: not ours to push
                continue
            result = repo.cloud.push(objs, remote=remote)
            transferred += len(result.transferred)
            failed += len(result.failed)
    return len(found), transferred, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlrepo.run_cache", description=__doc__)
    parser.add_argument("command", choices=["push"])
    parser.add_argument("--remote", help="DVC remote name (default: core.remote)")
    args = parser.parse_args(argv)
    from dvc.exceptions import DvcException

    try:
        count, transferred, failed = push(args.remote)
    except DvcException as exc:
        print(f"error: pushing the run cache's outputs failed: {exc}", file=sys.stderr)
        return 1
    print(f"{transferred} object(s) of {count} run-cache entries pushed")
    if failed:
        print(f"error: {failed} object(s) failed to push; run `make push` again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

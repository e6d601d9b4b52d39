"""Single-record latency with the prediction log's two writers alternated on one machine state.

Run from the project root as ``.venv/bin/python benchmarks/serve_writers.py [--rounds N]``: the
default pipeline reproduced in a throwaway copy, then for each round a real ``mlrepo serve``
(ONNX, log on, SQLite) with ``MLREPO_LOG_WRITER=process`` and one with ``thread``, each held at
100 and 200 single records/s for 30 s (``benchmarks/serve.py``'s open-loop generator). Prints one
line per step; the figures are quoted in ``benchmarks/SERVE_RESULTS.md`` (run 6).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from serve import Server, fixed_rate, reproduce, requests_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlrepo-writers-") as tmp:
        base = Path(tmp)
        project = reproduce(base / "project")
        singles = [json.dumps(r).encode() for r in requests_for(project).to_dict("records")]
        for round_ in range(args.rounds):
            for writer in ("process", "thread"):
                database = f"sqlite:///{base / f'{writer}-{round_}.db'}"
                server = Server(project, "onnx", database, writer)
                try:
                    asyncio.run(fixed_rate(server.port, singles, 100, 2))  # warm-up
                    for rate in (100, 200):
                        held = asyncio.run(fixed_rate(server.port, singles, rate, args.seconds))
                        print(f"round {round_ + 1}, {writer} writer, {rate} req/s: {held.cell()}")
                finally:
                    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

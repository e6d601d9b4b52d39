"""``python -m mlrepo.launcher {serve,status,stop}``."""

from __future__ import annotations

import json
import sys

from mlrepo.launcher import ask, end_process


def cli(argv: list[str] | None = None) -> int:
    """``python -m mlrepo.launcher {serve,status,stop}``."""
    from mlrepo.launcher.server import serve
    from mlrepo.stages import run_stage

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
    raise SystemExit(cli())

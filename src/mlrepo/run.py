"""``python -m mlrepo.run STAGE ARGS``: the command of every stage in ``dvc.yaml``.

Runs ``mlrepo.stages.STAGE``'s ``main(ARGS)``: in a fork of the warm stage server when one can
serve it (:mod:`mlrepo.launcher`; it saves the 0.5-1.9 s a stage spends importing), in this
process otherwise. Either way the stage writes the same bytes; ``MLREPO_WARM=0`` always runs here.
This module imports nothing heavy, so a cold run costs what ``python -m mlrepo.stages.STAGE`` did.
"""

from __future__ import annotations

import sys

from mlrepo import launcher
from mlrepo.launcher import caller
from mlrepo.stages import run_stage

USAGE = f"usage: python -m mlrepo.run {{{','.join(launcher.STAGES)}}} [ARGS...]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in launcher.STAGES:
        given = f"'{args[0]}' is not a stage" if args else "no stage given"
        stages = ", ".join(launcher.STAGES)
        print(f"{USAGE}\nerror: {given}; the stages are {stages}", file=sys.stderr)
        return 2
    stage, rest = args[0], args[1:]
    if launcher.enabled():
        code = caller.run_warm(stage, rest)
        if code is not None:
            return code
    return run_stage(stage, rest)


if __name__ == "__main__":
    launcher.end_process(main())

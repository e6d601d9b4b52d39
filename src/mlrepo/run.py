"""``python -m mlrepo.run STAGE ARGS``: the command of every stage in ``dvc.yaml``.

Runs ``mlrepo.stages.STAGE``'s ``main(ARGS)``: in a fork of the warm stage server when one can
serve it (:mod:`mlrepo.launcher`; it saves the 0.5-1.9 s a stage spends importing), in this
process otherwise. Either way the stage writes the same bytes; ``MLREPO_WARM=0`` always runs here.
This module imports nothing heavy, so a cold run costs what ``python -m mlrepo.stages.STAGE`` did.
"""

from __future__ import annotations

import sys

from mlrepo import launcher

USAGE = f"usage: python -m mlrepo.run {{{','.join(launcher.STAGES)}}} [ARGS...]"


def run_stage(stage: str, args: list[str]) -> int:
    """Run one stage's ``main`` here, as ``python -m mlrepo.stages.<stage>`` would."""
    from importlib import import_module

    from mlrepo.errors import run_cli

    module = import_module(f"mlrepo.stages.{stage}")
    sys.argv = [module.__file__ or stage, *args]  # argparse names the stage in its messages
    try:
        return run_cli(module.main, args)
    except SystemExit as exc:  # argparse's usage errors
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in launcher.STAGES:
        given = f"'{args[0]}' is not a stage" if args else "no stage given"
        stages = ", ".join(launcher.STAGES)
        print(f"{USAGE}\nerror: {given}; the stages are {stages}", file=sys.stderr)
        return 2
    stage, rest = args[0], args[1:]
    if launcher.enabled():
        code = launcher.run_warm(stage, rest)
        if code is not None:
            return code
    return run_stage(stage, rest)


if __name__ == "__main__":
    launcher.end_process(main())

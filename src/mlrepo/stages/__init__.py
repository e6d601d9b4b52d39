"""The pipeline's stages; each module has a pure core function and a thin ``main()``."""

from __future__ import annotations

import argparse


def stage_args(doc: str | None, argv: list[str] | None, *paths: str) -> argparse.Namespace:
    """A stage's command line: ``--params`` (default params.yaml) and ``--<name>`` per path.

    Each of ``paths`` names a file the stage reads or writes; all are required, since
    ``dvc.yaml`` is the one place where paths live.
    """
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--params", default="params.yaml")
    for name in paths:
        parser.add_argument(f"--{name}", required=True)
    return parser.parse_args(argv)

"""``mlrepo registry``: model versions and stages (GTO git tags), listed, shown and moved."""

from __future__ import annotations

import argparse

from mlrepo.io import dumps_json


def _registry(args: argparse.Namespace) -> int:
    # Imported on use: gto and dvc are slow to import and the other commands do not need them.
    from mlrepo.registry import report

    root = args.project
    commands = {
        "list": lambda: report.listing(root),
        "show": lambda: report.show(args.ref, root),
        "register": lambda: report.register(root, args.rev, args.bump, args.version),
        "promote": lambda: report.promote(args.stage, args.ref, root),
        "history": lambda: report.history(root),
        "compare": lambda: report.compare(args.a, args.b, root, args.all),
    }
    result = commands[args.action]()
    print(dumps_json(result.data) if args.json else result.text, end="")
    return 0


def add_registry(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = commands.add_parser(
        "registry",
        help="model versions and stages (GTO git tags): list, show, register, promote, ...",
        description="Model versions (model@vX.Y.Z) and stages (model#production#N) as git tags. "
        "A REF is model#production, production, champion (= production), challenger "
        "(= staging), model@v1.2.0, v1.2.0, latest, a git revision, workspace, or a project "
        "folder.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-C", dest="project", default=".", help="project folder (default: .)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = registry.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="every version, its stages and metrics")
    show = actions.add_parser("show", parents=[common], help="one model: version, stage, ...")
    show.add_argument("ref", nargs="?", help="REF (default: model#production)")
    register = actions.add_parser(
        "register", parents=[common], help="record a commit's model as the next version"
    )
    register.add_argument("--rev", default="HEAD", help="git commit (default: %(default)s)")
    register.add_argument("--bump", choices=["major", "minor", "patch"], help="default: patch")
    register.add_argument("--version", help="an explicit version, e.g. v1.0.0")
    promote = actions.add_parser(
        "promote", parents=[common], help="assign a stage, if the version passes the gates"
    )
    promote.add_argument(
        "--stage", required=True, choices=["staging", "production", "challenger", "champion"]
    )
    promote.add_argument("ref", nargs="?", help="REF (default: the latest version)")
    actions.add_parser("history", parents=[common], help="registrations and promotions")
    compare = actions.add_parser(
        "compare", parents=[common], help="two models' metrics and params side by side"
    )
    compare.add_argument("a", metavar="A", help="REF")
    compare.add_argument("b", metavar="B", help="REF")
    compare.add_argument("--all", action="store_true", help="every param, not only those differing")
    registry.set_defaults(run=_registry)

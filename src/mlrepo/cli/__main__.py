"""``python -m mlrepo.cli``: the ``mlrepo`` command."""

from mlrepo.cli import main

raise SystemExit(main())

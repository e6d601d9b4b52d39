"""The model registry: versions and stages as GTO git tags, references resolved to verified bytes.

* ``register`` records the model of a commit as ``model@vX.Y.Z`` (an annotated git tag);
* ``promote`` assigns ``staging`` or ``production`` (``model#production#N``), refused when the
  version's evaluation marks it not promotable (``evaluate.min_accuracy``);
* ``resolve`` turns a reference (``model#production``, ``champion``, ``model@v1.2.0``, a git
  revision, ``workspace``, a folder) into a ``ModelBundle`` whose bytes match that revision's
  ``dvc.lock``; nothing is deserialized before that check.

The stages and the model never depend on this package: it only reads what they recorded.
"""

from mlrepo.registry.lifecycle import PromotionRefused, promote, register
from mlrepo.registry.refs import Target, find
from mlrepo.registry.resolve import resolve
from mlrepo.registry.tags import ALIASES, ARTIFACT, STAGES, Version, versions

__all__ = [
    "ALIASES",
    "ARTIFACT",
    "STAGES",
    "PromotionRefused",
    "Target",
    "Version",
    "find",
    "promote",
    "register",
    "resolve",
    "versions",
]

"""mlrepo: a reproducible tabular-classification pipeline orchestrated by DVC.

The stage cores are importable so a notebook runs the same code as ``dvc repro``::

    from mlrepo.params import load_params
    from mlrepo.stages.generate import generate
    from mlrepo.stages.validate import validate
    from mlrepo.stages.featurize import featurize
    from mlrepo.stages.train import train
    from mlrepo.stages.evaluate import evaluate
"""

__version__ = "0.1.0"

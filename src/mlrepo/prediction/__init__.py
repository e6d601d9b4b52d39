"""The prediction core: ``core`` (load a verified model, check its input, predict) over
``backends`` (the ONNX graph or the scikit-learn pipeline).

Batch scoring (``mlrepo.predict``), the service (``mlrepo.serve``), drift monitoring
(``mlrepo.monitor``) and the web app sit side by side on it. This face holds only what a
command line needs before it loads anything (the backend choices, the names of the scored
columns); import the rest from ``mlrepo.prediction.core``, which pulls in onnxruntime and
scikit-learn.
"""

from typing import Any, Literal

# What a user may ask for: a backend, or "auto" (ONNX when the version has a graph).
BackendChoice = Literal["auto", "onnx", "sklearn"]
BACKENDS: tuple[BackendChoice, ...] = ("auto", "onnx", "sklearn")
# The columns a scored table adds: the predicted class, and one probability per class; drift
# monitoring names the predicted classes' column so too.
PREDICTION = "prediction"


def proba_column(cls: Any) -> str:
    return f"proba_{cls}"

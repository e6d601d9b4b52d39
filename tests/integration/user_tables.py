"""Small user tables for `generate.source: file`: a good one, and ways to break it."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ("bronze", "gold", "silver")


def good_table(n_rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numeric and text columns, three string classes the features separate well (not perfectly)."""
    rng = np.random.default_rng(seed)
    label = rng.choice(CLASSES, size=n_rows)
    index = pd.Series(label).map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    centre = np.array([[0.0, 0.0], [2.5, 0.5], [0.5, 2.5]])[index]
    points = centre + rng.normal(scale=0.9, size=(n_rows, 2))
    region = np.where(
        rng.random(n_rows) < 0.7,
        np.array(["north", "south", "east"])[index],
        rng.choice(["north", "south", "east"], size=n_rows),
    )
    return pd.DataFrame(
        {
            "spend": points[:, 0].round(4),
            "visits": points[:, 1].round(4),
            "age": rng.integers(18, 80, size=n_rows),
            "region": region,
            "label": label,
        }
    )

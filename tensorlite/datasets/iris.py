"""Fisher's Iris (150 rows, 4 features, 3 species), shipped with the package as ``iris.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

IRIS_CSV = Path(__file__).with_name("iris.csv")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")


def load_iris(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 (150, 4) and species labels int64 (150,) from the shipped CSV or ``path``."""
    path = Path(path) if path is not None else IRIS_CSV
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise FileNotFoundError(f"load_iris: no such file {path}") from None
    if not rows or any(column not in rows[0] for column in (*FEATURES, "species")):
        raise ValueError(f"load_iris: {path} is not an Iris CSV: expected a header with "
                         f"{', '.join(FEATURES)}, species")
    try:
        x = np.array([[float(row[f]) for f in FEATURES] for row in rows], dtype=np.float32)
        y = np.array([SPECIES.index(row["species"]) for row in rows], dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"load_iris: {path}: bad row ({exc}); species must be one of {', '.join(SPECIES)}") from exc
    return x, y

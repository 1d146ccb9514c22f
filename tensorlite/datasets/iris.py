"""Fisher's Iris (150 rows, 4 features, 3 species), shipped with the package as ``iris.csv``."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from tensorlite.utils.files import DataFileError, read_text_file

IRIS_CSV = Path(__file__).with_name("iris.csv")
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
IRIS_MAX_BYTES = 16 << 20  # 16 MiB: Iris itself is 4.6 KB
FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_iris(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 (N, 4) and species labels int64 (N,) from the shipped CSV (N = 150) or ``path``.

    ``path`` is a regular file of at most ``IRIS_MAX_BYTES``, UTF-8 (a BOM is allowed), with a header
    naming the four ``FEATURES`` and ``species`` in any order. A missing file raises ``FileNotFoundError``;
    anything else wrong (a short row, a value that is not a finite number, an unknown species) a
    ``DataFileError`` naming the file and line.
    """
    path = Path(path) if path is not None else IRIS_CSV
    text = read_text_file(path, "load_iris", IRIS_MAX_BYTES, encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _parse(reader, path)
    except csv.Error as exc:
        raise DataFileError(f"load_iris: {path}, line {reader.line_num}: not CSV ({exc})") from None


def _parse(reader: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The features and labels of the rows ``reader`` yields, header first (see ``load_iris``)."""
    header = next(reader, [])
    columns = {name.strip(): i for i, name in enumerate(header)}
    if any(name not in columns for name in (*FEATURES, "species")):
        raise DataFileError(f"load_iris: {path} is not an Iris CSV: expected a header with "
                            f"{', '.join(FEATURES)}, species")
    x, y = [], []
    for row in reader:
        if not row:  # a blank line
            continue
        where = f"load_iris: {path}, line {reader.line_num}: bad row"
        if len(row) != len(header):
            raise DataFileError(f"{where}: {len(row)} fields, expected {len(header)} ({', '.join(header)})")
        x.append([_finite(row[columns[name]], name, where) for name in FEATURES])
        species = row[columns["species"]].strip()
        if species not in SPECIES:
            raise DataFileError(f"{where}: species {species!r}, expected one of {', '.join(SPECIES)}")
        y.append(SPECIES.index(species))
    if not y:
        raise DataFileError(f"load_iris: {path} has a header but no rows")
    return np.array(x, dtype=np.float32), np.array(y, dtype=np.int64)


def _finite(text: str, name: str, where: str) -> float:
    """``text`` as a float finite in float32, or a ``DataFileError`` starting with ``where`` naming the column."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not abs(value) <= FLOAT32_MAX:  # NaN compares False
        raise DataFileError(f"{where}: {name} is {text!r}, expected a finite float32 number")
    return value

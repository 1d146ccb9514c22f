"""tensorlite.datasets: the toy problems (gates, addition, circles), Iris, Normalizer, stratified_split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tensorlite import datasets
from tensorlite.datasets.iris import IRIS_CSV

IRIS_SHA256 = "09d1766be79ec606b4c045059bc4b0d3e6a693b61d1cdfc6bdd45af42531df65"
TRUTH_TABLES = {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0], "nand": [1, 1, 1, 0]}


# -- toy sets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gate", sorted(TRUTH_TABLES))
def test_logic_gate_truth_tables(gate: str) -> None:
    x, y = datasets.logic_gate(gate.upper())  # names are case-insensitive
    assert x.dtype == np.float32 and x.shape == (4, 2)
    assert y.dtype == np.float32 and y.shape == (4, 1)
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    a, b = x[:, 0].astype(bool), x[:, 1].astype(bool)
    expected = {"and": a & b, "or": a | b, "xor": a ^ b, "nand": ~(a & b)}[gate]
    np.testing.assert_array_equal(y[:, 0], expected.astype(np.float32))
    np.testing.assert_array_equal(y[:, 0], TRUTH_TABLES[gate])


def test_logic_gate_unknown_name_lists_the_gates() -> None:
    with pytest.raises(ValueError, match=r"logic_gate: unknown gate 'xnor'.*and, or, xor, nand"):
        datasets.logic_gate("xnor")


def test_addition_pairs_and_sums() -> None:
    x, y = datasets.addition(500, seed=3)
    assert x.shape == (500, 2) and y.shape == (500, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.min() >= 0.0 and x.max() < 0.5
    np.testing.assert_array_equal(y[:, 0], x[:, 0] + x[:, 1])
    again, _ = datasets.addition(500, seed=3)
    other, _ = datasets.addition(500, seed=4)
    np.testing.assert_array_equal(x, again)
    assert not np.array_equal(x, other)


def test_circles_labels_are_inside_the_unit_circle_without_noise() -> None:
    x, y = datasets.circles(300, noise=0.0, seed=1)
    assert x.shape == (300, 2) and x.dtype == np.float32
    assert y.shape == (300,) and y.dtype == np.int64
    assert np.abs(x).max() <= 1.5
    np.testing.assert_array_equal(y, (np.hypot(x[:, 0], x[:, 1]) < 1.0).astype(np.int64))
    assert 0 < y.sum() < len(y)  # both classes present


def test_circles_noise_moves_points_not_labels() -> None:
    clean, y_clean = datasets.circles(100, noise=0.0, seed=2)
    noisy, y_noisy = datasets.circles(100, noise=0.1, seed=2)
    np.testing.assert_array_equal(y_clean, y_noisy)
    assert not np.array_equal(clean, noisy)
    assert np.abs(noisy - clean).max() < 1.0


# -- Iris --------------------------------------------------------------------------------------------
def test_shipped_iris_csv_is_the_expected_file() -> None:
    assert hashlib.sha256(IRIS_CSV.read_bytes()).hexdigest() == IRIS_SHA256


def test_load_iris_shapes_and_classes() -> None:
    x, y = datasets.load_iris()
    assert x.shape == (150, 4) and x.dtype == np.float32
    assert y.shape == (150,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [50, 50, 50])
    assert datasets.SPECIES == ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    np.testing.assert_allclose(x[0], [5.1, 3.5, 1.4, 0.2])  # Fisher's first row
    assert 0 < x.min() and x.max() < 8


def test_load_iris_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n"
                    "1,2,3,4,Iris-virginica\n5,6,7,8,Iris-setosa\n")
    x, y = datasets.load_iris(path)
    np.testing.assert_array_equal(x, [[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_array_equal(y, [2, 0])


@pytest.mark.parametrize("text, message", [
    ("a,b,c\n1,2,3\n", "is not an Iris CSV"),
    ("", "is not an Iris CSV"),
    ("sepal_length,sepal_width,petal_length,petal_width,species\n1,2,3,4,Iris-rosea\n", "bad row"),
    ("sepal_length,sepal_width,petal_length,petal_width,species\n1,two,3,4,Iris-setosa\n", "bad row"),
])
def test_load_iris_rejects_a_foreign_csv_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "foreign.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        datasets.load_iris(path)
    assert str(path) in str(info.value)


def test_load_iris_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        datasets.load_iris(path)


# -- Normalizer --------------------------------------------------------------------------------------
def features(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(40, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]).astype(np.float32)


def test_minmax_maps_the_fit_data_onto_zero_one() -> None:
    x = features()
    norm = datasets.Normalizer.fit(x, "minmax")
    z = norm(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.max(axis=0), 1.0, atol=1e-6)


def test_standard_gives_mean_zero_std_one() -> None:
    x = features()
    z = datasets.Normalizer.fit(x, "standard")(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-5)


def test_none_leaves_inputs_alone_and_new_data_uses_the_fit_statistics() -> None:
    x = features()
    np.testing.assert_array_equal(datasets.Normalizer.fit(x, "none")(x), x)
    norm = datasets.Normalizer.fit(x, "standard")
    new = features(seed=1)
    np.testing.assert_allclose(norm(new), (new - x.mean(axis=0)) / x.std(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["minmax", "standard"])
def test_constant_feature_is_safe(method: str) -> None:
    x = features()
    x[:, 1] = 7.0
    z = datasets.Normalizer.fit(x, method)(x)
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z[:, 1], 0.0)


def test_normalizer_round_trips_through_its_fields() -> None:
    """Checkpoints keep ``normalizer.__dict__``: rebuilding from it scales identically."""
    x = features()
    norm = datasets.Normalizer.fit(x, "standard")
    np.testing.assert_array_equal(datasets.Normalizer(**norm.__dict__)(x), norm(x))


def test_normalizer_wrong_feature_count() -> None:
    norm = datasets.Normalizer.fit(features(), "standard")
    with pytest.raises(ValueError, match=r"expected 3 features, got shape \(5, 2\)"):
        norm(np.zeros((5, 2)))


def test_normalizer_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown method 'zscore'.*minmax"):
        datasets.Normalizer.fit(features(), "zscore")


# -- stratified_split --------------------------------------------------------------------------------
@pytest.mark.parametrize("test_size, n_test", [(30, 30), (0.2, 30), (0.5, 75)])
def test_stratified_split_sizes_proportions_and_disjointness(test_size: int | float, n_test: int) -> None:
    _, y = datasets.load_iris()
    train, test = datasets.stratified_split(y, test_size, seed=0)
    assert len(test) == n_test and len(train) == 150 - n_test
    assert set(train).isdisjoint(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(150))
    counts = np.bincount(y[test], minlength=3)
    assert counts.max() - counts.min() <= 1  # Iris is balanced: so is its test split


def test_stratified_split_keeps_unbalanced_proportions() -> None:
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    train, test = datasets.stratified_split(y, 20, seed=5)
    np.testing.assert_array_equal(np.bincount(y[test]), [12, 6, 2])
    np.testing.assert_array_equal(np.bincount(y[train]), [48, 24, 8])


def test_stratified_split_is_reproducible_by_seed() -> None:
    _, y = datasets.load_iris()
    a = datasets.stratified_split(y, 30, seed=1)
    b = datasets.stratified_split(y, 30, seed=1)
    c = datasets.stratified_split(y, 30, seed=2)
    for first, second in zip(a, b):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("test_size", [0, 150, 1.0, 0.0])
def test_stratified_split_rejects_an_empty_side(test_size: int | float) -> None:
    with pytest.raises(ValueError, match="stratified_split: test size"):
        datasets.stratified_split(np.zeros(150), test_size)

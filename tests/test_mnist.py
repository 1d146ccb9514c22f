"""MNIST: IDX files, where the data comes from, the (offline) download, the models, and the CLI end to end.

No test touches the network: ``urlopen`` is replaced by one that serves bytes from memory (or
fails), and the user cache is redirected to a temporary folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import sys
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
from cli_runner import invoke
from oracle import torch

import tensorlite as tl
from tensorlite import models, optim
from tensorlite.cli import mnist as mnist_cli
from tensorlite.datasets import mnist
from tensorlite.datasets.mnist import IMAGE_MAGIC, LABEL_MAGIC, MNIST, NORMALIZE, MNISTError
from tensorlite.datasets.transforms import Normalize
from tensorlite.training import CHECKPOINT
from tensorlite.utils.data import DataLoader

REAL_MNIST = Path("/work/shared/data/mnist")


# -- fake MNIST files ----------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: magic number, one big-endian uint32 per dimension, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` easy "digits" drawn as MNIST's are: in a 20x20 box centred by its centre of mass.

    Class k is the box's outline with two 4x4 blocks placed point-symmetrically (so the centre of
    mass is the box's centre) at a place of its own; the brightness varies from image to image.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), np.uint8)
    for image, k, ink in zip(images, labels, rng.integers(160, 256, n)):
        box = image[4:24, 4:24]
        box[[0, -1], :] = box[:, [0, -1]] = ink
        row, col = 2 + 4 * (k // 5), 2 + 3 * (k % 5)
        box[row:row + 4, col:col + 4] = box[16 - row:20 - row, 16 - col:20 - col] = ink
    return images, labels.astype(np.uint8)


def fake_files(n_train: int = 200, n_test: int = 50) -> dict[str, bytes]:
    """The four files' decompressed contents, by standard name."""
    files = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = fake_split(n, seed)
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(images, IMAGE_MAGIC)
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(labels, LABEL_MAGIC)
    return files


def write_files(directory: Path, files: dict[str, bytes], compress: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (directory / name).write_bytes(content)
    return directory


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, an empty user cache, no $TENSORLITE_DATA."""
    def no_network(url: str, timeout: float = 0) -> Any:
        raise URLError("network disabled in tests")

    monkeypatch.setattr(mnist, "urlopen", no_network)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TENSORLITE_DATA", raising=False)


# -- IDX parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzipped_and_raw_idx_files(tmp_path: Path, compress: bool) -> None:
    root = write_files(tmp_path / "mnist", fake_files(30, 20), compress)
    train, test = MNIST(root), MNIST(root, train=False)
    images, labels = fake_split(30, 1)
    assert train.images.dtype == np.uint8 and train.images.shape == (30, 28, 28)
    assert train.labels.dtype == np.int64 and train.labels.shape == (30,)
    np.testing.assert_array_equal(train.images, images)
    np.testing.assert_array_equal(train.labels, labels)
    assert len(train) == 30 and len(test) == 20 and train.root == root
    assert MNIST.classes == tuple("0123456789")


def corrupt(files: dict[str, bytes], name: str, content: bytes) -> dict[str, bytes]:
    return {**files, name: content}


IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"
GOOD = fake_files(20, 10)


@pytest.mark.parametrize("name, content, fragments", [
    (IMAGES, GOOD[IMAGES][:-5], ["truncated", "expected 15696"]),
    (IMAGES, GOOD[IMAGES] + b"\0", ["trailing bytes"]),
    (IMAGES, GOOD[IMAGES][:10], ["truncated IDX header"]),
    (IMAGES, GOOD[LABELS], ["not an IDX images file", "magic number 2049", "expected magic number 2051"]),
    (LABELS, GOOD[IMAGES], ["not an IDX labels file", "magic number 2051"]),
    (IMAGES, b"\x89PNG\r\n\x1a\n" + bytes(100), ["not an IDX images file"]),
    (IMAGES, b"", ["not an IDX images file", "only 0 bytes"]),
    (IMAGES, idx_bytes(np.zeros((2, 32, 32)), IMAGE_MAGIC), ["32x32 pixels, expected 28x28"]),
    (LABELS, idx_bytes(np.arange(19), LABEL_MAGIC), ["holds 20 images", "holds 19 labels"]),
    (LABELS, idx_bytes(np.full(20, 12), LABEL_MAGIC), ["labels must be digits 0-9, found 12"]),
], ids=["truncated", "trailing", "short-header", "labels-as-images", "images-as-labels", "png", "empty", "32x32",
        "count-mismatch", "bad-label"])
def test_bad_files_are_clear_errors_naming_the_file(tmp_path: Path, name: str, content: bytes,
                                                    fragments: list[str]) -> None:
    root = write_files(tmp_path / "mnist", corrupt(GOOD, name, content), compress=False)
    with pytest.raises(MNISTError) as error:
        MNIST(root)
    for fragment in [str(root / name), *fragments]:
        assert fragment in str(error.value)


def test_truncated_gzip_file_names_the_file(tmp_path: Path) -> None:
    root = write_files(tmp_path / "mnist", GOOD)
    path = root / f"{LABELS}.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(MNISTError, match="corrupt or truncated gzip file") as error:
        MNIST(root)
    assert str(path) in str(error.value)


# -- where the data comes from -------------------------------------------------------------------------
def test_search_order_is_root_then_tensorlite_data_then_the_user_cache(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = write_files(tmp_path / "xdg-cache" / "tensorlite" / "mnist", fake_files(10, 10))
    assert mnist.cache_dir() == cache and len(MNIST()) == 10
    env = write_files(tmp_path / "data" / "mnist", fake_files(20, 10))
    monkeypatch.setenv("TENSORLITE_DATA", str(tmp_path / "data"))
    assert len(MNIST()) == 20
    root = write_files(tmp_path / "mine", fake_files(30, 10))
    assert len(MNIST(root)) == 30
    assert mnist.search_dirs(root) == [root, env, cache]


def test_cache_defaults_to_dot_cache_in_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mnist.cache_dir() == tmp_path / ".cache" / "tensorlite" / "mnist"


def test_missing_files_list_the_places_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORLITE_DATA", str(tmp_path / "data"))
    write_files(tmp_path / "data" / "mnist", {k: v for k, v in GOOD.items() if "train" in k})  # no test split
    assert len(MNIST()) == 20
    with pytest.raises(MNISTError) as error:
        MNIST(tmp_path / "mine", train=False)
    message = str(error.value)
    for fragment in ("t10k-images-idx3-ubyte[.gz]", str(tmp_path / "mine"), str(tmp_path / "data" / "mnist"),
                     str(mnist.cache_dir()), "download=True", "put the files"):
        assert fragment in message


# -- download (served from memory) ---------------------------------------------------------------------
class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def serve(monkeypatch: pytest.MonkeyPatch, bodies: dict[str, bytes]) -> list[str]:
    """Serve ``bodies`` by URL (other URLs fail as if offline); returns the URLs requested."""
    requested = []

    def fake_urlopen(url: str, timeout: float = 0) -> FakeResponse:
        requested.append(url)
        if url not in bodies:
            raise URLError("connection refused")
        return FakeResponse(bodies[url])

    monkeypatch.setattr(mnist, "urlopen", fake_urlopen)
    return requested


@pytest.fixture
def fake_checksums(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The fake files, with their SHA-256s standing in for MNIST's."""
    files = fake_files(20, 10)
    monkeypatch.setattr(mnist, "FILES", {name: hashlib.sha256(content).hexdigest() for name, content in files.items()})
    return files


def test_download_verifies_and_caches_the_files(monkeypatch: pytest.MonkeyPatch,
                                                fake_checksums: dict[str, bytes]) -> None:
    first, second = mnist.MIRRORS
    # The first mirror is down; the second serves everything.
    requested = serve(monkeypatch, {f"{second}{name}.gz": gzip.compress(c) for name, c in fake_checksums.items()})
    test = MNIST(train=False, download=True)
    cache = mnist.cache_dir()
    assert len(test) == 10 and test.root == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{name}.gz" for name in fake_checksums)  # no temp files
    assert requested == [f"{mirror}{name}.gz" for name in fake_checksums for mirror in (first, second)]
    assert len(MNIST(download=True)) == 20 and len(requested) == 8  # now cached: no more requests


def test_download_rejects_a_checksum_mismatch(monkeypatch: pytest.MonkeyPatch,
                                              fake_checksums: dict[str, bytes]) -> None:
    bodies = {f"{mirror}{name}.gz": gzip.compress(c) for name, c in fake_checksums.items() for mirror in mnist.MIRRORS}
    bodies[f"{mnist.MIRRORS[0]}{IMAGES}.gz"] = gzip.compress(fake_files(21, 10)[IMAGES])  # a different file
    serve(monkeypatch, bodies)
    assert len(MNIST(download=True)) == 20  # the second mirror's copy is the right one
    bodies[f"{mnist.MIRRORS[0]}t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"garbage")
    bodies[f"{mnist.MIRRORS[1]}t10k-labels-idx1-ubyte.gz"] = idx_bytes(np.zeros(10), LABEL_MAGIC)  # not gzip, wrong
    (mnist.cache_dir() / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MNISTError, match="SHA-256 of the decompressed file is") as error:
        MNIST(train=False, download=True)
    assert "could not download t10k-labels-idx1-ubyte.gz" in str(error.value)
    assert "is not an IDX labels file" in str(error.value)  # the first mirror's garbage
    assert not (mnist.cache_dir() / "t10k-labels-idx1-ubyte.gz").exists()


def test_offline_download_says_where_to_put_the_files(tmp_path: Path) -> None:
    with pytest.raises(MNISTError) as error:
        MNIST(tmp_path / "mine", download=True)
    message = str(error.value)
    assert "could not download train-images-idx3-ubyte.gz" in message and "network disabled in tests" in message
    assert "copy the four MNIST files" in message and str(tmp_path / "mine") in message
    assert all(mirror in message for mirror in mnist.MIRRORS)


# -- samples, transforms, tensors ----------------------------------------------------------------------
def test_samples_transform_and_tensor_dataset(tmp_path: Path, device: str) -> None:
    root = write_files(tmp_path / "mnist", fake_files(30, 10))
    plain, normalized = MNIST(root), MNIST(root, transform=NORMALIZE)
    image, label = plain[3]
    assert image.dtype == np.float32 and image.shape == (1, 28, 28) and isinstance(label, int) and label == 3
    np.testing.assert_allclose(image, plain.images[3][None] / 255)
    np.testing.assert_allclose(normalized[3][0], (image - 0.1307) / 0.3081, rtol=1e-6)

    dataset = plain.to_tensor_dataset(device)
    x, y = dataset.tensors
    assert x.shape == (30, 1, 28, 28) and x.dtype == tl.float32 and x.device == tl.device(device)
    assert y.shape == (30,) and y.dtype == tl.int64
    np.testing.assert_allclose(x.numpy(), NORMALIZE(plain.images[:, None] / np.float32(255)), rtol=1e-6)
    raw = plain.to_tensor_dataset(device, normalize=False).tensors[0].numpy()
    np.testing.assert_allclose(raw, plain.images[:, None] / 255, rtol=1e-6)

    images, labels = next(iter(DataLoader(normalized, batch_size=8)))  # per-sample path, collated
    assert images.shape == (8, 1, 28, 28) and labels.tolist() == list(range(8))
    np.testing.assert_allclose(images.numpy(), x.numpy()[:8], rtol=1e-6)


def test_normalize_rejects_a_non_positive_std() -> None:
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0.5, 0.0)


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="the real MNIST files are not in /work/shared/data/mnist")
def test_the_real_files() -> None:
    for name, sha256 in mnist.FILES.items():
        path = mnist.find_file(REAL_MNIST, name)
        with path.open("rb") as file:
            header, array = mnist.parse_idx(file, mnist.file_magic(name), path)
        assert hashlib.sha256(header + array.tobytes()).hexdigest() == sha256, name
    train, test = MNIST(REAL_MNIST), MNIST(REAL_MNIST, train=False)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.labels.shape == (60000,) and test.labels.shape == (10000,)
    assert np.bincount(train.labels).tolist()[:2] == [5923, 6742]
    mean, std = train.images.mean() / 255, train.images.std() / 255
    assert mean == pytest.approx(NORMALIZE.mean, abs=1e-4) and std == pytest.approx(NORMALIZE.std, abs=1e-4)


# -- models --------------------------------------------------------------------------------------------
def torch_mlp(dropout: float) -> Any:
    nn = torch.nn

    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), *drop, nn.Linear(128, 64), nn.ReLU(), *drop,
                         nn.Linear(64, 10))


def torch_cnn(dropout: float) -> Any:
    nn = torch.nn

    drop = [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), *drop, nn.Linear(1600, 128), nn.ReLU(), *drop,
                         nn.Linear(128, 10))


def needs_conv() -> None:
    if not hasattr(tl.nn, "Conv2d") or not hasattr(tl.nn, "MaxPool2d"):
        pytest.skip("tl.nn.Conv2d / MaxPool2d are not available yet")


def assert_matches_torch(model: tl.nn.Module, reference: Any, device: str) -> None:
    """Same state-dict keys and shapes; with the torch weights loaded, the same logits."""
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(tuple(ours[k].shape) == tuple(theirs[k].shape) for k in ours)
    model.load_state_dict({k: tl.tensor(v.numpy()) for k, v in theirs.items()})
    model.to(device).eval()
    reference.eval()
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    logits = model(tl.tensor(x, device=device))
    assert logits.shape == (3, 10)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parity
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_mlp_matches_the_torch_sequential(dropout: float, device: str) -> None:
    assert_matches_torch(models.MNISTMLP(models.MNISTMLPConfig(dropout=dropout)), torch_mlp(dropout), device)


@pytest.mark.parity
@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_cnn_matches_the_torch_sequential(dropout: float, device: str) -> None:
    needs_conv()
    assert_matches_torch(models.MNISTCNN(models.MNISTCNNConfig(dropout=dropout)), torch_cnn(dropout), device)


def test_cnn_trains_a_step() -> None:
    needs_conv()
    model = models.MNISTCNN()
    x, y = tl.randn(4, 1, 28, 28), tl.tensor([0, 1, 2, 3])
    tl.nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.parametrize("make, message", [
    (lambda: models.MNISTMLPConfig(hidden=[]), "hidden sizes"),
    (lambda: models.MNISTMLPConfig(dropout=1.0), "dropout must be in"),
    (lambda: models.MNISTCNNConfig(channels=[32]), "two positive integers"),
    (lambda: models.MNISTCNNConfig(hidden=0), "hidden must be"),
])
def test_configs_validate(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# -- training, the CLI ---------------------------------------------------------------------------------

@pytest.fixture
def fake_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 200-image training set and 50-image test set in $TENSORLITE_DATA/mnist."""
    monkeypatch.setenv("TENSORLITE_DATA", str(tmp_path / "data"))
    return write_files(tmp_path / "data" / "mnist", fake_files(200, 50))


def digit_png(path: Path, digit: int) -> Path:
    """A fake digit as a large RGB PNG, dark on light as one might draw it."""
    from PIL import Image

    image = 255 - np.repeat(np.kron(fake_split(10, 3)[0][digit], np.ones((4, 4), np.uint8))[..., None], 3, axis=2)
    Image.fromarray(image.astype(np.uint8)).save(path)
    return path


def test_train_mnist_mlp_then_eval_and_predict_through_the_cli(fake_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("train", "mnist-mlp", "--epochs", "4", "--batch-size", "20", "--out", out, "--no-progress",
                    "--no-download")
    assert result.exit_code == 0, result.output
    assert (out / CHECKPOINT).exists() and len((out / "log.jsonl").read_text().splitlines()) == 4
    assert "mnist-mlp: test loss" in result.output and "on 50 examples" in result.output
    assert "confusion matrix" in result.output
    metadata = tl.load_metadata(out / CHECKPOINT)
    assert metadata["kind"] == "mnist-mlp" and metadata["recipe"]["epochs"] == 4
    assert metadata["normalize"] == {"mean": 0.1307, "std": 0.3081}

    result = invoke("eval", out)
    assert result.exit_code == 0, result.output
    assert "mnist-mlp: test loss" in result.output and "actual \\ predicted" in result.output
    accuracy = mnist_cli.evaluate_checkpoint(out)["accuracy"]
    assert accuracy >= 0.9  # the fake digits are easy

    pytest.importorskip("PIL")
    images = [digit_png(tmp_path / "three.png", 3), digit_png(tmp_path / "seven.png", 7)]
    result = invoke("predict", out, *images)
    assert result.exit_code == 0, result.output
    assert f"{images[0]} -> 3" in result.output and f"{images[1]} -> 7" in result.output


def test_predict_without_pillow_says_how_to_install_it(fake_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    mnist_cli.train_mnist("mnist-mlp", epochs=1, out=tmp_path / "run", progress=False)
    (tmp_path / "digit.png").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` now raises ImportError
    result = invoke("predict", tmp_path / "run", tmp_path / "digit.png")
    assert result.exit_code == 2 and 'pip install "tensorlite[image]"' in result.output


def test_load_image_inverts_crops_and_centres_like_mnist(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    picture = np.full((90, 120, 3), 230, np.uint8)  # light grey background
    picture[10:50, 80:100] = 20  # a dark 40x20 stroke, far off centre
    Image.fromarray(picture).save(tmp_path / "stroke.png")
    pixels = mnist_cli.load_image(tmp_path / "stroke.png")
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32
    assert pixels.max() == pytest.approx(1) and pixels.min() == 0
    rows, cols = np.nonzero(pixels > 0.5)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 10  # fits in 20x20
    centre = (np.arange(28) @ pixels.sum(axis=1) / pixels.sum(), np.arange(28) @ pixels.sum(axis=0) / pixels.sum())
    assert centre == pytest.approx((13.5, 13.5), abs=0.6)


def test_predict_image_errors(fake_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    mnist_cli.train_mnist("mnist-mlp", epochs=1, out=tmp_path / "run", progress=False)
    (tmp_path / "notes.txt").write_text("not an image")
    for args, fragment in ([[tmp_path / "notes.txt"], "cannot read the image"],
                           [[tmp_path / "missing.png"], "cannot read the image"],
                           [[], "classifies image files"]):
        result = invoke("predict", tmp_path / "run", *args)
        assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output


def test_resume_continues_the_same_schedule_bit_for_bit(fake_data: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def train(out: Path, **kwargs: Any) -> Any:
        return mnist_cli.train_mnist("mnist-mlp", epochs=3, batch_size=50, out=out, progress=False, **kwargs)

    train(tmp_path / "a")
    original, calls = optim.AdamW.step, itertools.count(1)

    def step(self: Any) -> Any:  # Ctrl-C inside epoch 2 (4 steps per epoch)
        if next(calls) == 6:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(optim.AdamW, "step", step)
    trainer, _ = train(tmp_path / "b")
    assert trainer.state.epoch == 1 and trainer.scheduler.last_epoch == 4
    monkeypatch.setattr(optim.AdamW, "step", original)
    trainer, _ = train(tmp_path / "b", resume=True)
    assert trainer.scheduler.last_epoch == 12
    a, b = tl.load(tmp_path / "a" / CHECKPOINT), tl.load(tmp_path / "b" / CHECKPOINT)
    for key, value in a["model"].items():
        np.testing.assert_array_equal(value.numpy(), b["model"][key].numpy())


@pytest.mark.parametrize("args, fragments", [
    (["--resume"], ["--resume", "no checkpoint to resume from"]),
    (["--epochs", "0"], ["--epochs must be between 1 and 10,000,000, got 0"]),
    (["--lr", "-1"], ["--lr must be a positive number, got -1.0"]),
])
def test_train_errors(tmp_path: Path, fake_data: Path, args: list[str], fragments: list[str]) -> None:
    result = invoke("train", "mnist-mlp", *args, "--out", tmp_path / "run", "--no-progress")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert all(fragment in result.output for fragment in fragments), result.output
    assert not (tmp_path / "run").exists()


def test_train_without_data_and_without_download_lists_the_places_searched(tmp_path: Path) -> None:
    result = invoke("train", "mnist-cnn", "--no-download", "--data-dir", tmp_path / "nowhere", "--out",
                    tmp_path / "run", "--no-progress")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    for fragment in ("not found in", "nowhere", "xdg-cache", "--download"):
        assert fragment in result.output
    assert not (tmp_path / "run").exists()


def test_resume_with_another_schedule_or_model_is_refused(fake_data: Path, tmp_path: Path) -> None:
    mnist_cli.train_mnist("mnist-mlp", epochs=1, out=tmp_path / "run", progress=False)
    with pytest.raises(mnist_cli.UsageError, match="--epochs 1 --batch-size 128 --lr 0.005"):
        mnist_cli.train_mnist("mnist-mlp", epochs=2, out=tmp_path / "run", resume=True, progress=False)
    with pytest.raises(mnist_cli.UsageError, match="holds a 'mnist-mlp' checkpoint, not mnist-cnn"):
        mnist_cli.train_mnist("mnist-cnn", out=tmp_path / "run", resume=True, progress=False)
    trainer, _ = mnist_cli.train_mnist("mnist-mlp", out=tmp_path / "run", resume=True, progress=False)
    assert trainer.state.epoch == 1  # the recipe comes from the checkpoint: already finished

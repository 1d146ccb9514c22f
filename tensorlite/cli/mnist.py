"""MNIST: what ``tensorlite train mnist-mlp|mnist-cnn``, ``eval`` and ``predict`` do for it, callable from Python.

Training follows one recipe per model: inputs normalised with the training set's mean and std,
AdamW with decoupled weight decay, and a one-cycle learning rate (warm up to ``lr``, then anneal)
stepped after every batch. The test set is evaluated after each epoch and at the end.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

import tensorlite as tl
from tensorlite import nn, optim
from tensorlite.cli import options
from tensorlite.cli.options import UsageError
from tensorlite.cli.presets import MNIST_RECIPES, Recipe
from tensorlite.datasets.mnist import MNIST, NORMALIZE, SIZE, MNISTError
from tensorlite.datasets.transforms import Normalize
from tensorlite.training import Trainer, argmax_accuracy, confusion_matrix, parallel, run_dir
from tensorlite.training.run_dir import MNIST_MODELS
from tensorlite.utils.data import DataLoader, TensorDataset


def _recipe(kind: str, out_dir: Path, saved: dict | None, **chosen: Any) -> Recipe:
    """The model's recipe (the ``saved`` checkpoint metadata's when resuming) with the options given on top of it."""
    if saved is not None:
        recipe = run_dir.read_metadata(out_dir / run_dir.CHECKPOINT, Recipe, saved["recipe"], "metadata.recipe")
    else:
        recipe = MNIST_RECIPES[kind]
    updated = replace(recipe, **{key: value for key, value in chosen.items() if value is not None})
    if saved is not None and updated != recipe:
        raise UsageError(f"--resume: the run in {out_dir} trains with --epochs {recipe.epochs} --batch-size "
                         f"{recipe.batch_size} --lr {recipe.lr}; its one-cycle schedule cannot change midway")
    options.check_range("epochs", updated.epochs)
    options.check_range("batch_size", updated.batch_size)
    options.check_positive("--lr", updated.lr)
    return updated


def train_mnist(kind: str, *, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                data_dir: str | Path | None = None, device: str | None = None, out: str | Path | None = None,
                seed: int = 0, resume: bool = False, overwrite: bool = False, progress: bool = True,
                download: bool = False) -> tuple[Trainer, dict]:
    """Train ``kind`` ("mnist-mlp" or "mnist-cnn") with its recipe (``MNIST_RECIPES``, overridden by the
    arguments given) in ``out`` (``overwrite``: even if it holds another kind of run); returns the trainer
    and the test metrics of ``evaluate``."""
    options.check_choice("kind", "MNIST model", kind, MNIST_MODELS)
    options.check_range("seed", seed)
    target = options.parse_device(device)
    run = options.out_dir(out, Path("runs") / kind)
    saved = options.check_out_dir(run, kind, resume, overwrite)
    recipe = _recipe(kind, run, saved, epochs=epochs, batch_size=batch_size, lr=lr)
    try:
        train_set = MNIST(data_dir, train=True, download=download)
        test_set = MNIST(data_dir, train=False, download=download)
    except MNISTError as exc:  # the library says download=True; the command line says --download
        raise MNISTError(str(exc).replace("download=True", "--download")) from None
    options.make_out_dir(run)

    tl.manual_seed(seed)
    model_class, config_class = MNIST_MODELS[kind]
    config = config_class(dropout=recipe.dropout)
    model = model_class(config).to(target)
    optimizer = optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, epochs=recipe.epochs,
                                              steps_per_epoch=_steps_per_epoch(len(train_set), recipe.batch_size))
    metadata = {"kind": kind, "model_config": config.to_dict(), "recipe": asdict(recipe), "seed": seed,
                "normalize": asdict(NORMALIZE), "classes": list(MNIST.classes)}
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer, accuracy_fn=argmax_accuracy, scheduler=scheduler,
                      scheduler_step="batch", batch_size=recipe.batch_size, seed=seed, out_dir=run,
                      metadata=metadata, progress=progress)
    test_data = test_set.to_tensor_dataset(target)
    trainer.fit(train_set.to_tensor_dataset(target), test_data, epochs=recipe.epochs, resume=resume,
                overwrite=overwrite)
    return trainer, evaluate(model, test_data, kind)


def _steps_per_epoch(samples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: on each of N data-parallel ranks, batches over its share of the samples."""
    return math.ceil(math.ceil(samples / parallel.world_size()) / batch_size)


def evaluate(model: nn.Module, dataset: TensorDataset, name: str, batch_size: int = 1000) -> dict:
    """Mean cross-entropy, accuracy and the (10, 10) confusion matrix of ``model`` on normalised images."""
    model.eval()
    total_loss, predicted = 0.0, []
    with tl.no_grad():
        for images, labels in DataLoader(dataset, batch_size=batch_size):
            logits = model(images)
            total_loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            predicted.append(logits.argmax(dim=1).numpy())
    actual, predicted = dataset.tensors[1].numpy(), np.concatenate(predicted)
    return {"task": name, "n": len(actual), "loss": total_loss / len(actual),
            "accuracy": float((predicted == actual).mean()), "classes": list(MNIST.classes),
            "confusion": confusion_matrix(actual, predicted, len(MNIST.classes))}


def load_checkpoint(path: str | Path, device: str | None = None) -> tuple[nn.Module, dict]:
    """The model (in eval mode, on ``device``) and metadata of a checkpoint written by ``train_mnist``."""
    return run_dir.load_model(path, options.parse_device(device), kinds=MNIST_MODELS)


def evaluate_checkpoint(path: str | Path, device: str | None = None, data_dir: str | Path | None = None,
                        download: bool = False) -> dict:
    """``evaluate`` a checkpoint on MNIST's test set."""
    model, metadata = load_checkpoint(path, device)
    test_set = MNIST(data_dir, train=False, download=download)
    return evaluate(model, test_set.to_tensor_dataset(next(model.parameters()).device), metadata["kind"])


def load_image(path: str | Path) -> np.ndarray:
    """A picture of a digit (PNG, JPEG...; grey or colour) as MNIST draws one: float32 (28, 28) in [0, 1].

    A light background is inverted to MNIST's white-on-black and the contrast stretched to [0, 1];
    the digit's bounding box is scaled to fit 20 x 20 pixels and centred by its centre of mass, as the
    MNIST images were made.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UsageError('predict: reading images needs Pillow: pip install "tensorlite[image]"') from None
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"predict: cannot read the image {path}: {exc}") from None
    if pixels.mean() > 0.5:  # a dark digit on a light background
        pixels = 1 - pixels
    pixels = (pixels - pixels.min()) / max(pixels.max() - pixels.min(), 1e-6)
    rows, cols = np.nonzero(pixels > 0.1)
    if len(rows):
        pixels = pixels[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = 20 / max(pixels.shape)
    height, width = (max(1, round(n * scale)) for n in pixels.shape)
    digit = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))
    mass = digit.sum() or 1.0
    centre_y = (digit.sum(axis=1) @ np.arange(height)) / mass
    centre_x = (digit.sum(axis=0) @ np.arange(width)) / mass
    top = min(max(round(SIZE / 2 - 0.5 - centre_y), 0), SIZE - height)
    left = min(max(round(SIZE / 2 - 0.5 - centre_x), 0), SIZE - width)
    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    canvas[top:top + height, left:left + width] = np.clip(digit, 0, 1)
    return canvas


def predict_images(path: str | Path, images: list[str | Path], device: str | None = None) -> np.ndarray:
    """Class probabilities (len(images), 10) of an MNIST checkpoint for image files."""
    model, metadata = load_checkpoint(path, device)
    pixels = np.stack([load_image(image) for image in images])[:, None]  # (N, 1, 28, 28)
    with tl.no_grad():
        logits = model(tl.tensor(Normalize(**metadata["normalize"])(pixels), device=next(model.parameters()).device))
    return nn.functional.softmax(logits, dim=1).numpy()

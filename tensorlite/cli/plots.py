"""PNG plots with matplotlib (an optional extra): loss curves and 2-D decision boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import tensorlite as tl
from tensorlite.cli import small_tasks
from tensorlite.cli.options import UsageError
from tensorlite.datasets import Normalizer
from tensorlite.training import read_log


class PlotError(UsageError):
    """Plotting what was asked for is not possible (matplotlib missing, no log, a model that is not 2-D)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotError('plotting needs matplotlib: pip install "tensorlite[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Loss (and accuracy, if logged) per epoch (or per evaluation, for a language model) from the run
    directory's log."""
    records = read_log(run_dir)
    if not records:
        raise PlotError(f"the training log in {run_dir} is empty")
    plt = _pyplot()
    has_accuracy = "train_accuracy" in records[0]
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(11 if has_accuracy else 6, 4), squeeze=False)
    step = "epoch" if "epoch" in records[0] else "iter"  # the language models log per evaluation
    steps = [r.get(step) for r in records]
    for ax, metric in zip(axes[0], ["loss", "accuracy"]):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if key in records[0]:
                ax.plot(steps, [r.get(key) for r in records], label=split)
        ax.set_xlabel("iteration" if step == "iter" else "epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0][0].set_yscale("log")
    fig.suptitle(f"training run {Path(run_dir).name}")
    out = Path(out) if out is not None else Path(run_dir) / "loss.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_boundary(checkpoint: str | Path, out: str | Path | None = None, resolution: int = 200) -> Path:
    """Model output over a grid covering the training points, the 0.5 contour, and the points."""
    model, meta = small_tasks.load_task_checkpoint(checkpoint)
    if meta["model_config"]["sizes"][0] != 2:
        raise PlotError(f"plot boundary: the {meta['task']} model takes {meta['model_config']['sizes'][0]} "
                        "inputs; decision boundaries are drawn for 2-input models only")
    x, y = small_tasks.get_task(meta["task"]).splits(meta["seed"])["train"]
    normalizer = Normalizer(**meta["normalizer"])
    margin = 0.25 * (x.max(axis=0) - x.min(axis=0)) + 0.1
    lo, hi = x.min(axis=0) - margin, x.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    with tl.no_grad():
        value = small_tasks.output_score(meta["loss"], model(tl.tensor(normalizer(grid)))).numpy()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    mesh = ax.contourf(gx, gy, value.reshape(gx.shape), levels=20, cmap="RdBu_r", alpha=0.8)
    if meta.get("classes"):
        ax.contour(gx, gy, value.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(mesh, ax=ax, label="output" if not meta.get("classes") else "P(class 1)")
    colors = y if meta.get("classes") else y.reshape(-1)
    ax.scatter(x[:, 0], x[:, 1], c=colors, cmap="RdBu_r", edgecolors="k", s=40 if len(x) < 50 else 12)
    ax.set_title(f"{meta['task']}: decision boundary")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    path = Path(checkpoint)
    out = Path(out) if out is not None else (path if path.is_dir() else path.parent) / "boundary.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out

"""The ``tensorlite`` command line (typer). ``tensorlite --help`` lists the commands."""

from __future__ import annotations

import platform
from pathlib import Path

import typer

app = typer.Typer(help="tensorlite: train, evaluate and inspect models on NumPy or CuPy.", no_args_is_help=True)


def _blas_info() -> str:
    """Which BLAS NumPy calls into (threadpoolctl when available, else NumPy's build config)."""
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
        if libs:
            return ", ".join(libs)
    except ImportError:
        pass
    import numpy

    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy has no mode="dicts"; the BLAS name is then unknown
        return "unknown"


@app.command()
def info() -> None:
    """Versions, the BLAS NumPy uses, which backends are available (and why not), the default device."""
    import os

    import numpy

    import tensorlite
    from tensorlite.backends.cupy_backend import cuda_status

    cuda_ok, cuda_reason = cuda_status()
    try:
        default = str(tensorlite.default_device())
    except RuntimeError as exc:
        default = f"unavailable ({exc})"
    rows = [
        ("tensorlite", tensorlite.__version__),
        ("python", platform.python_version()),
        ("numpy", numpy.__version__),
        ("blas", _blas_info()),
        ("backend numpy (cpu)", "available"),
        ("backend cupy (cuda)", ("available: " if cuda_ok else "unavailable: ") + f"cupy {cuda_reason}"),
        ("TENSORLITE_DEVICE", os.environ.get("TENSORLITE_DEVICE", "(not set: auto)")),
        ("default device", default),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@app.callback()
def main() -> None:
    """tensorlite: train, evaluate and inspect models on NumPy or CuPy."""


# -- the small tasks: train, eval, predict, plot ------------------------------------------------------
def _fail(message: str) -> None:
    """Print a user error without a traceback and exit with status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    line = f"{result['task']}: test loss {result['loss']:.4f}"
    if "accuracy" in result:
        line += f", accuracy {result['accuracy']:.2%}"
    console.print(line + f" on {result['n']} examples")
    if "confusion" in result:
        table = Table(title="confusion matrix", caption="rows: actual, columns: predicted")
        table.add_column("actual \\ predicted")
        for name in result["classes"]:
            table.add_column(name, justify="right")
        for name, row in zip(result["classes"], result["confusion"]):
            table.add_row(name, *(str(int(v)) for v in row))
        console.print(table)


train_app = typer.Typer(help="Train a model; `tensorlite train MODEL --help` lists its options.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

SMALL_TASKS = {
    "xor": "XOR with the tutorials' 2-3-1 sigmoid network, MSE and SGD.",
    "and": "The AND gate (2-3-1 sigmoid, MSE, SGD).",
    "or": "The OR gate (2-3-1 sigmoid, MSE, SGD).",
    "nand": "The NAND gate (2-3-1 sigmoid, MSE, SGD).",
    "addition": "A perceptron that learns to add two numbers in [0, 0.5).",
    "circles": "Points inside or outside a circle (2-16-16-1 tanh, BCE, Adam).",
    "iris": "Fisher's Iris (4-32-3 ReLU, cross-entropy, Adam), 30-row stratified hold-out.",
}


def _small_task_command(name: str):
    """The ``tensorlite train NAME`` command of one small task (all share these options)."""

    def command(
        hidden: str = typer.Option(None, help="hidden layer sizes, e.g. 3 or 16,16; 'none' for a perceptron"),
        activation: str = typer.Option(None, help="sigmoid, relu, tanh, gelu or leaky_relu"),
        loss: str = typer.Option(None, help="mse, bce or ce"),
        optimizer: str = typer.Option(None, help="sgd or adam"),
        lr: float = typer.Option(None, help="learning rate"),
        epochs: int = typer.Option(None, help="epochs to train (counting those done before --resume)"),
        batch_size: int = typer.Option(None, help="examples per step"),
        seed: int = typer.Option(0, help="seed for weights, data splits and shuffling"),
        device: str = typer.Option(None, help="cpu, cuda, cuda:N or auto (default: $TENSORLITE_DEVICE or auto)"),
        out: Path = typer.Option(None, help=f"run directory for the checkpoint and log (default: runs/{name})"),
        resume: bool = typer.Option(False, help="continue from the checkpoint in --out"),
        patience: int = typer.Option(None, help="stop after this many epochs without val-loss improvement"),
        progress: bool = typer.Option(True, help="show a progress bar"),
    ) -> None:
        from tensorlite import commands

        try:
            trainer, _ = commands.train_task(
                name, hidden=hidden, activation=activation, loss=loss, optimizer=optimizer, lr=lr, epochs=epochs,
                batch_size=batch_size, seed=seed, device=device, out=out, resume=resume, patience=patience,
                progress=progress)
        except (commands.UsageError, ValueError, RuntimeError) as exc:
            _fail(str(exc))
        typer.echo(f"checkpoint: {trainer.out_dir / 'checkpoint.safetensors'}")
        _print_result(commands.evaluate_checkpoint(trainer.out_dir, device))

    command.__doc__ = SMALL_TASKS[name] + " Saves a checkpoint and log in --out and prints test metrics."
    return command


for _name in SMALL_TASKS:
    train_app.command(_name)(_small_task_command(_name))


@app.command("eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="a checkpoint file or run directory"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:N or auto"),
) -> None:
    """Test loss, accuracy and (for classifiers) the confusion matrix of a checkpoint."""
    from tensorlite import commands

    try:
        _print_result(commands.evaluate_checkpoint(checkpoint, device))
    except (commands.UsageError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="a checkpoint file or run directory"),
    inputs: list[float] = typer.Argument(None, help="one input row, e.g. 0 1"),
    csv: Path = typer.Option(None, help="a CSV file of input rows (no header) instead"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:N or auto"),
) -> None:
    """Predict for one row given on the command line, or for each row of a CSV file."""
    import numpy as np

    from tensorlite import commands

    try:
        if csv is not None:
            if not csv.exists():
                raise commands.UsageError(f"no such CSV file: {csv}")
            rows = np.loadtxt(csv, delimiter=",", ndmin=2, dtype=np.float32)
        elif inputs:
            rows = np.array([inputs], dtype=np.float32)
        else:
            raise commands.UsageError("give an input row (e.g. `tensorlite predict CKPT 0 1`) or --csv FILE")
        outputs, meta = commands.predict(checkpoint, rows, device)
    except (commands.UsageError, ValueError) as exc:
        _fail(str(exc))
    classes = meta.get("classes")
    for row, out in zip(rows, outputs):
        shown = ", ".join(f"{v:g}" for v in row)
        if classes and meta["loss"] == "ce":
            typer.echo(f"[{shown}] -> {classes[int(out.argmax())]}  (logits {np.round(out, 3).tolist()})")
        elif classes:
            probability = float(out[0]) if meta["loss"] == "mse" else float(1 / (1 + np.exp(-out[0])))
            typer.echo(f"[{shown}] -> {classes[int(probability > 0.5)]}  (p={probability:.3f})")
        else:
            typer.echo(f"[{shown}] -> {float(out[0]):.4f}")


plot_app = typer.Typer(help="Plots to PNG (needs matplotlib: pip install \"tensorlite[plot]\").",
                       no_args_is_help=True)
app.add_typer(plot_app, name="plot")


@plot_app.command("loss")
def plot_loss(
    run_dir: Path = typer.Argument(..., help="a run directory holding log.jsonl"),
    out: Path = typer.Option(None, help="PNG to write (default: RUN_DIR/loss.png)"),
) -> None:
    """Training and validation loss (and accuracy) per epoch."""
    from tensorlite import plots

    try:
        path = plots.plot_loss(run_dir, out)
    except (plots.PlotError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {path}")


@plot_app.command("boundary")
def plot_boundary(
    checkpoint: Path = typer.Argument(..., help="a checkpoint of a 2-input model (gates, circles, addition)"),
    out: Path = typer.Option(None, help="PNG to write (default: boundary.png beside the checkpoint)"),
) -> None:
    """The decision boundary of a 2-D model over its training points."""
    from tensorlite import commands, plots

    try:
        path = plots.plot_boundary(checkpoint, out)
    except (plots.PlotError, commands.UsageError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {path}")

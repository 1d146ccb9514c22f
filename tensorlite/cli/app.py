"""The ``tensorlite`` command line (typer). ``tensorlite --help`` lists the commands.

Each command hands its options to a family module (``small_tasks``, ``mnist``, ``char_lm``, ``plots``),
imported when the command runs so that ``--help`` stays fast. Every error that escapes a command ends in
``TensorliteApp.main``: one line on stderr and the exit status ``errors`` assigns (2 for bad input, 1 for a
failed run). Help texts are rich markup: a literal ``[`` is ``\\[``.
"""

from __future__ import annotations

import inspect
import platform
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from tensorlite.cli import errors
from tensorlite.cli.options import UsageError, check_range

CSV_MAX_BYTES = 100 * 2**20  # predict --csv: 100 MiB, millions of rows


class TensorliteApp(TyperGroup):
    """The ``tensorlite`` command: runs a command with typer's error handling off, so that every error, typer's
    usage errors included, is reported once, by ``errors.report``."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> None:
        settings = {"debug": False}  # set by the --debug option (``main`` below)
        try:
            status = super().main(args, prog_name, complete_var, standalone_mode=False, obj=settings, **extra)
        except (Exception, KeyboardInterrupt) as error:
            status = errors.report(error, settings["debug"])
            errors.end_other_ranks(status)
        sys.exit(status or 0)


app = typer.Typer(cls=TensorliteApp, help="tensorlite: train, evaluate and inspect models on NumPy or CuPy.",
                  no_args_is_help=True, rich_markup_mode="rich")


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


def _cuda_rows(cuda_ok: bool) -> list[tuple[str, str]]:
    """Each GPU's name and its CuPy memory pool (used, held, peak), where CUDA is usable."""
    if not cuda_ok:
        return []
    from tensorlite import cuda

    return [(f"cuda:{i}", f"{cuda.get_device_name(i)}; memory pool {cuda.memory_summary_line(i)}")
            for i in range(cuda.device_count())]


@app.command()
def info() -> None:
    """Versions, the BLAS NumPy uses, which backends are available (and why not), the default device."""
    import os

    import numpy

    import tensorlite
    from tensorlite.backends.cupy_backend import cuda_status
    from tensorlite.backends.numpy_backend import compiled_kernels_status

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
        ("cpu kernels", compiled_kernels_status()),
        ("backend cupy (cuda)", ("available: " if cuda_ok else "unavailable: ") + f"cupy {cuda_reason}"),
        *_cuda_rows(cuda_ok),
        ("TENSORLITE_DEVICE", os.environ.get("TENSORLITE_DEVICE", "(not set: auto)")),
        ("default device", default),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@app.callback()
def main(ctx: typer.Context,
         debug: bool = typer.Option(False, "--debug", envvar="TENSORLITE_DEBUG",
                                    help="print the traceback of an error instead of one line")) -> None:
    """tensorlite: train, evaluate and inspect models on NumPy or CuPy."""
    ctx.obj["debug"] = debug


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


def _train_and_report(train: Callable[[], tuple[Any, dict]]) -> None:
    """Run ``train`` (-> the trainer and its test metrics), then say where the checkpoint is and print the metrics
    (rank 0 alone, when several processes train)."""
    from tensorlite.training import CHECKPOINT, parallel

    trainer, result = train()
    if not parallel.is_main():
        return
    typer.echo(f"checkpoint: {trainer.out_dir / CHECKPOINT}")
    _print_result(result)


# Options every train command has, written once.
_DEVICE = typer.Option(None, help="cpu, cuda, cuda:N or auto (default: $TENSORLITE_DEVICE or auto)")
_RESUME = typer.Option(False, help="continue from the checkpoint in --out")
_OVERWRITE = typer.Option(False, help="train in --out even if it holds another kind of run, removing that run's "
                                      "checkpoints and log first")
_PROGRESS = typer.Option(True, help="show a progress bar")


def _out_option(default: str) -> Any:
    return typer.Option(None, help=f"run directory for the checkpoint and log (default: runs/{default})")


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
        device: str = _DEVICE,
        out: str = _out_option(name),
        resume: bool = _RESUME,
        overwrite: bool = _OVERWRITE,
        patience: int = typer.Option(None, help="stop after this many epochs without val-loss improvement"),
        progress: bool = _PROGRESS,
    ) -> None:
        from tensorlite.cli import launch, small_tasks
        from tensorlite.training import parallel

        def train_and_evaluate() -> tuple[Any, dict | None]:
            trainer, _ = small_tasks.train_task(
                name, hidden=hidden, activation=activation, loss=loss, optimizer=optimizer, lr=lr, epochs=epochs,
                batch_size=batch_size, seed=seed, device=rank_device, out=out, resume=resume, overwrite=overwrite,
                patience=patience, progress=progress)
            if not parallel.is_main():
                return trainer, None
            return trainer, small_tasks.evaluate_checkpoint(trainer.out_dir, rank_device)  # with the confusion matrix

        rank_device = launch.join_ranks(device)

        _train_and_report(train_and_evaluate)

    command.__doc__ = SMALL_TASKS[name] + " Saves a checkpoint and log in --out and prints test metrics."
    return command


for _name in SMALL_TASKS:
    train_app.command(_name)(_small_task_command(_name))

MNIST_MODELS = {
    "mnist-mlp": "MNIST digits with a 784-128-64-10 ReLU MLP.",
    "mnist-cnn": "MNIST digits with a CNN: two 3x3 convolutions (32, 64 channels) with max-pooling, then Linear 128.",
}


def _mnist_command(kind: str):
    """The ``tensorlite train mnist-...`` command of one MNIST model."""
    from tensorlite.cli.presets import MNIST_RECIPES

    recipe = MNIST_RECIPES[kind]

    def command(
        epochs: int = typer.Option(None, help=f"epochs to train [default: {recipe.epochs}]"),
        batch_size: int = typer.Option(None, help=f"images per step [default: {recipe.batch_size}]"),
        lr: float = typer.Option(None, help=f"peak learning rate of the one-cycle schedule [default: {recipe.lr:g}]"),
        data_dir: Path = typer.Option(None, help="directory holding the MNIST files (default: $TENSORLITE_DATA/mnist, "
                                                 "then ~/.cache/tensorlite/mnist)"),
        download: bool = typer.Option(True, help="download missing MNIST files (checksummed) into --data-dir or "
                                                 "the cache"),
        seed: int = typer.Option(0, help="seed for weights, shuffling and dropout"),
        device: str = _DEVICE,
        out: str = _out_option(kind),
        resume: bool = _RESUME,
        overwrite: bool = _OVERWRITE,
        progress: bool = _PROGRESS,
    ) -> None:
        from tensorlite.cli import launch, mnist

        rank_device = launch.join_ranks(device)
        _train_and_report(lambda: mnist.train_mnist(
            kind, epochs=epochs, batch_size=batch_size, lr=lr, data_dir=data_dir, device=rank_device, out=out,
            seed=seed, resume=resume, overwrite=overwrite, progress=progress, download=download))

    command.__doc__ = (MNIST_MODELS[kind] + " Normalised inputs, AdamW and a one-cycle learning rate; the test set "
                       "is evaluated after every epoch. Saves a checkpoint and log in --out and prints test metrics.")
    return command


for _name in MNIST_MODELS:
    train_app.command(_name)(_mnist_command(_name))


# -- character language models: train shakespeare, train char-lstm, sample --------------------------------
# Options by parameter name: (type, typer.Option). Unset (None), they take the preset's (or the LSTM's) value.
CHAR_LM_OPTIONS = {
    "block_size": (int, typer.Option(None, help="characters of context per training window")),
    "batch_size": (int, typer.Option(None, help="windows per step")),
    "max_iters": (int, typer.Option(None, help="training iterations (counting those done before --resume)")),
    "lr": (float, typer.Option(None, help="peak learning rate (warmup, then cosine decay to a tenth of it)")),
    "warmup_iters": (int, typer.Option(None, help="iterations of linear warmup (default: 100, at most a tenth of "
                                                  "--max-iters)")),
    "dropout": (float, typer.Option(None, help="dropout probability while training")),
    "eval_interval": (int, typer.Option(None, help="estimate train/val loss, log and checkpoint every this many "
                                                   "iterations")),
    "eval_iters": (int, typer.Option(None, help="batches per split for each loss estimate (default: 200)")),
    "data": (Path, typer.Option(None, help="train on this UTF-8 text file instead of Tiny Shakespeare")),
    "seed": (int, typer.Option(1337, help="seed for weights, batches and dropout")),
    "device": (str, _DEVICE),
    "resume": (bool, _RESUME),
    "overwrite": (bool, _OVERWRITE),
    "progress": (bool, _PROGRESS),
}
GPT_OPTIONS = {
    "preset": (str, typer.Option("cpu", help="cpu: nanoGPT's CPU model size (4 layers, 128 wide) trained with "
                                             "tensorlite's recipe (rotary positions, an untied head, Muon; 900 "
                                             "iterations, in nanoGPT's time for its 2000); "
                                             "nanogpt-cpu: nanoGPT's CPU run exactly; nanogpt-gpu (and, for now, "
                                             "gpu): its GPU run (6 layers, 384 wide, block 256, dropout 0.2, 5000 "
                                             "iterations)")),
    "n_layer": (int, typer.Option(None, help="transformer blocks")),
    "n_head": (int, typer.Option(None, help="attention heads (must divide --n-embd)")),
    "n_embd": (int, typer.Option(None, help="embedding width")),
    "optimizer": (str, typer.Option(None, help="adamw: AdamW on every parameter (nanoGPT's); muon: Muon on the "
                                               "transformer blocks' matrices, AdamW on the rest (default: the "
                                               "preset's; --resume keeps the run's)")),
    "muon_lr": (float, typer.Option(None, help="Muon's peak learning rate, on --lr's schedule (default: 0.02)")),
    "out": (str, _out_option("shakespeare")),
}
LSTM_OPTIONS = {
    "n_embd": (int, typer.Option(None, help="character embedding width (default: 64)")),
    "hidden_size": (int, typer.Option(None, help="LSTM hidden units per layer (default: 256)")),
    "num_layers": (int, typer.Option(None, help="stacked LSTM layers (default: 2)")),
    "out": (str, _out_option("char-lstm")),
}


def _with_options(function: Callable[..., None], options: dict[str, tuple[type, Any]]) -> Callable[..., None]:
    """``function(**values)`` with a signature that declares ``options`` to typer, in the table's order."""
    function.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        for name, (annotation, option) in options.items()])
    return function


def _char_lm_command(model_type: str, model_options: dict[str, tuple[type, Any]], doc: str) -> Callable[..., None]:
    """The ``tensorlite train`` command of one character model: train, then print the final val loss and a sample."""

    def command(**options: Any) -> None:
        import tensorlite as tl
        from tensorlite.cli import char_lm, launch
        from tensorlite.training import BEST, CHECKPOINT, parallel

        options["learning_rate"] = options.pop("lr")
        options["device"] = launch.join_ranks(options["device"])
        trainer, tokenizer = char_lm.train_char_lm(model_type, **options)
        if trainer.interrupted or not parallel.is_main():
            return
        final = trainer.history[-1]
        best = trainer.out_dir / BEST
        typer.echo(f"checkpoints: {trainer.out_dir / CHECKPOINT} (latest)"
                   + (f", {best} (best val loss {trainer.best_val_loss:.4f})" if best.exists() else ""))
        typer.echo(f"final val loss {final['val_loss']:.4f} (train {final['train_loss']:.4f}) at iteration "
                   f"{final['iter']}, over {trainer.config.eval_iters} batches per split")
        typer.echo("sample:")
        tl.manual_seed(trainer.config.seed)
        prompt = char_lm.default_prompt(tokenizer)
        _stream(prompt, char_lm.sample_chars(trainer.model.eval(), tokenizer, prompt, 500))

    command.__doc__ = doc + ("\n\nLogs train/val loss to --out/log.jsonl, keeps the latest and the best checkpoint, "
                             "and prints the final val loss and a sample.")
    return _with_options(command, {**model_options, **CHAR_LM_OPTIONS})


train_app.command("shakespeare")(_char_lm_command(
    "gpt", GPT_OPTIONS, "A character-level GPT on Tiny Shakespeare (nanoGPT's shakespeare_char), or on --data FILE. "
    "Options given override the preset."))
train_app.command("char-lstm")(_char_lm_command(
    "lstm", LSTM_OPTIONS, "A character-level LSTM on Tiny Shakespeare, or on --data FILE."))


def _stream(prompt: str, chars: Iterator[str]) -> None:
    """Write the prompt, then each character as soon as it is sampled."""
    sys.stdout.write(prompt)
    for char in chars:
        sys.stdout.write(char)
        sys.stdout.flush()
    sys.stdout.write("\n")


@app.command()
def sample(
    checkpoint: Path = typer.Argument(..., help="a character-model checkpoint, or a run directory (its best one)"),
    prompt: str = typer.Option(None, help="text to continue, e.g. \"ROMEO:\" (default: a newline)"),
    max_new_tokens: int = typer.Option(500, help="characters to generate"),
    temperature: float = typer.Option(0.8, help="below 1: safer choices; above 1: more surprising ones"),
    top_k: int = typer.Option(40, help="sample among the k likeliest characters only; 0: among all"),
    seed: int = typer.Option(1337, help="seed for sampling"),
    device: str = _DEVICE,
    cache: bool = typer.Option(True, help="reuse the model's keys/values (GPT) or hidden state (LSTM) from step to "
                                          "step; --no-cache recomputes the whole context for every character"),
) -> None:
    """Stream text from a character language model (`tensorlite train shakespeare` or `char-lstm`)."""
    import tensorlite as tl
    from tensorlite.cli import char_lm

    model, tokenizer, _ = char_lm.load_char_lm(checkpoint, device)
    prompt = char_lm.default_prompt(tokenizer) if prompt is None else prompt
    chars = char_lm.sample_chars(model, tokenizer, prompt, max_new_tokens, temperature, top_k, cache)
    check_range("seed", seed)
    tl.manual_seed(seed)
    _stream(prompt, chars)


@app.command("eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="a checkpoint file or run directory"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:N or auto"),
    data_dir: Path = typer.Option(None, help="MNIST models: the directory holding the MNIST files"),
) -> None:
    """Test loss, accuracy and (for classifiers) the confusion matrix of a checkpoint."""
    import tensorlite as tl
    from tensorlite.cli import mnist, small_tasks
    from tensorlite.training import run_dir

    evaluators = {small_tasks.TASK_KIND: lambda: small_tasks.evaluate_checkpoint(checkpoint, device),
                  **{kind: lambda: mnist.evaluate_checkpoint(checkpoint, device, data_dir)
                     for kind in run_dir.MNIST_MODELS}}
    path = run_dir.resolve_checkpoint(checkpoint)
    result = evaluators[run_dir.check_kind(path, tl.load_metadata(path), evaluators)]()
    _print_result(result)


@app.command()
def predict(
    checkpoint: Path = typer.Argument(..., help="a checkpoint file or run directory"),
    inputs: list[str] = typer.Argument(None, help="one input row, e.g. 0 1; for an MNIST model, image files"),
    csv: Path = typer.Option(None, help="a CSV file of input rows (no header) instead"),
    device: str = typer.Option(None, help="cpu, cuda, cuda:N or auto"),
) -> None:
    """Predict for one row given on the command line, or for each row of a CSV file; for an MNIST model,
    the digit in each image file (needs Pillow: pip install "tensorlite\\[image]")."""
    import tensorlite as tl
    from tensorlite.training import run_dir

    path = run_dir.resolve_checkpoint(checkpoint)
    if tl.load_metadata(path).get("kind") in run_dir.MNIST_MODELS:
        _predict_digits(path, inputs, csv, device)
    else:
        _predict_rows(path, inputs, csv, device)


def _predict_rows(checkpoint: Path, inputs: list[str] | None, csv: Path | None, device: str | None) -> None:
    """``tensorlite predict`` for a small task: the class (and its score) or the value of each row."""
    import numpy as np

    import tensorlite as tl
    from tensorlite.cli import small_tasks

    if csv is not None:
        rows = _read_rows(csv)
    elif inputs:
        try:
            rows = np.array([[float(value) for value in inputs]], dtype=np.float32)
        except ValueError:
            raise UsageError(f"inputs must be numbers, got {' '.join(inputs)}") from None
    else:
        raise UsageError("give an input row (e.g. `tensorlite predict CKPT 0 1`) or --csv FILE")
    outputs, meta = small_tasks.predict(checkpoint, rows, device)
    classes, loss = meta.get("classes"), meta["loss"]
    predicted = small_tasks.predict_classes(loss, tl.tensor(outputs)).numpy() if classes else None
    scores = small_tasks.output_score(loss, tl.tensor(outputs)).numpy()
    for i, row in enumerate(rows):
        shown = ", ".join(f"{v:g}" for v in row)
        if classes and loss == "ce":
            typer.echo(f"[{shown}] -> {classes[predicted[i]]}  (logits {np.round(outputs[i], 3).tolist()})")
        elif classes:
            typer.echo(f"[{shown}] -> {classes[predicted[i]]}  (p={scores[i]:.3f})")
        else:
            typer.echo(f"[{shown}] -> {scores[i]:.4f}")


def _read_rows(csv: Path) -> Any:
    """The rows of numbers in ``--csv``: a regular file of at most ``CSV_MAX_BYTES``, not empty."""
    import io

    import numpy as np

    from tensorlite.utils.files import read_text_file

    text = read_text_file(csv, "--csv", CSV_MAX_BYTES)
    if not text.strip():
        raise UsageError(f"--csv: {csv} is empty, expected rows of numbers separated by commas")
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float32)
    except ValueError as exc:
        raise UsageError(f"--csv: {csv} does not hold rows of numbers separated by commas: {exc}") from None


def _predict_digits(checkpoint: Path, images: list[str] | None, csv: Path | None, device: str | None) -> None:
    """``tensorlite predict`` for an MNIST checkpoint: the digit in each image, with the likeliest three."""
    from tensorlite.cli import mnist

    if csv is not None or not images:
        raise UsageError("an MNIST model classifies image files: tensorlite predict CKPT digit.png ...")
    for image, probabilities in zip(images, mnist.predict_images(checkpoint, images, device)):
        top = probabilities.argsort()[::-1][:3]
        others = ", ".join(f"{digit}: {probabilities[digit]:.3f}" for digit in top[1:])
        typer.echo(f"{image} -> {top[0]}  (p={probabilities[top[0]]:.3f}; then {others})")


plot_app = typer.Typer(help="Plots to PNG (needs matplotlib: pip install \"tensorlite\\[plot]\").",
                       no_args_is_help=True)
app.add_typer(plot_app, name="plot")


# plot command -> (function in plots, its input's name and help, --out's help, the command's help)
PLOTS = {
    "loss": ("plot_loss", "RUN_DIR", "a run directory holding log.jsonl", "PNG to write (default: RUN_DIR/loss.png)",
             "Training and validation loss (and accuracy) per epoch."),
    "boundary": ("plot_boundary", "CHECKPOINT", "a checkpoint of a 2-input model (gates, circles, addition)",
                 "PNG to write (default: boundary.png beside the checkpoint)",
                 "The decision boundary of a 2-D model over its training points."),
}


def _plot_command(function: str, source: str, source_help: str, out_help: str, doc: str) -> Callable[..., None]:
    """The ``tensorlite plot`` command that draws with ``plots.<function>(SOURCE, out)``."""

    def command(**arguments: Path | None) -> None:
        from tensorlite.cli import plots

        path = getattr(plots, function)(arguments[source.lower()], arguments["out"])
        typer.echo(f"wrote {path}")

    command.__doc__ = doc
    return _with_options(command, {source.lower(): (Path, typer.Argument(..., metavar=source, help=source_help)),
                                   "out": (Path, typer.Option(None, help=out_help))})


for _name, _spec in PLOTS.items():
    plot_app.command(_name)(_plot_command(*_spec))
